"""Lab stand-in for the SGLang kernel package (sgl_kernel).

Never installed by a real deploy. Fails the way the real compiled extension fails, for the same
causes: it really loads libnuma.so.1 (the real .so links it), it refuses a torch other than the
one it was built against with the real loader's `undefined symbol` error, and a device outside
its arch list gets CUDA's `no kernel image` error. Build facts come from _build.json.
"""

import ctypes
import json
from pathlib import Path

import torch

_BUILD = json.loads((Path(__file__).parent / "_build.json").read_text())
__version__ = _BUILD["version"]
_SO = Path(__file__).parent / "common_ops.abi3.so"

try:
    ctypes.CDLL("libnuma.so.1")
except OSError as error:
    raise ImportError(str(error)) from None

if torch.__version__.split("+")[0] != _BUILD["built_for_torch"]:
    # What the dynamic loader says when libc10 lacks a symbol of the torch it was built for.
    raise ImportError(f"{_SO}: undefined symbol: _ZN3c1017RegisterOperatorsD1Ev")


def check_device(capability: tuple[int, int]) -> None:
    """Run a kernel on the device: fails like CUDA does when the build lacks its arch."""
    arch = f"sm_{capability[0]}{capability[1]}"
    if arch not in _BUILD["arch_list"]:
        raise RuntimeError("CUDA error: no kernel image is available for execution on the "
                           "device\nCUDA kernel errors might be asynchronously reported at some "
                           "other API call, so the stacktrace below might be incorrect.")


def blackwell_graphs_ok() -> bool:
    """Whether CUDA graphs and FlashInfer initialise on sm_120 with this build."""
    return bool(_BUILD["sm120_graphs"])
