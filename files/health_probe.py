"""Runs on the host (system python3, standard library only): one look at a server's /health.

    python3 -c "$(cat health_probe.py)" HEALTH_URL [RECORD_FILE]

prints one JSON line, {"status": the HTTP status /health answered (0 when nothing answers)},
with "record": RECORD_FILE's contents (null when it cannot be read) when that is given.
"""

import json
import sys
import urllib.error
import urllib.request

try:
    status = urllib.request.urlopen(sys.argv[1], timeout=5).status
except urllib.error.HTTPError as e:
    status = e.code
except OSError:
    status = 0
found = {"status": status}
if len(sys.argv) > 2:
    try:
        found["record"] = open(sys.argv[2]).read()
    except OSError:
        found["record"] = None
print(json.dumps(found))
