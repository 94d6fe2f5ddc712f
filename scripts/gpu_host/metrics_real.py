"""On the GPU host, with a server left running by ``serve_real.py serve LABEL --keep``: record
real SGLang's /metrics (idle, after requests, with a long request running), the toolkit's
drain (files/server_metrics.py drain) against it, and SGLang's own drain on SIGTERM with a
request in flight.

    python3 scripts/gpu_host/metrics_real.py OUT_DIR [PORT]

Writes OUT_DIR/metrics-after.txt (after a few requests) and OUT_DIR/drain.json (the rest).
SIGTERM goes to the server's main process only, as systemd's KillMode=mixed sends it: sent to
the whole process group (KillMode=control-group, supervisord's stopasgroup), SGLang's
detokenizer dies of it and the server exits at once without draining (seen here).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PID_FILE = Path("/tmp/serve-real.pid")  # serve_real.py's


def call(port: int, path: str, body: dict | None = None, timeout: float = 300) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError as error:
        return 0, str(error)


def gauge(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def long_request(port: int, tokens: int, result: list) -> None:
    started = time.monotonic()
    status, body = call(port, "/generate", {"text": "Count:", "sampling_params": {
        "max_new_tokens": tokens, "ignore_eos": True, "temperature": 0}})
    try:
        completion = json.loads(body)["meta_info"]["completion_tokens"]
    except (ValueError, KeyError, TypeError):
        completion = None
    result.append({"status": status, "completion_tokens": completion,
                   "seconds": round(time.monotonic() - started, 2), "body": body[:300]})


def busy_metrics(port: int, tokens: int) -> tuple[threading.Thread, list, str, float]:
    """A long request started; /metrics once it counts as running (or after 30 s)."""
    result: list = []
    thread = threading.Thread(target=long_request, args=(port, tokens, result))
    thread.start()
    deadline, text = time.monotonic() + 30, ""
    while time.monotonic() < deadline:
        text = call(port, "/metrics")[1]
        if gauge(text, "sglang:num_running_reqs") >= 1:
            break
        time.sleep(0.2)
    return thread, result, text, gauge(text, "sglang:num_running_reqs")


def main(out: Path, port: int) -> int:
    out.mkdir(parents=True, exist_ok=True)
    record: dict = {}
    record["metrics_idle"] = call(port, "/metrics")[1]
    for _ in range(4):
        call(port, "/generate", {"text": "The capital of France is",
                                 "sampling_params": {"max_new_tokens": 16, "temperature": 0}})
    time.sleep(2)
    (out / "metrics-after.txt").write_text(call(port, "/metrics")[1])

    # The toolkit's drain against a real long request.
    # (the tiny model's context is its max_total_tokens, 1024: a long request is 900 tokens)
    thread, result, text, running = busy_metrics(port, 900)
    record["metrics_busy"] = text
    started = time.monotonic()
    drained = subprocess.run([sys.executable, str(ROOT / "files" / "server_metrics.py"), "drain",
                              str(port), "120"], capture_output=True, text=True)
    record["drain_wait"] = {"running_seen": running, "stdout": drained.stdout,
                            "seconds": round(time.monotonic() - started, 2)}
    thread.join()
    record["drain_wait"]["request"] = result
    time.sleep(2)
    record["metrics_drained"] = call(port, "/metrics")[1]

    # SGLang's own drain: SIGTERM with a long request in flight.
    thread, result, _, running = busy_metrics(port, 900)
    pid = int(PID_FILE.read_text())
    started = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    health = []
    while time.monotonic() - started < 120:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            break
        health.append((round(time.monotonic() - started, 1), call(port, "/health", timeout=5)[0]))
        time.sleep(0.5)
    record["sigterm"] = {"running_seen": running, "exited_after_s":
                         round(time.monotonic() - started, 1), "health_while_draining":
                         health[:20]}
    thread.join()
    record["sigterm"]["request"] = result
    (out / "drain.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 8000))
