"""Wait until a worker that left its routers has finished the requests it is answering, from
its own metrics; run on the worker (standard library only) before its server stops.

    python3 drain_wait.py PORT TIMEOUT_S [EVERY_S]

Reads http://127.0.0.1:PORT/metrics: the running and queued requests (SGLang's
``sglang:num_running_reqs`` and ``sglang:num_queue_reqs``, summed over its schedulers) until
both are 0, or TIMEOUT_S passes. A server that does not answer (stopped, still starting) or
serves no metrics has nothing to wait for. Always exits 0: the stop goes ahead either way, and
SGLang drains what is left on SIGTERM within the service's stop timeout.
"""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request

WAITED_FOR = ("sglang:num_running_reqs", "sglang:num_queue_reqs")


def in_flight(text: str) -> int:
    """Running plus queued requests, from Prometheus' text format."""
    total = 0.0
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in WAITED_FOR:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def read(port: int) -> int | None:
    """Requests in flight; None when the server has no metrics to read."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
    except (urllib.error.URLError, OSError, ValueError):
        return None
    if not any(line.startswith(WAITED_FOR) for line in text.splitlines()):
        return None
    return in_flight(text)


def main(port: int, timeout: float, every: float = 1.0) -> int:
    started = time.monotonic()
    said = None
    while True:
        left = read(port)
        waited = time.monotonic() - started
        if left is None:
            print("drain: the server serves no metrics (stopped or starting): nothing to wait "
                  "for", flush=True)
            return 0
        if left == 0:
            print(f"drained: no request left after {waited:.0f} s", flush=True)
            return 0
        if waited >= timeout:
            print(f"drain: {left} requests still running after {timeout:.0f} s "
                  "(drain_timeout_s): stopping the server; SGLang finishes them on SIGTERM "
                  "within the stop timeout", flush=True)
            return 0
        if said is None or time.monotonic() - said >= 10:
            print(f"draining: {left} requests running or queued, waited {waited:.0f} of "
                  f"{timeout:.0f} s", flush=True)
            said = time.monotonic()
        time.sleep(every)


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), float(sys.argv[2]),
                  *(float(a) for a in sys.argv[3:4])))
