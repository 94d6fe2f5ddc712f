"""Long steps said while they run: a command whose output pyinfra shows as it comes, under the
host's name, without -v (a model's fetch, a stack's install), and the host program that says a
step's progress from the disk it fills (files/watch_run.py).

Example::

    yield streamed(watched("stack cu13-stable installed", venv, 9.5e9, pip_command))
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

from pyinfra import host
from pyinfra.api import FunctionCommand, StringCommand

from operations import FILES_DIR
from operations.report import note
from operations.survey import connector_arguments

WATCH_CODE = (FILES_DIR / "watch_run.py").read_text()
EVERY_S = 10  # how often a long step says how far it is


def watched(label: str, path: str, total_bytes: float, command: str) -> str:
    """``command`` run with its progress said every EVERY_S seconds: the disk ``path`` takes
    against ``total_bytes`` (0: unknown)."""
    return shlex.join(["python3", "-c", WATCH_CODE, label, path, str(int(total_bytes)),
                       str(EVERY_S), "--", "sh", "-c", command])


Summary = Callable[[list[str]], "str | None"]


def _streamed(state, host, command: str, arguments: dict,  # noqa: ANN001
              summary: Summary | None) -> bool:
    """(pyinfra passes ``state`` and ``host`` by name.)"""
    succeeded, output = host.run_shell_command(StringCommand(command), print_output=True,
                                               **arguments)
    said = summary(output.stdout_lines) if summary and succeeded else None
    if said:
        note(host.name, said)
    return succeeded


def streamed(command: str, summary: Summary | None = None) -> FunctionCommand:
    """``command`` with its output shown as it comes, under the host's name, with the running
    operation's connector arguments (sudo included); ``summary(output lines)``: a line for the
    host in the run's summary (what moved, and from where)."""
    arguments = connector_arguments(host.current_op_global_arguments or {})
    return FunctionCommand(_streamed, (command, arguments, summary), {})
