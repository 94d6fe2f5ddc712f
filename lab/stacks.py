"""Lab stacks: twins of the real stacks whose packages are the lab's stand-ins.

Only the package list and the index differ from the real stacks; the stages, venv, unit template
and flags are the same. These reach a deploy only through the lab's inventory (custom_stacks).
"""

from __future__ import annotations

from dataclasses import replace

from lab.driver.repo import DISTRO_PATH
from operations.stacks import STACKS, Stack

GATEWAY = "10.213.0.1"
WHEELHOUSE_PORT = 8090
INDEX_URL = f"http://{GATEWAY}:{WHEELHOUSE_PORT}/simple"
PROXY_PORT = 3128
PROXY_URL = f"http://{GATEWAY}:{PROXY_PORT}"
DRIVER_REPO_PORT = 80  # NVIDIA's CUDA repository stand-in (lab/driver/repo.py)
DRIVER_REPO_URL = f"http://{GATEWAY}/{DISTRO_PATH}/"
HUB_PORT = 8093  # the Hugging Face Hub stand-in (lab/hub.py)
HUB_URL = f"http://{GATEWAY}:{HUB_PORT}"
# What the Hub stand-in serves: the default model's id (its content a tiny model in the real
# format), and a gated repository.
HUB_MODEL = "Qwen/Qwen3-32B-AWQ"
HUB_GATED = "lab/gated-model"

_SM = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]
_NO_SM120 = ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"]

# Stand-in wheels: (distribution, version, import package, build facts).
WHEELS = [
    ("torch-lab-standin", "2.14.1", "torch",
     {"version": "2.14.1+cu130", "cuda": "13.0", "arch_list": _SM}),
    ("torch-lab-standin", "2.10.0.dev20250916", "torch",
     {"version": "2.10.0.dev20250916+cu128", "cuda": "12.8", "arch_list": _SM}),
    ("sgl-kernel-lab-standin", "0.4.10", "sgl_kernel",
     {"version": "0.4.10", "built_for_torch": "2.14.1", "arch_list": _SM, "sm120_graphs": True}),
    # The chart-era prebuilt Blackwell kernel: runs on sm_120, but CUDA graphs and FlashInfer
    # segfault there (the chart's known limitations 1 and 2).
    ("sgl-kernel-lab-standin", "0.3.9.post2", "sgl_kernel",
     {"version": "0.3.9.post2", "built_for_torch": "2.10.0.dev20250916", "arch_list": _SM,
      "sm120_graphs": False}),
    ("sglang-lab-standin", "0.5.23", "sglang", {"version": "0.5.23"}),
]

# Builds that put a host into a chart cause; kept out of the index so pip never picks them.
CAUSE_WHEELS = [
    ("sgl-kernel-lab-standin", "0.4.10+torch2.13", "sgl_kernel",
     {"version": "0.4.10", "built_for_torch": "2.13.0", "arch_list": _SM, "sm120_graphs": True}),
    ("sgl-kernel-lab-standin", "0.3.9.post2+torch2.8", "sgl_kernel",
     {"version": "0.3.9.post2", "built_for_torch": "2.8.0", "arch_list": _SM,
      "sm120_graphs": False}),
    ("torch-lab-standin", "2.14.1+cu126", "torch",
     {"version": "2.14.1+cu126", "cuda": "12.6", "arch_list": _NO_SM120}),
    ("torch-lab-standin", "2.10.0.dev20250916+cu126", "torch",
     {"version": "2.10.0.dev20250916+cu126", "cuda": "12.6", "arch_list": _NO_SM120}),
]


def _twin(real: str, name: str, torch: str, kernel: str) -> Stack:
    return replace(
        STACKS[real], name=name, index_url=INDEX_URL, extra_index_urls=(), find_links=(),
        install_steps=(),
        packages={"torch-lab-standin": torch, "sgl-kernel-lab-standin": kernel,
                  "sglang-lab-standin": "0.5.23"},
        notes=f"Lab twin of {real}: stand-in packages from the lab wheelhouse.",
        installed_gb=0.1)  # the stand-ins' venv: about 90 MB


LAB_STACKS: dict[str, Stack] = {
    stack.name: stack for stack in (
        _twin("cu128-nightly", "lab-cu128-nightly", "2.10.0.dev20250916", "0.3.9.post2"),
        _twin("cu13-stable", "lab-cu13-stable", "2.14.1", "0.4.10"),
    )
}
