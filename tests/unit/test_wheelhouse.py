"""The wheelhouse's fetch (real pip against a local index, no network) and the workers' install
command: later install steps win, every file is locked by the sha256 of its bytes, and workers
install those files only."""

from __future__ import annotations

import hashlib
import json
import runpy
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
    assert "--find-links http://10.0.0.5:8091/cu13-stable/files/" in command
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
    assert commands[0].endswith("/cu13-stable/installer.lock")  # uv, locked
    assert "uv pip install" in commands[1] and "/cu13-stable/requirements.lock" in commands[1]
    assert '"wheelhouse": "http://10.0.0.5:8091/cu13-stable"' in commands[2]  # recorded
