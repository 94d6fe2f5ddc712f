"""Check every host against the chart's before-build checklist; changes nothing.

    pyinfra inventory.py preflight.py
    pyinfra @local preflight.py          # on the GPU host itself
"""

from pyinfra import host, inventory

from operations import preflight
from operations.connection import guard_lost_hosts
from operations.report import fleet_report
from operations.settings import fleet_settings

settings = fleet_settings({h.name: h.data.dict() for h in inventory})[host.name]
guard_lost_hosts()
fleet_report("preflight")

preflight.checklist(name="Preflight: the chart's before-build checklist", settings=settings)
