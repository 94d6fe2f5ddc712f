"""What every top-level script (deploy.py, preflight.py, diagnose.py) does first.

Example::

    settings = run.host_settings("deploy")
"""

from __future__ import annotations

from pyinfra import host, inventory

from operations import roles, secrets
from operations.connection import guard_lost_hosts
from operations.report import fleet_report
from operations.settings import Settings, fleet_settings


def host_settings(verb: str) -> Settings:
    """This host's validated settings. Every host's settings and secrets are checked first: one
    bad value anywhere stops the run before any host is touched. Then the lost-host guard and
    the end-of-run fleet summary are set up."""
    fleet = fleet_settings({h.name: h.data.dict() for h in inventory},
                           rolling={h.name for h in roles.workers()})
    for name, settings in fleet.items():
        secrets.load(name, settings)
    guard_lost_hosts()
    fleet_report(verb)
    return fleet[host.name]
