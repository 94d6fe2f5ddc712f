"""Rented GPU containers end to end: one fleet of a systemd host and container hosts (no
systemd; a Vast.ai-like image whose entrypoint is supervisord, a RunPod-like one whose
entrypoint starts only sshd, on port 2222 and without SFTP, and one on a machine whose driver
is too old for the stack) behind the gateway. Tests run in file order and share one lab."""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest

from lab.hosts import ssh_argv
from lab.inventory import router_key
from operations import runlock
from tests.e2e.conftest import (
    changed_hosts,
    curl,
    deploy,
    deploy_with_gateway,
    diagnose,
    failures_by_test,
    healthy_hosts,
    lab,
    lab_hosts,
    requests_through_the_router,
    routed_generate,
    router_workers,
    ssh,
    url,
    verify_fleet,
    wait_for,
)

SYSTEMD, VAST, RUNPOD, OLD_DRIVER = "lab-1", "lab-2", "lab-3", "lab-4"
SERVING = [SYSTEMD, VAST, RUNPOD]


def program(name: str) -> list[str]:
    """supervisorctl's status line of the server's program, in words."""
    return ssh(name, "supervisorctl status sglang").stdout.split()


@pytest.fixture(scope="module")
def first(root_required, tmp_path_factory):
    lab("up", "4", "--profiles", "rtx5090-cu13,vast,runpod,vast-old-driver", "--gateway")
    yield deploy_with_gateway(tmp_path_factory.mktemp("first"))
    lab("down")


def test_a_mixed_fleet_converges_in_one_run_and_the_old_driver_container_is_refused(first):
    out = first.stdout + first.stderr
    assert first.returncode != 0, out  # lab-4 fails; the rest converge
    assert healthy_hosts(out) >= set(SERVING), out
    assert (f"{OLD_DRIVER}: preflight driver-version failed" in out
            and "the driver belongs to the container's host and is never installed from "
                "inside it: rent a machine whose driver is branch 580 or later" in out), out
    assert f"1 of 5 hosts failed: {OLD_DRIVER}" in out
    assert router_workers() == {url(n): True for n in SERVING}
    assert routed_generate()[0] == 200


def test_the_container_hosts_run_the_server_under_supervisord_as_the_service_user(first):
    for name in (VAST, RUNPOD):  # RUNNING once it has run startsecs (10 s)
        words = wait_for(lambda name=name: (found := program(name))[1] == "RUNNING" and found,
                         timeout=30) or program(name)
        assert words[1] == "RUNNING", words
        pid = words[3].rstrip(",")
        owner = ssh(name, f"stat -c %U /proc/{pid}").stdout.strip()
        assert owner == "sglang", (name, owner)
        argv = ssh(name, f"tr '\\0' ' ' < /proc/{pid}/cmdline").stdout
        assert "sglang.launch_server" in argv
        env_file = ssh(name, "stat -c '%U %a' /etc/sglang/sglang.env").stdout.split()
        assert env_file == ["root", "600"], env_file
        conf = ssh(name, "cat /etc/supervisor/conf.d/sglang.conf").stdout
        assert "HF_HUB_OFFLINE" not in conf  # the environment stays in the root-only file
        assert "stopsignal=TERM" in conf and "startretries=5" in conf
    # The image's own supervisord was reused: one, the entrypoint.
    assert ssh(VAST, "pgrep -c supervisord").stdout.strip() == "1"
    # The systemd host keeps its unit.
    assert ssh(SYSTEMD, "systemctl is-active sglang").stdout.strip() == "active"


def test_a_second_run_changes_nothing(first, tmp_path):
    again = deploy_with_gateway(tmp_path)
    out = again.stdout + again.stderr
    assert changed_hosts(out) == set(), out
    assert healthy_hosts(out) >= set(SERVING)


def test_verification_checks_the_supervised_server_like_the_unit(first, tmp_path):
    result, junit = verify_fleet(tmp_path)
    failures = failures_by_test(junit)
    for name in (VAST, RUNPOD):
        for check in ("unit", "user", "argv", "port", "health", "inference", "restarts"):
            assert f"test_{check}[{name}]" not in failures, failures[f"test_{check}[{name}]"]
    assert f"test_driver[{OLD_DRIVER}]" in failures  # the one host that was refused
    assert result.returncode == 1


def test_a_killed_server_comes_back_through_supervisor(first):
    pid = program(VAST)[3].rstrip(",")
    ssh(VAST, f"kill -9 {pid}")
    back = wait_for(lambda: (words := program(VAST))[1] == "RUNNING"
                    and words[3].rstrip(",") != pid and curl(VAST, "/health")[0] == 200,
                    timeout=90)
    assert back, program(VAST)


def test_a_profile_change_rolls_through_systemd_and_container_hosts_alike(first, tmp_path):
    with requests_through_the_router() as codes:
        rolled = deploy_with_gateway(tmp_path, max_total_tokens=2048, roll_batch=1)
    out = rolled.stdout + rolled.stderr
    assert changed_hosts(out) >= set(SERVING), out
    for name in SERVING:
        assert f"{name} (healthy)" in out
    assert codes and set(codes) == {200}, f"{len(codes)} routed requests: {sorted(set(codes))}"
    assert "--max-total-tokens 2048" in ssh(VAST, "cat /etc/supervisor/conf.d/sglang.conf").stdout


def test_secrets_reach_the_supervised_server_and_never_leak(first, tmp_path, monkeypatch):
    token, key = "hf_TESTtoken0123456789", "sk-TESTkey-0123456789"
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setenv("SGLANG_API_KEY", key)
    fleet = tmp_path / "fleet.py"
    fleet.write_text("from lab.inventory import lab_gateways, lab_hosts\n"
                     "gpu_servers = [(n, {**d, 'max_total_tokens': 2048}) for n, d in "
                     "lab_hosts()]\nsglang_gateways = sglang_wheelhouse = lab_gateways()\n")
    result = deploy(fleet=fleet, extra=("-vvv", "--diff"))
    out = result.stdout + result.stderr
    assert healthy_hosts(out) >= set(SERVING), out[-3000:]
    for secret in (token, key, router_key()):
        assert secret not in out, "pyinfra printed a secret"
        half = len(secret) // 2  # the pattern goes through a file: no argv of the search has it
        leaks = ssh(RUNPOD, f"a={secret[:half]}; b={secret[half:]}; printf '%s\\n' \"$a$b\" "
                            "> /run/pattern; grep -l -r -F -f /run/pattern /etc/supervisor "
                            "/var/log/supervisor /var/log/sglang /proc/[0-9]*/cmdline "
                            "2>/dev/null; rm -f /run/pattern").stdout.split()
        assert leaks == [], f"found in {leaks}"
    assert ssh(RUNPOD, "stat -c '%U %a' /etc/sglang/sglang.env /etc/sglang/api-key.json"
                       ).stdout.split() == ["root", "600"] * 2
    body = '{"text": "Hi", "sampling_params": {"max_new_tokens": 2}}'
    assert curl(RUNPOD, "/generate", body)[0] == 401  # the key reached the server
    authorised = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-K",
                                 "-", "-d", body, f"{url(RUNPOD)}/generate"],
                                input=f'header = "Authorization: Bearer {key}"\n',
                                capture_output=True, text=True).stdout
    assert authorised == "200"


def test_a_host_without_sftp_left_on_sftp_fails_alone_naming_the_setting(first, tmp_path):
    fleet = tmp_path / "fleet.py"  # a changed unit everywhere: every host uploads a file
    fleet.write_text("from lab.inventory import lab_gateways, lab_hosts\n"
                     "gpu_servers = [(n, {**d, 'max_total_tokens': 1024, **("
                     f"{{'ssh_file_transfer_protocol': 'sftp'}} if n == {RUNPOD!r} else {{}})}})"
                     " for n, d in lab_hosts()]\n"
                     "sglang_gateways = sglang_wheelhouse = lab_gateways()\n")
    result = deploy(fleet=fleet)
    out = result.stdout + result.stderr
    assert (f"{RUNPOD}: no SFTP on this host's SSH server (a rented container's?): set "
            "ssh_file_transfer_protocol to 'scp' for it in the inventory") in out, out[-3000:]
    assert healthy_hosts(out) >= {SYSTEMD, VAST}, out[-3000:]
    assert f"2 of 5 hosts failed: {RUNPOD}, {OLD_DRIVER}" in out


def test_a_container_held_by_another_live_run_is_left_alone_named_then_taken_over(
        first, tmp_path):
    """Another operator's run holds the RunPod-like container (its SSH session took the run
    lock and stays open): a deploy that will not wait leaves that host alone, names the
    holder and writes nothing there; once that session is gone, the next deploy takes the
    lock over and says so."""
    holder = {"run": "other-run", "control": "ops-2", "user": "bob", "pid": 777,
              "since": "2026-12-02 01:00:00 UTC", "started": 1.0}
    take = shlex.join(["python3", "-c", runlock.CODE, "take", runlock.PATH,
                       json.dumps(holder), "300"])
    # The session stays open (cat waits on its input) until the test ends it.
    other = subprocess.Popen(ssh_argv(lab_hosts()[RUNPOD], f"{take} && exec cat"),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        assert '"state": "taken"' in other.stdout.readline()
        before = ssh(RUNPOD, "sha256sum /etc/supervisor/conf.d/sglang.conf").stdout
        fleet = tmp_path / "fleet.py"  # a change on every host, no wait on any
        fleet.write_text("from lab.inventory import lab_hosts\n"
                         "gpu_servers = [(n, {**d, 'max_total_tokens': 1024, "
                         "'run_lock_wait_s': 0}) for n, d in lab_hosts() if n in "
                         f"{[SYSTEMD, RUNPOD]!r}]\n")
        result = deploy(fleet=fleet)
        out = result.stdout + result.stderr
        assert (f"{RUNPOD}: left alone: held by the run of bob@ops-2 (pid 777, since "
                "2026-12-02 01:00:00 UTC)") in out, out[-3000:]
        assert SYSTEMD in healthy_hosts(out) and f"1 of 2 hosts failed: {RUNPOD}" in out
        assert ssh(RUNPOD, "sha256sum /etc/supervisor/conf.d/sglang.conf").stdout == before
    finally:
        other.kill()  # the other run's control machine goes: its SSH session ends
        other.wait()
    # Waiting allowed now: the other session may take a moment to end on the host's side.
    fleet.write_text(fleet.read_text().replace("'run_lock_wait_s': 0", "'run_lock_wait_s': 120"))
    again = deploy(fleet=fleet)
    out = again.stdout + again.stderr
    assert again.returncode == 0, out[-3000:]
    assert (f"{RUNPOD}: took over the run lock from the run of bob@ops-2 (pid 777, since "
            "2026-12-02 01:00:00 UTC)") in out, out[-3000:]
    assert ssh(RUNPOD, f"test -e {runlock.PATH}").returncode != 0  # released at the end


def test_after_a_container_restart_diagnose_names_the_supervisor_and_a_deploy_serves_again(
        first, tmp_path):
    lab("reboot", VAST)  # its entrypoint is supervisord: the program comes back by itself
    lab("reboot", RUNPOD)  # its entrypoint starts only sshd: nothing else comes back
    assert wait_for(lambda: curl(VAST, "/health")[0] == 200, timeout=90)
    found = diagnose()
    out = found.stdout + found.stderr
    assert "the supervisor is not running" in out, out
    repaired = deploy_with_gateway(tmp_path, max_total_tokens=2048, roll_batch=1)
    out = repaired.stdout + repaired.stderr
    assert healthy_hosts(out) >= set(SERVING), out
    assert program(RUNPOD)[1] == "RUNNING"
    assert router_workers() == {url(n): True for n in SERVING}
