"""Copy a wheel without some of its files (and their RECORD lines): the GPU host's transfers are
bounded, and sglang-kernel's FlashAttention library (1.1 GB unpacked) loads only for the FA3
attention backend, which no profile of ours selects.

    python scripts/gpu_host/strip_wheel.py IN.whl OUT_DIR PATTERN...

PATTERN: fnmatch patterns of archive paths to leave out, e.g. 'sgl_kernel/flash_ops*'.
"""

from __future__ import annotations

import fnmatch
import sys
import zipfile
from pathlib import Path


def strip(source: Path, out_dir: Path, patterns: list[str]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / source.name

    def dropped(name: str) -> bool:
        return any(fnmatch.fnmatch(name, pattern) for pattern in patterns)

    with zipfile.ZipFile(source) as wheel, zipfile.ZipFile(
            target, "w", zipfile.ZIP_DEFLATED) as out:
        for info in wheel.infolist():
            if dropped(info.filename):
                continue
            data = wheel.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                data = "".join(line for line in data.decode().splitlines(keepends=True)
                               if not dropped(line.split(",", 1)[0])).encode()
            out.writestr(info, data)
    return target


if __name__ == "__main__":
    made = strip(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:])
    print(f"{made.stat().st_size:>10}  {made}")
