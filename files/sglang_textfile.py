"""A worker's GPU and server figures for the node exporter's textfile collector; run on the
worker (standard library only) by its service manager, next to the node exporter.

    python3 sglang_textfile.py OUT.prom PORT RUNNER [EVERY_S]

RUNNER: ``systemd:UNIT`` or ``supervisor:STARTS_FILE`` (where the restarts are counted).
Writes OUT.prom (atomically: the collector never reads half a file) every EVERY_S seconds, or
once without it:

- ``sglang_fleet_gpu_smi_up``: nvidia-smi answered (0: the driver is gone or broken);
- per GPU (labels gpu, name, uuid): memory used and total (bytes), utilisation (0..1),
  temperature (Celsius), power (watts), as nvidia-smi reports them ([N/A] left out);
- ``sglang_fleet_server_healthy``: the server's /health answers 200;
- ``sglang_fleet_server_restarts``: restarts by the service manager (systemd's NRestarts; under
  supervisord, the wrapper's start lines less the first).
"""

from __future__ import annotations

import csv
import http.client
import io
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

FIELDS = ("index", "uuid", "name", "memory.used", "memory.total", "utilization.gpu",
          "temperature.gpu", "power.draw")
PER_GPU = (  # (metric, field, scale to its unit, help)
    ("gpu_memory_used_bytes", "memory.used", 2**20, "GPU memory in use (bytes)."),
    ("gpu_memory_total_bytes", "memory.total", 2**20, "GPU memory (bytes)."),
    ("gpu_utilization_ratio", "utilization.gpu", 0.01, "GPU utilisation (0 to 1)."),
    ("gpu_temperature_celsius", "temperature.gpu", 1, "GPU temperature (Celsius)."),
    ("gpu_power_watts", "power.draw", 1, "GPU power draw (watts)."),
)


def gpus() -> list[dict[str, str]] | None:
    """nvidia-smi's rows; None when it fails (no driver, a driver/library mismatch)."""
    try:
        done = subprocess.run(["nvidia-smi", f"--query-gpu={','.join(FIELDS)}",
                               "--format=csv,noheader,nounits"], capture_output=True,
                              text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode:
        return None
    rows = csv.reader(io.StringIO(done.stdout), skipinitialspace=True)
    return [dict(zip(FIELDS, (v.strip() for v in row), strict=False)) for row in rows if row]


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException):
        return False  # (a cut answer too: the writer never dies of a server's state)


def restarts(runner: str) -> int:
    kind, _, name = runner.partition(":")
    if kind == "systemd":
        done = subprocess.run(["systemctl", "show", "-p", "NRestarts", "--value", name],
                              capture_output=True, text=True)
        return int(done.stdout.strip() or 0) if done.returncode == 0 else 0
    try:
        with open(name) as handle:
            return max(0, sum(1 for _ in handle) - 1)
    except OSError:
        return 0


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def exposition(rows: list[dict[str, str]] | None, is_healthy: bool, restart_count: int) -> str:
    lines = ["# HELP sglang_fleet_gpu_smi_up Whether nvidia-smi answered (0: the driver is "
             "gone or broken).", "# TYPE sglang_fleet_gpu_smi_up gauge",
             f"sglang_fleet_gpu_smi_up {0 if rows is None else 1}"]
    for metric, field, scale, text in PER_GPU:
        samples = []
        for row in rows or []:
            try:
                value = float(row[field]) * scale
            except (KeyError, ValueError):  # [N/A], [Not Supported]
                continue
            labels = (f'gpu="{_label(row["index"])}",name="{_label(row["name"])}",'
                      f'uuid="{_label(row["uuid"])}"')
            samples.append(f"sglang_fleet_{metric}{{{labels}}} {value!r}")
        if samples:
            lines += [f"# HELP sglang_fleet_{metric} {text}",
                      f"# TYPE sglang_fleet_{metric} gauge", *samples]
    lines += ["# HELP sglang_fleet_server_healthy Whether the SGLang server's /health answers "
              "200.", "# TYPE sglang_fleet_server_healthy gauge",
              f"sglang_fleet_server_healthy {int(is_healthy)}",
              "# HELP sglang_fleet_server_restarts Restarts of the SGLang server by its service "
              "manager.", "# TYPE sglang_fleet_server_restarts gauge",
              f"sglang_fleet_server_restarts {restart_count}"]
    return "\n".join(lines) + "\n"


def write(out: str, port: int, runner: str) -> None:
    text = exposition(gpus(), healthy(port), restarts(runner))
    with open(out + ".new", "w") as handle:
        handle.write(text)
    os.chmod(out + ".new", 0o644)
    os.replace(out + ".new", out)


def main(argv: list[str]) -> int:
    out, port, runner = argv[0], int(argv[1]), argv[2]
    every = float(argv[3]) if len(argv) > 3 else 0
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    while True:
        write(out, port, runner)
        if not every:
            return 0
        time.sleep(every)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
