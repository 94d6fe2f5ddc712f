"""Stage 1, preflight: the chart's "before build" checklist. Changes nothing on the host.

Example::

    from operations.stages import preflight
    preflight.apply(settings, Done())
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation

from operations import drivers, preview, runstate, snapshot, survey
from operations.facts.gpu import NvidiaDriver, NvidiaGpus
from operations.facts.host import FreeDiskGb, Pid1, PortListener
from operations.facts.service import UnitState
from operations.managers import MANAGERS, chosen, in_container
from operations.outcome import Done, fail
from operations.readiness import evaluate
from operations.report import note
from operations.settings import Settings


def _disk_paths(settings: Settings) -> list[str]:
    return sorted({settings.install_dir, settings.model_cache_dir})


def reads(settings: Settings) -> list[survey.Read]:
    """What ``checklist`` reads (operations/survey.py)."""
    pin = runstate.current().pins.get(host.name)
    return [survey.Read(NvidiaDriver), survey.Read(NvidiaGpus), survey.Read(Pid1),
            survey.Read(PortListener, {"port": settings.port}),
            survey.Read(UnitState, {"unit": MANAGERS["supervisor"].runner}),
            *(survey.Read(FreeDiskGb, {"path": path}) for path in _disk_paths(settings)),
            *([snapshot.status_read(snapshot.worker_spec(settings, pin))] if pin else [])]


@operation(is_idempotent=True)
def checklist(settings: Settings):
    """Fail the host with one line per failed check; yield nothing when all pass.

    + settings: the host's validated settings
    """
    pin = runstate.current().pins.get(host.name)
    free_gb = {path: host.get_fact(FreeDiskGb, path=path) for path in _disk_paths(settings)}
    model_missing = None
    if pin is not None:  # the model's real size for its commit, less what is staged already
        missing = snapshot.status(snapshot.worker_spec(settings, pin)).get("missing_bytes")
        model_missing = (f"{pin.repo}@{pin.commit[:12]}",
                         snapshot.selected(settings, pin).size if missing is None else missing)
    driver, _, gpus = drivers.read(settings)
    preview.driver(driver)
    pid1 = host.get_fact(Pid1)
    manager = chosen(settings.service_manager, pid1)
    server_pid = 0
    said = []  # which manager, and whose driver, where it is not the usual
    if manager.name == "supervisor":  # its program may hold the port: that is the server
        said.append(f"the server runs under supervisord (PID 1 is {pid1})")
        server_pid = int(host.get_fact(UnitState, unit=manager.runner).get("MainPID") or 0)
    if in_container(pid1):
        said.append("the driver is the container host's, never installed here" + (
            f" (driver_install={settings.driver_install} does not apply)"
            if settings.driver_install != "never" else ""))
    if said:
        note(host.name, "; ".join(said))
    failures = evaluate(settings, gpus=gpus, driver=driver, free_gb=free_gb,
                        port_holders=host.get_fact(PortListener, port=settings.port),
                        pid1=pid1, model_missing=model_missing, server_pid=server_pid)
    if failures:
        lines = [failure.line(host.name) for failure in failures]
        preview.refused(lines)
        yield fail(lines)


def apply(settings: Settings, done: Done) -> None:
    checklist(name="Preflight: the chart's before-build checklist", settings=settings)
