"""Runs on the host (system python3, standard library only): a router's view of the fleet and
one request through it.

    python3 -c "$(cat router_view.py)" ROUTER_URL

prints one JSON line, {"workers": {url: healthy}, "generate": {"status": int, "tokens": int}}
(the router's GET /workers, then a 4-token POST /generate). Either request answering an HTTP
error gives "generate": {"status": that code, "tokens": 0}; a router that does not answer gives
"error": why, beside what was read before.
"""

import json
import sys
import urllib.error
import urllib.request

router = sys.argv[1]
found = {}
try:
    with urllib.request.urlopen(router + "/workers", timeout=10) as reply:
        found["workers"] = {w["url"]: w["is_healthy"] for w in json.load(reply)["workers"]}
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
