"""Runs on the host (system python3, standard library only): a router's view of the fleet and
one request through it.

    python3 -c "$(cat router_view.py)" ROUTER_URL KEY_FILE

(KEY_FILE: the router's control key, which its GET /workers needs; run as root.)

prints one JSON line, {"workers": {url: healthy}, "generate": {"status": int, "tokens": int}}
(the router's GET /workers, then a 4-token POST /generate). Either request answering an HTTP
error gives "generate": {"status": that code, "tokens": 0}; a router that does not answer gives
"error": why, beside what was read before.
"""

import json
import sys
import urllib.error
import urllib.request

router, key_file = sys.argv[1], sys.argv[2]
found: dict = {}
try:
    with open(key_file) as key:
        listing = urllib.request.Request(router + "/workers",
                                         headers={"Authorization": f"Bearer {key.read().strip()}"})
except OSError as e:
    print(json.dumps({"error": f"no router control key at {key_file}: {e.strerror}"}))
    sys.exit(0)
try:
    with urllib.request.urlopen(listing, timeout=10) as reply:
        found["workers"] = {w["url"]: w["is_healthy"] for w in json.load(reply)["workers"]}
except urllib.error.HTTPError as e:
    found["error"] = f"router {router} refused GET /workers: HTTP {e.code} (its control key)"
except OSError as e:
    found["error"] = f"router {router} does not answer: {e}"
if "error" in found:
    print(json.dumps(found))
    sys.exit(0)
try:
    request = urllib.request.Request(
        router + "/generate", method="POST",
        data=json.dumps({"text": "The capital of France is",
                         "sampling_params": {"max_new_tokens": 4}}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as reply:
        body = json.load(reply)
        found["generate"] = {"status": reply.status,
                             "tokens": body.get("meta_info", {}).get("completion_tokens", 0)}
except urllib.error.HTTPError as e:
    found["generate"] = {"status": e.code, "tokens": 0}
except OSError as e:
    found["error"] = f"router {router} does not answer: {e}"
print(json.dumps(found))
