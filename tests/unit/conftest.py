"""Fixtures shared by the unit tests."""

from __future__ import annotations

import importlib
import sys
import types

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def standin():
    """The lab's SGLang stand-in modules (without their package's __init__, which reads the
    lab build's record)."""
    for name in ("sglang", "sglang.srt"):
        package = types.ModuleType(name)
        package.__path__ = [str(ROOT / "lab" / "standin" / name.replace(".", "/"))]
        sys.modules[name] = package
    yield importlib.import_module("sglang.srt.standin_server")
    for name in [n for n in sys.modules if n == "sglang" or n.startswith("sglang.")]:
        del sys.modules[name]
