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

import gevent
from pyinfra import host, state
from pyinfra.api import StringCommand, operation
from pyinfra.api.host import Host

from operations import drivers, roles, runstate, secrets, survey
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
    server_secrets = {name: value for name, value in secrets.load(host_name, settings).items()
                      if name in secrets.SERVER_NAMES}  # a new router key restarts no server
    values["secrets"] = hashlib.sha256(json.dumps(
        server_secrets, sort_keys=True).encode()).hexdigest()
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


def plan_fleet() -> runstate.Plan:
    """Fill the run's plan once, reading every connected worker in parallel; every host's deploy
    load waits for it."""
    plan = runstate.current().plan
    with _PLANNING:
        if not plan.planned:
            workers = [h for h in roles.workers() if h in state.activated_hosts]
            reads = {h.name: gevent.spawn(_status, h) for h in workers}
            gevent.joinall(list(reads.values()))
            plan.order = [h.name for h in roles.workers()]
            plan.size = fleet_batch_size()
            for worker in workers:
                found = reads[worker.name].value or {}
                plan.serving[worker.name] = found.get("status") == 200
                plan.changes[worker.name] = found.get("reboots") or found.get(
                    "record") != fingerprint(worker.name, roles.settings_of(worker))
            plan.planned = True
    return plan


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
    stopped = runstate.current().plan.stopped_before(number, {h.name for h in state.failed_hosts})
    if stopped:
        runstate.current().plan.untouched.add(host.name)
        yield fail([f"{host.name}: untouched: the roll stopped after {', '.join(stopped)} "
                    "failed; it serves its previous configuration"])


@operation(is_idempotent=True)
def recorded(settings: Settings):
    """After the host is healthy: record the configuration it serves with.

    + settings: the host's validated settings
    """
    if not runstate.current().plan.changes.get(host.name, True):
        return
    path = shlex.quote(record_path(settings))
    yield StringCommand(f"printf '%s' {fingerprint(host.name, settings)} > {path}.new "
                        f"&& mv {path}.new {path}")


def summary() -> list[str]:
    """Lines for the fleet summary: which hosts rolled in which batch, and which the roll did
    not reach."""
    lines = []
    plan = runstate.current().plan
    failed = {h.name for h in state.failed_hosts}
    for number, members in enumerate(plan.batches()[1:], start=1):
        done = [n for n in members if n not in plan.untouched]
        if done:
            lines.append(f"rolled batch {number}: " + ", ".join(
                f"{n} ({'FAILED' if n in failed else 'healthy'})" for n in done))
    if plan.untouched:
        ordered = [name for name in plan.order if name in plan.untouched]
        lines.append("roll stopped; untouched, still serving the previous configuration: "
                     + ", ".join(ordered))
    return lines
