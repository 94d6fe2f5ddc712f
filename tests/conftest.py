"""Shared test helpers: the project root on sys.path, fixture paths, a fake pyinfra host."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pyinfra.api.state import StateStage

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIXTURES = ROOT / "tests" / "fixtures"
CAPTURES = ROOT / "lab" / "gpus" / "captures"
TOOLS = ROOT / ".tools" / "bin"  # promtool and prometheus, from Debian's package (make tools)


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """The distribution's promtool (make tools puts it in .tools/bin)."""
    if not (TOOLS / "promtool").exists():
        pytest.fail("no .tools/bin/promtool: run make tools (Debian's prometheus package)")
    return subprocess.run([str(TOOLS / "promtool"), *args], input=stdin, capture_output=True,
                          text=True, timeout=120)


class FakeHost:
    """Stands in for pyinfra's host inside an operation: answers facts from a table."""

    def __init__(self, name: str, facts: dict[Any, Any]):
        self.name = name
        self.facts = facts
        self.data: dict[str, Any] = {}
        self.current_op_global_arguments: dict[str, Any] = {}
        self.state = SimpleNamespace(current_stage=StateStage.Execute)

    def get_temp_filename(self, key: str) -> str:
        return f"/tmp/pyinfra-{hashlib.sha1(key.encode()).hexdigest()}"

    def get_fact(self, cls, **kwargs):
        key = (cls.__name__, tuple(sorted((k, repr(v)) for k, v in kwargs.items())))
        if key in self.facts:
            return self.facts[key]
        if cls.__name__ in self.facts:
            return self.facts[cls.__name__]
        if cls.__name__ in ("File", "Directory", "Link"):
            return None  # pyinfra's own file facts: the path does not exist yet
        raise AssertionError(f"unexpected fact {cls.__name__}({kwargs})")


def in_background(function, *args) -> tuple[threading.Thread, list]:  # noqa: ANN001
    """``function(*args)`` in a thread; the list gets its result when it returns."""
    result: list = []
    thread = threading.Thread(target=lambda: result.append(function(*args)), daemon=True)
    thread.start()
    return thread, result


def wait_for(predicate, timeout: float = 60, step: float = 1.0):  # noqa: ANN001
    """``predicate()`` once it is true, polled every ``step`` s; its last value after
    ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()
