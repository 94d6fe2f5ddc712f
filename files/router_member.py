"""A worker's membership in an sglang-router, through the router's own worker API; run on the
worker with the system python3 (as root):

    router_member.py ACTION ROUTER_URL WORKER_URL KEY_FILE [TIMEOUT_S]

KEY_FILE holds the router's control key (the API answers nothing without it).

ACTION: "state" prints {"member": bool, "healthy": bool} ({"error": ...} when the router does
not answer); "join" adds the worker and waits until the router calls it healthy; "leave" removes
it and waits until it is gone. Both are bounded by TIMEOUT_S and exit 1, saying why, if not met.
"""

import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

HEADERS = {"Content-Type": "application/json"}


def call(method: str, url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=HEADERS)
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read() or b"{}")


def entry(router: str, worker: str) -> dict | None:
    workers = call("GET", f"{router}/workers").get("workers", [])
    return next((w for w in workers if w.get("url") == worker), None)


def main(action: str, router: str, worker: str, key_file: str, timeout: float = 60) -> int:
    try:
        with open(key_file) as key:
            HEADERS["Authorization"] = f"Bearer {key.read().strip()}"
    except OSError as error:
        print(json.dumps({"error": f"no router control key at {key_file}: {error.strerror}"}))
        return 1
    try:
        found = entry(router, worker)
    except urllib.error.HTTPError as error:
        # The router answers, and refuses: leaving is not done (it may still send requests).
        print(json.dumps({"error": f"router {router} refused its worker API: HTTP {error.code}"
                                   " (is ROUTER_CONTROL_KEY the one its gateway was given?)"}))
        return 1
    except (OSError, ValueError) as error:
        # A router that does not answer sends this worker nothing: leaving is done.
        print(json.dumps({"error": f"router {router} does not answer: {error}"}))
        return 0 if action in ("state", "leave") else 1
    if action == "state":
        print(json.dumps({"member": found is not None,
                          "healthy": bool(found and found.get("is_healthy"))}))
        return 0
    if action == "join" and found is None:
        call("POST", f"{router}/workers", {"url": worker})
    elif action == "leave" and found is not None:
        call("DELETE", f"{router}/workers/{urllib.parse.quote(found['id'], safe='')}")
    deadline = time.monotonic() + timeout
    while True:
        found = entry(router, worker)
        done = (found is not None and found.get("is_healthy")) if action == "join" \
            else found is None
        if done:
            print(f"{worker} {'joined' if action == 'join' else 'left'} {router}")
            return 0
        if time.monotonic() > deadline:
            print(f"{worker} did not {action} {router} within {timeout:.0f}s", file=sys.stderr)
            return 1
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], *map(float, sys.argv[5:6])))
