"""A worker's membership in the fleet's routers, through the router's worker API
(files/router_member.py, run on the worker with the system python3): the worker's URL as the
routers reach it, and the commands that make it leave or join every router.

Example::

    for command in leave_commands(settings):   # before the worker's server restarts
        yield command
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api.host import Host

from operations import FILES_DIR
from operations.roles import address, router_urls
from operations.settings import Settings

MEMBER_CODE = (FILES_DIR / "router_member.py").read_text()



# How long a worker waits for a router to call it healthy after joining (router checks every
# few seconds).
JOIN_TIMEOUT_S = 60



def worker_url(of: Host, settings: Settings) -> str:
    return f"http://{address(of)}:{settings.port}"



def member_command(action: str, router: str, settings: Settings) -> str:
    return shlex.join(["python3", "-c", MEMBER_CODE, action, router,
                       worker_url(host, settings), str(JOIN_TIMEOUT_S)])



def leave_commands(settings: Settings) -> list[str]:
    """Before this worker's server restarts: out of every router, so no request reaches it."""
    return [member_command("leave", router, settings) for router in router_urls()]
