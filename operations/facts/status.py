"""How a fact's command reports on the host: its exit status as a last line after its output
(so the fact itself exits 0, and a failing tool is data, not a pyinfra error), or a test's
"yes"/"no"."""

from __future__ import annotations

import json
from typing import Any

from pyinfra.api import FactBase

END = "__exit__="  # what precedes the exit status on the last line


def with_status(command: str) -> str:
    """Run ``command`` and append its exit status as a last line (the fact itself succeeds)."""
    return f"( {command} ) 2>&1; echo {END}$?"


def split_status(output: list[str]) -> tuple[list[str], int]:
    """(the output, the exit status); output that did not end its last line has the status
    marker at the end of that line."""
    if output:
        before, found, status = output[-1].rpartition(END)
        if found and status.isdigit():
            return output[:-1] + ([before] if before else []), int(status)
    return output, 1


def json_or_error(output: list[str]) -> dict[str, Any]:
    """What a ``with_status`` command printed as JSON on its last line, or ``{"error": its
    output, "status": its exit status}`` when it failed or printed something else."""
    lines, status = split_status(output)
    if status == 0 and lines:
        try:
            return json.loads(lines[-1])
        except ValueError:
            pass
    return {"error": "\n".join(lines), "status": status}


class YesNo(FactBase):
    """A test run on the host: its command prints "yes" or "no"."""

    @staticmethod
    def default() -> Any:  # what a host that cannot be read gives
        return False

    def process(self, output: list[str]) -> bool:
        return output == ["yes"]
