"""Deploy timings on lab fleets: full converge and no-op re-run on 1, 2, 4 and 8 worker hosts
(plus lab-gw, the gateway and wheelhouse), and the bytes from outside during the converge: what
the control machine's uplink received (packages) plus what the Hub stand-in sent (the model;
in the lab it sits on the bridge, as a mirror would).

    sudo .venv/bin/python bench/bench.py [COUNTS...]      # default: 1 2 4 8

Prints a table with the machine's description. Timings live here, not in tests.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PYINFRA = str(Path(sys.executable).with_name("pyinfra"))
NOOP_RUNS = 3


def uplink() -> str:
    """The interface with the default route: where bytes from outside arrive."""
    routes = Path("/proc/net/route").read_text().splitlines()[1:]
    return next(line.split()[0] for line in routes if line.split()[1] == "00000000")


def rx_bytes(interface: str) -> int:
    return int(Path(f"/sys/class/net/{interface}/statistics/rx_bytes").read_text())


def hub_bytes() -> int:
    from lab.stacks import HUB_URL

    out = subprocess.run(["curl", "-s", "-m", "10", f"{HUB_URL}/_lab/stats"],
                         capture_output=True, text=True).stdout
    return json.loads(out)["bytes"]


def timed(*args: str) -> tuple[float, subprocess.CompletedProcess]:
    start = time.monotonic()
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    return time.monotonic() - start, result


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} cores ({cpu}), {memory_gib:.0f} GiB, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}")


def bench(count: int, interface: str) -> dict:
    lab_up = [str(ROOT / "lab" / "lab"), "up", str(count), "--profiles",
              ",".join(["rtx5090-cu13"] * count), "--gateway"]
    up_s, result = timed(*lab_up)
    if result.returncode:
        raise SystemExit(f"lab up {count} failed: {result.stderr}")
    before, model_before = rx_bytes(interface), hub_bytes()
    converge_s, result = timed(PYINFRA, "-y", "inventory.py", "deploy.py")
    fetched = rx_bytes(interface) - before
    model = hub_bytes() - model_before
    if result.returncode:
        Path("/tmp/bench-failed.log").write_text(result.stdout + result.stderr)
        raise SystemExit(f"deploy on {count} hosts failed (/tmp/bench-failed.log):\n"
                         f"{result.stdout[-3000:]}")
    noop = []
    for _ in range(NOOP_RUNS):
        seconds, result = timed(PYINFRA, "-y", "inventory.py", "deploy.py")
        if "] Success" in result.stdout:
            raise SystemExit(f"the re-run on {count} hosts changed something:\n{result.stdout}")
        noop.append(seconds)
    return {"hosts": count, "lab_up_s": up_s, "converge_s": converge_s,
            "noop_s": statistics.median(noop), "fetched_mb": fetched / 1e6,
            "model_mb": model / 1e6}


def main(counts: list[int]) -> None:
    interface = uplink()
    print(f"machine: {machine()}")
    print(f"bytes from outside: receive counter of {interface} during the converge, and the "
          "model bytes the Hub stand-in sent")
    rows = []
    try:
        for count in counts:
            rows.append(bench(count, interface))
            print(f"  measured {count} host(s)", flush=True)
    finally:
        subprocess.run([str(ROOT / "lab" / "lab"), "down"], cwd=ROOT, capture_output=True)
    base = rows[0]["noop_s"]
    outside = rows[0]["fetched_mb"] + rows[0]["model_mb"]
    print("\n| hosts | lab up (s) | full converge (s) | no-op re-run, median of "
          f"{NOOP_RUNS} (s) | no-op vs 1 host | MB packages | MB model | from outside vs 1 "
          "host |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        total = row["fetched_mb"] + row["model_mb"]
        print(f"| {row['hosts']} | {row['lab_up_s']:.1f} | {row['converge_s']:.1f} | "
              f"{row['noop_s']:.2f} | {row['noop_s'] / base:.2f}x | {row['fetched_mb']:.1f} | "
              f"{row['model_mb']:.3f} | {total / outside:.2f}x |")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1, 2, 4, 8])
