"""Stage 6, health: restart only when something changed (or the server is unhealthy), keep the
unit enabled, then wait (bounded) for /health 200 and check that one small generate request
returns tokens.

Example::

    from operations.stages import health
    health.apply(settings, done)   # after the driver, python_env and service stages
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation
from pyinfra.api.operation import OperationMeta
from pyinfra.operations import systemd

from operations import preview, remediation, rollout, runstate, supervisor, survey
from operations.diagnosis import diagnose
from operations.facts.python import PythonJson
from operations.facts.service import HEALTH_CODE, UnitState
from operations.managers import MANAGERS, SERVICE_UNIT, SUPERVISOR_PREFIX, of_host
from operations.outcome import Done, fail
from operations.report import note
from operations.router import leave_commands
from operations.settings import Settings


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
    serving = runstate.current().plan.serving.get(host.name)
    if not any(change.changed for change in changes) and (
            reboot.changed or serving or _health_status(settings) == 200):
        return  # the rollout plan read /health 200 seconds ago: no second probe
    # (a server that does not answer /health 200 has no requests to finish: no drain)
    yield from leave_commands(settings, drain=bool(serving))
    yield of_host(settings.service_manager).restart


def reads(settings: Settings) -> list[survey.Read]:
    """What this stage reads on a run that changes nothing (operations/survey.py): under
    systemd, pyinfra's service reads; under supervisord, the program's state."""
    return [*survey.service_reads(SERVICE_UNIT),
            survey.Read(UnitState, {"unit": MANAGERS["supervisor"].runner})]


def enabled_and_running(settings: Settings) -> None:
    """Under systemd: the unit enabled and running. Under supervisord (started by the system
    packages stage if a container restart left it down): the program runs (autostart: it
    comes back with supervisord)."""
    manager = of_host(settings.service_manager)
    if manager.name == "systemd":
        systemd.service(name="sglang.service enabled and running", service=SERVICE_UNIT,
                        running=True, enabled=True)
        return
    program = manager.runner.removeprefix(SUPERVISOR_PREFIX)
    supervisor.program_running(name=f"supervisor program {program} running", program=program)


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
    yield from remediation.steps(settings, diagnosis)


def apply(settings: Settings, done: Done) -> None:
    """Restart after a change, wait for health (remedied when it fails), record the
    configuration it is healthy with."""
    assert done.reboot and done.venv and done.unit, "runs after the driver, venv, service stages"
    restart = restarted(name="Restart sglang.service after a change or when unhealthy",
                        settings=settings, changes=[done.venv, done.unit], reboot=done.reboot)
    done.restart = restart
    enabled_and_running(settings)
    serving(name="Healthy: /health 200 and a generate returns tokens", settings=settings,
            restart=restart, reboot=done.reboot)
    rollout.recorded(name="Record the configuration it is healthy with", settings=settings)
    preview.watch(stack=done.venv, unit=done.unit, restart=restart)
