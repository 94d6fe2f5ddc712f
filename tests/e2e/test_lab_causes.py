"""Each of the chart's five symptoms appears on a lab host because of the chart's cause (the
host's real state or the unit's real flags), is named by the toolkit, and goes away when the
deploy removes the cause."""

from __future__ import annotations

import pytest

from operations.symptoms import match
from tests.e2e.conftest import curl, deploy, lab, ssh, wait_for

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


def journal_since_restart(host: str) -> str:
    return ssh(host, "journalctl -u sglang --no-pager -o cat -n 80").stdout


@pytest.mark.parametrize(("cause", "symptom"), CAUSES, ids=[c for c, _ in CAUSES])
def test_cause_gives_the_charts_symptom_and_deploy_removes_it(lab_pair, cause, symptom):
    lab("cause", "lab-1", cause)
    seen = wait_for(lambda: (found := match(journal_since_restart("lab-1")))
                    and found[0].key == symptom and found, timeout=45)
    assert seen, f"{cause}: expected {symptom}; journal:\n{journal_since_restart('lab-1')}"
    assert curl("lab-1", "/health")[0] != 200
    fixed = deploy()
    assert "lab-1  healthy" in fixed.stdout, fixed.stdout + fixed.stderr
    assert curl("lab-1", "/health")[0] == 200


def test_cuda_graphs_are_fine_on_the_cu13_stack(lab_pair):
    """The segfault belongs to the chart-era kernel build, not to the flag itself."""
    lab("cause", "lab-2", "cuda-graph")
    assert wait_for(lambda: curl("lab-2", "/health")[0] == 200, timeout=30)
    assert "--disable-cuda-graph" not in ssh("lab-2", "cat /proc/$(systemctl show -p MainPID "
                                                      "--value sglang)/cmdline | tr '\\0' ' '"
                                             ).stdout
    deploy()  # put the profile's flags back
