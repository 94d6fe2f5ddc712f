"""The worker's last stage: once healthy, it is in every router of the fleet and the router
calls it healthy (operations/router.py); a worker that fails health never gets here, so it
stays out.

Example::

    from operations.stages import membership
    membership.apply(settings, done)
"""

from __future__ import annotations

from pyinfra import host, inventory
from pyinfra.api import operation

from operations import survey
from operations.facts.python import PythonJson
from operations.outcome import Done
from operations.report import note
from operations.roles import is_gateway, router_urls
from operations.router import MEMBER_CODE, member_args, member_command
from operations.settings import Settings


def reads(settings: Settings) -> list[survey.Read]:
    """What ``joined`` reads: the routers' view of this worker (stale once a gateway changed)."""
    gateways = tuple(h.name for h in inventory if is_gateway(h))
    return [survey.Read(PythonJson, {"python": "python3", "code": MEMBER_CODE,
                                     "args": member_args("state", router, settings)},
                        after=gateways) for router in router_urls()]


@operation(is_idempotent=True)
def joined(settings: Settings):
    """This healthy worker is in every router and the router calls it healthy.

    + settings: the worker's validated settings
    """
    for router in router_urls():
        found = host.get_fact(PythonJson, python="python3", code=MEMBER_CODE,
                              args=member_args("state", router, settings))
        if "error" in found:
            note(host.name, f"not joined to the router: {found['error']}")
        elif not found["healthy"]:
            yield member_command("join", router, settings)


def apply(settings: Settings, done: Done) -> None:
    joined(name="In every router, healthy", settings=settings)
