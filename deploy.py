"""Converge every host of the inventory: workers to a healthy SGLang service, gateways to the
router in front of them, the wheelhouse to the fleet's copy of its stacks.

    pyinfra inventory.py deploy.py

Only orders the stages; each stage is a module of operations/. A host declares the stages of
its roles only (operations/roles.py); fleet steps (rollout.fleet_step) keep the fleet moving
through the stages together: the wheelhouse is filled before any worker installs, and the router
runs before any worker joins it. On workers, the driver stage and stages 4 to 6 run
in rolling batches (operations/rollout.py): a change that restarts or reboots serving hosts goes
a batch at a time, each host in its own batch.
"""

from pyinfra import host
from pyinfra.api import deploy

from operations import preview, roles, rollout, run
from operations.settings import Settings
from operations.stages import (
    driver,
    gateway,
    health,
    preflight,
    python_env,
    service,
    system_packages,
    weights,
    wheelhouse,
)

settings = run.host_settings("deploy")


@deploy("Worker")
def prepare(settings: Settings) -> None:
    preflight.checklist(name="Preflight: the chart's before-build checklist", settings=settings)
    system_packages.install(settings)
    weights.on_worker(settings)


@deploy("Rolling batch")
def converge(settings: Settings) -> None:
    reboot = driver.install(settings)
    venv = python_env.stack_installed(name="Python venv holds the stack's exact pins",
                                      settings=settings,
                                      wheelhouse=roles.wheelhouse_url(settings.stack))
    python_env.stack_checked(name="Kernel package imports next to torch; arch list covers the "
                             "GPUs", settings=settings, venv=venv)
    unit = service.configured(name="sglang.service rendered, dry-parsed and written",
                              settings=settings)
    restart = health.restarted(name="Restart sglang.service after a change or when unhealthy",
                               settings=settings, changes=[venv, unit], reboot=reboot)
    health.enabled_and_running()
    health.serving(name="Healthy: /health 200 and a generate returns tokens", settings=settings,
                   restart=restart, reboot=reboot)
    rollout.recorded(name="Record the configuration it is healthy with", settings=settings)
    preview.watch(stack=venv, unit=unit, restart=restart)
    gateway.joined(name="In every router, healthy", settings=settings)


if run.allowed():  # else the host fails at once, with what its login or model lacks
    if roles.is_wheelhouse():
        wheelhouse.serve(settings)
    if roles.is_gateway():
        gateway.install(settings)
    rollout.fleet_step(name="Fleet: wheelhouse and routers ready before workers change")
    if roles.is_worker():
        prepare(settings)
        mine = rollout.batch_of_this_host()
        for batch in host.loop(rollout.batch_numbers()):
            if rollout.steps_into(batch, mine):
                rollout.fleet_step(name="Fleet: the batches before are done")
            if batch == mine:
                rollout.roll_goes_on(name="The roll goes on: earlier batches healthy",
                                     number=batch)
                converge(settings)
