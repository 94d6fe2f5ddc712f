"""How a stage fails a host: one command that prints the reasons and exits 1.

pyinfra shows a failed command's output under the host's name, marks the host failed, skips the
rest of its operations and lets the other hosts go on.
"""

from __future__ import annotations

import shlex

from pyinfra.api import StringCommand


def fail(lines: list[str]) -> StringCommand:
    quoted = " ".join(shlex.quote(line) for line in lines)
    return StringCommand(f"printf '%s\\n' {quoted} >&2; exit 1")
