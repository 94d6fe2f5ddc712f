"""Converge every host of the inventory: workers to a healthy SGLang service, gateways to the
router in front of them, the wheelhouse to the fleet's copy of its stacks.

    pyinfra inventory.py deploy.py

Only orders the stages of each role (operations/pipeline.py: the lists; each stage is a module
of operations/stages/). A host runs the stages of its roles only (operations/roles.py); fleet
steps (rollout.fleet_step) keep the fleet moving through the stages together: the wheelhouse is
filled before any worker installs, and the router runs before any worker joins it. On workers,
the rolling stages (the driver to the router membership) run in rolling batches
(operations/rollout.py): a change that restarts or reboots serving hosts goes a batch at a time,
each host in its own batch.
"""

from pyinfra import host
from pyinfra.api import deploy

from operations import pipeline, roles, rollout, run
from operations.outcome import Done
from operations.settings import Settings

settings = run.host_settings("deploy")


@deploy("Worker")
def prepare(settings: Settings, done: Done) -> None:
    for stage in pipeline.WORKER_PREPARE:
        stage.apply(settings, done)


@deploy("Rolling batch")
def converge(settings: Settings, done: Done) -> None:
    for stage in pipeline.WORKER_ROLL:
        stage.apply(settings, done)


if run.allowed():  # else the host fails at once, with what its login or model lacks
    done = Done()
    for stage in pipeline.fleet_services():
        stage.apply(settings, done)
    rollout.fleet_step(name="Fleet: wheelhouse and routers ready before workers change")
    if roles.is_worker():
        prepare(settings=settings, done=done)
        mine = rollout.batch_of_this_host()
        for batch in host.loop(rollout.batch_numbers()):
            if rollout.steps_into(batch, mine):
                rollout.fleet_step(name="Fleet: the batches before are done")
            if batch == mine:
                rollout.roll_goes_on(name="The roll goes on: earlier batches healthy",
                                     number=batch)
                converge(settings=settings, done=done)
