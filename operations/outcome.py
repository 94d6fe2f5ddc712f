"""How a stage ends on a host: failed, with one command that prints the reasons and exits 1
(pyinfra shows its output under the host's name, marks the host failed, skips the rest of its
operations and lets the other hosts go on), or done, with what later stages wait on.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from pyinfra import host
from pyinfra.api import StringCommand, operation
from pyinfra.api.operation import OperationMeta

from operations import preview
from operations.facts.host import Pid1
from operations.readiness import role_failure


def fail(lines: list[str]) -> StringCommand:
    quoted = " ".join(shlex.quote(line) for line in lines)
    return StringCommand(f"printf '%s\\n' {quoted} >&2; exit 1")


@dataclass
class Done:
    """What this run's earlier stages did on the host, for the stages after them: each stage's
    ``apply(settings, done)`` reads what it needs and records what later stages wait on."""

    reboot: OperationMeta | None = None  # the driver stage's reboot
    venv: OperationMeta | None = None  # the python_env stage's install
    unit: OperationMeta | None = None  # the service stage's unit and environment file
    restart: OperationMeta | None = None  # the health stage's restart


@operation(is_idempotent=True)
def refused(line: str):
    """Fail the host with the line that says why it cannot go on.

    + line: the failure's line (``Failure.line``)
    """
    preview.refused([line])
    yield fail([line])


def refused_without_systemd(role: str) -> bool:
    """A gateway's or wheelhouse's services are systemd units: on a host without systemd (a
    rented container) the host fails with one preflight line, and this says so."""
    failure = role_failure(role, host.get_fact(Pid1))
    if failure is not None:
        refused(name=f"Preflight: {failure.check}", line=failure.line(host.name))
    return failure is not None
