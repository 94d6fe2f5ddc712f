"""Runs on a gateway, under systemd, with the router's venv python: sglang-router's own launcher,
with the fleet's control-plane key added in-process from the unit's credential (systemd's
LoadCredential=, readable by this service only), so the key is in no argv or unit file.

    python router_launch.py [launch_router's arguments...]

With the key, the router's control plane (adding and removing workers, listing them, flushing
caches) answers only "Authorization: Bearer KEY"; requests to be served stay open.
"""

import os
import sys
from pathlib import Path

from sglang_router.launch_router import main

key = (Path(os.environ["CREDENTIALS_DIRECTORY"]) / "control-key").read_text().strip()
sys.argv += ["--control-plane-api-keys", f"fleet:fleet:admin:{key}"]
main()
