"""One run at a time per host: the run lock (files/run_lock.py, in /var/lib/sglang-fleet/ on the
host), whoever starts the run and from wherever.

A run that changes hosts (deploy.py, diagnose.py with remediation) takes it on every host before
it reads what it plans from; a preview (``--dry``), preflight.py, diagnose.py and tests/verify
do not. On a deploy the take rides first in the survey's one round trip (operations/survey.py);
the release is a second one, as pyinfra disconnects. A host held by another live run is waited
for (``run_lock_wait_s``), then left alone, with a line naming the holder. Two runs that each
hold part of the fleet do not wait on each other for ever: the younger gives back what it holds
and waits (wait-die, by start time). A lock left by a run that was killed is taken over at once
(its SSH session is gone), one whose control machine vanished when its lease ends; the run says
so. The lease is renewed while the run lasts.

Example::

    left_alone = runlock.settle(hosts, read_again=lambda h: survey.read(h, reads(h)))
"""

from __future__ import annotations

import getpass
import json
import os
import random
import shlex
import socket
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import gevent
from pyinfra.api import FactBase, StringCommand
from pyinfra.api.host import Host

from operations import FILES_DIR, survey
from operations.facts.status import json_or_error, with_status

PATH = "/var/lib/sglang-fleet/run-lock.json"  # one per host, whatever the checkout's settings
CODE = (FILES_DIR / "run_lock.py").read_text()
LEASE_S = 300  # a run whose control machine vanished holds a host this long at most
POLL_S = 3.0  # how often a waiting run asks again

_HOLDER: dict[str, Any] = {}
_HELD: dict[str, Host] = {}  # hosts whose lock this run holds
_said: set[tuple[str, str]] = set()


class RunLock(FactBase):
    """Take, renew, keep (across a reboot) or release the run lock; what files/run_lock.py
    says: ``{"state": ..., "holder": ...}``, or ``{"state": "error", ...}``. It writes, so it
    is read only by a run that changes the host; the survey runs it before its other reads."""

    survey_first = True

    def command(self, action: str, holder: str, lease_s: float = LEASE_S) -> str:
        return with_status(shlex.join(["python3", "-c", CODE, action, PATH, holder,
                                       str(lease_s)]))

    @staticmethod
    def default() -> Any:
        return {"state": "error", "error": "the host could not be read"}

    def process(self, output: list[str]) -> dict[str, Any]:
        found = json_or_error(output)
        return found if "state" in found else {"state": "error", **found}


def holder() -> dict[str, Any]:
    """This run, as a lock names it: control machine, user, process and start."""
    if not _HOLDER:
        now = time.time()
        _HOLDER.update(run=uuid.uuid4().hex, control=socket.gethostname(),
                       user=getpass.getuser(), pid=os.getpid(), started=now,
                       since=datetime.fromtimestamp(now, timezone.utc).strftime(
                           "%Y-%m-%d %H:%M:%S UTC"))
    return _HOLDER


def describe(record: dict[str, Any]) -> str:
    return (f"the run of {record.get('user', '?')}@{record.get('control', '?')} "
            f"(pid {record.get('pid', '?')}, since {record.get('since', '?')})")


def take_read() -> survey.Read:
    """The take, as the survey reads it (first, in the host's one round trip)."""
    return survey.Read(RunLock, {"action": "take", "holder": json.dumps(holder())})


def _take(host: Host) -> dict[str, Any]:
    return host.get_fact(RunLock, action="take", holder=json.dumps(holder()))


def _say(host: Host, line: str) -> None:
    if (host.name, line) not in _said:
        _said.add((host.name, line))
        print(f"--> {host.name}: {line}", flush=True)


def _older(record: dict[str, Any]) -> bool:
    """Whether ``record``'s run started before this one (ties: by run id)."""
    mine = holder()
    return (record.get("started", 0), record.get("run", "")) < (mine["started"], mine["run"])


def settle(hosts: list[Host], wait_s: Callable[[Host], int],
           read_again: Callable[[Host], None]) -> dict[str, str]:
    """Hold the lock on ``hosts`` (wait-die); ``read_again(host)`` re-reads a host taken after
    a first read that another run held. Returns the hosts left alone, with why."""
    pending = list(hosts)
    deadline = {h.name: time.monotonic() + wait_s(h) for h in hosts}
    left: dict[str, str] = {}
    first = True
    while pending:
        greenlets = [gevent.spawn(_take, h) for h in pending]
        gevent.joinall(greenlets)  # (which returns them in the order they finished)
        answers = dict(zip(pending, greenlets, strict=True))
        held = {}
        for found, greenlet in answers.items():
            answer = greenlet.value or RunLock.default()
            if answer["state"] == "held":
                held[found] = answer["holder"]
                survey.forget(found)  # read while another run held it
                continue
            if answer["state"] == "error":
                left[found.name] = f"the run lock could not be taken: {answer.get('error')}"
                continue
            if answer["state"] == "took-over":
                _say(found, f"took over the run lock from {describe(answer['holder'])}: "
                            f"{answer.get('why')}")
            _HELD[found.name] = found
            if not first:
                read_again(found)
        first = False
        if not held:
            break
        for found, record in held.items():
            _say(found, f"held by {describe(record)}; waiting for it (up to "
                        f"{wait_s(found)} s, run_lock_wait_s)")
        pending = [h for h in held if time.monotonic() < deadline[h.name]]
        for found in held:
            if found not in pending:
                left[found.name] = (f"left alone: held by {describe(held[found])} "
                                    f"(waited {wait_s(found)} s, run_lock_wait_s)")
        if pending and any(_older(held[h]) for h in pending):
            # An older run waits for us or goes first: give back what we hold, ask again.
            for mine in list(_HELD.values()):
                _release(mine)
                survey.forget(mine)
                pending.append(mine)
        if pending:
            gevent.sleep(POLL_S * random.uniform(1, 1.5))  # noqa: S311 (not a secret)
    _keep_renewing()
    _release_when_done()
    return left


def _connector_run(host: Host, action: str, lease_s: float = LEASE_S) -> None:
    """The lock's command over the host's connection, outside pyinfra's operations (and the
    survey's notice): its output is not the run's."""
    try:
        host.connector.run_shell_command(
            StringCommand(RunLock().command(action, json.dumps(holder()), lease_s)),
            print_output=False, print_input=False, **survey.host_connector_arguments(host))
    except Exception:  # noqa: BLE001, S110 (a host lost: its lock goes stale by itself)
        pass


def _release(host: Host) -> None:
    _HELD.pop(host.name, None)
    _connector_run(host, "release")


_renewer: list[gevent.Greenlet] = []


def _keep_renewing() -> None:
    def renew() -> None:
        while True:
            gevent.sleep(LEASE_S / 3)
            gevent.joinall([gevent.spawn(_connector_run, h, "renew") for h in list(
                _HELD.values()) if h.connected])
    if not _renewer and _HELD:
        _renewer.append(gevent.spawn(renew))


def keep_command(lease_s: float) -> StringCommand:
    """Before this run reboots a host: the lock held by its lease alone (``lease_s``), since
    the reboot ends the session that holds it; renewed with the new session after."""
    return StringCommand(RunLock().command("keep", json.dumps(holder()), lease_s))


def renew_command() -> StringCommand:
    return StringCommand(RunLock().command("renew", json.dumps(holder())))


def _release_when_done() -> None:
    """Release every lock this run holds as pyinfra disconnects (failed hosts included)."""
    cli = sys.modules.get("pyinfra_cli.cli")
    if cli is None or getattr(cli, "disconnect_all", None) is None or getattr(
            cli.disconnect_all, "__releases_run_lock__", False):
        return
    real = cli.disconnect_all

    def disconnect_all(state: Any) -> None:
        for greenlet in _renewer:
            greenlet.kill()
        gevent.joinall([gevent.spawn(_release, h) for h in list(_HELD.values())
                        if h.connected])
        real(state)

    disconnect_all.__releases_run_lock__ = True  # type: ignore[attr-defined]
    setattr(cli, "disconnect_all", disconnect_all)  # noqa: B010 (pyinfra's CLI module)
