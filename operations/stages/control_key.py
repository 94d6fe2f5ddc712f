"""A worker's copy of the routers' control key (the ROUTER_CONTROL_KEY secret), before any of its
rolling stages leaves or joins a router (operations/router.py): without it a router adds and
removes no worker. Nothing on a fleet without gateways.

Example::

    control_key.apply(settings, done)
"""

from __future__ import annotations

from operations import secrets, survey
from operations.outcome import Done
from operations.roles import router_urls
from operations.router import WORKER_KEY_PATH, control_key_written
from operations.settings import Settings


def reads(settings: Settings) -> list[survey.Read]:  # noqa: ARG001 (every stage's face)
    return secrets.private_reads(WORKER_KEY_PATH) if router_urls() else []


def apply(settings: Settings, done: Done) -> None:  # noqa: ARG001 (every stage's face)
    if router_urls():
        control_key_written(name="The routers' control key (root-only)", settings=settings,
                            path=WORKER_KEY_PATH)
