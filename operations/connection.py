"""A host lost in the middle of a run must fail alone.

paramiko raises EOFError when a host's SSH session ends under a running command (the host
powered off); pyinfra 3.10's SSH connector handles SSHException and OSError there but not
EOFError, which then ends the whole run for every host. Found by
tests/e2e/test_lab_fleet.py::test_host_lost_in_the_middle_of_a_run_is_named_and_the_others_finish.
This turns it into the SSHException pyinfra does handle: the host is marked failed, named at
the end, and the other hosts finish.

The same for a host that serves no SFTP (a rented container's SSH): pyinfra raises a
ConnectError there, which ends the whole run; it becomes an SSHException that fails that host
alone, with the setting that fixes it.
"""

from __future__ import annotations

import functools

from paramiko import SSHException
from pyinfra.api.exceptions import ConnectError
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


def _no_sftp_names_the_setting(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except ConnectError as error:
            if self.data["ssh_file_transfer_protocol"] != "sftp":
                raise SSHException(str(error)) from error
            raise SSHException(
                f"{self.host.name}: no SFTP on this host's SSH server (a rented container's?): "
                "set ssh_file_transfer_protocol to 'scp' for it in the inventory") from error

    wrapper.__lost_host_guard__ = True  # type: ignore[attr-defined]
    return wrapper


_GUARDS = {"run_shell_command": _lost_is_an_ssh_error, "put_file": _lost_is_an_ssh_error,
           "get_file": _lost_is_an_ssh_error,
           "get_file_transfer_connection": _no_sftp_names_the_setting}


def guard_lost_hosts() -> None:
    for name, guard in _GUARDS.items():
        method = getattr(SSHConnector, name)
        if not getattr(method, "__lost_host_guard__", False):
            setattr(SSHConnector, name, guard(method))
