"""Python snippets run on the host: one with a given interpreter (a venv's, or the system's
``python3``), or several of the system's in one interpreter (the survey's batch).

Example::

    from operations.facts.python import PythonJson
    host.get_fact(PythonJson, python="python3", code="import json; print(json.dumps(1))")
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from pyinfra.api import FactBase

from operations import FILES_DIR
from operations.facts.status import END, json_or_error, with_status


class PythonJson(FactBase):
    """Run a Python snippet with ``python`` (a venv's, or the system's ``python3``) and return
    what it printed as JSON, or ``{"error": ...}`` with its output when that fails."""

    def command(self, python: str, code: str, args: tuple[str, ...] = (),
                env: tuple[str, ...] = ()) -> str:
        """``env``: ``KEY=value`` words for the snippet's environment."""
        argv = " ".join(shlex.quote(a) for a in args)
        prefix = f"env {' '.join(shlex.quote(word) for word in env)} " if env else ""
        return with_status(f"command -v {shlex.quote(python)} >/dev/null || "
                           f"{{ echo 'no python at {python}'; exit 3; }}; "
                           f"{prefix}{shlex.quote(python)} -c {shlex.quote(code)} {argv}")

    @staticmethod
    def default() -> Any:  # what a host that cannot be read gives
        return {"error": "the host could not be read"}

    def process(self, output: list[str]) -> dict[str, Any]:
        return json_or_error(output)


# Several PythonJson snippets of the system's python3 in one interpreter, each as
# ``python3 -c CODE ARGS`` would run it: files/python_batch.py.
PYTHON_BATCH_CODE = (FILES_DIR / "python_batch.py").read_text()


def python_batch_command(mark: str, snippets: list[tuple[int, str, tuple[str, ...]]]) -> str:
    """One ``python3`` running ``snippets`` (index, code, args) as PYTHON_BATCH_CODE says."""
    return shlex.join(["python3", "-c", PYTHON_BATCH_CODE, mark, END,
                       json.dumps([[i, code, list(args)] for i, code, args in snippets])])
