"""The two venv checks that catch chart symptoms before launch, on real error texts, as the
deploy's venv stage reports them."""

from __future__ import annotations

import shlex

from operations.checks import arch_covers, pins_missing
from operations.settings import validate
from operations.stages.python_env import stack_checked
from tests.conftest import FakeHost
from tests.unit.test_operations import run_op

# torch's arch list as printed by a real torch 2.11.0+cu130 on the H100 host
# (tests/fixtures/gpu-hosts/h100-ubuntu2404/environment.txt).
REAL_ARCH_LIST = ['sm_75', 'sm_80', 'sm_86', 'sm_90', 'sm_100', 'sm_120']
# Stable torch builds before sm_120 support (e.g. cu126) stop at sm_90.
NO_SM120 = ['sm_50', 'sm_60', 'sm_70', 'sm_75', 'sm_80', 'sm_86', 'sm_90']
RTX5090 = {"gpus": [{"index": 0, "name": "NVIDIA GeForce RTX 5090", "compute_cap": "12.0",
                     "memory_total_mib": 32607, "memory_used_mib": 0}]}


class Changed:
    changed = True


def venv_check(host_name: str, torch_result: dict) -> list[str]:
    fake = FakeHost(host_name, {"VenvExists": True, "PythonJson": torch_result,
                                "NvidiaGpus": RTX5090})
    commands = run_op(stack_checked, fake, settings=validate(host_name, {}), venv=Changed())
    return [word for word in shlex.split("".join(commands)) if word.startswith(host_name)]


def test_real_cu130_arch_list_covers_rtx5090_and_h100():
    assert arch_covers(REAL_ARCH_LIST, "12.0") and arch_covers(REAL_ARCH_LIST, "9.0")


def test_arch_list_without_sm120_does_not_cover_rtx5090():
    assert not arch_covers(NO_SM120, "12.0")


def test_ptx_of_an_older_arch_is_jit_compiled():
    assert arch_covers(["sm_90", "compute_90"], "12.0")
    assert not arch_covers(["compute_120"], "9.0")


def test_family_suffixes_are_understood():
    assert arch_covers(["sm_100a", "sm_120a"], "12.0")


def test_missing_kernel_image_names_symptom_cause_and_fix():
    [message] = venv_check("gpu-03", {"torch": "2.7.0+cu126", "arch_list": NO_SM120,
                                      "kernel_error": None})
    assert message.startswith("gpu-03: venv check failed:")
    assert "no kernel image is available for execution on the device" in message
    assert "12.0" in message and "12.0+PTX" in message


def test_abi_mismatch_import_error_names_symptom():
    # The loader's error as reported with sgl_kernel on a mismatched torch (sgl-project/sglang
    # PR 13948).
    error = ("Traceback (most recent call last):\n  File \"<string>\", line 4, in <module>\n"
             "ImportError: /opt/sglang/venv/lib/python3.11/site-packages/sgl_kernel/"
             "common_ops.abi3.so: undefined symbol: _ZNK3c106SymInt6sym_neERKS0_")
    [message] = venv_check("gpu-04", {"torch": "2.14.1", "arch_list": REAL_ARCH_LIST,
                                      "kernel_error": error})
    assert "undefined symbol: _ZNK3c10" in message
    assert "kernel wheel that matches the installed torch" in message


def test_libnuma_import_error_names_symptom():
    error = "ImportError: libnuma.so.1: cannot open shared object file: No such file or directory"
    [message] = venv_check("gpu-05", {"error": error})
    assert "apt-get install -y libnuma-dev libnuma1" in message


def test_unknown_import_error_shows_its_last_line():
    [message] = venv_check("gpu-06", {"error": "a\nb\nModuleNotFoundError: torch"})
    assert "ModuleNotFoundError: torch" in message


def test_a_healthy_venv_yields_nothing():
    assert venv_check("gpu-07", {"torch": "2.14.1", "arch_list": REAL_ARCH_LIST,
                                 "kernel_error": None}) == []


def test_pins_missing_compares_exact_versions():
    assert pins_missing({"torch": "2.14.1"}, {"torch": "2.14.1"}) == []
    assert pins_missing({"torch": "2.14.1"}, {"torch": "2.14.1+cu126"}) == [
        "torch==2.14.1 (installed: 2.14.1+cu126)"]
    assert pins_missing({"sgl_kernel": "0.4.10"}, {}) == ["sgl_kernel==0.4.10 (installed: none)"]
