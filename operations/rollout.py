"""Rolling changes: a change that restarts serving hosts goes through the fleet in batches, each
batch healthy before the next starts; a failed batch stops the roll and the rest of the fleet
keeps serving its previous configuration.

Which hosts roll is decided from the hosts themselves, once, before any host changes: a host
*rolls* when it serves now (/health 200) and the configuration it was last healthy with (a
fingerprint recorded on the host) differs from this run's. Every other host (nothing serving
yet, or nothing to change) goes in batch 0, at once: it has no capacity to lose. So a first
deploy goes all at once and a no-op run is one batch.

Example::

    rollout.planned(settings=settings)
    for batch in host.loop(rollout.batch_numbers()):
        converge(settings, _if=rollout.turn(host.name, batch))  # ends with rollout.recorded
"""

from __future__ import annotations

import hashlib
import json
import math
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

from pyinfra import host, state
from pyinfra.api import StringCommand, operation

from operations import roles, secrets
from operations.facts import HEALTH_CODE, PythonJson
from operations.settings import RESTART_SETTINGS, Settings


def record_path(settings: Settings) -> str:
    return f"{settings.install_dir}/deployed.fingerprint"


def fingerprint(host_name: str, settings: Settings) -> str:
    """What a server runs with: the settings that restart it, the stack's pins and the secrets
    (as a digest: a new API key restarts servers too)."""
    values = {name: getattr(settings, name) for name in RESTART_SETTINGS}
    values["stack_packages"] = settings.stack_def().packages
    values["secrets"] = hashlib.sha256(json.dumps(
        secrets.load(host_name, settings), sort_keys=True).encode()).hexdigest()
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()


def batch_size(value: int | str, fleet_size: int) -> int:
    """``roll_batch`` as a host count: an integer, or a percentage of the fleet ("25%")."""
    if isinstance(value, str):
        return max(1, math.floor(fleet_size * float(value.rstrip("%")) / 100))
    return max(1, value)


def fleet_batch_size() -> int:
    """Hosts per rolling batch; ``roll_batch`` is the same on every worker (validated)."""
    workers = roles.workers()
    return batch_size(roles.settings_of(workers[0]).roll_batch, len(workers)) if workers else 1


def batch_numbers() -> range:
    """Batch 0, then as many rolling batches as the whole fleet could need: the same on every
    host, so that every host declares the same operations."""
    workers = roles.workers()
    return range(1 + math.ceil(len(workers) / fleet_batch_size())) if workers else range(0)


@dataclass
class Plan:
    """Filled by ``planned`` on every host before the first batch starts."""

    order: list[str] = field(default_factory=list)  # the inventory's
    serving: dict[str, bool] = field(default_factory=dict)
    changes: dict[str, bool] = field(default_factory=dict)
    size: int = 1
    untouched: set[str] = field(default_factory=set)

    def batches(self) -> list[list[str]]:
        order = [name for name in self.order if name in self.serving]
        rolling = [n for n in order if self.serving[n] and self.changes[n]]
        first = [n for n in order if n not in rolling]
        return [first] + [rolling[i:i + self.size] for i in range(0, len(rolling), self.size)]

    def batch_of(self, name: str) -> int | None:
        return next((number for number, members in enumerate(self.batches())
                     if name in members), None)

    def stopped_before(self, number: int, failed: set[str]) -> list[str]:
        """Hosts of earlier rolling batches that failed: any stops the roll."""
        return [n for batch in self.batches()[1:number] for n in batch if n in failed]


PLAN = Plan()


@operation(is_idempotent=True)
def planned(settings: Settings):
    """Read whether this host serves now and with which configuration (one round trip); it
    changes nothing.

    + settings: the host's validated settings
    """
    found = host.get_fact(PythonJson, python="python3", code=HEALTH_CODE,
                          args=(f"http://127.0.0.1:{settings.port}/health",
                                record_path(settings)))
    PLAN.order = [h.name for h in roles.workers()]
    PLAN.size = fleet_batch_size()
    PLAN.serving[host.name] = found.get("status") == 200
    PLAN.changes[host.name] = found.get("record") != fingerprint(host.name, settings)
    return
    yield  # an operation is a generator; this one only reads


def turn(host_name: str, number: int) -> Callable[[], bool]:
    """For ``_if``: whether batch ``number`` is this host's, and the roll still goes on."""

    def is_turn() -> bool:
        if PLAN.batch_of(host_name) != number:
            return False
        if number and PLAN.stopped_before(number, {h.name for h in state.failed_hosts}):
            PLAN.untouched.add(host_name)
            return False
        return True

    return is_turn


@operation(is_idempotent=True)
def recorded(settings: Settings):
    """After the host is healthy: record the configuration it serves with.

    + settings: the host's validated settings
    """
    if not PLAN.changes.get(host.name, True):
        return
    path = shlex.quote(record_path(settings))
    yield StringCommand(f"printf '%s' {fingerprint(host.name, settings)} > {path}.new "
                        f"&& mv {path}.new {path}")


def summary() -> list[str]:
    """Lines for the fleet summary: which hosts rolled in which batch, and which the roll did
    not reach."""
    lines = []
    failed = {h.name for h in state.failed_hosts}
    for number, members in enumerate(PLAN.batches()[1:], start=1):
        done = [n for n in members if n not in PLAN.untouched]
        if done:
            lines.append(f"rolled batch {number}: " + ", ".join(
                f"{n} ({'FAILED' if n in failed else 'healthy'})" for n in done))
    if PLAN.untouched:
        ordered = [name for name in PLAN.order if name in PLAN.untouched]
        lines.append("roll stopped; untouched, still serving the previous configuration: "
                     + ", ".join(ordered))
    return lines
