"""A host lost in the middle of a run must fail alone.

paramiko raises EOFError when a host's SSH session ends under a running command (the host
powered off); pyinfra 3.10's SSH connector handles SSHException and OSError there but not
EOFError, which then ends the whole run for every host. Found by
tests/e2e/test_lab_fleet.py::test_host_lost_in_the_middle_of_a_run_is_named_and_the_others_finish.
This turns it into the SSHException pyinfra does handle: the host is marked failed, named at
the end, and the other hosts finish.
"""

from __future__ import annotations

import functools

from paramiko import SSHException
from pyinfra.connectors.ssh import SSHConnector


def _lost_is_an_ssh_error(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except EOFError as error:
            raise SSHException(f"SSH session ended: the host stopped answering ({error!r})"
                               ) from error

    wrapper.__lost_host_guard__ = True  # type: ignore[attr-defined]
    return wrapper


def guard_lost_hosts() -> None:
    for name in ("run_shell_command", "put_file", "get_file"):
        method = getattr(SSHConnector, name)
        if not getattr(method, "__lost_host_guard__", False):
            setattr(SSHConnector, name, _lost_is_an_ssh_error(method))
