"""Diagnosis on excerpts of real logs from public issue reports (source next to each), and the
remediation plan that answers each symptom."""

from __future__ import annotations

import pytest

from operations.diagnosis import diagnose
from operations.facts.service import UnitState
from operations.remediation import MAX_STEPS, REMEDIES, plan
from operations.settings import validate
from operations.symptoms import SYMPTOMS

# Excerpts of real logs, each with the public report it comes from.
REAL_LOGS = {
    # transformers 5.24.0 (what SGLang loads configs with), run on the control machine on
    # 2026-11-26: AutoConfig.from_pretrained of a pinned commit, HF_HUB_OFFLINE=1, an empty
    # HF_HOME: what a server started offline without its staged snapshot prints.
    "model-not-staged": [
        '  File "/work/main/.venv/lib/python3.11/site-packages/transformers/utils/hub.py", '
        'line 620, in '
        "cached_files",
        "    raise OSError(",
        "OSError: We couldn't connect to 'https://huggingface.co' to load the files, and "
        "couldn't find them in the cached files.",
        "Check your internet connection or see how to run the library in offline mode at "
        "'https://huggingface.co/docs/transformers/installation#offline-mode'."],
    # sgl-project/sglang issue 10350 (2025-09): SGLang server crash
    "segfault": ["Fatal Python error: Segmentation fault", "",
                 "Thread 0x00007fbc4bfff640 (most recent call first):"],
    # sgl-project/sglang PR 13948 (2025-11): sgl_kernel against a different torch
    "abi-mismatch": [
        "[sgl_kernel] CRITICAL: Could not load any common_ops library!",
        "- ImportError: /usr/local/lib/python3.10/dist-packages/sgl_kernel/sm100/common_ops."
        "abi3.so: undefined symbol: _ZNK3c106SymInt6sym_neERKS0_"],
    # odysseus-dev/odysseus PR 6257 (2026-09): sgl_kernel links libnuma.so.1
    "libnuma-missing": ["ImportError: libnuma.so.1: cannot open shared object file",
                        "[sgl_kernel] CRITICAL: Could not load any common_ops library!"],
    # vllm-project/vllm issue 16901 (2025-04) and sgl-project/sglang issue 7249 (RTX 5090)
    "no-kernel-image": ["RuntimeError: CUDA error: no kernel image is available for execution "
                        "on the device",
                        "RMSNorm failed with error code no kernel image is available for "
                        "execution on the device"],
    # Real SGLang 0.5.16 on an H200, 2026-11-25: --quantization awq on a model that is not
    # quantized (tests/fixtures/sglang-real/awq-on-plain-model.2026-11-25.log)
    "quantization-mismatch": [
        '    raise ValueError(f"Cannot find the config file for {model_config.quantization}")',
        "ValueError: Cannot find the config file for awq", "",
        "[2026-11-25 23:39:38] Received sigquit from a child process. It usually means the "
        "child failed."],
    # sgl-project/sglang issue 4330 (2025-03): memory fraction between OOM and not enough
    "health-503": ["RuntimeError: Not enough memory. Please try to increase "
                   "--mem-fraction-static."],
    # torch's own words on a host without a loaded driver
    "driver-missing": ["RuntimeError: Found no NVIDIA driver on your system. Please check that "
                       "you have an NVIDIA GPU and installed a driver from "
                       "http://www.nvidia.com/Download/index.aspx"],
    # nvidia-smi after a driver upgrade, before the reboot
    "driver-pending-reboot": ["Failed to initialize NVML: Driver/library version mismatch",
                              "NVML library version: 580.95"],
    # Start9Labs/start-technologies issue 3465: proprietary 580 on a Blackwell GPU (kernel log)
    "proprietary-on-blackwell": ["NVRM: GPU 0000:01:00.0: RmInitAdapter failed! "
                                 "(0x62:0x1a:2005)", "NVRM: GPU 0000:01:00.0: rm_init_adapter "
                                 "failed, device minor number 0"],
    # NVIDIA/open-gpu-kernel-modules issue 862: an RTX 5090 with Resizable BAR off
    "no-devices": ["No devices were found"],
}
# States only the driver fact shows (operations/drivers.py words them; tests/unit/test_drivers.py)
STATE_ONLY = {"nouveau-loaded", "driver-too-old"}

FAILED_UNIT = {"ActiveState": "activating", "SubState": "auto-restart", "Result": "exit-code",
               "ExecMainStatus": "1", "NRestarts": "3"}


def test_every_symptom_has_a_real_log_excerpt_and_a_remedy():
    assert {s.key for s in SYMPTOMS} == set(REAL_LOGS) | STATE_ONLY == set(REMEDIES)


@pytest.mark.parametrize("key", sorted(REAL_LOGS))
def test_real_log_is_named_with_its_evidence_line(key):
    diagnosis = diagnose({"unit": FAILED_UNIT, "journal": REAL_LOGS[key],
                          "health": {"status": 0}})
    assert not diagnosis.healthy
    assert diagnosis.symptom.key == key
    assert diagnosis.evidence_line in REAL_LOGS[key]
    [line] = diagnosis.lines("gpu-01")
    assert diagnosis.symptom.fix in line and "restarted 3 times" in line


def test_healthy_needs_health_200_and_tokens():
    assert diagnose({"unit": {"ActiveState": "active"}, "health": {"status": 200},
                     "generate": {"tokens": 8}}).healthy
    assert not diagnose({"unit": {"ActiveState": "active"}, "health": {"status": 200},
                         "generate": {"tokens": 0}}).healthy


def test_unmatched_failure_says_so_and_shows_the_journal():
    journal = [f"line {n}" for n in range(30)] + ["KeyError: 'rope_scaling'"]
    diagnosis = diagnose({"unit": FAILED_UNIT, "journal": journal, "health": {"status": 0}})
    lines = diagnosis.lines("gpu-02")
    assert diagnosis.symptom is None and "no chart symptom matched" in lines[0]
    assert lines[-1] == "gpu-02:   KeyError: 'rope_scaling'" and len(lines) == 16


def test_import_error_of_the_kernel_is_evidence_too():
    diagnosis = diagnose({"unit": FAILED_UNIT, "journal": [], "health": {"status": 0},
                          "torch": {"kernel_error": REAL_LOGS["abi-mismatch"][1]}})
    assert diagnosis.symptom.key == "abi-mismatch"


def test_memory_remedy_steps_toward_the_charts_065_and_1024_then_stops():
    settings = validate("gpu-01", {"mem_fraction_static": 0.97, "max_total_tokens": 65536})
    first = plan("health-503", settings, [])
    assert first.overrides == {"mem_fraction_static": 0.87, "max_total_tokens": 16384}
    at_floor = validate("gpu-01", {"mem_fraction_static": 0.65, "max_total_tokens": 1024})
    assert plan("health-503", at_floor, []) is None


def test_remedies_are_bounded_and_not_repeated():
    settings = validate("gpu-01", {})
    assert plan("segfault", settings, []).overrides["profile"] == "minimal-stable"
    assert plan("segfault", settings, ["minimal-stable-fallback"]) is None
    assert plan("no-kernel-image", settings, ["reinstall-stack"]).overrides["environment"] == {
        "TORCH_CUDA_ARCH_LIST": "12.0+PTX"}
    assert plan(None, settings, []) is None
    assert all(len(remedies) <= MAX_STEPS for remedies in REMEDIES.values())


def test_libnuma_and_abi_remedies_fix_the_host_not_the_flags():
    settings = validate("gpu-01", {"stack": "cu13-stable"})
    libnuma = plan("libnuma-missing", settings, [])
    assert "libnuma1 libnuma-dev" in libnuma.commands[0] and not libnuma.overrides
    abi = plan("abi-mismatch", settings, [])
    assert abi.commands[0].startswith("/opt/sglang/venv/bin/python -m pip uninstall -y torch")
    assert abi.commands[1].endswith(" uv==0.13.9")  # the installer, then the pins
    assert "sglang-kernel==0.4.10" in abi.commands[2]


def test_a_supervised_server_is_named_in_supervisors_words():
    """On a container host the evidence is supervisor's (operations/facts/service.py)."""
    state = UnitState().process(["Manager=supervisor", "Program=sglang", "UnitFileState=enabled",
                                 "Starts=4", "Status=sglang BACKOFF Exited too quickly "
                                 "(process log may have details)"])
    assert (state["ActiveState"], state["SubState"], state["NRestarts"]) == (
        "activating", "BACKOFF", "3")
    found = diagnose({"unit": state, "journal": [], "health": {"status": 0}})
    assert "supervisor program sglang BACKOFF (Exited too quickly" in found.lines("gpu-01")[0]
    assert "restarted 3 times" in found.lines("gpu-01")[0]
    down = UnitState().process(["Manager=supervisor", "Program=sglang", "UnitFileState=enabled",
                                "Starts=0", "Status=unix:///var/run/supervisor.sock no such file"])
    assert down["SubState"] == "supervisord-down"
    assert "the supervisor is not running" in down["Result"]
