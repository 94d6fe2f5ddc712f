"""The plan a preview shows: ``pyinfra inventory.py deploy.py --dry [--diff]`` ends with which
hosts would change their stack, get a new unit, restart (and in which rolling batch) or fail
preflight. It is read from the same operations and the same rollout plan the real run follows.

Example::

    preview.watch(stack=done.venv)       # at deploy load (the health stage); read at the end
    print("\\n".join(preview.lines()))
"""

from __future__ import annotations

import hashlib
import re
import sys

from pyinfra import host, logger, state
from pyinfra.api.operation import OperationMeta
from pyinfra.api.output import format_text
from pyinfra.api.state import StateStage
from pyinfra.facts.files import FileContents, Sha256File
from pyinfra.operations.util.files import generate_color_diff

from operations import runstate
from operations.drivers import DriverPlan

WATCHED: dict[str, dict[str, OperationMeta]] = {}
REFUSED: dict[str, list[str]] = {}  # host -> why it fails before any change
DRIVER: dict[str, str] = {}  # host -> what the driver stage does there (it reboots)


def watch(**operations: OperationMeta) -> None:
    """Remember this host's operations that a plan line is about (stack, unit, restart)."""
    WATCHED.setdefault(host.name, {}).update(operations)


def driver(plan: DriverPlan) -> None:
    """What the driver stage will do on this host, when it does anything."""
    if plan.acts and not plan.refusals:
        DRIVER[host.name] = plan.summary()


def refused(lines: list[str]) -> None:
    """This host fails before changing anything (preflight): the lines it would fail with."""
    REFUSED[host.name] = lines


# Environment lines whose value is a secret by its name: shown masked.
_SECRET_NAME = re.compile(r"^([A-Z0-9_]*(TOKEN|KEY|SECRET|PASSWORD)[A-Z0-9_]*)=.*$")


def show_diff(path: str, wanted: str) -> None:
    """Under ``--diff``, before a run: what pyinfra shows for its own files (``Will modify``
    and the changed lines), for a file a stage writes itself; secret values masked. Reads the
    host's copy only then."""
    if not state.config.DIFF or state.is_executing:
        return
    if host.get_fact(Sha256File, path=path) == hashlib.sha256(wanted.encode()).hexdigest():
        return
    current = host.get_fact(FileContents, path=path)

    def masked(lines: list[str]) -> list[str]:
        return [_SECRET_NAME.sub(r"\1=(secret, not shown)", line.rstrip("\n")) + "\n"
                for line in lines]

    host.log(f"Will {'modify' if current else 'create'} {format_text(path, bold=True)}",
             logger.info)
    for line in generate_color_diff(masked(current or []), masked(wanted.splitlines())):
        logger.info("  %s", line)
    logger.info("")


def dry() -> bool:
    """``--dry`` was given: known while the deploy loads (pyinfra keeps it in its command line
    only), when a preview must not take the run lock."""
    return "--dry" in sys.argv[1:]


def is_preview() -> bool:
    """A run that stopped after detecting changes: ``--dry``, or a run not confirmed."""
    return state.current_stage == StateStage.Prepare and state.should_check_for_changes()


def _changing(what: str) -> list[str]:
    return [name for name, operations in WATCHED.items() if name not in REFUSED
            and operations.get(what) is not None and operations[what]._maybe_is_change]


def lines() -> list[str]:
    """The plan, a line per kind of change; hosts in inventory order."""
    order = {h.name: number for number, h in enumerate(state.inventory)}
    listed = lambda names: ", ".join(sorted(names, key=lambda n: order.get(n, 0))) or "none"  # noqa: E731
    restarting = set(_changing("restart"))
    batches = [[n for n in members if n not in REFUSED]
               for members in runstate.current().plan.batches()]
    found = [f"install or change the stack: {listed(_changing('stack'))}",
             f"write a new unit: {listed(_changing('unit'))}"]
    at_once = [n for n in batches[0] if n in restarting] if batches else []
    if at_once:
        found.append(f"(re)start at once, nothing to roll (not serving yet): {listed(at_once)}")
    for number, members in enumerate(batches[1:], start=1):
        if not members:
            continue
        found.append(f"restart in rolling batch {number} (each batch healthy before the next): "
                     f"{listed(members)}")
    if not restarting and not any(batches[1:]):
        found.append("restart: none")
    for name, what in sorted(DRIVER.items(), key=lambda item: order.get(item[0], 0)):
        if name not in REFUSED:
            found.append(f"{name}: {what}")
    for name, why in sorted(REFUSED.items(), key=lambda item: order.get(item[0], 0)):
        found.append(f"fail preflight, changing nothing: {name}")
        found.extend(f"  {line}" for line in why)
    return found
