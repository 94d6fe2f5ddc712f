"""Stage 5, health: restart only when something changed, then wait (bounded) for /health 200
and check that one small generate request returns tokens.

Example::

    from operations import health
    health.restarted_if_changed(settings=settings, changes=[venv, unit])
    health.serving(settings=settings, changes=[venv, unit])
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from pyinfra import host
from pyinfra.api import StringCommand, operation
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.systemd import SystemdStatus
from pyinfra.operations import systemd

from operations.facts import PythonJson
from operations.settings import Settings
from operations.symptoms import SYMPTOMS

UNIT = "sglang.service"
CHECK_CODE = (Path(__file__).resolve().parent.parent / "files" / "health_check.py").read_text()

# Quick read-only probe: the /health status code, or 0 when nothing answers.
PROBE_CODE = """
import json, sys, urllib.request, urllib.error
try:
    status = urllib.request.urlopen(sys.argv[1], timeout=5).status
except urllib.error.HTTPError as e:
    status = e.code
except OSError:
    status = 0
print(json.dumps({"status": status}))
"""


def symptom_table() -> str:
    return json.dumps([[s.symptom, s.signature.pattern, s.cause, s.fix] for s in SYMPTOMS])


def restarted_if_changed(settings: Settings, changes: list[OperationMeta]) -> None:
    # Restart (which also starts a stopped unit) only after a change; then keep it enabled.
    systemd.service(name="Restart sglang.service after a change", service=UNIT, restarted=True,
                    daemon_reload=True, _if=lambda: any(c.did_change() for c in changes))
    systemd.service(name="sglang.service enabled and running", service=UNIT, running=True,
                    enabled=True)


@operation(is_idempotent=True)
def serving(settings: Settings, changes: list[OperationMeta]):
    """Wait for /health 200 and a generate that returns tokens; no change if already healthy
    and nothing was changed in this run.

    + settings: the host's validated settings
    + changes: the operations whose change restarts the server
    """
    restarted = any(change.changed for change in changes)
    running = host.get_fact(SystemdStatus).get(UNIT)
    probe = host.get_fact(PythonJson, python="python3", code=PROBE_CODE,
                          args=(f"http://127.0.0.1:{settings.port}/health",))
    if running and probe.get("status") == 200 and not restarted:
        return
    yield StringCommand(shlex.join(["python3", "-c", CHECK_CODE, str(settings.port),
                                    str(settings.health_timeout_s), UNIT, symptom_table()]))
