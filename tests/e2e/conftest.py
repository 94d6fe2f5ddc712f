"""End-to-end helpers: a lab fleet brought up by the tests themselves, real pyinfra over SSH."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAB = [str(ROOT / "lab" / "lab")]
PYINFRA = str(Path(sys.executable).with_name("pyinfra"))
LAB_DIR = Path(os.environ.get("SGLANG_LAB_DIR", "/var/lib/sglang-lab"))


def lab(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([*LAB, *args], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, f"lab {' '.join(args)}: {result.stdout}{result.stderr}"
    return result


def lab_hosts() -> dict[str, dict]:
    return {h["name"]: h for h in json.loads((LAB_DIR / "hosts.json").read_text())}


def deploy(tmp_path: Path | None = None, overrides: dict[str, dict] | None = None,
           script: str = "deploy.py", extra: tuple[str, ...] = (),
           fleet: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``pyinfra inventory.py deploy.py``; ``overrides`` adds settings per lab host through
    a fleet file built from the lab inventory (the way a user configures a fleet); ``fleet``:
    a fleet file of the test's own."""
    env = {k: v for k, v in os.environ.items() if k != "SGLANG_FLEET"}
    if fleet:
        env["SGLANG_FLEET"] = str(fleet)
    if overrides:
        fleet = tmp_path / "fleet.py"
        fleet.write_text(
            "from lab.inventory import lab_hosts\n"
            f"_overrides = {overrides!r}\n"
            "gpu_servers = [(n, {**d, **_overrides.get(n, {})}) for n, d in lab_hosts()\n"
            "               if n in _overrides]\n")
        env["SGLANG_FLEET"] = str(fleet)
    return subprocess.run([PYINFRA, "-y", "inventory.py", script, *extra], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=900)


def start_deploy(tmp_path: Path, hosts: list[str]) -> subprocess.Popen:
    """A deploy of some lab hosts, running in the background, for faults during a run."""
    fleet = tmp_path / "fleet.py"
    fleet.write_text("from lab.inventory import lab_hosts\n"
                     f"gpu_servers = [h for h in lab_hosts() if h[0] in {hosts!r}]\n")
    return subprocess.Popen([PYINFRA, "-y", "inventory.py", "deploy.py"], cwd=ROOT,
                            env={**os.environ, "SGLANG_FLEET": str(fleet)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def diagnose(*extra: str) -> subprocess.CompletedProcess:
    return deploy(script="diagnose.py", extra=extra)


def ssh(host: str, command: str) -> subprocess.CompletedProcess:
    address = lab_hosts()[host]["address"]
    return subprocess.run(
        ["ssh", "-i", str(LAB_DIR / "ssh" / "id_ed25519"), "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
         f"root@{address}", command], capture_output=True, text=True, timeout=120)


def curl(host: str, path: str, data: str | None = None) -> tuple[int, str]:
    address = lab_hosts()[host]["address"]
    args = ["curl", "-s", "-m", "10", "-w", "\n%{http_code}", f"http://{address}:8000{path}"]
    if data is not None:
        args += ["-H", "Content-Type: application/json", "-d", data]
    out = subprocess.run(args, capture_output=True, text=True).stdout
    body, _, code = out.rpartition("\n")
    return int(code or 0), body


def wait_for(predicate, timeout: float = 60, step: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def changed_hosts(output: str) -> set[str]:
    """Hosts on which pyinfra executed something: it prints "[host] Success" for a change and
    "[host] No changes" otherwise."""
    found = (re.match(r"\s*\[([^\]]+)\]\s+Success", line) for line in output.splitlines())
    return {match.group(1) for match in found if match}


def verify_fleet(tmp_path) -> tuple[subprocess.CompletedProcess, ET.Element]:
    junit = tmp_path / "verify.xml"
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                             "tests/verify", "-q", f"--junitxml={junit}"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    return result, ET.parse(junit).getroot()


def failures_by_test(junit: ET.Element) -> dict[str, str]:
    return {case.get("name"): case.find("failure").get("message")
            for case in junit.iter("testcase") if case.find("failure") is not None}


@pytest.fixture(scope="session")
def root_required():
    if os.geteuid() != 0:
        pytest.skip("the lab needs root: run `sudo make test` (CI runs as root)")
