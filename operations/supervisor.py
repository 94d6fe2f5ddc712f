"""supervisord on a host without systemd (a rented GPU container): the distribution's package,
the daemon running (a container's entrypoint may start only sshd), and a program running.
The image's own supervisord is reused where one runs: never a second one.

Example::

    supervisor.installed(name="supervisor installed")
    supervisor.daemon_running(name="supervisord running")
    supervisor.program_running(name="sglang running", program="sglang")
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import StringCommand, operation
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.files import Directory
from pyinfra.facts.server import Which

from operations.facts.service import UnitState
from operations.managers import LOG_DIR, START_COMMAND, SUPERVISOR_PREFIX, SUPERVISORD_CONF
from operations.report import note

# Recommends off: no service start hooks beyond the package's own, no extras.
APT_INSTALL = "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends"


@operation(is_idempotent=True)
def installed():
    """The distribution's ``supervisor`` package, unless the image brings supervisord; the
    program's log directory (root-only: the server's output may name paths and models)."""
    if not host.get_fact(Which, command="supervisord"):
        yield StringCommand(f"{APT_INSTALL} supervisor")
    if not host.get_fact(Directory, path=LOG_DIR):
        yield StringCommand(f"install -d -m 0750 {shlex.quote(LOG_DIR)}")


@operation(is_idempotent=True)
def daemon_running(program: str):
    """supervisord answers; started (with the distribution's config, which includes conf.d)
    when it does not, as after a container restart whose entrypoint starts only sshd.

    + program: a program it runs (its state tells whether supervisord answers)
    """
    state = host.get_fact(UnitState, unit=SUPERVISOR_PREFIX + program)
    if state.get("SubState") != "supervisord-down":
        return
    note(host.name, "supervisord was not running: started; for the server to come back after a "
                    f"container restart, make the container's start command {START_COMMAND}")
    # (a package install may have started it meanwhile: one supervisord, never a second)
    yield StringCommand(f"supervisorctl pid >/dev/null 2>&1 || "
                        f"supervisord -c {shlex.quote(SUPERVISORD_CONF)}")
    # Its socket answers a moment after it forks: wait for it, bounded.
    yield StringCommand("for i in $(seq 50); do supervisorctl pid >/dev/null 2>&1 && exit 0; "
                        "sleep 0.2; done; echo 'supervisord did not answer' >&2; exit 1")


@operation(is_idempotent=True)
def program_running(program: str, judged_later: bool = True):
    """The program is loaded and running (or starting).

    + program: its name (``[program:NAME]`` in conf.d)
    + judged_later: a program that exits at start (FATAL) is left to a later check (the
      server's: the health stage names why, its remedies run); else it fails the host here
    """
    state = host.get_fact(UnitState, unit=SUPERVISOR_PREFIX + program)
    if state.get("SubState") == "FATAL" and not judged_later:
        yield StringCommand(f"supervisorctl status {shlex.quote(program)}; echo "
                            f"{shlex.quote(f'{program} exits at start (FATAL): see its log')} "
                            ">&2; exit 1")
        return
    if state.get("ActiveState") in ("active", "activating") or state.get("SubState") == "FATAL":
        return
    name = shlex.quote(program)
    # (read before this run's restart: it may have started it meanwhile)
    yield StringCommand(f"supervisorctl reread >/dev/null; supervisorctl update {name} "
                        f">/dev/null; supervisorctl start {name} || supervisorctl status {name} "
                        "| grep -qE ' (RUNNING|STARTING|BACKOFF|FATAL) '")


@operation(is_idempotent=True)
def updated_after(program: str, changes: list[OperationMeta]):
    """The program restarted with its new definition when any of ``changes`` changed it.

    + program: its name (``[program:NAME]`` in conf.d)
    + changes: the operations that write its definition and what it runs
    """
    if any(change.changed for change in changes):
        name = shlex.quote(program)
        yield StringCommand(f"supervisorctl reread >/dev/null; supervisorctl update {name} "
                            f">/dev/null; supervisorctl restart {name}")
