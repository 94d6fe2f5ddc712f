"""Which stages each role runs, in order: the one list that deploy.py, preflight.py and
diagnose.py run and that the survey reads ahead (operations/run.py). Every stage module has the
same face: ``reads(settings)``, what it reads on a run that changes nothing, and
``apply(settings, done)``, its operations (``done``: what earlier stages did on the host).

Example::

    for stage in pipeline.WORKER_ROLL:
        stage.apply(settings, done)
"""

from __future__ import annotations

from types import ModuleType

from operations import roles, rollout, survey
from operations.settings import Settings
from operations.stages import (
    control_key,
    driver,
    examine,
    exporters,
    gateway,
    health,
    membership,
    preflight,
    prometheus,
    python_env,
    service,
    system_packages,
    weights,
    wheelhouse,
)

WHEELHOUSE = (wheelhouse,)
GATEWAY = (gateway,)
MONITORING = (prometheus,)
# Every host of a monitored fleet: its figures for the monitoring hosts (after a worker's apt
# goes through the wheelhouse's cache).
EXPORTED = (exporters,)
# A worker: prepared all at once, then converged in its rolling batch (operations/rollout.py).
WORKER_PREPARE = (preflight, control_key, system_packages, *EXPORTED, weights)
WORKER_ROLL = (driver, python_env, service, health, membership)
# The read-only scripts, on workers.
PREFLIGHT = (preflight,)
DIAGNOSE = (examine,)


def fleet_services() -> list[ModuleType]:
    """The stages of this host's wheelhouse, gateway and monitoring roles, which the workers
    wait for; such a host's own figures with them."""
    return [*(WHEELHOUSE if roles.is_wheelhouse() else ()),
            *(GATEWAY if roles.is_gateway() else ()),
            *(MONITORING if roles.is_monitoring() else ()),
            *(EXPORTED if not roles.is_worker() else ())]


def deploy_stages() -> list[ModuleType]:
    """The stages this host's roles run in a deploy, in order."""
    return [*fleet_services(), *((*WORKER_PREPARE, *WORKER_ROLL) if roles.is_worker() else ())]


def reads(verb: str, settings: Settings) -> list[survey.Read]:
    """What this host's stages read on a run that changes nothing (deploy; preflight: its
    checklist), the rollout plan's reads of a worker included."""
    if verb == "preflight":
        return [r for stage in PREFLIGHT for r in stage.reads(settings)] \
            if roles.is_worker() else []
    found = rollout.reads(settings) if roles.is_worker() else []
    return found + [r for stage in deploy_stages() for r in stage.reads(settings)]
