"""The service managers a worker's server runs under, as data: systemd where it is PID 1, else
supervisord (a rented GPU container: no systemd; the driver belongs to the host). Each manager
names how the facts and the health wait watch the server (``runner``), where its definition is
written, how a new definition is applied and the server restarted, and where its output is.

Example::

    manager = managers.chosen(settings.service_manager, pid1=host.get_fact(Pid1))
    host.get_fact(UnitState, unit=manager.runner)   # the same shape under either manager
"""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra import host

from operations.facts.host import Pid1

SERVICE_UNIT = "sglang.service"
PROGRAM = "sglang"
SUPERVISOR_PREFIX = "supervisor:"  # a runner "supervisor:NAME": program NAME of supervisord
SUPERVISOR_CONF_DIR = "/etc/supervisor/conf.d"
SUPERVISORD_CONF = "/etc/supervisor/supervisord.conf"  # the distribution's; includes conf.d
LOG_DIR = "/var/log/sglang"
# The program's wrapper (files/sglang-supervised.sh): reads the root-only environment file, then
# becomes the service user and runs the server.
WRAPPER = "/usr/local/sbin/sglang-supervised"
# What a container's entrypoint runs so that the server comes back after the container
# restarts (README: Rented GPU containers).
START_COMMAND = f"bash -c 'service ssh start; exec supervisord -n -c {SUPERVISORD_CONF}'"


def program_conf(name: str) -> str:
    return f"{SUPERVISOR_CONF_DIR}/{name}.conf"


def program_log(name: str) -> str:
    """The program's output (supervisord rotates it)."""
    return f"{LOG_DIR}/{name}.log"


def starts_log(name: str) -> str:
    """A line per start of the program, written by its wrapper: its restarts (since the last
    deliberate restart, which empties it) are its lines less one."""
    return f"{LOG_DIR}/{name}.starts"


@dataclass(frozen=True)
class Manager:
    name: str
    runner: str  # what facts (UnitState, JournalTail) and files/health_wait.py watch
    config_path: str  # the server's definition: a unit, or a supervisor program
    restart: str  # shell: apply a new definition and restart the server
    log: str  # where a person reads the server's output
    retire: str  # shell: stop and remove the server's definition (service_manager changed)


MANAGERS = {
    "systemd": Manager(
        "systemd", SERVICE_UNIT, f"/etc/systemd/system/{SERVICE_UNIT}",
        f"systemctl daemon-reload && systemctl restart {SERVICE_UNIT}",
        f"journalctl -u {SERVICE_UNIT}",
        f"systemctl disable --now {SERVICE_UNIT} 2>/dev/null; "
        f"rm -f /etc/systemd/system/{SERVICE_UNIT}; systemctl daemon-reload 2>/dev/null; true"),
    # update applies a changed program (and starts it); restart only when update did nothing.
    # A server that dies within startsecs makes supervisorctl exit 1, where systemctl returns
    # 0: the health wait that follows judges it (BACKOFF, FATAL: exited), and the remedies run.
    "supervisor": Manager(
        "supervisor", SUPERVISOR_PREFIX + PROGRAM, program_conf(PROGRAM),
        f": > {starts_log(PROGRAM)} && supervisorctl reread >/dev/null && "
        f"if [ -z \"$(supervisorctl update {PROGRAM})\" ]; then "
        f"supervisorctl restart {PROGRAM} >/dev/null || true; fi",
        program_log(PROGRAM),
        f"supervisorctl stop {PROGRAM} >/dev/null 2>&1; rm -f {program_conf(PROGRAM)}; "
        "supervisorctl update >/dev/null 2>&1; true"),
}


def chosen(setting: str, pid1: str) -> Manager:
    """``auto``: systemd where it is PID 1, supervisord otherwise."""
    if setting == "auto":
        return MANAGERS["systemd" if pid1 == "systemd" else "supervisor"]
    return MANAGERS[setting]


def in_container(pid1: str) -> bool:
    """A host whose PID 1 is not systemd is a container (a rented GPU's): its driver is the
    host's, which it can read but never install."""
    return pid1 != "systemd"



def of_host(setting: str) -> Manager:
    """The manager the current host's server runs under (its PID 1 read, when ``auto``)."""
    return chosen(setting, host.get_fact(Pid1) if setting == "auto" else "")
