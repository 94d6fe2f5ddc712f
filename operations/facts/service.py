"""The SGLang service: systemd's view of its unit, its journal, and what its HTTP endpoints
answer (programs for PythonJson, run with the system python3).

Example::

    host.get_fact(UnitState, unit="sglang.service")["ActiveState"]
    host.get_fact(PythonJson, python="python3", code=HEALTH_CODE,
                  args=("http://127.0.0.1:30000/health",))
"""

from __future__ import annotations

import shlex
from typing import Any

from pyinfra.api import FactBase

from operations import FILES_DIR
from operations.facts.status import split_status, with_status


class UnitState(FactBase):
    """A systemd unit's state: ``{"ActiveState": ..., "NRestarts": ..., ...}``, or
    ``{"error": ...}`` where systemctl is missing (no systemd)."""

    PROPERTIES = ("ActiveState", "SubState", "UnitFileState", "NRestarts", "MainPID", "User",
                  "Result", "ExecMainStatus", "ExecMainCode")

    def command(self, unit: str) -> str:
        props = ",".join(self.PROPERTIES)
        return with_status(f"systemctl show -p {props} {shlex.quote(unit)}")

    @staticmethod
    def default() -> Any:  # what a host that cannot be read gives
        return {"error": "the host could not be read"}

    def process(self, output: list[str]) -> dict[str, str]:
        lines, status = split_status(output)
        if status != 0:
            return {"error": " ".join(lines).strip() or f"systemctl exited {status}"}
        return dict(line.split("=", 1) for line in lines if "=" in line)


JOURNAL_LINES = 60  # the journal's last lines a diagnosis reads


class JournalTail(FactBase):
    """The unit's last journal lines: its last runs, not only the current one, since a crashed
    run is restarted within seconds and its error is what matters (the diagnosis takes the
    latest line that matches a symptom)."""

    def command(self, unit: str, lines: int = JOURNAL_LINES) -> str:
        return (f"journalctl -u {shlex.quote(unit)} --no-pager -o cat -n {int(lines)} "
                "2>/dev/null; true")

    def process(self, output: list[str]) -> list[str]:
        return output

    @staticmethod
    def default() -> list[str]:
        return []


# /health's status code (0 when nothing answers) and, given a second argument, that file's
# contents: files/health_probe.py, run with the system python3.
HEALTH_CODE = (FILES_DIR / "health_probe.py").read_text()

# A router's view of the fleet and one request through it: files/router_view.py, run with the
# system python3 and the router URL.
ROUTER_CODE = (FILES_DIR / "router_view.py").read_text()

# Wait (bounded) for /health 200, then one small generate: files/health_wait.py, run with the
# system python3 and (port, timeout seconds, unit); it reads the API key on the host itself.
WAIT_CODE = (FILES_DIR / "health_wait.py").read_text()
