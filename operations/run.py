"""What every top-level script (deploy.py, preflight.py, diagnose.py) does first.

Example::

    settings = run.host_settings("deploy")
"""

from __future__ import annotations

import inspect
import os

from pyinfra import host, inventory, state
from pyinfra.api.arguments import pop_global_arguments

from operations import preflight, roles, secrets
from operations.connection import guard_lost_hosts
from operations.facts import Login
from operations.report import fleet_report
from operations.settings import Settings, fleet_settings


def _deploy_file_is_known_to_inspect() -> None:
    """pyinfra orders operations by ``inspect.stack()`` at every operation call; for frames of
    the deploy file (run with exec, not imported) ``inspect.getmodule`` misses its cache and
    scans every loaded module, each time: most of a no-op run's load time. Naming the file in
    that cache gives the same answer without the scans (measured in docs/benchmarks.md)."""
    path = state.current_deploy_filename
    if path:
        for name in (path, os.path.normcase(os.path.abspath(path))):
            inspect.modulesbyfile.setdefault(name, "__main__")


def host_settings(verb: str) -> Settings:
    """This host's validated settings. Every host's settings and secrets are checked first: one
    bad value anywhere stops the run before any host is touched. Then the lost-host guard and
    the end-of-run fleet summary are set up."""
    fleet = fleet_settings({h.name: h.data.dict() for h in inventory},
                           rolling={h.name for h in roles.workers()})
    for name, settings in fleet.items():
        secrets.load(name, settings)
    guard_lost_hosts()
    _deploy_file_is_known_to_inspect()
    fleet_report(verb)
    return fleet[host.name]


def login_allowed() -> bool:
    """Whether this host's SSH login can change it as root. If not, the host gets one
    operation, which fails it with what its login lacks, and nothing else: the login is read
    without sudo before any command that needs root, so no host stops half-way for want of
    privileges, or waits on a sudo password prompt."""
    arguments, _ = pop_global_arguments(state, host, {})
    if host.data.get("ssh_user") == "root" and not arguments["_sudo"]:
        return True  # root by the inventory's word: no round trip
    failure = preflight.login_failure(
        host.get_fact(Login, _sudo=False), sudo=bool(arguments["_sudo"]),
        sudo_password=bool(arguments["_sudo_password"] or state.config.USE_SUDO_PASSWORD))
    if failure is None:
        return True
    preflight.login_refused(name="Preflight: the login can change the host",
                            line=failure.line(host.name))
    return False
