"""Fleet operations end to end: three workers behind the real sglang-router (from PyPI) on a
gateway host, a first deploy at once, a change rolled one host at a time while requests through
the router keep being answered, and a failing change that stops the roll. Tests run in file
order and share one lab."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from lab.inventory import router_key
from tests.conftest import in_background
from tests.e2e.conftest import (
    LAB,
    LAB_DIR,
    ROOT,
    changed_hosts,
    curl,
    deploy,
    deploy_with_gateway,
    failures_by_test,
    lab,
    requests_through_the_router,
    routed_generate,
    router_call,
    router_workers,
    ssh,
    url,
    verify_fleet,
    wait_for,
)

WORKERS = ["lab-1", "lab-2", "lab-3"]


def running_requests(name: str) -> float:
    """sglang:num_running_reqs on a worker, from its /metrics."""
    status, text = curl(name, "/metrics")
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("sglang:num_running_reqs")) if status == 200 else -1


@pytest.fixture(scope="module")
def first(root_required, tmp_path_factory):
    lab("up", "3", "--profiles", "rtx5090-cu13,rtx5090-cu13,rtx5090-cu13", "--gateway")
    yield deploy_with_gateway(tmp_path_factory.mktemp("first"))
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


def test_verification_checks_the_router_and_the_wheelhouse_and_skips_gpu_checks_there(
        first, tmp_path):
    result, junit = verify_fleet(tmp_path)
    assert result.returncode == 0, result.stdout
    cases = {case.get("name"): case for case in junit.iter("testcase")}
    for passed in ("test_router_inference[lab-gw]", "test_router_fronts_every_worker[lab-gw]",
                   "test_wheelhouse_serves_every_stack[lab-gw]", "test_health[lab-1]"):
        assert passed in cases, passed
        assert cases[passed].find("failure") is None, passed
        assert cases[passed].find("skipped") is None, passed
    assert cases["test_gpus[lab-gw]"].find("skipped") is not None
    assert cases["test_router_inference[lab-1]"].find("skipped") is not None


def test_workers_installed_the_wheelhouse_s_locked_files(first):
    record = json.loads(ssh("lab-1", "cat /opt/sglang/stack.json").stdout)
    assert record["wheelhouse"] == "http://10.213.0.9:8091/lab-cu13-stable"
    lock = ssh("lab-gw", "cat /srv/sglang-wheelhouse/stacks/lab-cu13-stable/"
                         "requirements.lock").stdout
    assert "torch-lab-standin==2.14.1 --hash=sha256:" in lock
    assert 'Acquire::http::Proxy "http://10.213.0.9:3142";' in ssh(
        "lab-1", "cat /etc/apt/apt.conf.d/90sglang-apt-cache").stdout


def test_the_router_runs_as_its_own_sandboxed_user(first):
    found = ssh("lab-gw", "systemctl show -p User,ActiveState,NoNewPrivileges "
                          "sglang-router.service").stdout
    assert "User=sglang-router" in found and "ActiveState=active" in found
    assert "NoNewPrivileges=yes" in found


def test_only_the_fleet_changes_the_routers_workers(first):
    """From this machine, an address outside the inventory: served, but it can neither add nor
    remove a worker (nor list them) without the fleet's control key; the key is in no argv and
    no unit file on the gateway."""
    assert routed_generate()[0] == 200
    listing = json.loads(router_call("GET", "/workers", key=router_key())[1])["workers"]
    worker = next(w["id"] for w in listing if w["url"] == url("lab-1"))
    before = router_workers()
    for key in (None, "not-the-fleets-key"):
        assert router_call("GET", "/workers", key=key)[0] == 401
        assert router_call("POST", "/workers", body=json.dumps({"url": "http://10.213.0.99:8000"}),
                           key=key)[0] == 401
        assert router_call("DELETE", f"/workers/{worker}", key=key)[0] == 401
    assert router_workers() == before  # nothing added or removed
    gateway = ssh("lab-gw", "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '; "
                            "cat /etc/systemd/system/sglang-router.service").stdout
    assert router_key() not in gateway and "sglang::router" in gateway  # its process, read
    mode = ssh("lab-gw", "stat -c '%a %U' /etc/sglang-router/control-key").stdout.split()
    assert mode == ["600", "root"]


def test_a_fleet_with_a_gateway_and_no_control_key_is_refused(first, tmp_path, monkeypatch):
    monkeypatch.delenv("ROUTER_CONTROL_KEY", raising=False)
    fleet = tmp_path / "fleet.py"
    fleet.write_text("from lab.inventory import lab_gateways, lab_hosts\n"
                     "gpu_servers = [(n, {**d, 'secrets_file': None}) for n, d in lab_hosts()]\n"
                     "sglang_gateways = sglang_wheelhouse = lab_gateways()\n")
    result = deploy(fleet=fleet)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "lab-1: secret ROUTER_CONTROL_KEY: missing" in out and "Traceback" not in out


WHEELHOUSE = "http://10.213.0.9:8091"


def test_the_wheelhouse_serves_the_fleet_only_with_ranges(first):
    """nginx serves the stacks and models to the inventory's workers (a Range request gets
    the part asked for: a cut transfer resumes); this machine, an address outside the
    inventory, is refused, stacks and gated snapshots alike."""
    lock = "/lab-cu13-stable/requirements.lock"
    part = ssh("lab-1", "python3 -c \"import urllib.request as u; r = u.urlopen(u.Request("
                        f"'{WHEELHOUSE}{lock}', headers={{'Range': 'bytes=0-9'}})); "
                        "print(r.status, len(r.read()))\"").stdout.split()
    assert part == ["206", "10"], part
    for path in (lock, "/_models/"):
        outside = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                  f"{WHEELHOUSE}{path}"], capture_output=True, text=True).stdout
        assert outside == "403", (path, outside)
    assert "allow 10.213.0.11;" in ssh("lab-gw", "cat /etc/nginx/conf.d/"
                                                 "sglang-wheelhouse.conf").stdout


def hosts_state() -> dict[str, str]:
    """What a run would change on every host: its files' hashes, its services' processes."""
    files = {name: "/etc/systemd/system/sglang.service /etc/sglang/sglang.env "
                   "/opt/sglang/deployed.fingerprint" for name in WORKERS}
    files["lab-gw"] = ("/etc/systemd/system/sglang-router.service "
                       "/etc/nginx/conf.d/sglang-wheelhouse.conf")
    return {name: ssh(name, f"sha256sum {paths} 2>&1; systemctl show -p MainPID,NRestarts "
                            "sglang sglang-router nginx 2>&1").stdout
            for name, paths in files.items()}


def test_a_preview_shows_each_roles_files_and_the_plan_and_changes_nothing(first, tmp_path):
    """The same change as the next test's: the plan here is the batches it then rolls."""
    before = hosts_state()
    preview = deploy_with_gateway(tmp_path, preview=True, max_total_tokens=2048, roll_batch=1)
    out = preview.stdout + preview.stderr
    assert preview.returncode == 0, out
    assert hosts_state() == before
    for name in WORKERS:  # the one file that changes, on each worker, and only that
        assert f"[{name}]  Will modify /etc/systemd/system/sglang.service" in out
    shown = set(re.findall(r"\[(lab-\w+)\] +Will (?:modify|create) (\S+)", out))
    assert {path for _, path in shown} <= {"/etc/systemd/system/sglang.service",
                                          "/etc/sglang/sglang.env"}, shown  # no other role's
    assert "--max-total-tokens 2048" in out  # in the unit's diff
    # No "conditional change": each operation changes a host or does not.
    table = out.split("Detected changes:")[1].split("\n\n")[0].splitlines()[2:]
    assert table and not [row for row in table if row.rstrip().endswith(")")], table
    assert "Plan (a preview: nothing was changed on any host)" in out
    assert f"write a new unit: {', '.join(WORKERS)}" in out
    for number, name in enumerate(WORKERS, start=1):
        assert (f"restart in rolling batch {number} (each batch healthy before the next): "
                f"{name}") in out


def test_a_change_rolls_one_host_at_a_time_and_the_router_keeps_answering(first, tmp_path):
    """lab-1 rolls first while it answers a long request (2.5 minutes of tokens, started
    before the deploy): it leaves the router, the deploy waits until that request is done,
    then restarts it; the request gets every token, and the router answers every request."""
    long_request, answer = in_background(curl, "lab-1", "/generate",
                                         '{"text": "Tell me", "sampling_params": '
                                         '{"max_new_tokens": 30000}}', 600)
    assert wait_for(lambda: running_requests("lab-1") == 1, 30), "no long request on lab-1"
    with requests_through_the_router() as codes:
        rolled = deploy_with_gateway(tmp_path, max_total_tokens=2048, roll_batch=1)
    out = rolled.stdout + rolled.stderr
    assert rolled.returncode == 0, out
    for number, name in enumerate(WORKERS, start=1):
        assert f"rolled batch {number}: {name} (healthy)" in out
    assert changed_hosts(out) == set(WORKERS)
    assert codes and set(codes) == {200}, f"{len(codes)} routed requests: {sorted(set(codes))}"
    assert router_workers() == {url(n): True for n in WORKERS}
    long_request.join()
    status, body = answer[0]
    assert status == 200 and json.loads(body)["meta_info"]["completion_tokens"] == 30000
    # lab-1's drain (its lines are prefixed with its name as they come) waited for it
    waits = [int(found.group(1)) for line in out.splitlines() if "lab-1" in line
             and (found := re.search(r"drained: no request left after (\d+) s", line))]
    assert len(waits) == 1 and waits[0] > 0, [line for line in out.splitlines()
                                              if "drain" in line]
    # Its server stopped after the request was answered, not during it: nothing was drained
    # on SIGTERM but an empty queue.
    journal = ssh("lab-1", "journalctl -u sglang --no-pager -o cat").stdout
    assert "Remaining number of requests 1" not in journal.split("SIGTERM received")[-1]


def test_a_failing_batch_stops_the_roll_and_the_rest_keep_the_previous_configuration(
        first, tmp_path):
    failed = deploy_with_gateway(tmp_path, max_total_tokens=65536, roll_batch=1, remediate=False,
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
    result, junit = verify_fleet(tmp_path)
    failures = failures_by_test(junit)
    assert result.returncode == 1
    assert url("lab-1") in failures["test_router_fronts_every_worker[lab-gw]"]
    assert "test_health[lab-1]" in failures
    assert "test_router_inference[lab-gw]" not in failures  # the rest still serve


def test_the_next_good_deploy_repairs_the_failed_worker_and_it_joins_again(first, tmp_path):
    repaired = deploy_with_gateway(tmp_path, max_total_tokens=2048, roll_batch=1)
    out = repaired.stdout + repaired.stderr
    assert repaired.returncode == 0, out
    assert changed_hosts(out) == {"lab-1"}  # it was not serving: no roll, no capacity lost
    assert router_workers() == {url(n): True for n in WORKERS}


STACK_FILES = "/srv/sglang-wheelhouse/stacks/lab-cu13-stable/files"
TORCH_WHEEL = "torch_lab_standin-2.14.1-py3-none-any.whl"


def test_a_pinned_wheel_the_upstream_index_dropped_still_installs_from_the_wheelhouse(
        first, tmp_path):
    upstream = LAB_DIR / "wheelhouse" / "simple" / "torch-lab-standin" / TORCH_WHEEL
    hidden = upstream.with_name(".dropped")
    upstream.rename(hidden)  # the upstream index no longer lists it
    try:
        assert ssh("lab-2", "rm -rf /opt/sglang/venv").returncode == 0
        again = deploy_with_gateway(tmp_path, max_total_tokens=2048, roll_batch=1)
    finally:
        hidden.rename(upstream)
    out = again.stdout + again.stderr
    assert again.returncode == 0, out
    assert changed_hosts(out) == {"lab-2"}
    installed = ssh("lab-2", "/opt/sglang/venv/bin/pip list").stdout
    assert re.search(r"^torch-lab-standin +2\.14\.1$", installed, re.M), installed


def test_a_wheel_that_does_not_match_its_locked_hash_is_refused_and_the_host_named(
        first, tmp_path):
    wheel = f"{STACK_FILES}/{TORCH_WHEEL}"
    ssh("lab-gw", f"cp {wheel} /root/saved.whl && printf junk >> {wheel}")
    try:
        assert ssh("lab-3", "rm -rf /opt/sglang/venv").returncode == 0
        refused = deploy_with_gateway(tmp_path, max_total_tokens=2048, roll_batch=1)
    finally:
        ssh("lab-gw", f"mv /root/saved.whl {wheel}")
    out = refused.stdout + refused.stderr
    assert refused.returncode != 0
    # the worker's fetch of the wheelhouse's files checks each against its locked sha256
    assert (f"{TORCH_WHEEL} does not match the sha256 the wheelhouse locked it with after 2 "
            "transfers") in out, out[-3000:]
    assert ("lab-3   FAILED at \"Rolling batch | Python venv holds the stack's exact pins\""
            in out)
    assert deploy_with_gateway(tmp_path, max_total_tokens=2048, roll_batch=1).returncode == 0


def test_lab_down_leaves_no_gateway_behind(first):
    subprocess.run([*LAB, "down"], cwd=ROOT, check=True, capture_output=True)
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "vb-lab-gw" not in links
    assert not (LAB_DIR / "hosts" / "lab-gw").exists()
