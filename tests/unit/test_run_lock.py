"""The run lock's host program (files/run_lock.py), run as the RunLock fact runs it on a host:
its command through ``sh -c``. The "SSH session" that holds a lock is the first ancestor that is
not a shell: here the test's own process, or a short-lived process that stands for a run whose
connection ended (a killed run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from operations import runlock
from operations.runlock import RunLock


@pytest.fixture(autouse=True)
def lock_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "state" / "run-lock.json"
    monkeypatch.setattr(runlock, "PATH", str(path))
    return path


def holder(run: str, started: float = 1.0) -> str:
    return json.dumps({"run": run, "control": f"ctl-{run}", "user": "ops", "pid": 4242,
                       "since": "2026-12-02 01:00:00 UTC", "started": started})


def lock(action: str, run: str, lease_s: float = 300, through: list[str] | None = None) -> dict:
    """The fact's answer; ``through``: a program that runs the fact's shell and then ends (the
    session of a run that was killed after taking the lock)."""
    fact = RunLock()
    argv = ["sh", "-c", fact.command(action, holder(run), lease_s)]
    done = subprocess.run([*(through or []), *argv], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return fact.process(done.stdout.splitlines())


# A session that ends as soon as the lock is taken: a python that runs the command and exits.
ENDED_SESSION = [sys.executable, "-c", "import subprocess, sys; subprocess.run(sys.argv[1:])"]


def test_a_free_host_is_taken_and_the_record_names_the_run(lock_path: Path) -> None:
    answer = lock("take", "a")
    assert answer["state"] == "taken"
    record = json.loads(lock_path.read_text())
    assert (record["run"], record["control"], record["pid"]) == ("a", "ctl-a", 4242)
    assert lock_path.stat().st_mode & 0o077 == 0  # root's only
    assert lock_path.parent.stat().st_mode & 0o077 == 0


def test_a_live_run_holds_the_host_against_another_and_is_named() -> None:
    lock("take", "a")
    answer = lock("take", "b")
    assert answer["state"] == "held"
    assert answer["holder"]["control"] == "ctl-a"
    assert "ctl-a" in runlock.describe(answer["holder"])


def test_the_same_run_taking_again_keeps_it() -> None:
    lock("take", "a")
    assert lock("take", "a")["state"] == "ours"


def test_a_lock_whose_session_ended_is_taken_over_and_says_why() -> None:
    assert lock("take", "a", through=ENDED_SESSION)["state"] == "taken"
    answer = lock("take", "b")
    assert answer["state"] == "took-over"
    assert answer["holder"]["run"] == "a"
    assert answer["why"] == "its connection to this host is gone"


def test_a_lock_whose_lease_ended_is_taken_over_though_its_session_lives() -> None:
    lock("take", "a", lease_s=0)  # the control machine vanished: its session lingers
    answer = lock("take", "b")
    assert (answer["state"], answer["why"]) == ("took-over", "its lease ended")


def test_a_lock_from_before_a_reboot_is_stale(lock_path: Path) -> None:
    lock("take", "a")
    record = json.loads(lock_path.read_text())
    lock_path.write_text(json.dumps({**record, "boot": "another-boot"}))
    assert lock("take", "b")["why"] == "this host rebooted since"


def test_a_kept_lock_holds_by_its_lease_alone_across_a_reboot() -> None:
    lock("take", "a")
    assert lock("keep", "a", through=ENDED_SESSION)["state"] == "ours"  # session: none
    assert lock("take", "b")["state"] == "held"
    assert lock("renew", "a")["state"] == "ours"  # the new session holds it again


def test_only_the_holder_releases_or_renews() -> None:
    lock("take", "a")
    assert lock("release", "b")["state"] == "not-ours"
    assert lock("renew", "b")["state"] == "not-ours"
    assert lock("take", "b")["state"] == "held"
    assert lock("release", "a")["state"] == "released"
    assert lock("take", "b")["state"] == "taken"


def test_a_record_cut_short_is_nobodys(lock_path: Path) -> None:
    lock_path.parent.mkdir(mode=0o700)
    lock_path.write_text('{"run": "a", "contr')
    assert lock("take", "b")["state"] == "taken"


def test_the_younger_run_gives_way() -> None:
    runlock.holder()  # this run: started now
    assert runlock._older({"run": "x", "started": 1.0})
    assert not runlock._older({"run": "x", "started": runlock.holder()["started"] + 1})
