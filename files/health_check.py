"""Runs on the host (system python3): wait for SGLang's /health, then one small /generate.

argv: port, timeout seconds, unit name, symptom table as JSON [[symptom, regex, cause, fix]...].
Exits 0 when healthy; otherwise prints what was found (the chart symptom it matches, with the
journal line) and exits 1. Fails fast when the unit dies or restarts instead of waiting it out.
"""

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

port, timeout, unit, table = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
base = f"http://127.0.0.1:{port}"


def systemctl_show(prop):
    out = subprocess.run(["systemctl", "show", "-p", prop, "--value", unit],
                         capture_output=True, text=True)
    return out.stdout.strip()


def journal():
    since = systemctl_show("InvocationID")
    args = ["journalctl", "-u", unit, "--no-pager", "-o", "cat", "-n", "200"]
    if since:
        args = ["journalctl", f"_SYSTEMD_INVOCATION_ID={since}", "--no-pager", "-o", "cat"]
    lines = subprocess.run(args, capture_output=True, text=True).stdout.splitlines()
    if len(lines) < 2:  # the last invocation may have ended before logging much
        lines = subprocess.run(["journalctl", "-u", unit, "--no-pager", "-o", "cat", "-n", "60"],
                               capture_output=True, text=True).stdout.splitlines()
    return lines


def unhealthy(reason):
    lines = journal() + [reason]
    for symptom, pattern, cause, fix in json.loads(table):
        hit = next((line for line in reversed(lines) if re.search(pattern, line)), None)
        if hit:
            print(f"unhealthy: {reason}; chart symptom {symptom!r}: found {hit.strip()!r}; "
                  f"cause: {cause}; fix: {fix}")
            break
    else:
        print(f"unhealthy: {reason}; no chart symptom matched; last journal lines:")
        print("\n".join("  " + line for line in lines[-15:]))
    sys.exit(1)


def get(path, data=None):
    request = urllib.request.Request(base + path, data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError as error:
        return None, str(error).encode()


restarts = systemctl_show("NRestarts")
deadline = time.monotonic() + timeout
status = None
while status != 200:
    status, _ = get("/health")
    if status == 200:
        break
    state = systemctl_show("ActiveState")
    if state in ("failed", "inactive") or systemctl_show("NRestarts") != restarts:
        unhealthy(f"{unit} is {state} (restarts {systemctl_show('NRestarts')}, "
                  f"result {systemctl_show('Result')}) while /health answered {status}")
    if time.monotonic() > deadline:
        unhealthy(f"/health answered {status} for {timeout:.0f}s (HTTP {status})")
    time.sleep(1)

body = json.dumps({"text": "The capital of France is",
                   "sampling_params": {"max_new_tokens": 8, "temperature": 0}}).encode()
status, raw = get("/generate", body)
try:
    reply = json.loads(raw)
    tokens = reply["meta_info"]["completion_tokens"]
except (ValueError, KeyError, TypeError):
    unhealthy(f"/generate answered {status}: {raw[:200]!r}")
if status != 200 or not tokens:
    unhealthy(f"/generate answered {status} with {tokens} tokens")
print(f"healthy: /health 200, /generate returned {tokens} tokens: {reply.get('text', '')!r}")
