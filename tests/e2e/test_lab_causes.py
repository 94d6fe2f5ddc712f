"""Each of the chart's five symptoms appears on a lab host because of the chart's cause (the
host's real state or the unit's real flags), is named by the toolkit, and goes away when the
deploy removes the cause."""

from __future__ import annotations

import pytest

from operations.symptoms import match
from tests.e2e.conftest import (
    curl,
    deploy,
    diagnose,
    failures_by_test,
    healthy_hosts,
    journal_after,
    journal_cursor,
    lab,
    ssh,
    verify_fleet,
    wait_for,
)

# cause -> chart symptom key it must produce
CAUSES = [
    ("libnuma", "libnuma-missing"),
    ("abi", "abi-mismatch"),
    ("no-sm120", "no-kernel-image"),
    ("cuda-graph", "segfault"),
    ("oom", "health-503"),
    ("kv-too-big", "health-503"),
]


@pytest.fixture(scope="module")
def lab_pair(root_required):
    lab("up", "2", "--profiles", "rtx5090-cu128,rtx5090-cu13")
    first = deploy()
    assert first.returncode == 0, first.stdout + first.stderr
    yield
    lab("down")


@pytest.mark.parametrize(("cause", "symptom"), CAUSES, ids=[c for c, _ in CAUSES])
def test_cause_gives_the_charts_symptom_and_deploy_removes_it(lab_pair, cause, symptom):
    cursor = journal_cursor("lab-1")  # an earlier test's symptom must not count
    lab("cause", "lab-1", cause)
    seen = wait_for(lambda: (found := match(journal_after("lab-1", cursor)))
                    and found[0].key == symptom and found, timeout=45)
    assert seen, f"{cause}: expected {symptom}; journal:\n{journal_after('lab-1', cursor)}"
    assert curl("lab-1", "/health")[0] != 200
    fixed = deploy()
    assert "lab-1" in healthy_hosts(fixed.stdout), fixed.stdout + fixed.stderr
    assert curl("lab-1", "/health")[0] == 200


def test_cuda_graphs_are_fine_on_the_cu13_stack(lab_pair):
    """The segfault belongs to the chart-era kernel build, not to the flag itself."""
    lab("cause", "lab-2", "cuda-graph")
    assert wait_for(lambda: curl("lab-2", "/health")[0] == 200, timeout=30)
    assert "--disable-cuda-graph" not in ssh("lab-2", "cat /proc/$(systemctl show -p MainPID "
                                                      "--value sglang)/cmdline | tr '\\0' ' '"
                                             ).stdout
    assert deploy().returncode == 0  # put the profile's flags back


def test_verification_passes_on_the_healthy_lab_fleet(lab_pair, tmp_path):
    result, junit = verify_fleet(tmp_path)
    assert result.returncode == 0, result.stdout
    assert "fleet verification: host x check" in result.stdout
    cases = [case.get("name") for case in junit.iter("testcase")]
    assert "test_health[lab-1]" in cases and "test_health[lab-2]" in cases


def test_verification_names_the_host_and_check_of_a_cause(lab_pair, tmp_path):
    lab("cause", "lab-1", "libnuma")
    result, junit = verify_fleet(tmp_path)
    failures = failures_by_test(junit)
    assert result.returncode == 1
    assert "test_libnuma[lab-1]" in failures
    assert "apt-get install -y libnuma-dev libnuma1" in failures["test_libnuma[lab-1]"]
    assert not [name for name in failures if name.endswith("[lab-2]")]
    assert deploy().returncode == 0


HOST_STATE_CAUSES = [("libnuma", "libnuma.so.1: cannot open shared object file"),
                     ("abi", "undefined symbol: _ZN3c10"),
                     ("no-sm120", "no kernel image is available")]


@pytest.mark.parametrize(("cause", "symptom"), HOST_STATE_CAUSES,
                         ids=[c for c, _ in HOST_STATE_CAUSES])
def test_diagnose_names_it_read_only_then_remediates_and_records(lab_pair, cause, symptom):
    cursor = journal_cursor("lab-1")
    lab("cause", "lab-1", cause)
    assert wait_for(lambda: symptom in journal_after("lab-1", cursor), timeout=45)
    before = ssh("lab-1", "ls -l --time-style=+%s /opt/sglang/venv/lib/python3*/site-packages"
                 " | md5sum; dpkg -l | md5sum").stdout
    found = diagnose()
    out = found.stdout
    assert found.returncode != 0
    assert "lab-1  FAILED" in out and "chart symptom" in out and symptom in out
    assert "lab-2  ok" in out
    assert ssh("lab-1", "ls -l --time-style=+%s /opt/sglang/venv/lib/python3*/site-packages"
               " | md5sum; dpkg -l | md5sum").stdout == before, "diagnose changed the host"
    fixed = diagnose("--data", "remediate=true")
    assert fixed.returncode == 0, fixed.stdout
    assert "remediated:" in fixed.stdout and "healthy again" in fixed.stdout
    assert curl("lab-1", "/health")[0] == 200
    again = diagnose()
    assert again.returncode == 0
    assert "remediated 20" in again.stdout and symptom in again.stdout


def test_deploy_falls_back_from_a_profile_that_segfaults(lab_pair, tmp_path):
    result = deploy(tmp_path, {"lab-1": {"profile": "fast"}})
    assert result.returncode == 0, result.stdout
    assert "Fatal Python error: Segmentation fault" in result.stdout
    assert "fall back from profile fast to minimal-stable" in result.stdout
    again = deploy(tmp_path, {"lab-1": {"profile": "fast"}}, script="diagnose.py")
    assert "runs on a fallback: {'extra_flags': [], 'profile': 'minimal-stable'}" in again.stdout
    assert "healthy" in again.stdout


@pytest.mark.parametrize(("setting", "value", "evidence"), [
    ("mem_fraction_static", 0.97, "CUDA out of memory"),
    ("max_total_tokens", 65536, "Not enough memory"),
], ids=["oom", "kv-too-big"])
def test_deploy_lowers_memory_until_healthy(lab_pair, tmp_path, setting, value, evidence):
    ssh("lab-2", "rm -f /opt/sglang/fallback.json")
    result = deploy(tmp_path, {"lab-2": {setting: value, "health_timeout_s": 15}})
    assert result.returncode == 0, result.stdout
    assert evidence in result.stdout and "lower memory" in result.stdout
    assert curl("lab-2", "/health")[0] == 200
    shown = deploy(tmp_path, {"lab-2": {setting: value}}, script="diagnose.py").stdout
    assert "runs on a fallback" in shown and "'mem_fraction_static'" in shown
