"""Stacks: the chart's version matrix made executable.

A stack is the set of Python packages a host's venv holds, pinned exactly, with where to get them
and what the GPU driver must support. Index URLs are defaults: every one can be replaced per
inventory (``pip_index_url``, ``pip_extra_index_urls``, ``pip_find_links``) for mirrors and
air-gapped fleets.
"""

from __future__ import annotations

from dataclasses import dataclass

# Minimum NVIDIA driver branch for each CUDA runtime (NVIDIA's CUDA toolkit release notes).
CUDA_MIN_DRIVER: dict[str, int] = {
    "12.8": 570,
    "12.9": 575,
    "13.0": 580,
}


# uv installs a stack's pins from the same wheels 2.2x faster than pip (docs/benchmarks.md run 8):
# the default installer, put into each venv by pip from the stack's own sources.
UV_VERSION = "0.13.9"

UNMEASURED_STACK_GB = 15.0  # above every stack measured so far


@dataclass(frozen=True)
class Stack:
    name: str
    cuda: str
    # Exact pins, distribution name -> version.
    packages: dict[str, str]
    index_url: str
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    # Pip runs in order, each a list of distribution names and extra pip options; by default
    # one run installs everything. Later runs win, so a nightly torch can replace the one an
    # earlier run resolved.
    install_steps: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = ()
    # Import names checked side by side after install (ABI: `undefined symbol: _ZN3c10...`).
    torch_module: str = "torch"
    kernel_module: str = "sgl_kernel"
    sglang_distribution: str = "sglang"
    sm120_status: str = ""
    notes: str = ""
    # Disk the installed venv takes (GB, 10^9 bytes), measured (docs/benchmarks.md); None:
    # not measured, UNMEASURED_STACK_GB is assumed.
    installed_gb: float | None = None

    @property
    def min_driver(self) -> int:
        return CUDA_MIN_DRIVER[self.cuda]

    @property
    def disk_gb(self) -> float:
        return UNMEASURED_STACK_GB if self.installed_gb is None else self.installed_gb

    def steps(self) -> list[tuple[list[str], list[str]]]:
        """Each pip run as (requirements with exact pins, extra options)."""
        steps = self.install_steps or ((tuple(self.packages), ()),)
        return [([f"{n}=={self.packages[n]}" for n in names], list(opts)) for names, opts in steps]


STACKS: dict[str, Stack] = {
    stack.name: stack
    for stack in (
        Stack(
            name="cu128-nightly",
            cuda="12.8",
            packages={
                "torch": "2.10.0.dev20250916+cu128",
                "sgl-kernel": "0.3.9.post2",
                "sglang": "0.5.2",
            },
            index_url="https://download.pytorch.org/whl/nightly/cu128",
            extra_index_urls=("https://pypi.org/simple",),
            find_links=("https://docs.sglang.ai/whl/cu128/sgl-kernel/",),
            # sglang 0.5.2 pins a stable torch: install it with its dependencies first, then let
            # the dated nightly and the prebuilt Blackwell kernel replace what it pulled in.
            install_steps=(
                (("sglang",), ()),
                (("torch",), ("--pre",)),
                (("sgl-kernel",), ("--no-deps",)),
            ),
            sm120_status="chart (2025-09): best available, under test; CUDA graphs and "
            "FlashInfer segfault on sm_120",
            notes="The chart's stack. The dated nightly disappears from the upstream index "
            "after a while: keep a copy in a wheelhouse and point pip_find_links at it.",
        ),
        Stack(
            name="cu13-0.5.16",
            cuda="13.0",
            packages={
                "torch": "2.11.0",  # on PyPI, torch 2.11.0 is the CUDA 13.0 build
                "sglang-kernel": "0.4.5",
                "flashinfer-python": "0.6.14",
                "sglang": "0.5.16",
            },
            index_url="https://pypi.org/simple",
            sm120_status="not tried on sm_120: sglang-kernel 0.4.5 ships sm90 and sm100 ops",
            notes="What SGLang 0.5.16 pins; served a model on a real H100/H200 (CUDA 13.0, "
            "driver 580) from the toolkit's own argv: docs/serving-on-real-gpu.md.",
        ),
        Stack(
            name="cu13-stable",
            cuda="13.0",
            packages={
                "torch": "2.14.1",
                "sglang-kernel": "0.4.10",
                "flashinfer-python": "0.7.2",
                "sglang": "0.5.23",
            },
            index_url="https://pypi.org/simple",
            sm120_status="supported: sm_120 kernels in the torch and kernel wheels",
            notes="What SGLang 0.5.23 pins (its wheel's own requirements).",
            installed_gb=11.0,  # 207 wheels, 4.34 GB; installed 11.0 GB (benchmarks run 8)
        ),
    )
}

DEFAULT_STACK = "cu13-stable"
