"""Converge every host of the inventory: workers to a healthy SGLang service, gateways to the
router in front of them, the wheelhouse to the fleet's copy of its stacks.

    pyinfra inventory.py deploy.py

Only orders the stages; each stage is a module of operations/. Every host declares every stage
and each stage runs only on its role's hosts (operations/roles.py), so the fleet moves through
the stages together: the wheelhouse is filled before any worker installs, and the router runs
before any worker joins it. On workers, stages 4 to 6 run in rolling batches
(operations/rollout.py): a change that restarts serving hosts goes a batch at a time.
"""

from pyinfra import host
from pyinfra.api import deploy

from operations import (
    gateway,
    health,
    preflight,
    python_env,
    roles,
    rollout,
    run,
    service,
    system_packages,
    weights,
    wheelhouse,
)
from operations.settings import Settings

settings = run.host_settings("deploy")


@deploy("Worker")
def prepare(settings: Settings) -> None:
    preflight.checklist(name="Preflight: the chart's before-build checklist", settings=settings)
    system_packages.install(settings)
    weights.on_worker(settings)
    rollout.planned(name="Rollout plan: serving now, and with which configuration",
                    settings=settings)


@deploy("Rolling batch")
def converge(settings: Settings) -> None:
    venv = python_env.stack_installed(name="Python venv holds the stack's exact pins",
                                      settings=settings,
                                      wheelhouse=roles.wheelhouse_url(settings.stack))
    python_env.stack_checked(name="Kernel package imports next to torch; arch list covers the "
                             "GPUs", settings=settings, venv=venv)
    unit = service.configured(name="sglang.service rendered, dry-parsed and written",
                              settings=settings)
    restart = health.restarted(name="Restart sglang.service after a change or when unhealthy",
                               settings=settings, changes=[venv, unit])
    health.enabled_and_running()
    health.serving(name="Healthy: /health 200 and a generate returns tokens", settings=settings,
                   restart=restart)
    rollout.recorded(name="Record the configuration it is healthy with", settings=settings)
    gateway.joined(name="In every router, healthy", settings=settings)


if run.allowed():  # else the host fails at once, with what its login or model lacks
    wheelhouse.serve(settings, _if=roles.is_wheelhouse)
    gateway.install(settings, _if=roles.is_gateway)
    prepare(settings, _if=roles.is_worker)
    for batch in host.loop(rollout.batch_numbers()):
        converge(settings, _if=rollout.turn(host.name, batch))
