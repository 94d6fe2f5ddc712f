"""Diagnose every host of the inventory read-only: healthy, or the chart's symptom with its
evidence, cause and fix. Exits non-zero if any host is unhealthy.

    pyinfra inventory.py diagnose.py
    pyinfra inventory.py diagnose.py --data remediate=true    # and apply the chart's fixes
"""

from pyinfra import host, inventory

from operations import examine
from operations.connection import guard_lost_hosts
from operations.report import fleet_report
from operations.settings import fleet_settings

settings = fleet_settings({h.name: h.data.dict() for h in inventory})[host.name]
guard_lost_hosts()
fleet_report("diagnose")

# Read-only unless asked for explicitly (deploy.py remediates by default, diagnose does not).
asked = str(host.data.get("remediate", "false")).lower() == "true"
examine.diagnosed(name="Diagnose sglang.service", settings=settings, remediate=asked)
