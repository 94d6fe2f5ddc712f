"""Stage 6, health: restart only when something changed (or the server is unhealthy), keep the
unit enabled, then wait (bounded) for /health 200 and check that one small generate request
returns tokens.

Example::

    from operations.stages import health
    restart = health.restarted(settings=settings, changes=[venv, unit], reboot=reboot)
    health.serving(settings=settings, restart=restart, reboot=reboot)
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation
from pyinfra.api.operation import OperationMeta
from pyinfra.operations import systemd

from operations import remediation, rollout, survey
from operations.diagnosis import diagnose
from operations.facts.python import PythonJson
from operations.facts.service import HEALTH_CODE
from operations.outcome import fail
from operations.report import note
from operations.settings import Settings
from operations.stages import gateway, service
from operations.stages.preflight import SERVICE_UNIT


def _health_status(settings: Settings) -> int:
    probe = host.get_fact(PythonJson, python="python3", code=HEALTH_CODE,
                          args=(f"http://127.0.0.1:{settings.port}/health",))
    return int(probe.get("status", 0))


@operation(is_idempotent=True)
def restarted(settings: Settings, changes: list[OperationMeta], reboot: OperationMeta):
    """Restart the server after a change, or when it does not answer /health 200 now (the fix
    may be outside the unit: a library the stage before installed again); not after this run's
    reboot alone (the boot started it).

    + settings: the host's validated settings
    + changes: the operations whose change restarts the server
    + reboot: the driver stage's reboot of this run
    """
    if not any(change.changed for change in changes) and (
            reboot.changed or rollout.PLAN.serving.get(host.name)
            or _health_status(settings) == 200):
        return  # the rollout plan read /health 200 seconds ago: no second probe
    yield from gateway.leave_commands(settings)
    yield "systemctl daemon-reload"
    yield f"systemctl restart {SERVICE_UNIT}"


def reads() -> list[survey.Read]:
    """What this stage reads on a run that changes nothing (operations/survey.py)."""
    return survey.service_reads(SERVICE_UNIT)


def enabled_and_running() -> None:
    systemd.service(name="sglang.service enabled and running", service=SERVICE_UNIT, running=True,
                    enabled=True)


@operation(is_idempotent=True)
def serving(settings: Settings, restart: OperationMeta, reboot: OperationMeta):
    """After a restart or a reboot, wait (bounded) for /health 200 and a generate that returns
    tokens; if that fails, name the chart symptom and (``remediate``) apply its fix, bounded.

    + settings: the host's validated settings
    + restart: the restart operation of this run
    + reboot: the driver stage's reboot of this run
    """
    if not restart.changed and not reboot.changed:
        return  # it answered 200 before this run and nothing changed
    diagnosis = diagnose(remediation.health_now(settings, settings.health_timeout_s))
    if diagnosis.healthy:
        return
    note(host.name, diagnosis.lines(host.name)[0].split(": ", 1)[1])
    if not settings.remediate:
        yield fail(diagnosis.lines(host.name))
        return
    yield from remediation.steps(settings, diagnosis, service.written)
