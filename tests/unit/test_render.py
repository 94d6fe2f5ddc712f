"""Rendering: every profile on every stack gives an argv that SGLang 0.5.23's own parser
accepts, the unit files match their goldens, and the chart's literal line is refused."""

from __future__ import annotations

import os
import shlex

import pytest

from operations.managers import MANAGERS, WRAPPER
from operations.profiles import PROFILES
from operations.render import RenderError, express, server_command
from operations.server_files import (
    CREDENTIALS_DIR,
    ENV_PATH,
    UNIT_PATH,
    render_files,
    systemd_word,
)
from operations.settings import validate
from operations.stacks import STACKS
from tests.conftest import ROOT
from tests.unit.flag_table import CHART_MODEL_CONFIG, PINNED, RejectedError, dry_parse, options

GOLDEN = ROOT / "tests" / "golden"
CHART_LINE = ("--model-path Qwen/Qwen3-32B-AWQ --host 0.0.0.0 --port 8000 --quantization awq "
              "--max-total-tokens 1024 --mem-fraction-static 0.65 --trust-remote-code "
              "--disable-cuda-graph --disable-custom-all-reduce --disable-flashinfer "
              "--disable-radix-cache --attention-backend torch_native").split()


def command_for(profile: str, stack: str, gpus: int = 1, **data):
    settings = validate("gpu-01", {"profile": profile, "stack": stack, **data})
    return settings, server_command(settings, gpus, options(), PINNED, CHART_MODEL_CONFIG)


@pytest.mark.parametrize("stack", sorted(STACKS))
@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_on_every_stack_parses_with_pinned_sglang(profile, stack):
    _, command = command_for(profile, stack)
    parsed = dry_parse(command.argv[3:])
    intents = PROFILES[profile]
    assert parsed.model_path == "Qwen/Qwen3-32B-AWQ"
    assert parsed.attention_backend == intents.attention_backend
    # FlashInfer off is said the 0.5.23 way: the pytorch sampling backend
    assert parsed.sampling_backend == ("flashinfer" if intents.flashinfer else "pytorch")
    assert parsed.disable_cuda_graph == (not intents.cuda_graph)
    assert parsed.disable_radix_cache == (not intents.radix_cache)
    assert parsed.disable_custom_all_reduce == (not intents.custom_all_reduce)
    assert parsed.trust_remote_code
    assert (parsed.max_total_tokens, parsed.mem_fraction_static) == (
        intents.max_total_tokens, intents.mem_fraction_static)


def test_minimal_stable_is_the_charts_template():
    _, command = command_for("minimal-stable", "cu13-stable")
    parsed = dry_parse(command.argv[3:])
    assert (parsed.attention_backend, parsed.sampling_backend) == ("torch_native", "pytorch")
    assert parsed.disable_cuda_graph and parsed.disable_radix_cache
    assert parsed.disable_custom_all_reduce and parsed.trust_remote_code
    assert (parsed.max_total_tokens, parsed.mem_fraction_static) == (1024, 0.65)
    assert parsed.quantization == "awq"


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_unit_and_environment_match_golden(profile):
    settings, command = command_for(profile, "cu13-stable")
    rendered = render_files(settings, command, PINNED)
    for path, suffix in ((UNIT_PATH, "service"), (ENV_PATH, "env")):
        golden = GOLDEN / f"{profile}.{suffix}"
        if os.environ.get("UPDATE_GOLDEN"):
            golden.write_text(rendered[path])
        assert rendered[path] == golden.read_text(), f"{golden} differs (UPDATE_GOLDEN=1)"


def test_golden_exec_start_argv_parses_with_pinned_sglang():
    for golden in GOLDEN.glob("*.service"):
        exec_start = next(line for line in golden.read_text().splitlines()
                          if line.startswith("ExecStart="))
        argv = exec_start.removeprefix("ExecStart=").split()
        assert argv[1:3] == ["-m", "sglang.launch_server"]
        dry_parse(argv[3:])


def test_charts_literal_line_is_rejected_by_sglang_0_5_23():
    with pytest.raises(RejectedError, match="ambiguous option: --disable-flashinfer could match"):
        dry_parse(CHART_LINE)


def test_flashinfer_off_uses_the_old_flag_where_it_exists():
    assert express("flashinfer_off", {"--disable-flashinfer"}, "0.4.0") == ["--disable-flashinfer"]
    assert express("flashinfer_off", options(), PINNED) == ["--sampling-backend", "pytorch"]


def test_intent_with_no_way_to_say_it_names_version():
    with pytest.raises(RenderError, match="SGLang 9.9 accepts none of the ways"):
        express("cuda_graph_off", set(), "9.9")


def test_tensor_parallel_follows_gpu_count_unless_set():
    _, two = command_for("minimal-stable", "cu13-stable", gpus=2)
    assert dry_parse(two.argv[3:]).tp_size == 2
    _, fixed = command_for("minimal-stable", "cu13-stable", gpus=2, tp_size=1)
    assert dry_parse(fixed.argv[3:]).tp_size == 1


def test_per_host_model_port_and_extra_flags_reach_argv():
    _, command = command_for("minimal-stable", "cu13-stable", model="Qwen/Qwen3-8B", port=8100,
                             extra_flags=["--enable-metrics"], mem_fraction_static=0.5)
    parsed = dry_parse(command.argv[3:])
    assert (parsed.model_path, parsed.port, parsed.enable_metrics,
            parsed.mem_fraction_static) == ("Qwen/Qwen3-8B", 8100, True, 0.5)


def test_debugging_profile_adds_environment_ptrace_and_core_dumps():
    settings, command = command_for("debugging", "cu13-stable")
    assert command.environment["TORCH_SHOW_CPP_STACKTRACES"] == "1"
    assert command.environment["TORCHINDUCTOR_COMPILE_THREADS"] == "1"
    unit = render_files(settings, command, PINNED)[UNIT_PATH]
    assert "LimitCORE=infinity" in unit and "CAP_SYS_PTRACE" in unit
    stable_settings, stable = command_for("minimal-stable", "cu13-stable")
    stable_unit = render_files(stable_settings, stable, PINNED)[UNIT_PATH]
    assert "LimitCORE=0" in stable_unit and "CAP_SYS_PTRACE" not in stable_unit


def test_systemd_word_escapes_specifiers_and_quotes_spaces():
    assert systemd_word("50%") == "\"50%%\""
    assert systemd_word("$HOME") == "\"$$HOME\""
    assert systemd_word("a b") == '"a b"'


def test_quantization_is_what_the_models_config_declares():
    settings = validate("gpu-01", {})
    plain = {"architectures": ["LlamaForCausalLM"]}
    assert "--quantization" not in server_command(settings, 1, options(), PINNED, plain).argv
    argv = server_command(settings, 1, options(), PINNED, CHART_MODEL_CONFIG).argv
    assert argv[argv.index("--quantization") + 1] == "awq"


def test_awq_asked_of_a_model_that_is_not_quantized_is_refused_before_the_unit():
    """Real SGLang accepts the argv and fails 40 s later loading the weights."""
    settings = validate("gpu-01", {"extra_flags": ["--quantization", "awq"]})
    with pytest.raises(RenderError, match="is not quantized.*Cannot find the config file"):
        server_command(settings, 1, options(), PINNED, {"architectures": ["LlamaForCausalLM"]})


def test_more_tensor_parallel_ranks_than_gpus_is_refused_before_the_unit():
    settings = validate("gpu-01", {"tp_size": 2})
    with pytest.raises(RenderError, match="tp_size is 2 but the host has 1 GPU"):
        server_command(settings, 1, options(), PINNED, CHART_MODEL_CONFIG)
    argv = server_command(settings, 2, options(), PINNED, CHART_MODEL_CONFIG).argv
    assert argv[argv.index("--tp-size") + 1] == "2"


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_supervisor_program_matches_golden_and_runs_the_units_argv(profile):
    """Without systemd (a rented container): the same argv, after the wrapper that reads the
    root-only environment file and becomes the service user; the environment stays out of
    supervisord's config."""
    settings, command = command_for(profile, "cu13-stable")
    program = render_files(settings, command, PINNED, MANAGERS["supervisor"])
    unit = render_files(settings, command, PINNED)
    conf = program[MANAGERS["supervisor"].config_path]
    golden = GOLDEN / f"{profile}.supervisor.conf"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(conf)
    assert conf == golden.read_text(), f"{golden} differs (UPDATE_GOLDEN=1)"
    line = next(w for w in conf.splitlines() if w.startswith("command="))
    words = shlex.split(line.removeprefix("command="))
    assert words[:5] == [WRAPPER, "sglang", ENV_PATH, CREDENTIALS_DIR, "--"]
    assert words[5:] == command.argv
    assert program[ENV_PATH] == unit[ENV_PATH]
    for key in command.environment:
        assert key not in conf


def test_supervisor_program_reads_the_api_key_from_the_wrappers_credentials():
    settings = validate("gpu-01", {"stack": "cu13-stable"})
    command = server_command(settings, 1, options(), PINNED, CHART_MODEL_CONFIG, api_key=True)
    conf = render_files(settings, command, PINNED, MANAGERS["supervisor"])[
        MANAGERS["supervisor"].config_path]
    assert f"--config {CREDENTIALS_DIR}/sglang-config.yaml" in conf and "%d" not in conf
