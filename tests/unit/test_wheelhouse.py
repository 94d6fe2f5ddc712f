"""The wheelhouse's fetch (real pip against a local index, no network) and the workers' install
command: later install steps win, every file is locked by the sha256 of its bytes, and workers
install those files only."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import re
import runpy
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from lab.standin.build import build_all
from operations import venv
from operations.settings import validate
from operations.stages import python_env
from tests.conftest import FakeHost
from tests.unit.test_operations import run_op

ROOT = Path(__file__).resolve().parents[2]
FETCH = runpy.run_path(str(ROOT / "files" / "wheelhouse_fetch.py"))


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    built = tmp_path_factory.mktemp("upstream")
    build_all(built)
    return built / "simple"


def test_fetch_locks_what_the_last_step_chose_with_the_hash_of_the_file(index, tmp_path,
                                                                         monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")  # only the index below
    sources = ["--no-index", *(a for d in sorted(index.iterdir())
                               for a in ("--find-links", str(d)))]
    spec = {"sources": sources, "digest": "d1", "steps": [
        [["torch-lab-standin==2.14.1", "sglang-lab-standin==0.5.23"], []],
        [["torch-lab-standin==2.10.0.dev20250916"], ["--pre"]]]}
    FETCH["main"](str(tmp_path), spec)
    lock = (tmp_path / "requirements.lock").read_text().splitlines()
    assert [line.split(" ")[0] for line in lock] == [
        "sglang-lab-standin==0.5.23", "torch-lab-standin==2.10.0.dev20250916"]
    for line in lock:
        name, version = line.split(" ")[0].split("==")
        wheel = next((tmp_path / "files").glob(f"{name.replace('-', '_')}-{version}-*.whl"))
        assert line.endswith(f"--hash=sha256:{hashlib.sha256(wheel.read_bytes()).hexdigest()}")
    assert (tmp_path / "stack.sha256").read_text() == "d1"


def test_fetch_that_fails_leaves_no_digest_so_the_next_deploy_fetches_again(index, tmp_path,
                                                                            monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    spec = {"sources": ["--no-index", "--find-links", str(index / "torch-lab-standin")],
            "digest": "d2", "steps": [[["torch-lab-standin==9.9.9"], []]]}
    with pytest.raises(SystemExit, match="pip install failed"):
        FETCH["main"](str(tmp_path), spec)
    assert not (tmp_path / "stack.sha256").exists()


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_a_worker_installs_the_locked_files_only_checking_every_hash(installer):
    settings = validate("gpu-1", {"stack": "cu13-stable", "installer": installer})
    record = venv.wanted_record(settings, "http://10.0.0.5:8091/cu13-stable")
    [command] = venv.install_commands(settings, record)
    assert command.startswith({"uv": "/opt/sglang/venv/bin/uv pip install",
                               "pip": "/opt/sglang/venv/bin/python -m pip install"}[installer])
    assert "--no-index" in command and "--require-hashes" in command and "--no-deps" in command
    # the worker's verified copy of the wheelhouse's files (wheels_fetch_spec), the lock's
    assert f"--find-links {venv.wheels_staged(settings)} " in command
    assert command.endswith("-r http://10.0.0.5:8091/cu13-stable/requirements.lock")
    assert "pypi.org" not in command  # nothing from outside


def test_uv_comes_from_the_wheelhouses_own_lock_checked_by_its_hash():
    settings = validate("gpu-1", {"stack": "cu13-stable"})
    record = venv.wanted_record(settings, "http://10.0.0.5:8091/cu13-stable")
    command = venv.installer_command(settings, record)
    assert command.startswith("/opt/sglang/venv/bin/python -m pip install")
    assert "--no-index" in command and "--require-hashes" in command
    assert command.endswith("-r http://10.0.0.5:8091/cu13-stable/installer.lock")


def test_fetch_locks_the_installer_apart_without_its_dependencies(index, tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    sources = ["--no-index", *(a for d in sorted(index.iterdir())
                               for a in ("--find-links", str(d)))]
    spec = {"sources": sources, "digest": "d3", "steps": [[["sglang-lab-standin==0.5.23"], []]],
            "installer": ["sgl-kernel-lab-standin==0.4.10"]}  # any one wheel stands for uv
    FETCH["main"](str(tmp_path), spec)
    stack = (tmp_path / "requirements.lock").read_text()
    installer = (tmp_path / "installer.lock").read_text().splitlines()
    assert [line.split(" ")[0] for line in installer] == ["sgl-kernel-lab-standin==0.4.10"]
    assert "sgl-kernel" not in stack  # a worker's pip on the stack's lock never installs it
    wheel = next((tmp_path / "files").glob("sgl_kernel_lab_standin-0.4.10-*.whl"))
    assert installer[0].endswith(hashlib.sha256(wheel.read_bytes()).hexdigest())


def test_a_venv_installed_from_the_sources_is_reinstalled_from_a_new_wheelhouse():
    settings = validate("gpu-1", {"stack": "cu13-stable"})
    direct = json.dumps(venv.wanted_record(settings)).splitlines()
    pins = {"torch": "2.14.1", "sglang-kernel": "0.4.10", "flashinfer-python": "0.7.2",
            "sglang": "0.5.23"}
    fake = FakeHost("gpu-1", {"FileContents": direct, "Distributions": pins})
    assert run_op(python_env.stack_installed, fake, settings=settings) == []
    commands = run_op(python_env.stack_installed, fake, settings=settings,
                      wheelhouse="http://10.0.0.5:8091/cu13-stable")
    assert "http://10.0.0.5:8091/cu13-stable/files.json" in commands[0]  # its files, here
    assert commands[1].endswith("/cu13-stable/installer.lock")  # uv, locked
    assert "uv pip install" in commands[2] and "/cu13-stable/requirements.lock" in commands[2]
    assert '"wheelhouse": "http://10.0.0.5:8091/cu13-stable"' in commands[3]  # recorded
    assert commands[4] == "rm -rf /opt/sglang/wheels"  # installed: the wheelhouse keeps them


class _Wheelhouse(http.server.SimpleHTTPRequestHandler):
    """A stack directory served as the wheelhouse's nginx serves it: whole files or the rest
    of one (``Range: bytes=N-``, 206); ``cut`` (bytes) ends each transfer of a wheel there."""
    cut: int | None = None
    sent: list[tuple[str, int]] = []

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        path = Path(self.translate_path(self.path))
        data = path.read_bytes()
        asked = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        start = int(asked.group(1)) if asked else 0
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if self.cut is not None and path.suffix == ".whl":
            body = body[:self.cut]
        self.wfile.write(body)
        self.sent.append((path.name, len(body)))


def test_a_workers_copy_of_the_stack_is_fetched_resumably_and_checked(index, tmp_path,
                                                                     monkeypatch):
    """The wheelhouse lists its files with their sizes and hashes; a worker fetches them with
    the model fetcher: a transfer cut part-way is resumed by the next run (the rest only, by
    a Range request), and pip installs the verified copy with every hash checked."""
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    sources = ["--no-index", *(a for d in sorted(index.iterdir())
                               for a in ("--find-links", str(d)))]
    stack_dir = tmp_path / "wheelhouse" / "cu13-stable"
    FETCH["main"](str(stack_dir), {"sources": sources, "digest": "d4",
                                   "steps": [[["torch-lab-standin==2.14.1"], []]]})
    [listed] = json.loads((stack_dir / "files.json").read_text())
    wheel = stack_dir / "files" / listed["path"]
    assert listed == {"path": wheel.name, "size": wheel.stat().st_size,
                      "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest()}
    handler = type("Served", (_Wheelhouse,), {"cut": listed["size"] // 3, "sent": []})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(tmp_path / "wheelhouse")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = validate("gpu-1", {"stack": "cu13-stable", "installer": "pip",
                                      "install_dir": str(tmp_path / "opt"),
                                      "model_stall_timeout_s": 5})
        url = f"http://127.0.0.1:{server.server_address[1]}/cu13-stable"
        spec = venv.wheels_fetch_spec(settings, venv.wanted_record(settings, url), "gpu-1")
        fetch = [sys.executable, str(ROOT / "files" / "model_fetch.py"), "fetch",
                 json.dumps(spec)]
        cut = subprocess.run(fetch, capture_output=True, text=True, timeout=60)
        assert cut.returncode == 1 and f"the transfer ended after {listed['size'] // 3} of" in \
            cut.stderr
        handler.cut = None
        resumed = subprocess.run(fetch, capture_output=True, text=True, timeout=60)
        assert resumed.returncode == 0, resumed.stderr
        assert f"resuming at {listed['size'] // 3} of {listed['size']} bytes" in resumed.stdout
        wheel_sends = [count for name, count in handler.sent if name == wheel.name]
        assert sum(wheel_sends) == listed["size"]  # over both runs, each byte sent once
        staged = Path(venv.wheels_staged(settings))
        assert (staged / wheel.name).read_bytes() == wheel.read_bytes()
        target = tmp_path / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True)
        [install] = venv.install_commands(settings, venv.wanted_record(settings, url))
        argv = shlex.split(install)
        argv[:3] = [sys.executable, "-m", "pip"]  # this test's pip, into the test's venv
        installed = subprocess.run([*argv[:4], "--target", str(target / "site"), *argv[4:]],
                                   capture_output=True, text=True, timeout=120)
        assert installed.returncode == 0, installed.stdout + installed.stderr
        assert (target / "site" / "torch").is_dir()
    finally:
        server.shutdown()
        server.server_close()
