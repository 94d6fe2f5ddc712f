"""A fleet reached the way most real GPU hosts are: root may not log in over SSH; a user `ops`
logs in and has sudo (lab up --login ops). Three workers and lab-gw (gateway and wheelhouse):
every role's stages, verification, preflight and diagnosis run through sudo; a host whose user
cannot get root is named with one preflight line and the rest converge. Tests run in file order
and share one lab."""

from __future__ import annotations

import subprocess

import pytest

from tests.e2e.conftest import (
    LAB_DIR,
    changed_hosts,
    curl,
    deploy,
    deploy_with_gateway,
    diagnose,
    healthy_hosts,
    lab,
    lab_hosts,
    round_trips,
    ssh,
    unchanged_hosts,
    verify_fleet,
)

SUDOERS = "etc/sudoers.d/ops"
WORKERS = ("lab-1", "lab-2", "lab-3")


def host_root(name: str):
    """The host's disk seen from the control machine (its console, as it were)."""
    return LAB_DIR / "hosts" / name / "root"


def set_sudoers(name: str, line: str | None) -> None:
    path = host_root(name) / SUDOERS
    if line is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(line + "\n")
        path.chmod(0o440)


@pytest.fixture(scope="module")
def first(root_required):
    lab("up", "3", "--profiles", "rtx5090-cu13,rtx5090-cu128,rtx5090-cu13", "--gateway",
        "--login", "ops")
    set_sudoers("lab-3", None)  # lab-3's user may log in, but not use sudo
    yield deploy()
    lab("down")


def test_root_may_not_log_in_so_nothing_passes_as_root(first):
    address = lab_hosts()["lab-1"]["address"]
    refused = subprocess.run(
        ["ssh", "-i", str(LAB_DIR / "ssh" / "id_ed25519"), "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", f"root@{address}", "true"],
        capture_output=True, text=True)
    assert refused.returncode == 255 and "Permission denied" in refused.stderr
    assert ssh("lab-1", "id -un").stdout.strip() == "root"  # ops, through sudo


def test_first_deploy_converges_through_sudo_and_names_the_host_without_it(first):
    out = first.stdout + first.stderr
    assert first.returncode != 0, out
    assert {"lab-1", "lab-2"} <= healthy_hosts(out), out[-3000:]
    assert ("lab-3: preflight login failed: found login ops (uid 1000): sudo asks for a "
            "password and none was given (ops may need its password for sudo, or may not use "
            "sudo at all)" in out), out[-3000:]
    assert "let ops use sudo without a password ('ops ALL=(ALL) NOPASSWD: ALL' in " \
        "/etc/sudoers.d/ops)" in out
    assert "sudo password:" not in out  # nothing waited on a prompt
    assert "lab-gw" in healthy_hosts(out)  # the router and the wheelhouse, through sudo
    assert "1 of 4 hosts failed: lab-3" in out
    assert "Permission denied" not in out and "Traceback" not in out
    assert not (host_root("lab-3") / "opt/sglang").exists(), "lab-3 was changed"


def test_the_service_runs_as_its_user_and_secrets_files_stay_root_only(first):
    assert ssh("lab-1", "ps -o user= -p $(systemctl show -p MainPID --value sglang); "
                        "stat -c '%U %a' /etc/sglang /etc/sglang/sglang.env").stdout.split() == [
        "sglang", "root", "700", "root", "600"]


def test_second_deploy_changes_nothing_on_the_converged_hosts_in_three_round_trips_each(
        first):
    """Through sudo: the login (and the rollout's health read) without sudo, then every
    operation's checks in one command with sudo (the run lock taken first in it), then the
    lock's release; lab-3, refused, gets its login read and the refusal's failing command, and
    nothing else (it takes no lock: its login cannot change it)."""
    second = deploy(extra=("--debug",))
    out = second.stdout + second.stderr
    assert round_trips(out) == {"lab-1": 3, "lab-2": 3, "lab-gw": 3, "lab-3": 2}
    assert unchanged_hosts(out) == {"lab-1", "lab-2", "lab-gw"}, out[-3000:]
    assert changed_hosts(out) & {"lab-1", "lab-2", "lab-gw"} == set(), out[-3000:]


def test_once_its_user_has_sudo_the_refused_host_converges_too(first):
    set_sudoers("lab-3", "ops ALL=(ALL) NOPASSWD: ALL")
    result = deploy()
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "all 4 hosts healthy" in result.stdout
    assert curl("lab-3", "/health")[0] == 200


def test_verification_preflight_and_diagnosis_work_through_sudo(first, tmp_path):
    result, junit = verify_fleet(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    passed = {case.get("name") for case in junit.iter("testcase")
              if case.find("failure") is None and case.find("skipped") is None}
    for check in ("test_unit", "test_user", "test_argv", "test_restarts", "test_health",
                  "test_inference"):  # root's view: the unit's process, the journal
        assert {f"{check}[{name}]" for name in WORKERS} <= passed, check
    for check in ("test_router_fronts_every_worker", "test_router_inference",
                  "test_wheelhouse_serves_every_stack"):
        assert f"{check}[lab-gw]" in passed, check
    checked = deploy(script="preflight.py")
    assert checked.returncode == 0 and "all 4 hosts ok" in checked.stdout, checked.stdout
    diagnosed = diagnose()
    assert diagnosed.returncode == 0 and "all 4 hosts ok" in diagnosed.stdout, diagnosed.stdout


def test_a_profile_change_rolls_through_sudo_hosts_one_batch_at_a_time(first, tmp_path):
    rolled = deploy_with_gateway(tmp_path, profile="debugging", roll_batch=1)
    out = rolled.stdout + rolled.stderr
    assert rolled.returncode == 0, out[-3000:]
    for number, name in enumerate(WORKERS, start=1):
        assert f"rolled batch {number}: {name} (healthy)" in out, out[-3000:]
    assert changed_hosts(out) == set(WORKERS)


def test_secrets_are_written_root_only_over_sudo_and_never_shown(first, monkeypatch):
    token, key = "hf_SUDOtoken0123456789", "sk-SUDOkey-0123456789"
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setenv("SGLANG_API_KEY", key)
    result = deploy(extra=("--diff",))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert token not in out and key not in out
    for name in [*WORKERS, "lab-gw"]:
        # Nothing the login staged on its way to root is left, or readable, anywhere else.
        assert ssh(name, f"grep -rlF {token} /tmp /var/tmp /home/ops; "
                         f"grep -rlF {key} /tmp /var/tmp /home/ops; true").stdout == ""
    for name in WORKERS:
        assert ssh(name, "stat -c '%U %a' /etc/sglang/sglang.env /etc/sglang/api-key.json"
                   ).stdout.split() == ["root", "600", "root", "600"]
        assert ssh(name, "test -e /etc/sglang/hf-token").returncode != 0  # they run offline
    # The token is where the Hub is fetched from: the wheelhouse, root-only.
    assert ssh("lab-gw", "stat -c '%U %a' /etc/sglang/hf-token").stdout.split() == ["root", "600"]
    assert curl("lab-1", "/health")[0] == 200


def test_sudo_that_asks_for_a_password_stops_at_the_start_or_uses_the_one_given(
        first, tmp_path):
    ssh("lab-2", "echo 'ops:lab-sudo-password' | chpasswd")
    set_sudoers("lab-2", "ops ALL=(ALL) ALL")  # sudo now asks ops for the password
    try:
        refused = deploy(tmp_path, {"lab-1": {}, "lab-2": {}})
        out = refused.stdout + refused.stderr
        assert refused.returncode != 0
        assert ("lab-2: preflight login failed: found login ops (uid 1000): sudo asks for a "
                "password and none was given" in out), out[-3000:]
        assert "lab-2  FAILED at 'Preflight: login'" in out
        assert "lab-1" in healthy_hosts(out)
        given = deploy(tmp_path, {"lab-1": {}, "lab-2": {"_sudo_password":
                                                         "lab-sudo-password"}})
        out = given.stdout + given.stderr
        assert given.returncode == 0, out[-3000:]
        assert "lab-sudo-password" not in out
    finally:
        set_sudoers("lab-2", "ops ALL=(ALL) NOPASSWD: ALL")
