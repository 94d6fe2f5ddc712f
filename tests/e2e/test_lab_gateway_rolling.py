"""Fleet operations end to end: three workers behind the real sglang-router (from PyPI) on a
gateway host, a first deploy at once, a change rolled one host at a time while requests through
the router keep being answered, and a failing change that stops the roll. Tests run in file
order and share one lab."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest

from tests.e2e.conftest import LAB, LAB_DIR, ROOT, changed_hosts, deploy, lab, lab_hosts, ssh

ROUTER = "http://10.213.0.9:30000"
WORKERS = ["lab-1", "lab-2", "lab-3"]


def run(tmp_path: Path, **settings) -> subprocess.CompletedProcess:
    """A deploy of the three workers and the gateway with ``settings`` on every worker."""
    fleet = tmp_path / "fleet.py"
    fleet.write_text("from lab.inventory import lab_gateways, lab_hosts\n"
                     f"_settings = {settings!r}\n"
                     "gpu_servers = [(n, {**d, **_settings}) for n, d in lab_hosts()]\n"
                     "sglang_gateways = lab_gateways()\n")
    return deploy(fleet=fleet)


def router_workers() -> dict[str, bool]:
    out = subprocess.run(["curl", "-s", "-m", "10", f"{ROUTER}/workers"], capture_output=True,
                         text=True).stdout
    return {w["url"]: w["is_healthy"] for w in json.loads(out)["workers"]}


def routed_generate() -> tuple[int, str]:
    out = subprocess.run(
        ["curl", "-s", "-m", "10", "-w", "\n%{http_code}", f"{ROUTER}/generate", "-H",
         "Content-Type: application/json", "-d",
         '{"text": "The capital of France is", "sampling_params": {"max_new_tokens": 4}}'],
        capture_output=True, text=True).stdout
    body, _, code = out.rpartition("\n")
    return int(code or 0), body


def url(name: str) -> str:
    return f"http://{lab_hosts()[name]['address']}:8000"


@pytest.fixture(scope="module")
def first(root_required, tmp_path_factory):
    lab("up", "3", "--profiles", "rtx5090-cu13,rtx5090-cu13,rtx5090-cu13", "--gateway")
    yield run(tmp_path_factory.mktemp("first"))
    lab("down")


def test_first_deploy_goes_at_once_and_the_router_fronts_every_healthy_worker(first):
    out = first.stdout + first.stderr
    assert first.returncode == 0, out
    assert "all 4 hosts healthy" in out
    assert "rolled batch" not in out  # nothing served before: no roll
    assert router_workers() == {url(n): True for n in WORKERS}


def test_a_request_sent_to_the_router_reaches_a_worker_and_returns_tokens(first):
    status, body = routed_generate()
    assert status == 200, body
    reply = json.loads(body)
    assert reply["meta_info"]["completion_tokens"] == 4 and reply["text"].strip()


def test_the_router_runs_as_its_own_sandboxed_user(first):
    found = ssh("lab-gw", "systemctl show -p User,ActiveState,NoNewPrivileges "
                          "sglang-router.service").stdout
    assert "User=sglang-router" in found and "ActiveState=active" in found
    assert "NoNewPrivileges=yes" in found


def test_a_change_rolls_one_host_at_a_time_and_the_router_keeps_answering(first, tmp_path):
    codes: list[int] = []
    done = threading.Event()

    def load() -> None:
        while not done.is_set():
            codes.append(routed_generate()[0])

    thread = threading.Thread(target=load)
    thread.start()
    try:
        rolled = run(tmp_path, max_total_tokens=2048, roll_batch=1)
    finally:
        done.set()
        thread.join()
    out = rolled.stdout + rolled.stderr
    assert rolled.returncode == 0, out
    for number, name in enumerate(WORKERS, start=1):
        assert f"rolled batch {number}: {name} (healthy)" in out
    assert changed_hosts(out) == set(WORKERS)
    assert codes and set(codes) == {200}, f"{len(codes)} routed requests: {sorted(set(codes))}"
    assert router_workers() == {url(n): True for n in WORKERS}


def test_a_failing_batch_stops_the_roll_and_the_rest_keep_the_previous_configuration(
        first, tmp_path):
    failed = run(tmp_path, max_total_tokens=65536, roll_batch=1, remediate=False,
                 health_timeout_s=20)
    out = failed.stdout + failed.stderr
    assert failed.returncode != 0, out
    assert "rolled batch 1: lab-1 (FAILED)" in out
    assert ("roll stopped; untouched, still serving the previous configuration: lab-2, lab-3"
            in out)
    assert "1 of 4 hosts failed: lab-1" in out
    for name in ("lab-2", "lab-3"):
        unit = ssh(name, "cat /etc/systemd/system/sglang.service").stdout
        assert "--max-total-tokens 2048" in unit and "65536" not in unit
    # The failed worker left the router before its restart and stays out; the rest serve.
    assert router_workers() == {url("lab-2"): True, url("lab-3"): True}
    assert routed_generate()[0] == 200


def test_the_next_good_deploy_repairs_the_failed_worker_and_it_joins_again(first, tmp_path):
    repaired = run(tmp_path, max_total_tokens=2048, roll_batch=1)
    out = repaired.stdout + repaired.stderr
    assert repaired.returncode == 0, out
    assert changed_hosts(out) == {"lab-1"}  # it was not serving: no roll, no capacity lost
    assert router_workers() == {url(n): True for n in WORKERS}


def test_lab_down_leaves_no_gateway_behind(first):
    subprocess.run([*LAB, "down"], cwd=ROOT, check=True, capture_output=True)
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "vb-lab-gw" not in links
    assert not (LAB_DIR / "hosts" / "lab-gw").exists()
