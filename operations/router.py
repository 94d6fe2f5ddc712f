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
from pyinfra.api import FunctionCommand, operation
from pyinfra.api.host import Host

from operations import FILES_DIR, secrets
from operations.facts.service import METRICS_CODE
from operations.roles import address, router_urls
from operations.settings import Settings
from operations.watch import streamed

MEMBER_CODE = (FILES_DIR / "router_member.py").read_text()
# The routers' control key (the ROUTER_CONTROL_KEY secret), root-only: on a gateway, where its
# router's unit loads it; on a worker, where its membership commands read it.
GATEWAY_KEY_PATH = "/etc/sglang-router/control-key"
WORKER_KEY_PATH = "/etc/sglang/router-control-key"


# How long a worker waits for a router to call it healthy after joining (router checks every
# few seconds).
JOIN_TIMEOUT_S = 60


def worker_url(of: Host, settings: Settings) -> str:
    return f"http://{address(of)}:{settings.port}"


def member_args(action: str, router: str, settings: Settings) -> tuple[str, ...]:
    """router_member.py's arguments for this worker (``action``: state, join or leave)."""
    return (action, router, worker_url(host, settings), WORKER_KEY_PATH)


def member_command(action: str, router: str, settings: Settings) -> str:
    return shlex.join(["python3", "-c", MEMBER_CODE, *member_args(action, router, settings),
                       str(JOIN_TIMEOUT_S)])


def leave_commands(settings: Settings, drain: bool = True) -> list[str | FunctionCommand]:
    """Before this worker's server stops: out of every router, so no new request reaches it,
    then (``drain``: it serves) the requests it is answering finished (up to
    ``drain_timeout_s``, said as it waits)."""
    routers = router_urls()
    if not routers:
        return []  # its clients call it directly: SGLang's own drain on SIGTERM is all there is
    if not drain:
        return [member_command("leave", router, settings) for router in routers]
    waiting = shlex.join(["python3", "-c", METRICS_CODE, "drain", str(settings.port),
                          str(settings.drain_timeout_s)])
    return [*(member_command("leave", router, settings) for router in routers),
            streamed(waiting, summary=_drained)]


def _drained(lines: list[str]) -> str | None:
    """The drain's last word for the run's summary, when it waited for anything."""
    last = lines[-1] if lines else ""
    return None if not last or last.endswith((" after 0 s", "nothing to wait for")) else last


@operation(is_idempotent=True)
def control_key_written(settings: Settings, path: str):
    """The routers' control key (ROUTER_CONTROL_KEY) at ``path``, root-only, written without
    printing it.

    + settings: the host's validated settings
    + path: GATEWAY_KEY_PATH or WORKER_KEY_PATH
    """
    yield from secrets.put_private(path, secrets.load(host.name, settings)["ROUTER_CONTROL_KEY"]
                                   + "\n")
