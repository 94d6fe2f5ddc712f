"""End-to-end helpers: a lab fleet brought up by the tests themselves, real pyinfra over SSH."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.hosts import GATEWAY_HOST, ssh_argv
from lab.inventory import router_key
from lab.stacks import GATEWAY, INDEX_URL
from tests.conftest import wait_for  # noqa: F401 (the e2e modules' helper too)

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


def fleet_file(tmp_path: Path, overrides: dict[str, dict]) -> Path:
    """A fleet file of the lab hosts named in ``overrides``, each with its extra settings (the
    way a user configures a fleet)."""
    fleet = tmp_path / "fleet.py"
    fleet.write_text(
        "from lab.inventory import lab_hosts\n"
        f"_overrides = {overrides!r}\n"
        "gpu_servers = [(n, {**d, **_overrides.get(n, {})}) for n, d in lab_hosts()\n"
        "               if n in _overrides]\n")
    return fleet


def _env(fleet: Path | None) -> dict[str, str]:
    # Every run on the lab shares the lab's lock file, whatever fleet file it uses: the lab
    # fleet serves one pinned commit, as a fleet with one fleet file does.
    env = {k: v for k, v in os.environ.items() if k != "SGLANG_FLEET"}
    env.setdefault("SGLANG_LOCK", str(LAB_DIR / "fleet.lock.json"))
    if fleet:
        env["SGLANG_FLEET"] = str(fleet)
    return env


def deploy(tmp_path: Path | None = None, overrides: dict[str, dict] | None = None,
           script: str = "deploy.py", extra: tuple[str, ...] = (),
           fleet: Path | None = None, preview: bool = False) -> subprocess.CompletedProcess:
    """Run ``pyinfra inventory.py deploy.py``; ``overrides`` adds settings per lab host through
    a fleet file (``fleet_file``); ``fleet``: a fleet file of the test's own; ``preview``: with
    ``--dry --diff`` (and change detection, so without ``-y``) instead."""
    if overrides:
        fleet = fleet_file(tmp_path, overrides)
    how = ["--dry", "--diff"] if preview else ["-y"]
    # No terminal and no stdin: a run that would stop at a password prompt fails instead.
    return subprocess.run([PYINFRA, *how, "inventory.py", script, *extra], capture_output=True,
                          text=True, cwd=ROOT, env=_env(fleet), timeout=900,
                          stdin=subprocess.DEVNULL, start_new_session=True)


def deploy_with_gateway(tmp_path: Path, preview: bool = False,
                        **settings) -> subprocess.CompletedProcess:
    """A deploy (or its ``preview``) of the lab's workers and lab-gw (gateway and wheelhouse)
    with ``settings`` on every worker."""
    fleet = tmp_path / "fleet.py"
    fleet.write_text("from lab.inventory import lab_gateways, lab_hosts\n"
                     f"_settings = {settings!r}\n"
                     "gpu_servers = [(n, {**d, **_settings}) for n, d in lab_hosts()]\n"
                     "sglang_gateways = sglang_wheelhouse = lab_gateways()\n")
    return deploy(fleet=fleet, preview=preview)


def start_deploy(tmp_path: Path, overrides: dict[str, dict],
                 cwd: Path = ROOT) -> subprocess.Popen:
    """A deploy of some lab hosts, running in the background, for faults during a run;
    ``cwd``: the checkout it runs from."""
    return subprocess.Popen([PYINFRA, "-y", "inventory.py", "deploy.py"], cwd=cwd,
                            env=_env(fleet_file(tmp_path, overrides)), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


class HeldIndex:
    """A package index on the lab network that answers no request for the stack until released
    (uv, the installer, it sends on to the lab's index): a host whose ``pip_index_url`` points
    here is inside its venv install from the moment ``reached`` is set, and stays there until
    the installer gives up (over a minute of timeouts and retries). A
    fault injected at once then hits that point every time, however fast the real install
    would have been."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.released = threading.Event()
        gate = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                if self.path.startswith("/simple/uv/"):  # the installer: the lab's own
                    self.send_response(302)
                    self.send_header("Location", f"{INDEX_URL}/uv/")
                    self.end_headers()
                    return
                gate.reached.set()
                gate.released.wait(600)
                self.send_error(503, "released")

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((GATEWAY, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{GATEWAY}:{self.server.server_address[1]}/simple"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self) -> HeldIndex:
        return self

    def __exit__(self, *exc) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


ROUTER = f"http://{GATEWAY_HOST['address']}:30000"  # lab-gw's router


def router_call(method: str, path: str, body: str | None = None,
                key: str | None = None) -> tuple[int, str]:
    """(status, body) of one call to lab-gw's router from this machine: an address outside the
    inventory. ``key``: sent as the control key (through curl's stdin: in no argv)."""
    out = subprocess.run(
        ["curl", "-s", "-m", "10", "-X", method, "-w", "\n%{http_code}", "-H", "@-",
         f"{ROUTER}{path}", *(["-H", "Content-Type: application/json", "-d", body] if body
                              else [])],
        input=f"Authorization: Bearer {key}\n" if key else "", capture_output=True,
        text=True).stdout
    reply, _, code = out.rpartition("\n")
    return int(code or 0), reply


def router_workers() -> dict[str, bool]:
    status, out = router_call("GET", "/workers", key=router_key())
    assert status == 200, out
    return {w["url"]: w["is_healthy"] for w in json.loads(out)["workers"]}


def routed_generate() -> tuple[int, str]:
    out = subprocess.run(
        ["curl", "-s", "-m", "10", "-w", "\n%{http_code}", f"{ROUTER}/generate", "-H",
         "Content-Type: application/json", "-d",
         '{"text": "The capital of France is", "sampling_params": {"max_new_tokens": 4}}'],
        capture_output=True, text=True).stdout
    body, _, code = out.rpartition("\n")
    return int(code or 0), body


@contextlib.contextmanager
def requests_through_the_router() -> Iterator[list[int]]:
    """Generate requests through lab-gw's router, one after another, while the block runs;
    the list holds each one's status."""
    codes: list[int] = []
    done = threading.Event()

    def load() -> None:
        while not done.is_set():
            codes.append(routed_generate()[0])

    thread = threading.Thread(target=load)
    thread.start()
    try:
        yield codes
    finally:
        done.set()
        thread.join()


def url(name: str) -> str:
    return f"http://{lab_hosts()[name]['address']}:8000"


def diagnose(*extra: str) -> subprocess.CompletedProcess:
    return deploy(script="diagnose.py", extra=extra)


def ssh(host: str, command: str) -> subprocess.CompletedProcess:
    """Run a command as root on a lab host (through its login user's sudo where root may not
    log in)."""
    return subprocess.run(ssh_argv(lab_hosts()[host], command), capture_output=True, text=True,
                          timeout=120)


def curl(host: str, path: str, data: str | None = None, max_s: int = 10) -> tuple[int, str]:
    address = lab_hosts()[host]["address"]
    args = ["curl", "-s", "-m", str(max_s), "-w", "\n%{http_code}",
            f"http://{address}:8000{path}"]
    if data is not None:
        args += ["-H", "Content-Type: application/json", "-d", data]
    out = subprocess.run(args, capture_output=True, text=True).stdout
    body, _, code = out.rpartition("\n")
    return int(code or 0), body


def journal_cursor(host: str) -> str:
    """Where the host's journal ends now: what a test caused is read after it."""
    out = ssh(host, "journalctl -n 1 -o cat --show-cursor --no-pager").stdout
    return out.strip().rsplit("-- cursor: ", 1)[1]


def journal_after(host: str, cursor: str, unit: str = "sglang") -> str:
    return ssh(host, f"journalctl -u {unit} --no-pager -o cat --after-cursor "
                     f"{shlex.quote(cursor)}").stdout


def changed_hosts(output: str) -> set[str]:
    """Hosts on which pyinfra executed something: it prints "[host] Success" for a change and
    "[host] No changes" otherwise."""
    found = (re.match(r"\s*\[([^\]]+)\]\s+Success", line) for line in output.splitlines())
    return {match.group(1) for match in found if match}


def unchanged_hosts(output: str) -> set[str]:
    """The hosts the fleet summary lists as healthy (ok) with nothing changed."""
    found = re.search(r"^\s+(?:healthy|ok), nothing changed: (.+) \(\d+ hosts?\)$", output,
                      re.M)
    return set(found.group(1).split(", ")) if found else set()


def round_trips(debug_output: str) -> dict[str, int]:
    """Commands each host ran over SSH, from a ``--debug`` run's "Running command on" lines."""
    found: dict[str, int] = {}
    for name in re.findall(r"Running command on ([^:\s]+):", debug_output):
        found[name] = found.get(name, 0) + 1
    return found


def healthy_hosts(output: str) -> set[str]:
    """The hosts the fleet summary lists as healthy: changed or not (hosts changed alike share a
    line: "lab-1, lab-2 (2 hosts)  healthy; changed: ...")."""
    listed = re.findall(r"^\s+(\S+(?:, \S+)*)(?: \(\d+ hosts\))?\s+healthy(?:$|; changed: )",
                        output, re.M)
    return {name for names in listed for name in names.split(", ")} | unchanged_hosts(output)


def verify_fleet(tmp_path, fleet: Path | None = None
                 ) -> tuple[subprocess.CompletedProcess, ET.Element]:
    """tests/verify on the lab's fleet (``fleet``: a fleet file of the test's own)."""
    junit = tmp_path / "verify.xml"
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                             "tests/verify", "-q", f"--junitxml={junit}"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300,
                            env=_env(fleet))
    return result, ET.parse(junit).getroot()


def failures_by_test(junit: ET.Element) -> dict[str, str]:
    return {case.get("name"): case.find("failure").get("message")
            for case in junit.iter("testcase") if case.find("failure") is not None}


@pytest.fixture(scope="session")
def root_required():
    if os.geteuid() != 0:
        pytest.skip("the lab needs root: run `sudo make test` (CI runs as root)")
