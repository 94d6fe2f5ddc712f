"""Rolling changes: a change that restarts serving hosts goes through the fleet in batches, each
batch healthy before the next starts; a failed batch stops the roll and the rest of the fleet
keeps serving its previous configuration.

Which hosts roll is decided from the hosts themselves, once, when the deploy is loaded and
before any host changes: a host *rolls* when it serves now (/health 200) and the configuration
it was last healthy with (a fingerprint recorded on the host) differs from this run's, or its
driver stage will reboot it. Every
other host (nothing serving yet, or nothing to change) goes in batch 0, at once: it has no
capacity to lose. So a first deploy goes all at once and a no-op run is one batch. A host
declares its stages in its own batch only, so a preview (``--dry``) shows each host's own
operations and whether they change, and the plan it prints is the one the run follows.

Example::

    mine = rollout.batch_of_this_host()
    for batch in host.loop(rollout.batch_numbers()):
        if rollout.steps_into(batch, mine):
            rollout.fleet_step()  # after the batch before, before this one
        if batch == mine:
            rollout.roll_goes_on(number=batch)
            converge(settings)  # ends with rollout.recorded
"""

from __future__ import annotations

import hashlib
import json
import math
import shlex
import threading
from dataclasses import dataclass, field

import gevent
from pyinfra import host, state
from pyinfra.api import StringCommand, operation
from pyinfra.api.host import Host

from operations import drivers, roles, secrets, survey
from operations.facts.gpu import NvidiaDriver
from operations.facts.python import PythonJson
from operations.facts.service import HEALTH_CODE
from operations.outcome import fail
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


@dataclass
class Plan:
    """Filled by ``plan_fleet`` when the deploy is loaded, before any host changes."""

    planned: bool = False
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


_PLANNING = threading.Lock()


def _health_read(settings: Settings) -> survey.Read:
    return survey.Read(PythonJson, {"python": "python3", "code": HEALTH_CODE, "_sudo": False,
                                    "args": (f"http://127.0.0.1:{settings.port}/health",
                                             record_path(settings))})


def reads(settings: Settings) -> list[survey.Read]:
    """What the plan reads of a worker (operations/survey.py): without sudo."""
    return [_health_read(settings), survey.Read(NvidiaDriver, {"_sudo": False})]


def _status(worker: Host) -> dict:
    """/health and the recorded fingerprint of one worker (one round trip), and for a serving
    one whether its driver stage will reboot it; read without sudo: a login that cannot get
    root is refused by its own deploy, not here."""
    settings = roles.settings_of(worker)
    found = _health_read(settings).on(worker)
    if found.get("status") == 200 and settings.driver_install != "never":
        state = worker.get_fact(NvidiaDriver, _sudo=False)
        found["reboots"] = drivers.plan(settings, state, {}).reboot
    return found


def plan_fleet() -> Plan:
    """Fill PLAN once per run, reading every connected worker in parallel; every host's deploy
    load waits for it."""
    with _PLANNING:
        if not PLAN.planned:
            workers = [h for h in roles.workers() if h in state.activated_hosts]
            reads = {h.name: gevent.spawn(_status, h) for h in workers}
            gevent.joinall(list(reads.values()))
            PLAN.order = [h.name for h in roles.workers()]
            PLAN.size = fleet_batch_size()
            for worker in workers:
                found = reads[worker.name].value or {}
                PLAN.serving[worker.name] = found.get("status") == 200
                PLAN.changes[worker.name] = found.get("reboots") or found.get(
                    "record") != fingerprint(worker.name, roles.settings_of(worker))
            PLAN.planned = True
    return PLAN


def batch_of_this_host() -> int | None:
    return plan_fleet().batch_of(host.name)


def batch_numbers() -> range:
    """Batch 0, then the rolling batches: the same on every host."""
    return range(len(plan_fleet().batches()))


def steps_into(batch: int, mine: int | None) -> bool:
    """Whether this host declares the fleet step into ``batch``: the hosts of that batch (before
    their stages) and of the batch before it (after theirs). That chains each batch after the
    one before, and a host declares two steps however many batches there are."""
    return mine is not None and batch in (mine, mine + 1)


@operation(is_idempotent=True)
def fleet_step():
    """Declared by several hosts at the same point of the deploy (every host; or, into a
    batch, ``steps_into``'s): pyinfra runs an operation after the operations each host
    declared before it, so none of them goes past this point before all reached it: a stage of
    some hosts (a rolling batch, the wheelhouse) ends before the next stage of the others
    begins. Changes nothing."""
    return
    yield  # an operation is a generator


@operation(is_idempotent=True)
def roll_goes_on(number: int):
    """First in a rolling batch after the first: if a host of an earlier batch failed, the roll
    stops here and this host is left untouched, serving its previous configuration.

    + number: this host's batch
    """
    if not state.is_executing or number < 2:
        return  # a preview, or nothing before it: the roll goes on
    stopped = PLAN.stopped_before(number, {h.name for h in state.failed_hosts})
    if stopped:
        PLAN.untouched.add(host.name)
        yield fail([f"{host.name}: untouched: the roll stopped after {', '.join(stopped)} "
                    "failed; it serves its previous configuration"])


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
