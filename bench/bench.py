"""Deploy timings on a lab fleet: one lab of the largest worker count (plus lab-gw, the gateway
and wheelhouse), a full converge of its workers through the wheelhouse, then no-op re-runs of
the whole deploy limited to 1, 8, 32 and 64 workers (lab-gw included), at the default
``roll_batch`` and at ``roll_batch=1``.

    sudo .venv/bin/python bench/bench.py [COUNTS...]      # default: 1 8 32 64

Per row: the median of three no-op runs, its ratio to 1 worker, the operations one worker
declares, SSH round trips per host per run (commands and uploads, counted in one extra
``--debug`` run), control-machine CPU seconds per host (pyinfra's), the hosts' CPU seconds per
host (the machine's busy time less pyinfra's: the lab's hosts share its cores) and how busy
the cores were during the run. Each row is printed as soon as it is
measured (and kept in /tmp/bench-rows.jsonl), so a failure at one size loses none before it.
Timings live here, not in tests.
"""

from __future__ import annotations

import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PYINFRA = str(Path(sys.executable).with_name("pyinfra"))
NOOP_RUNS = 3
ROWS = Path("/tmp/bench-rows.jsonl")
LOCK = "/var/lib/sglang-lab/fleet.lock.json"


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} cores ({cpu}), {memory_gib:.0f} GiB, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}")


def busy_cpu_s() -> float:
    """CPU seconds every core of this machine has been busy (``/proc/stat``): the lab's hosts
    run on these same cores, so a run's busy time less pyinfra's own is the hosts' work."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def pyinfra(*args: str) -> tuple[float, float, str, float]:
    """(wall seconds, control-machine CPU seconds, output, the machine's busy CPU seconds) of
    one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy = busy_cpu_s()
    start = time.monotonic()
    result = subprocess.run([PYINFRA, "-y", *args, "inventory.py", "deploy.py"], cwd=ROOT,
                            capture_output=True, text=True,
                            env={**os.environ, "SGLANG_LOCK": LOCK})
    wall = time.monotonic() - start
    busy = busy_cpu_s() - busy
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = result.stdout + result.stderr
    if result.returncode:
        Path("/tmp/bench-failed.log").write_text(out)
        raise RuntimeError(f"pyinfra {' '.join(args)} failed (/tmp/bench-failed.log)")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out, busy


def limits(count: int) -> list[str]:
    names = ["lab-gw", *(f"lab-{n}" for n in range(1, count + 1))]
    return [arg for name in names for arg in ("--limit", name)]


def noop(count: int, extra: tuple[str, ...]) -> dict:
    args = (*limits(count), *extra)
    runs = []
    for _ in range(NOOP_RUNS):
        wall, cpu, out, busy = pyinfra(*args)
        if re.search(r"\]\s+Success", out):
            raise RuntimeError(f"the no-op run on {count} workers changed something:\n{out}")
        runs.append((wall, cpu, busy))
    debug = pyinfra("--debug", *args)[2]
    hosts = count + 1
    round_trips = len(re.findall(r"Running command on |Attempting upload of ", debug))
    declared = len(re.findall(r"Starting operation \{.*\} on lab-1$", debug, re.M))
    return {"workers": count, "roll_batch": dict(a.split("=") for a in extra[1::2]).get(
                "roll_batch", "default"),
            "noop_s": statistics.median(w for w, _, _ in runs),
            "cpu_s_per_host": statistics.median(c for _, c, _ in runs) / hosts,
            "host_cpu_s_per_host": statistics.median(b - c for _, c, b in runs) / hosts,
            "busy": statistics.median(b / w for w, _, b in runs) / (os.cpu_count() or 1),
            "round_trips_per_host": round_trips / hosts, "ops_per_worker": declared}


def row_line(row: dict, base: float) -> str:
    return (f"| {row['workers']} | {row['roll_batch']} | {row['noop_s']:.2f} | "
            f"{row['noop_s'] / base:.2f}x | {row['ops_per_worker']} | "
            f"{row['round_trips_per_host']:.1f} | {row['cpu_s_per_host']:.2f} | "
            f"{row['host_cpu_s_per_host']:.2f} | {row['busy']:.0%} |")


def main(counts: list[int]) -> None:
    largest = max(counts)
    print(f"machine: {machine()}", flush=True)
    ROWS.write_text("")
    lab = [str(ROOT / "lab" / "lab")]
    try:
        start = time.monotonic()
        up = subprocess.run([*lab, "up", str(largest), "--profiles",
                             ",".join(["rtx5090-cu13"] * largest), "--gateway"],
                            cwd=ROOT, capture_output=True, text=True)
        if up.returncode:
            raise SystemExit(f"lab up {largest} failed: {up.stderr}")
        print(f"lab up {largest} workers and lab-gw: {time.monotonic() - start:.1f} s",
              flush=True)
        converge, cpu, _, _ = pyinfra()
        print(f"full converge of {largest} workers through the wheelhouse: {converge:.1f} s "
              f"({cpu / (largest + 1):.2f} CPU s per host on the control machine)", flush=True)
        print("\n| workers | roll_batch | no-op, median of 3 (s) | vs 1 worker | operations per "
              "worker | SSH round trips per host | control CPU s per host | the hosts' CPU s "
              "per host | cores busy |")
        print("|---|---|---|---|---|---|---|---|---|", flush=True)
        base: dict[str, float] = {}
        for extra in ((), ("--data", "roll_batch=1")):
            for count in sorted(counts):
                try:
                    row = noop(count, extra)
                except RuntimeError as error:
                    print(f"| {count} | {extra[-1] if extra else 'default'} | failed: "
                          f"{str(error).splitlines()[0]} |", flush=True)
                    continue
                base.setdefault(row["roll_batch"], row["noop_s"])
                with ROWS.open("a") as rows:
                    rows.write(json.dumps(row) + "\n")
                print(row_line(row, base[row["roll_batch"]]), flush=True)
    finally:
        subprocess.run([*lab, "down"], cwd=ROOT, capture_output=True)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1, 8, 32, 64])
