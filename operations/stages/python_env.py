"""Stage 4, the Python environment: a venv holding the chosen stack, then two checks that catch
two chart symptoms before any launch (ABI mismatch; no kernel image for sm_120).

Example::

    from operations.stages import python_env
    python_env.apply(settings, done)   # done.venv: the install
"""

from __future__ import annotations

import functools
import json
import shlex

from pyinfra import host
from pyinfra.api import StringCommand, operation
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.files import FileContents

from operations import roles, survey
from operations.checks import check_kernel_abi, check_torch_arch, normal_name, pins_missing
from operations.facts.gpu import NvidiaGpus
from operations.facts.python import PythonJson
from operations.facts.venv import TORCH_KERNEL_CODE, Distributions, VenvExists
from operations.outcome import Done, fail
from operations.settings import Settings
from operations.snapshot import fetch_command, fetched
from operations.stacks import UV_VERSION
from operations.venv import (
    install_commands,
    installer_command,
    options_path,
    pip,
    record_path,
    wanted_record,
    wheels_dir,
    wheels_fetch_spec,
    write_options,
)
from operations.watch import streamed, watched


def reads(settings: Settings) -> list[survey.Read]:
    """What ``stack_installed`` reads on a run that changes nothing (operations/survey.py)."""
    return [survey.Read(FileContents, {"path": record_path(settings)}),
            survey.Read(Distributions, {"python": settings.python}),
            survey.Read(FileContents, {"path": options_path(settings)})]


def _installed(stack: str, installer: str, where: str,
               lines: list[str]) -> str:  # noqa: ARG001 (a summary)
    return f"stack {stack}: installed by {installer} from {where}"


@operation(is_idempotent=True)
def stack_installed(settings: Settings, wheelhouse: str | None = None):
    """Create the venv and install the stack's exact pins, only when what the host has differs.

    + settings: the host's validated settings
    + wheelhouse: the fleet's locked copy of the stack (roles.wheelhouse_url), if it has one
    """
    wanted = wanted_record(settings, wheelhouse)
    recorded = host.get_fact(FileContents, path=record_path(settings))
    installed = host.get_fact(Distributions, python=settings.python)
    venv_ok = "error" not in installed
    current = venv_ok and not pins_missing(wanted["packages"], installed) and recorded and \
        json.loads("\n".join(recorded)) == wanted
    if current:
        if not host.get_fact(FileContents, path=options_path(settings)):
            yield write_options(settings)
        return
    if not venv_ok:
        yield StringCommand(shlex.join(["python3", "-m", "venv", settings.venv_dir]))
    else:
        # pip takes 0.4.10+other-build as satisfying ==0.4.10: remove inexact ones first.
        inexact = [name for name, pin in wanted["packages"].items()
                   if installed.get(normal_name(name)) not in (None, pin)]
        if inexact:
            yield StringCommand(shlex.join([*pip(settings.venv_dir), "uninstall", "-y",
                                            *inexact]))
    stack = settings.stack_def()
    if wanted["wheelhouse"]:  # its files here first: a cut transfer resumes next time
        yield streamed(fetch_command(wheels_fetch_spec(settings, wanted, host.name)),
                       summary=functools.partial(fetched, f"stack {stack.name}"))
    bootstrap = installer_command(settings, wanted)
    if bootstrap and (not venv_ok or installed.get("uv") != UV_VERSION):
        yield StringCommand(bootstrap)
    for command in install_commands(settings, wanted):  # its progress said while it runs
        yield streamed(watched(f"stack {stack.name} installing", settings.venv_dir,
                               stack.disk_gb * 1e9, command),
                       summary=functools.partial(_installed, stack.name, settings.installer,
                                                 wanted["wheelhouse"] or wanted["index_url"]))
    # Recorded last: an interrupted install leaves no record and the next run installs again.
    path = shlex.quote(record_path(settings))
    yield StringCommand(f"printf '%s\\n' {shlex.quote(json.dumps(wanted, sort_keys=True))} "
                        f"> {path}.new && mv {path}.new {path}")
    if wanted["wheelhouse"]:  # installed: the wheelhouse keeps them
        yield StringCommand(f"rm -rf {shlex.quote(wheels_dir(settings))}")
    yield write_options(settings)


@operation(is_idempotent=True)
def stack_checked(settings: Settings, venv: OperationMeta):
    """Import the kernel package next to torch and check torch's arch list covers every GPU,
    whenever this run changed the venv.

    + settings: the host's validated settings
    + venv: the stack install operation of this run
    """
    stack = settings.stack_def()
    if not venv.changed:
        return  # checked when it was installed; drift from the pins reinstalls, then checks
    if not host.get_fact(VenvExists, venv=settings.venv_dir):
        return  # prepare phase of a first run: the venv is created by the stage before
    result = host.get_fact(PythonJson, python=settings.python, code=TORCH_KERNEL_CODE,
                           args=(stack.torch_module, stack.kernel_module))
    evidence = {"torch": result, "gpus": host.get_fact(NvidiaGpus)}
    failed = [finding for finding in (check_kernel_abi(settings, evidence),
                                      check_torch_arch(settings, evidence)) if not finding.ok]
    if failed:  # a failed torch import fails both checks with the same words: say it once
        yield fail(list(dict.fromkeys(
            f"{host.name}: venv check failed: {finding.message(host.name).split(': ', 2)[2]}"
            for finding in failed)))


def apply(settings: Settings, done: Done) -> None:
    """The stack installed, then checked when it changed; records the install."""
    done.venv = stack_installed(name="Python venv holds the stack's exact pins",
                                settings=settings,
                                wheelhouse=roles.wheelhouse_url(settings.stack))
    stack_checked(name="Kernel package imports next to torch; arch list covers the GPUs",
                  settings=settings, venv=done.venv)
