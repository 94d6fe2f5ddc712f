"""The SGLang service: its manager's view of it (systemd, or supervisord), its log, and what
its HTTP endpoints answer (programs for PythonJson, run with the system python3).

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
from operations.managers import SUPERVISOR_PREFIX, program_conf, program_log, starts_log

# supervisorctl's states as systemd's ActiveState: a program in BACKOFF is restarting.
_SUPERVISOR_ACTIVE = {"RUNNING": "active", "STARTING": "activating", "BACKOFF": "activating",
                      "STOPPING": "deactivating", "STOPPED": "inactive", "EXITED": "inactive",
                      "FATAL": "failed", "UNKNOWN": "failed"}


class UnitState(FactBase):
    """The server's state under its manager, in systemd's words: ``{"ActiveState": ...,
    "NRestarts": ..., ...}``; ``unit``: a systemd unit, or ``supervisor:NAME`` for a program of
    supervisord (operations/managers.py; SubState is then supervisor's own state, e.g.
    BACKOFF or FATAL, and ``"Manager": "supervisor"``). ``{"error": ...}`` where systemctl is
    missing (no systemd); a supervisord that does not answer is SubState ``supervisord-down``."""

    PROPERTIES = ("ActiveState", "SubState", "UnitFileState", "NRestarts", "MainPID", "User",
                  "Result", "ExecMainStatus", "ExecMainCode")

    def command(self, unit: str) -> str:
        if unit.startswith(SUPERVISOR_PREFIX):
            name = unit.removeprefix(SUPERVISOR_PREFIX)
            conf, starts = shlex.quote(program_conf(name)), shlex.quote(starts_log(name))
            return (f"echo Manager=supervisor; echo Program={shlex.quote(name)}; "
                    f"[ -f {conf} ] && echo UnitFileState=enabled || echo UnitFileState=missing; "
                    f"echo Starts=$(cat {starts} 2>/dev/null | wc -l); "
                    # supervisorctl is a Python program (0.3 s of a host's CPU): asked only
                    # where a supervisord runs, which a systemd host's survey then skips.
                    # (or its socket: a supervisord run as `python3 .../supervisord`)
                    "if grep -qsx supervisord /proc/[0-9]*/comm || [ -S /var/run/supervisor.sock ] "
                    "|| [ -S /run/supervisor.sock ]; then "
                    f"echo Status=$(supervisorctl status {shlex.quote(name)} 2>&1 | head -n 1); "
                    "else echo 'Status=no supervisord process'; fi")
        props = ",".join(self.PROPERTIES)
        return with_status(f"systemctl show -p {props} {shlex.quote(unit)}")

    @staticmethod
    def default() -> Any:  # what a host that cannot be read gives
        return {"error": "the host could not be read"}

    def process(self, output: list[str]) -> dict[str, str]:
        if output and output[0] == "Manager=supervisor":
            return _supervisor_state(dict(line.split("=", 1) for line in output if "=" in line))
        lines, status = split_status(output)
        if status != 0:
            return {"error": " ".join(lines).strip() or f"systemctl exited {status}"}
        return dict(line.split("=", 1) for line in lines if "=" in line)


def _supervisor_state(found: dict[str, str]) -> dict[str, str]:
    words = found.get("Status", "").split(None, 2)
    state = {"Manager": "supervisor", "UnitFileState": found.get("UnitFileState", "missing"),
             "NRestarts": str(max(0, int(found.get("Starts") or 0) - 1)), "MainPID": "0"}
    if len(words) >= 2 and words[0] == found.get("Program") and words[1] in _SUPERVISOR_ACTIVE:
        detail = words[2] if len(words) > 2 else ""
        if words[1] == "RUNNING" and detail.startswith("pid "):
            state["MainPID"] = detail.split()[1].rstrip(",")
        return {**state, "ActiveState": _SUPERVISOR_ACTIVE[words[1]], "SubState": words[1],
                "Result": detail}
    said = found.get("Status", "")
    if "no such process" in said:
        return {**state, "ActiveState": "inactive", "SubState": "not-loaded", "Result": said}
    return {**state, "ActiveState": "inactive", "SubState": "supervisord-down",
            "Result": f"the supervisor is not running ({said or 'no answer'})"}


JOURNAL_LINES = 60  # the journal's last lines a diagnosis reads


class JournalTail(FactBase):
    """The unit's last journal lines: its last runs, not only the current one, since a crashed
    run is restarted within seconds and its error is what matters (the diagnosis takes the
    latest line that matches a symptom)."""

    def command(self, unit: str, lines: int = JOURNAL_LINES) -> str:
        if unit.startswith(SUPERVISOR_PREFIX):  # the program's log file, in the journal's place
            log = shlex.quote(program_log(unit.removeprefix(SUPERVISOR_PREFIX)))
            return f"tail -n {int(lines)} {log} 2>/dev/null; true"
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
# A server's own figures (running, queued, KV use) and the drain before it stops.
METRICS_CODE = (FILES_DIR / "server_metrics.py").read_text()

# A router's view of the fleet and one request through it: files/router_view.py, run with the
# system python3 and the router URL.
ROUTER_CODE = (FILES_DIR / "router_view.py").read_text()

# Wait (bounded) for /health 200, then one small generate: files/health_wait.py, run with the
# system python3 and (port, timeout seconds, unit); it reads the API key on the host itself.
WAIT_CODE = (FILES_DIR / "health_wait.py").read_text()
