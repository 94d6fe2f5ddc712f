"""The toolkit against what real SGLang 0.5.16 printed and answered on a real NVIDIA GPU
(tests/fixtures/sglang-real/README.md: where, when and how each was captured)."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from operations.diagnosis import diagnose
from operations.facts.service import JOURNAL_LINES
from operations.render import server_command
from operations.settings import validate
from scripts.gpu_host.serve_real import HOST_DATA
from scripts.make_tiny_model import write
from tests.conftest import FIXTURES, ROOT
from tests.unit.flag_table import options

REAL = FIXTURES / "sglang-real"
RUNS = {run["run"]: run for run in json.loads((REAL / "runs.json").read_text())}
EXITED = {"state": "exited", "reason": "server process 3926 exited while nothing listens on "
          "the port yet"}


def journal(name: str) -> list[str]:
    return (REAL / name).read_text(errors="replace").splitlines()[-JOURNAL_LINES:]


@pytest.mark.parametrize("log, key", [
    ("kernel-other-torch.log", "abi-mismatch"),
    ("missing-snapshot.log", "model-not-staged"),
    ("oom.2026-11-25.log", "health-503"),
    ("awq-on-plain-model.2026-11-25.log", "quantization-mismatch"),
])
def test_real_failure_is_named_from_the_journal_the_deploy_reads(log, key):
    tail = journal(log)
    diagnosis = diagnose({"unit": {"error": "no systemd"}, "journal": tail, "wait": EXITED,
                          "health": {"status": 0}})
    assert diagnosis.symptom is not None and diagnosis.symptom.key == key
    assert diagnosis.evidence_line in [line.strip() for line in tail]


def test_a_real_healthy_start_log_names_no_symptom():
    """A signature that matched a healthy server's own lines would send the fleet after a
    problem it does not have."""
    lines = (REAL / "minimal-stable.first-start.log").read_text(errors="replace")
    assert diagnose({"unit": {"error": "no systemd"}, "journal": lines.splitlines(),
                     "health": {"status": 0}}).symptom is None


def test_a_server_still_starting_is_not_the_memory_symptom():
    """What the real first start gave a 5 s wait: nothing listening yet, nothing wrong."""
    run = RUNS["minimal-stable (first start)"]
    assert run["short_wait"]["state"] == "starting"
    diagnosis = diagnose({"unit": {"error": "no systemd"}, "wait": run["short_wait"],
                          "journal": journal("minimal-stable.first-start.log"),
                          "health": {"status": 0}})
    [line] = diagnosis.lines("gpu-01")
    assert diagnosis.symptom is None and not diagnosis.healthy
    assert "still starting after 5 s" in line and "raise health_timeout_s" in line
    assert "mem-fraction" not in line


def test_health_503_alone_is_not_the_memory_symptom():
    diagnosis = diagnose({"unit": {"ActiveState": "active"}, "health": {"status": 503},
                          "journal": journal("minimal-stable.first-start.log")[:30]})
    assert diagnosis.symptom is None and "still warming up, or stuck" in diagnosis.lines("g")[0]


def _tiny_config(tmp_path: Path, awq: bool) -> dict:
    folder = tmp_path / ("awq" if awq else "plain")
    write(folder, seed=1, awq=awq)
    return json.loads((folder / "config.json").read_text())


def test_the_argv_rendered_today_is_the_argv_real_sglang_served(tmp_path):
    """minimal-stable on the GPU host: the chart's flags, --quantization awq because the model's
    config.json declares AWQ."""
    for run, model, awq in (("minimal-stable (first start)", "/tmp/tiny-awq", True),
                            ("unquantized model, --quantization derived (none)", "/tmp/tiny",
                             False)):
        settings = validate("gpu-host", {**HOST_DATA, "model": model,
                                         "stack": "cu13-0.5.16"})
        command = server_command(settings, 1, options(), "0.5.16", _tiny_config(tmp_path, awq))
        # recorded before every profile turned metrics on: the same argv, and that flag
        assert [w for w in command.argv if w != "--enable-metrics"] == RUNS[run]["argv"]
        assert "--enable-metrics" in command.argv
        assert ("--quantization" in command.argv) == awq


def test_the_tiny_awq_model_is_in_awqs_checkpoint_layout(tmp_path):
    config = _tiny_config(tmp_path, awq=True)
    assert config["quantization_config"] == {"quant_method": "awq", "bits": 4,
                                             "group_size": 128, "zero_point": True,
                                             "version": "gemm", "modules_to_not_convert": None}
    assert config["torch_dtype"] == "float16"  # SGLang's awq computes in float16 only
    header_size = int.from_bytes((tmp_path / "awq" / "model.safetensors").read_bytes()[:8],
                                 "little")
    header = json.loads((tmp_path / "awq" / "model.safetensors").read_bytes()[8:8 + header_size])
    q = header["model.layers.0.mlp.down_proj.qweight"]
    assert (q["dtype"], q["shape"]) == ("I32", [256, 16])  # in x out/8, 4-bit values packed
    assert header["model.layers.0.mlp.down_proj.scales"]["shape"] == [2, 128]  # groups of 128
    assert "model.layers.0.mlp.down_proj.weight" not in header


def test_the_standin_refuses_what_real_sglangs_validation_refused_in_its_words(
        standin, tmp_path):
    """--quantization gptq on the AWQ model, and --config from a file not named .yaml."""
    write(tmp_path / "awq", seed=1, awq=True)
    args = argparse.Namespace(model_path=str(tmp_path / "awq"), revision=None,
                              quantization="gptq", attention_backend=None, tp_size=1, nnodes=1)
    real = json.loads((REAL / "gptq-on-awq.dry-parse.json").read_text())["error"]
    with pytest.raises(ValueError) as refused:
        standin.ServerArgs.from_cli_args(args)
    assert f"ValueError: {refused.value}" in real.splitlines()
    with pytest.raises(ValueError, match=r"^Config file must be YAML format, got: \.json$"):
        standin.merge_config(["--config", str(tmp_path / "key.json")])


@pytest.fixture(scope="module")
def standin_server(standin, tmp_path_factory):
    """The lab's SGLang stand-in HTTP surface, ready, serving the tiny AWQ model."""
    server_module = standin
    config = _tiny_config(tmp_path_factory.mktemp("model"), awq=True)
    args = argparse.Namespace(model_path="/tmp/tiny-awq", served_model_name=None, api_key=None,
                              enable_metrics=False, port=8000)  # as recorded
    state = server_module.State(slots=2, max_tokens=1024)
    state.ready = True
    httpd = ThreadingHTTPServer(("127.0.0.1", 0),
                                server_module.make_handler(args, state, config))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


REQUESTS = {"POST /generate": {"text": "The capital of France is",
                               "sampling_params": {"max_new_tokens": 8, "temperature": 0}},
            "POST /v1/chat/completions": {"model": "/tmp/tiny-awq", "max_tokens": 8,
                                          "messages": [{"role": "user", "content": "Hi"}]},
            "POST /v1/completions": {"model": "/tmp/tiny-awq", "prompt": "Hello",
                                     "max_tokens": 4}}


def _keys(value, prefix: str = "") -> set[str]:
    """Every key path of a JSON answer (lists through their first item)."""
    if isinstance(value, list):
        return _keys(value[0], prefix + "[]") if value else set()
    if not isinstance(value, dict):
        return set()
    return {p for k, v in value.items() for p in ({prefix + k} | _keys(v, prefix + k + "."))}


@pytest.mark.parametrize("endpoint", sorted(json.loads((REAL / "answers.json").read_text())))
def test_the_standin_answers_as_real_sglang_does(standin_server, endpoint):
    real = json.loads((REAL / "answers.json").read_text())[endpoint]
    method, path = endpoint.split(" ")
    body = json.dumps(REQUESTS[endpoint]).encode() if method == "POST" else None
    request = urllib.request.Request(standin_server + path, data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, kind, raw = response.status, response.headers.get("Content-Type"), \
                response.read().decode()
    except urllib.error.HTTPError as error:
        status, kind, raw = error.code, error.headers.get("Content-Type"), error.read().decode()
    assert (status, kind) == (real["status"], real["content_type"])
    try:
        real_body = json.loads(real["body"])
    except ValueError:  # empty (/health), or cut off at 3000 characters when recorded
        assert raw == "" or real["body"] != ""
        return
    assert _keys(real_body) <= _keys(json.loads(raw))


def health_wait(port: int, timeout: float, runner: str, path: str | None = None) -> dict:
    """files/health_wait.py as the deploy runs it, on a host with or without systemctl."""
    env = {"PATH": path} if path is not None else None
    done = subprocess.run([sys.executable, str(ROOT / "files" / "health_wait.py"), str(port),
                           str(timeout), runner], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 0 and not done.stderr, done.stderr
    return json.loads(done.stdout)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_health_wait_on_a_running_server_that_is_not_listening_yet_says_still_starting():
    """Real SGLang's first 40 s or more: its process runs, its port is closed."""
    result = health_wait(_free_port(), 1, f"pid:{os.getpid()}")
    assert result["state"] == "starting" and not result["healthy"]
    assert result["reason"] == ("still starting after 1 s (nothing listens on the port yet; the "
                                "server runs)")


def test_health_wait_without_systemctl_gives_a_line_not_a_traceback():
    """Seen on the GPU host: FileNotFoundError 'systemctl' was the inference check's finding."""
    result = health_wait(_free_port(), 1, "sglang.service", path="/nonexistent")
    assert result["state"] == "starting"


def test_health_wait_stops_when_the_server_process_exits():
    gone = subprocess.Popen(["true"])
    gone.wait()
    result = health_wait(_free_port(), 30, f"pid:{gone.pid}")
    assert result["state"] == "exited" and f"server process {gone.pid} exited" in result["reason"]


def test_health_wait_on_a_ready_server_generates(standin_server):
    port = int(standin_server.rsplit(":", 1)[1])
    result = health_wait(port, 5, f"pid:{os.getpid()}")
    assert result["healthy"] and result["tokens"] == 8
