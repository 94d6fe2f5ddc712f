"""The fleet pyinfra works on.

1. A fleet you configured: the file named by $SGLANG_FLEET, else ./fleet.py. It is a pyinfra
   inventory: lists of hosts, each a name or (name, {settings}); see fleet.example.py.
2. Otherwise the lab hosts that are up (``lab/lab up``), so a deploy works right after it.
3. Otherwise: stop, saying how to get either.
"""

import os
import runpy
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))

_fleet_file = os.environ.get("SGLANG_FLEET") or (
    str(_HERE / "fleet.py") if (_HERE / "fleet.py").exists() else None)

if _fleet_file:
    if not Path(_fleet_file).is_file():
        raise SystemExit(f"SGLANG_FLEET={_fleet_file}: no such file")
    _groups = {k: v for k, v in runpy.run_path(_fleet_file).items()
               if not k.startswith("_") and isinstance(v, (list, tuple))}
    if not any(_groups.values()):
        raise SystemExit(f"{_fleet_file}: the host list is empty")
    globals().update(_groups)
else:
    from lab.inventory import LOCK, lab_gateways, lab_hosts

    os.environ.setdefault("SGLANG_LOCK", str(LOCK))  # the lab's pins live with the lab
    gpu_servers = lab_hosts()
    if lab_gateways():
        sglang_gateways = sglang_wheelhouse = lab_gateways()
    if not gpu_servers:
        raise SystemExit(
            "No fleet configured and no lab hosts are up.\n"
            "  - a real fleet: copy fleet.example.py to fleet.py (or set SGLANG_FLEET=FILE) "
            "and list your hosts;\n"
            "  - a lab fleet on this machine: sudo lab/lab up 2  (or: make demo)")
