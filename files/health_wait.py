"""Runs on the host (system python3): wait for SGLang's /health, then one small /generate.

argv: port, timeout seconds, unit name. Prints one JSON line and exits 0:
{"healthy": true, "tokens": N, "text": ...} or {"healthy": false, "reason": ...}.
Stops waiting early when the unit fails or restarts (a crash loop will not turn healthy).
"""

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

port, timeout, unit = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
base = f"http://127.0.0.1:{port}"
HEADERS = {"Content-Type": "application/json"}
try:  # the API key, if the deploy set one: read here (as root), never passed in argv
    with open("/etc/sglang/api-key.json") as handle:
        HEADERS["Authorization"] = "Bearer " + json.load(handle)["api-key"]
except (OSError, ValueError, KeyError):
    pass


def show(prop):
    out = subprocess.run(["systemctl", "show", "-p", prop, "--value", unit],
                         capture_output=True, text=True)
    return out.stdout.strip()


def call(path, data=None):
    request = urllib.request.Request(base + path, data=data, headers=HEADERS)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError as error:
        return None, str(error).encode()


def done(**result):
    print(json.dumps(result))
    sys.exit(0)


restarts = show("NRestarts")
deadline = time.monotonic() + timeout
while True:
    status, _ = call("/health")
    if status == 200:
        break
    state = show("ActiveState")
    if state in ("failed", "inactive") or show("NRestarts") != restarts:
        done(healthy=False, reason=f"{unit} {state} (restarts {show('NRestarts')}, result "
             f"{show('Result')}) while /health answered {status}")
    if time.monotonic() > deadline:
        done(healthy=False, reason=f"/health answered {status} for {timeout:.0f}s (HTTP {status})")
    time.sleep(1)

body = json.dumps({"text": "The capital of France is",
                   "sampling_params": {"max_new_tokens": 8, "temperature": 0}}).encode()
status, raw = call("/generate", body)
try:
    reply = json.loads(raw)
    done(healthy=bool(reply["meta_info"]["completion_tokens"]),
         tokens=reply["meta_info"]["completion_tokens"], text=reply.get("text", ""),
         reason="" if reply["meta_info"]["completion_tokens"] else "/generate returned no tokens")
except (ValueError, KeyError, TypeError):
    done(healthy=False, reason=f"/generate answered {status}: {raw[:200]!r}")
