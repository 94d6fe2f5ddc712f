"""Runs on the host (system python3): wait for SGLang's /health, then one small /generate.

argv: port, timeout seconds, what runs the server: a systemd unit name, ``supervisor:NAME``
for a program of supervisord (its wrapper logs a line per start in /var/log/sglang/NAME.starts),
or ``pid:N`` for a server started by hand. Prints one JSON line and exits 0:
{"healthy": true, "tokens": N, "text": ...} or {"healthy": false, "reason": ..., "state": ...}
with state "exited" (the server stopped or restarted: a crash loop will not turn healthy),
"starting" (the wait ran out while the server still runs: /health 503 or the port still closed,
as real SGLang is for its first 40 s or more) or "generate" (healthy, but no tokens).
"""

import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

port, timeout, runner = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
base = f"http://127.0.0.1:{port}"
HEADERS = {"Content-Type": "application/json"}
try:  # the API key, if the deploy set one: read here (as root), never passed in argv
    with open("/etc/sglang/api-key.json") as handle:
        HEADERS["Authorization"] = "Bearer " + json.load(handle)["api-key"]
except (OSError, ValueError, KeyError):
    pass


def unit_state():
    """(gone, what): whether the server stopped or restarted since the wait began."""
    if runner.startswith("pid:"):
        pid = int(runner[4:])
        try:
            with open(f"/proc/{pid}/stat") as stat:
                state = stat.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            state = "gone"
        return state in ("gone", "Z", "X"), f"server process {pid} exited"
    if runner.startswith("supervisor:"):
        state, starts = supervised()
        # The restart before the wait empties the starts log: its own start is not a restart.
        gone = state in ("BACKOFF", "FATAL", "EXITED") or starts > max(START["starts"], 1)
        return gone, f"program {runner[11:]} {state} (starts {starts})"
    if not shutil.which("systemctl"):
        return False, "no systemd"  # nothing to watch: the deadline bounds the wait
    shown = subprocess.run(["systemctl", "show", "-p", "ActiveState,NRestarts,Result", runner],
                           capture_output=True, text=True).stdout
    props = dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)
    gone = props.get("ActiveState") in ("failed", "inactive") or \
        props.get("NRestarts") != START.get("NRestarts")
    return gone, (f"{runner} {props.get('ActiveState')} (restarts {props.get('NRestarts')}, "
                  f"result {props.get('Result')})")


def supervised():
    """(supervisor's state of the program, its starts so far)."""
    name = runner[11:]
    shown = subprocess.run(["supervisorctl", "status", name], capture_output=True, text=True)
    words = shown.stdout.split()
    try:
        with open(f"/var/log/sglang/{name}.starts") as starts:
            count = len(starts.readlines())
    except OSError:
        count = 0
    return (words[1] if len(words) > 1 and words[0] == name else "UNKNOWN"), count


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


START = {}
if runner.startswith("supervisor:"):
    START["starts"] = supervised()[1]
elif not runner.startswith("pid:") and shutil.which("systemctl"):
    START["NRestarts"] = subprocess.run(
        ["systemctl", "show", "-p", "NRestarts", "--value", runner],
        capture_output=True, text=True).stdout.strip()
started = time.monotonic()
while True:
    status, _ = call("/health")
    if status == 200:
        break
    answered = f"/health answered {status}" if status else "nothing listens on the port yet"
    gone, what = unit_state()
    if gone:
        done(healthy=False, state="exited", reason=f"{what} while {answered}")
    waited = time.monotonic() - started
    if waited > timeout:
        done(healthy=False, state="starting", waited_s=round(waited),
             reason=f"still starting after {waited:.0f} s ({answered}; the server runs)")
    time.sleep(1)

body = json.dumps({"text": "The capital of France is",
                   "sampling_params": {"max_new_tokens": 8, "temperature": 0}}).encode()
status, raw = call("/generate", body)
try:
    reply = json.loads(raw)
    tokens = reply["meta_info"]["completion_tokens"]
    done(healthy=bool(tokens), tokens=tokens, text=reply.get("text", ""),
         waited_s=round(time.monotonic() - started, 1), state="" if tokens else "generate",
         reason="" if tokens else "/generate returned no tokens")
except (ValueError, KeyError, TypeError):
    done(healthy=False, state="generate", reason=f"/generate answered {status}: {raw[:200]!r}")
