"""The chart's fixes, applied: bounded steps from a diagnosed symptom back to a healthy server.

Which fix answers which symptom is data (REMEDIES). A step either fixes the host (a package, the
stack's exact pins) or records a fallback (profile, memory, environment) in a small state file
on the host, ``<install_dir>/fallback.json``. The service stage renders the unit with the
recorded fallbacks on top of the host's settings, so a later deploy keeps them, and diagnose
shows them, until an operator removes the file.

Example::

    yield from remediation.steps(settings, diagnosis)   # inside an operation
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from pyinfra import host
from pyinfra.api import StringCommand
from pyinfra.facts.files import FileContents

from operations.diagnosis import Diagnosis, diagnose
from operations.facts.host import LibnumaLinked
from operations.facts.python import PythonJson
from operations.facts.service import WAIT_CODE, JournalTail, UnitState
from operations.managers import of_host
from operations.outcome import fail
from operations.report import note
from operations.server_files import written
from operations.settings import Settings
from operations.snapshot import restage_command
from operations.venv import install_commands, installer_command, pip, wanted_record

MAX_STEPS = 3

# symptom key -> remedies to try, in order (each at most once, except where repeated).
REMEDIES: dict[str, list[str]] = {
    "libnuma-missing": ["install-libnuma"],
    "abi-mismatch": ["reinstall-stack"],
    "no-kernel-image": ["reinstall-stack", "arch-list-ptx"],
    "segfault": ["minimal-stable-fallback"],
    "health-503": ["lower-memory", "lower-memory", "lower-memory"],
    "model-not-staged": ["restage-model"],
    "quantization-mismatch": [],  # the settings are wrong: said, not changed behind the user
    # The driver: the deploy's driver stage installs and reboots (driver_install), never a
    # diagnosis behind the user's back.
    "driver-pending-reboot": [],
    "nouveau-loaded": [],
    "proprietary-on-blackwell": [],
    "driver-too-old": [],
    "driver-missing": [],
    "no-devices": [],
}


@dataclass(frozen=True)
class Step:
    remedy: str
    description: str
    commands: list[str] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)


def state_path(settings: Settings) -> str:
    return f"{settings.install_dir}/fallback.json"


def read_record(settings: Settings) -> dict[str, Any]:
    lines = host.get_fact(FileContents, path=state_path(settings))
    try:
        return json.loads("\n".join(lines)) if lines else {}
    except ValueError:
        return {}


def effective(settings: Settings, record: dict[str, Any]) -> Settings:
    """The host's settings with the recorded fallbacks on top."""
    return replace(settings, **record.get("overrides", {})) if record else settings


def plan(symptom_key: str | None, settings: Settings, tried: list[str],
         restage: str | None = None) -> Step | None:
    """The next remedy for a symptom, or None when the table has no (further) one (pure).
    ``restage``: the command that stages the host's pinned model again, if it has one."""
    remaining = list(REMEDIES.get(symptom_key or "", []))
    for done in tried:
        if done in remaining:
            remaining.remove(done)
    if not remaining:
        return None
    remedy = remaining[0]
    profile = settings.profile_def()
    if remedy == "install-libnuma":
        return Step(remedy, "install libnuma1 and libnuma-dev",
                    ["DEBIAN_FRONTEND=noninteractive apt-get install -y -q libnuma1 libnuma-dev"])
    if remedy == "reinstall-stack":
        names = list(settings.stack_def().packages)
        record = wanted_record(settings)
        return Step(remedy, "reinstall the stack's exact pins (the kernel that matches torch)",
                    [shlex.join([*pip(settings.venv_dir), "uninstall", "-y", *names]),
                     *filter(None, [installer_command(settings, record)]),
                     *install_commands(settings, record)])
    if remedy == "arch-list-ptx":
        return Step(remedy, 'set TORCH_CUDA_ARCH_LIST="12.0+PTX"',
                    overrides={"environment": {**settings.environment,
                                               "TORCH_CUDA_ARCH_LIST": "12.0+PTX"}})
    if remedy == "minimal-stable-fallback":
        return Step(remedy, f"fall back from profile {settings.profile} to minimal-stable "
                    "(CUDA graph off, FlashInfer off, torch_native attention), extra flags "
                    "dropped", overrides={"profile": "minimal-stable", "extra_flags": []})
    if remedy == "restage-model":
        if restage is None:
            return None  # a local model directory, or nothing pinned: nothing to fetch
        return Step(remedy, "stage the pinned model snapshot again, every file verified",
                    [restage])
    if remedy == "lower-memory":
        fraction = settings.mem_fraction_static or profile.mem_fraction_static
        tokens = settings.max_total_tokens or profile.max_total_tokens
        lower = {"mem_fraction_static": round(max(0.65, fraction - 0.1), 2),
                 "max_total_tokens": max(1024, tokens // 4)}
        if (lower["mem_fraction_static"], lower["max_total_tokens"]) == (fraction, tokens):
            return None  # already at the chart's 0.65 / 1024
        return Step(remedy, f"lower memory: --mem-fraction-static {fraction:g} -> "
                    f"{lower['mem_fraction_static']:g}, --max-total-tokens {tokens} -> "
                    f"{lower['max_total_tokens']}", overrides=lower)
    raise ValueError(f"no such remedy {remedy!r}")


def wait_evidence(wait: dict[str, Any], **read: Any) -> dict[str, Any]:
    """What diagnose reads after a health wait (files/health_wait.py's answer), with what else
    was ``read`` from the host (unit, journal, libnuma)."""
    if wait.get("error"):  # the wait itself failed to run
        wait = {"reason": wait["error"]}
    return {"wait": wait,
            "health": {"status": 200 if wait.get("healthy") else 503 if "503" in
                       wait.get("reason", "") else 0},
            "generate": {"tokens": wait.get("tokens", 0)}, **read}


def health_now(settings: Settings, timeout_s: int) -> dict[str, Any]:
    """Wait (bounded) for /health 200 and a generate; then read what diagnose needs."""
    runner = of_host(settings.service_manager).runner
    wait = host.get_fact(PythonJson, python="python3", code=WAIT_CODE,
                         args=(str(settings.port), str(timeout_s), runner))
    return wait_evidence(wait, unit=host.get_fact(UnitState, unit=runner),
                         journal=host.get_fact(JournalTail, unit=runner),
                         libnuma=host.get_fact(LibnumaLinked))


def _write_record(settings: Settings, record: dict[str, Any]) -> StringCommand:
    path = shlex.quote(state_path(settings))
    return StringCommand(f"printf '%s\\n' {shlex.quote(json.dumps(record, sort_keys=True))} "
                         f"> {path}.new && mv {path}.new {path}")


def steps(settings: Settings, diagnosis: Diagnosis) -> Iterator[StringCommand]:
    """Apply remedies until healthy, at most MAX_STEPS; fail the host with the original error
    and every step taken if it stays unhealthy; a fallback rewrites the unit for its settings
    (operations/server_files.py)."""
    record = read_record(settings)
    original = diagnosis
    tried: list[str] = []
    taken: list[str] = []
    while not diagnosis.healthy and len(tried) < MAX_STEPS:
        current = effective(settings, record)
        step = plan(diagnosis.symptom.key if diagnosis.symptom else None, current, tried,
                    restage_command(current))
        if step is None:
            break
        tried.append(step.remedy)
        taken.append(step.description)
        yield from (StringCommand(command) for command in step.commands)
        if step.overrides:
            record = {"overrides": {**record.get("overrides", {}), **step.overrides},
                      "history": record.get("history", [])}
            yield from written(effective(settings, record))
        record.setdefault("history", []).append({
            "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "remedy": step.description,
            "symptom": diagnosis.symptom.symptom if diagnosis.symptom else None,
            "evidence": diagnosis.evidence_line})
        yield _write_record(settings, record)
        yield StringCommand(of_host(settings.service_manager).restart)
        diagnosis = diagnose(health_now(settings, settings.health_timeout_s))
    if diagnosis.healthy:
        note(host.name, f"remediated: {'; '.join(taken)}; healthy again")
        return
    lines = [f"{host.name}: unhealthy: {line.split(': ', 1)[1]}"
             for line in original.lines(host.name)[:1]]
    lines += [f"{host.name}: applied: {description}" for description in taken] or [
        f"{host.name}: no remedy in the chart's table for this"]
    lines += [f"{host.name}: still: {line.split(': ', 1)[1]}"
              for line in diagnosis.lines(host.name)] if taken else original.lines(host.name)[1:]
    yield fail(lines)
