"""Lab stand-in for torch: reports the build it pretends to be and the simulated GPUs.

Never installed by a real deploy. Its build facts (version, CUDA, arch list) come from
_build.json, written when the lab builds the wheel; the GPUs come from nvidia-smi.
"""

import json
import subprocess
import types
from pathlib import Path

_BUILD = json.loads((Path(__file__).parent / "_build.json").read_text())
__version__ = _BUILD["version"]
version = types.SimpleNamespace(cuda=_BUILD["cuda"], __version__=__version__)


class OutOfMemoryError(RuntimeError):
    pass


def _gpus() -> list[tuple[int, int, str]]:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=compute_cap,memory.total,name",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True)
    except OSError:
        return []
    if out.returncode != 0:
        return []
    found = []
    for line in out.stdout.splitlines():
        cap, total, name = (v.strip() for v in line.split(",", 2))
        major, minor = cap.split(".")
        found.append((int(major) * 10 + int(minor), int(total), name))
    return found


class cuda:  # noqa: N801 - mirrors torch.cuda
    @staticmethod
    def is_available() -> bool:
        return bool(_gpus())

    @staticmethod
    def device_count() -> int:
        return len(_gpus())

    @staticmethod
    def get_device_capability(index: int = 0) -> tuple[int, int]:
        cap = _gpus()[index][0]
        return cap // 10, cap % 10

    @staticmethod
    def get_device_name(index: int = 0) -> str:
        return _gpus()[index][2]

    @staticmethod
    def mem_get_info(index: int = 0) -> tuple[int, int]:
        total = _gpus()[index][1] * 1024 * 1024
        return total, total

    @staticmethod
    def get_arch_list() -> list[str]:
        return list(_BUILD["arch_list"])


def compiled_with_cxx11_abi() -> bool:
    return True
