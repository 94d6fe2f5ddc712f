"""Verification checks on evidence built from real outputs (the H100 host's captures, the RTX
5090 public report) and from the lab's captures."""

from __future__ import annotations

import json

from operations import checks
from operations.facts.service import UnitState
from operations.settings import validate
from tests.conftest import CAPTURES, FIXTURES
from tests.unit.test_preflight import OPEN_570, gpus_from

SETTINGS = validate("gpu-01", {"stack": "cu128-nightly"})
PINS = {"torch": "2.10.0.dev20250916+cu128", "sgl-kernel": "0.3.9.post2", "sglang": "0.5.2"}
HEALTHY_UNIT = UnitState().process([
    "ActiveState=active", "SubState=running", "UnitFileState=enabled", "NRestarts=0",
    "MainPID=812", "User=sglang", "Result=success", "ExecMainStatus=0", "ExecMainCode=0",
    "__exit__=0"])
ARGV = ["/opt/sglang/venv/bin/python", "-m", "sglang.launch_server", "--port", "8000"]


def healthy_evidence(**changes) -> dict:
    gpus = gpus_from(CAPTURES / "rtx5090-570")
    gpus["gpus"] = [{**g, "memory_used_mib": 21000} for g in gpus["gpus"]]
    evidence = {
        "gpus": gpus, "driver": OPEN_570,
        "disks": {"/opt/sglang": {"free_gb": 500.0, "mount": "/"},
                  "/var/cache/sglang": {"free_gb": 500.0, "mount": "/"}},
        "port": [{"pid": 812, "comm": "python", "unit": "sglang.service"}], "pid1": "systemd",
        "libnuma": True, "venv": {**PINS, "pip": "25.0"},
        "torch": {"torch": PINS["torch"], "cuda": "12.8",
                  "arch_list": ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]},
        "unit": HEALTHY_UNIT, "journal": [], "process": {"user": "sglang", "argv": ARGV},
        "dry_parse": {"ok": True}, "health": {"status": 200},
        "metrics": {"status": 200, "running": 0, "queued": 0, "kv_use": 0.0},
        "generate": {"tokens": 8, "text": " Paris"},
    }
    evidence.update(changes)
    return evidence


def failed(evidence) -> dict[str, checks.Finding]:
    return {f.check: f for f in checks.verify(SETTINGS, evidence) if not f.ok}


def test_a_healthy_rtx5090_host_passes_every_check():
    assert failed(healthy_evidence()) == {}


def test_real_h100_host_without_systemd_fails_the_right_checks_with_messages():
    """Evidence as the real H100 host gave it: no systemd, no venv, nothing on port 8000."""
    h100 = FIXTURES / "gpu-hosts" / "h100-ubuntu2404"
    evidence = healthy_evidence(
        gpus=gpus_from(h100), pid1="bash", port=None, process=None, generate=None,
        venv={"error": "no python at /opt/sglang/venv/bin/python", "status": 3},
        torch={"error": "no python at /opt/sglang/venv/bin/python", "status": 3},
        unit=UnitState().process(["bash: line 1: systemctl: command not found",
                                  "__exit__=127"]),
        health={"status": 0}, metrics={"status": 0})
    del evidence["dry_parse"]
    found = failed(evidence)
    assert set(found) == {"gpus", "torch-arch", "kernel-abi", "pins", "unit", "user", "argv",
                          "port", "health", "metrics", "inference"}
    assert "compute capability 9.0" in found["gpus"].found
    assert "no systemd here" in found["unit"].found and "'bash'" in found["unit"].found
    assert found["pins"].found == "no venv at /opt/sglang/venv"


def test_a_503_says_the_servers_own_load_next_to_it():
    """Queue depth and KV use from the server's metrics, next to the health finding."""
    busy = {"status": 200, "running": 8, "queued": 12, "kv_use": 0.97}
    found = failed(healthy_evidence(health={"status": 503}, metrics=busy))
    assert found["health"].found == ("/health answered 503 (its metrics: 8 running, 12 queued, "
                                     "KV cache 97% used)")
    assert "metrics" not in found


def test_a_server_without_sglangs_metrics_fails_the_metrics_check():
    found = failed(healthy_evidence(metrics={"status": 404}))
    assert found["metrics"].found == "/metrics answered 404"
    assert "--enable-metrics" in found["metrics"].cause


def test_missing_libnuma_matches_chart_symptom_3():
    finding = failed(healthy_evidence(libnuma=False))["libnuma"]
    assert finding.symptom.key == "libnuma-missing"
    assert "apt-get install -y libnuma-dev libnuma1" in finding.message("gpu-01")


def test_arch_list_without_sm120_matches_chart_symptom_4():
    torch = {"torch": "2.7.0+cu126", "cuda": "12.6", "arch_list": ["sm_80", "sm_86", "sm_90"]}
    finding = failed(healthy_evidence(torch=torch))["torch-arch"]
    assert finding.symptom.key == "no-kernel-image" and "12.0" in finding.found


def test_health_503_with_oom_in_journal_names_memory():
    journal = ["[2026-11-24 10:00:00 TP0] Load weight begin. avail mem=31.84 GB",
               "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB."]
    found = failed(healthy_evidence(health={"status": 503}, journal=journal, generate=None))
    assert found["health"].symptom.key == "health-503"
    assert "CUDA out of memory" in found["health"].evidence_line
    assert "--mem-fraction-static 0.65" in found["health"].fix


def test_unit_in_restart_loop_names_segfault_from_journal():
    unit = {**HEALTHY_UNIT, "ActiveState": "activating", "SubState": "auto-restart",
            "Result": "signal", "NRestarts": "4"}
    journal = ["Fatal Python error: Segmentation fault", "", "Current thread 0x7f (most "
               "recent call first):"]
    finding = failed(healthy_evidence(unit=unit, journal=journal))["unit"]
    assert finding.symptom.key == "segfault"


def test_rejected_running_argv_is_reported_with_argparses_words():
    rejection = {"error": "sglang.launch_server: error: ambiguous option: --disable-flashinfer "
                 "could match --disable-flashinfer-autotune", "status": 2}
    finding = failed(healthy_evidence(dry_parse=rejection))["argv"]
    assert "ambiguous option: --disable-flashinfer" in finding.found


def test_port_held_by_someone_else_names_them():
    holders = [{"pid": 99, "comm": "docker-proxy", "unit": None}]
    assert "docker-proxy" in failed(healthy_evidence(port=holders))["port"].found


def test_wrong_user_and_drifted_pins_fail():
    found = failed(healthy_evidence(process={"user": "root", "argv": ARGV},
                                    venv={**PINS, "sgl-kernel": "0.3.9.post2+torch2.8"}))
    assert set(found) == {"user", "pins"}


def test_gpu_memory_above_the_profiles_fraction_fails():
    gpus = gpus_from(CAPTURES / "rtx5090-570")
    gpus["gpus"] = [{**gpus["gpus"][0], "memory_used_mib": 31000}]
    assert "31000/32607" in failed(healthy_evidence(gpus=gpus))["gpu-memory-use"].found


def test_restart_count_growing_is_a_restart_loop():
    assert checks.restarts_grew({"NRestarts": "2"}, {"NRestarts": "2"}).ok
    grew = checks.restarts_grew({"NRestarts": "2"}, {"NRestarts": "5"})
    assert not grew.ok and "from 2 to 5" in grew.found


def test_a_failure_message_says_found_symptom_cause_and_fix_in_that_order():
    message = failed(healthy_evidence(libnuma=False))["libnuma"].message("gpu-01")
    parts = ["gpu-01: libnuma: found no libnuma.so.1", "; chart symptom 'libnuma.so.1",
             "; likely cause: the libnuma system library", "; fix: apt-get install"]
    positions = [message.index(part) for part in parts]
    assert positions == sorted(positions)


def test_inference_failure_reports_the_waits_reason():
    reply = {"healthy": False, "tokens": 0, "reason": "/generate returned no tokens"}
    found = failed(healthy_evidence(generate=reply))["inference"].found
    assert found == "/generate: /generate returned no tokens"


def test_real_h100_torch_without_kernel_package():
    """As the real H100 host answered with its own torch (2.11.0+cu130) and no sgl_kernel."""
    torch = {"torch": "2.11.0+cu130", "cuda": "13.0",
             "arch_list": ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"],
             "kernel_error": "Traceback (most recent call last):\n  File \"<frozen importlib."
             "_bootstrap>\", line 1324, in _find_and_load_unlocked\nModuleNotFoundError: No "
             "module named 'sgl_kernel'\n"}
    found = failed(healthy_evidence(torch=torch))
    assert "torch-arch" not in found
    assert found["kernel-abi"].found == "ModuleNotFoundError: No module named 'sgl_kernel'"
    assert "not installed" in found["kernel-abi"].cause


def test_a_host_lost_mid_run_gives_findings_not_exceptions():
    """pyinfra hands an operation a fact's default when the host stops answering; found when a
    lab host was powered off in the middle of a deploy (it crashed the whole run once)."""
    from operations.facts.gpu import NvidiaDriver, NvidiaGpus
    from operations.facts.host import LibnumaLinked, Pid1, PortListener, ProcessInfo
    from operations.facts.python import PythonJson
    from operations.facts.service import JournalTail
    from operations.facts.venv import Distributions
    evidence = {"gpus": NvidiaGpus.default(), "driver": NvidiaDriver.default(),
                "disks": {"/opt/sglang": None},
                "port": PortListener.default(), "pid1": Pid1.default(),
                "libnuma": LibnumaLinked.default(), "venv": Distributions.default(),
                "torch": PythonJson.default(), "unit": UnitState.default(),
                "journal": JournalTail.default(), "process": ProcessInfo.default(),
                "health": PythonJson.default()}
    findings = checks.verify(SETTINGS, evidence)
    assert {finding.check for finding in findings if not finding.ok} >= {
        "gpus", "driver", "unit", "health", "inference", "port"}
    assert json.loads(json.dumps([NvidiaGpus.default(), UnitState.default()]))
