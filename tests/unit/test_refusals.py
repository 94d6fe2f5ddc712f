"""Refusals are messages, not crashes: each kind of refusal that stops a run before any host is
touched (settings, the fleet file, the lock file, a secrets file, no lab) ends pyinfra with one
block that says what and what to do, a non-zero exit, and no traceback unless --debug. Runs the
real `pyinfra inventory.py deploy.py` on a fleet of this machine (`@local`), which the refusal
stops before anything is read from it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PYINFRA = str(Path(sys.executable).with_name("pyinfra"))


def run(tmp_path: Path, settings: dict | None = None, *extra: str, fleet: str | None = None,
        preview: bool = False, **env: str) -> tuple[int, str]:
    if settings is not None:
        fleet_file = tmp_path / "fleet.py"
        fleet_file.write_text(f"gpu_servers = [('@local', {settings!r})]\n")
        fleet = str(fleet_file)
    environment = {**os.environ, "SGLANG_LOCK": str(tmp_path / "fleet.lock.json"), **env}
    if fleet:
        environment["SGLANG_FLEET"] = fleet
    how = ["--dry", "--diff"] if preview else ["-y"]  # a preview detects the changes
    result = subprocess.run([PYINFRA, *how, "inventory.py", "deploy.py", *extra], cwd=ROOT,
                            env=environment, capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL)
    return result.returncode, result.stdout + result.stderr


LOCAL = {"model": "/srv/models/tiny"}  # a local model: nothing asks the Hub


@pytest.mark.parametrize(("case", "settings", "extra", "said"), [
    ("a mistyped key on the command line", LOCAL, ("--data", "profil=debugging"),
     "@local: unknown setting 'profil': did you mean 'profile'?"),
    ("a value of the wrong type", {**LOCAL, "port": "8000"}, (),
     "@local: setting 'port' = '8000': must be an integer from 1 to 65535"),
    ("a short commit", {**LOCAL, "model_revision": "abc123"}, (),
     "@local: setting 'model_revision' = 'abc123': must be a full commit sha"),
    ("a secrets file that is not there", {**LOCAL, "secrets_file": "/nonexistent/secrets.env"},
     (), "@local: setting 'secrets_file': cannot read"),
])
def test_a_refused_setting_is_one_block_without_a_traceback(tmp_path, case, settings, extra,
                                                            said):
    code, out = run(tmp_path, settings, *extra)
    assert code != 0, (case, out)
    assert "Traceback" not in out, (case, out)
    assert "--> Refused:" in out and said in out, (case, out)
    assert "What to do:" in out
    assert "Starting operation" not in out


def test_an_unreadable_lock_file_is_refused_without_a_traceback(tmp_path):
    (tmp_path / "fleet.lock.json").write_text("{not json")
    code, out = run(tmp_path, {"model": "Qwen/Qwen3-32B-AWQ"})
    assert code != 0 and "Traceback" not in out, out
    assert "cannot read the lock file" in out and "What to do:" in out


def test_a_missing_fleet_file_and_no_lab_are_refused_without_a_traceback(tmp_path):
    code, out = run(tmp_path, fleet=str(tmp_path / "nowhere.py"))
    assert code != 0 and "Traceback" not in out, out
    assert "nowhere.py: no such file" in out
    code, out = run(tmp_path, SGLANG_LAB_DIR=str(tmp_path / "no-lab"))
    assert code != 0 and "Traceback" not in out, out
    assert "No fleet configured and no lab hosts are up" in out


def test_with_debug_a_refusal_shows_its_traceback(tmp_path):
    code, out = run(tmp_path, LOCAL, "--data", "profil=debugging", "--debug")
    assert code != 0 and "Traceback" in out and "unknown setting 'profil'" in out


def test_a_preview_whose_plan_fails_a_host_exits_non_zero(tmp_path):
    """`--dry` is what a pipeline gates a rollout on: a host that would fail preflight (here:
    far more free disk asked for than this machine has) makes the preview fail."""
    code, out = run(tmp_path, {**LOCAL, "min_free_disk_gb": 10**6}, preview=True)
    assert "Plan (a preview: nothing was changed on any host)" in out, out
    assert "@local: preflight disk-space failed" in out
    assert "1 host(s) would fail: @local" in out
    assert code == 1
