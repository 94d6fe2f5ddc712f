"""Runs on the host (system python3, standard library only): a long step (a stack's install, a
wheelhouse's fetch) run with its progress said while it runs.

    python3 watch_run.py LABEL PATH TOTAL_BYTES EVERY_S -- COMMAND [ARGS...]

Every EVERY_S seconds while COMMAND runs (nothing for a step shorter than that), prints
"LABEL: 3.21 of 9.50 GB (34%), 85.3 MB/s, 1:14 left" from the disk PATH takes (TOTAL_BYTES 0:
no total known, no share or time left); at the end, if it printed anything, "LABEL: 9.48 GB
in 112 s". Exits with COMMAND's status; COMMAND's own output goes through unchanged.
"""

import os
import subprocess
import sys
import time


def size_of(path: str) -> int:
    """Bytes on disk under ``path`` (as du counts them), 0 while it does not exist."""
    total = 0
    for folder, _, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
            except OSError:
                continue
    return total


def line(label: str, done: int, total: int, started: float, start_size: int) -> str:
    elapsed = max(time.monotonic() - started, 1e-6)
    rate = max(done - start_size, 0) / elapsed
    said = f"{label}: {done / 1e9:.2f}"
    if total:
        said += f" of {total / 1e9:.2f} GB ({min(100, 100 * done // total)}%)"
    else:
        said += " GB"
    said += f", {rate / 1e6:.1f} MB/s"
    if total and rate > 0 and done < total:
        left = int((total - done) / rate)
        said += f", {left // 60}:{left % 60:02d} left"
    return said


def main(argv: list[str]) -> int:
    label, path, total, every = argv[0], argv[1], int(argv[2]), float(argv[3])
    command = argv[argv.index("--") + 1:]
    started, start_size = time.monotonic(), size_of(path)
    process = subprocess.Popen(command)
    said = False
    while True:
        try:
            status = process.wait(timeout=every)
            break
        except subprocess.TimeoutExpired:
            print(line(label, size_of(path), total, started, start_size), flush=True)
            said = True
    if said and status == 0:
        print(f"{label}: {size_of(path) / 1e9:.2f} GB in {time.monotonic() - started:.0f} s",
              flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
