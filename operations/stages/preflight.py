"""Stage 1, preflight: the chart's "before build" checklist. Changes nothing on the host.

Example::

    from operations.stages import preflight
    preflight.apply(settings, Done())
"""

from __future__ import annotations

import json

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.files import FileContents

from operations import drivers, preview, runstate, snapshot, survey
from operations.facts.gpu import NvidiaDriver, NvidiaGpus
from operations.facts.host import FreeDisk, Pid1, PortListener
from operations.facts.service import UnitState
from operations.managers import MANAGERS, chosen, in_container
from operations.outcome import Done, fail
from operations.readiness import evaluate
from operations.report import note
from operations.settings import Settings
from operations.venv import record_path


def _disk_paths(settings: Settings) -> list[str]:
    return sorted({settings.install_dir, settings.model_cache_dir})


def reads(settings: Settings) -> list[survey.Read]:
    """What ``checklist`` reads (operations/survey.py)."""
    pin = runstate.current().pins.get(host.name)
    return [survey.Read(NvidiaDriver), survey.Read(NvidiaGpus), survey.Read(Pid1),
            survey.Read(PortListener, {"port": settings.port}),
            survey.Read(UnitState, {"unit": MANAGERS["supervisor"].runner}),
            *(survey.Read(FreeDisk, {"path": path}) for path in _disk_paths(settings)),
            survey.Read(FileContents, {"path": record_path(settings)}),
            *([snapshot.status_read(snapshot.worker_spec(settings, pin))] if pin else [])]


def disk_needs(settings: Settings) -> dict[str, list[tuple[str, float]]]:
    """What this host's disks must take before the stage that fills them: the stack where it is
    not installed yet (its measured size, operations/stacks.py), the model's bytes not staged
    yet (its size from the Hub's file list, less what is staged)."""
    needs: dict[str, list[tuple[str, float]]] = {}
    recorded = host.get_fact(FileContents, path=record_path(settings))
    try:
        installed = json.loads("\n".join(recorded or []) or "{}").get("packages")
    except ValueError:
        installed = None
    stack = settings.stack_def()
    if installed != stack.packages:
        needs[settings.install_dir] = [(f"the stack {stack.name}", stack.disk_gb)]
    pin = runstate.current().pins.get(host.name)
    if pin is not None:
        missing = snapshot.status(snapshot.worker_spec(settings, pin)).get("missing_bytes")
        if missing is None:
            missing = snapshot.selected(settings, pin).size
        if missing:
            needs.setdefault(settings.model_cache_dir, []).append(
                (f"the model {pin.repo}@{pin.commit[:12]}", missing / 1e9))
    return needs


@operation(is_idempotent=True)
def checklist(settings: Settings):
    """Fail the host with one line per failed check; yield nothing when all pass.

    + settings: the host's validated settings
    """
    disks = {path: host.get_fact(FreeDisk, path=path) for path in _disk_paths(settings)}
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
    failures = evaluate(settings, gpus=gpus, driver=driver, disks=disks,
                        port_holders=host.get_fact(PortListener, port=settings.port),
                        pid1=pid1, needs=disk_needs(settings), server_pid=server_pid)
    if failures:
        lines = [failure.line(host.name) for failure in failures]
        preview.refused(lines)
        yield fail(lines)


def apply(settings: Settings, done: Done) -> None:
    checklist(name="Preflight: the chart's before-build checklist", settings=settings)
