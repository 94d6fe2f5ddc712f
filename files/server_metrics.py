"""A worker's SGLang server as its own metrics say it (http://127.0.0.1:PORT/metrics); run on
the worker (standard library only).

    python3 server_metrics.py figures PORT                # one JSON line: the figures now
    python3 server_metrics.py drain PORT TIMEOUT_S [EVERY_S]

figures: {"status": the HTTP status (0: nothing answers), "running", "queued" (requests),
"kv_use" (the KV cache's token usage, 0 to 1)} (the counts only when it serves SGLang's metrics).

drain: before a worker that left its routers stops, wait until it has finished the requests it
is answering: running and queued (``sglang:num_running_reqs``, ``sglang:num_queue_reqs``,
summed over its schedulers) both 0, or TIMEOUT_S passed. A server that does not answer
(stopped, still starting) or serves no metrics has nothing to wait for. Always exits 0: the
stop goes ahead either way, and SGLang drains what is left on SIGTERM within the service's stop
timeout.
"""

from __future__ import annotations

import http.client
import json
import sys
import time
import urllib.error
import urllib.request

WAITED_FOR = ("sglang:num_running_reqs", "sglang:num_queue_reqs")


def summed(text: str, names: tuple[str, ...], combine=sum) -> float:  # noqa: ANN001
    """The samples of ``names`` in Prometheus' text format, combined (summed by default)."""
    return combine([float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                    if line.split("{", 1)[0].split(" ", 1)[0] in names] or [0.0])


def scrape(port: int) -> tuple[int, str]:
    """(HTTP status, body) of the server's /metrics: status 0 when nothing listens, -1 when
    the read failed otherwise (a timeout under load, a cut answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""
    except urllib.error.URLError as error:
        return (0 if isinstance(error.reason, ConnectionRefusedError) else -1), ""
    except (OSError, ValueError, http.client.HTTPException):
        return -1, ""


def read(port: int) -> int | None:
    """Requests in flight; None when the server has no metrics to read; -1 when this read
    failed (the drain reads again)."""
    status, text = scrape(port)
    if status == -1:
        return -1
    if status != 200 or not any(line.startswith(WAITED_FOR) for line in text.splitlines()):
        return None
    return int(summed(text, WAITED_FOR))


def figures(port: int) -> dict:
    status, text = scrape(port)
    found: dict = {"status": max(status, 0)}
    if status == 200 and any(line.startswith(WAITED_FOR) for line in text.splitlines()):
        found |= {"running": int(summed(text, WAITED_FOR[:1])),
                  "queued": int(summed(text, WAITED_FOR[1:])),
                  "kv_use": summed(text, ("sglang:token_usage",), max)}
    return found


def drain(port: int, timeout: float, every: float = 1.0) -> int:
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
        shown = "an unknown number of" if left < 0 else str(left)  # (a failed read)
        if waited >= timeout:
            print(f"drain: {shown} requests still running after {timeout:.0f} s "
                  "(drain_timeout_s): stopping the server; SGLang finishes them on SIGTERM "
                  "within the stop timeout", flush=True)
            return 0
        if said is None or time.monotonic() - said >= 10:
            print(f"draining: {shown} requests running or queued, waited {waited:.0f} of "
                  f"{timeout:.0f} s", flush=True)
            said = time.monotonic()
        time.sleep(every)


if __name__ == "__main__":
    if sys.argv[1] == "figures":
        print(json.dumps(figures(int(sys.argv[2]))))
        sys.exit(0)
    sys.exit(drain(int(sys.argv[2]), float(sys.argv[3]), *(float(a) for a in sys.argv[4:5])))
