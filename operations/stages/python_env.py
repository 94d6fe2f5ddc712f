"""Stage 4, the Python environment: a venv holding the chosen stack, then two checks that catch
two chart symptoms before any launch (ABI mismatch; no kernel image for sm_120).

Example::

    from operations.stages import python_env
    venv = python_env.stack_installed(settings=settings)
    python_env.stack_checked(settings=settings)
"""

from __future__ import annotations

import json
import shlex
from urllib.parse import urlsplit

from pyinfra import host
from pyinfra.api import StringCommand, operation
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.files import FileContents

from operations import survey
from operations.checks import check_kernel_abi, check_torch_arch, normal_name, pins_missing
from operations.facts.gpu import NvidiaGpus
from operations.facts.python import PythonJson
from operations.facts.venv import SGLANG_OPTIONS_CODE, TORCH_KERNEL_CODE, Distributions, VenvExists
from operations.outcome import fail
from operations.settings import Settings


def record_path(settings: Settings) -> str:
    return f"{settings.install_dir}/stack.json"


def options_path(settings: Settings) -> str:
    """The installed SGLang's version and accepted flags, read once after each install so that
    a no-op deploy need not import SGLang (seconds on a GPU host) to render the unit."""
    return f"{settings.install_dir}/sglang-options.json"


def _write_options(settings: Settings) -> StringCommand:
    path = shlex.quote(options_path(settings))
    return StringCommand(f"{shlex.quote(settings.python)} -c {shlex.quote(SGLANG_OPTIONS_CODE)} "
                         f"> {path}.new && mv {path}.new {path}")


def wanted_record(settings: Settings, wheelhouse: str | None = None) -> dict:
    """What the venv should hold, as recorded on the host after a successful install;
    ``wheelhouse``: the fleet's copy of the stack, installed from instead of the sources."""
    stack = settings.stack_def()
    return {
        "wheelhouse": wheelhouse,
        "stack": stack.name,
        "packages": stack.packages,
        "index_url": settings.pip_index_url or stack.index_url,
        "extra_index_urls": settings.pip_extra_index_urls
        if settings.pip_extra_index_urls is not None else list(stack.extra_index_urls),
        "find_links": settings.pip_find_links
        if settings.pip_find_links is not None else list(stack.find_links),
    }


def pip_sources(settings: Settings, index_url: str, extra_index_urls: list[str] = (),
                find_links: list[str] = ()) -> list[str]:
    """pip options for these sources, with the host's proxy and CA bundle."""
    options = ["--disable-pip-version-check", "--index-url", index_url]
    for url in extra_index_urls:
        options += ["--extra-index-url", url]
    for url in find_links:
        options += ["--find-links", url]
    urls = [index_url, *extra_index_urls, *find_links]
    for plain_host in sorted({urlsplit(u).hostname for u in urls if u.startswith("http://")}):
        options += ["--trusted-host", plain_host]  # pip ignores plain-HTTP indexes otherwise
    if settings.pip_proxy:
        options += ["--proxy", settings.pip_proxy]
    if settings.pip_cert:
        options += ["--cert", settings.pip_cert]
    return options


def pip_install(settings: Settings, venv_dir: str, index_url: str,
                extra_index_urls: list[str] = (), find_links: list[str] = ()) -> list[str]:
    """``pip install`` in a venv from these sources."""
    return [f"{venv_dir}/bin/pip", "install",
            *pip_sources(settings, index_url, extra_index_urls, find_links)]


def pip_commands(settings: Settings, record: dict) -> list[str]:
    if record["wheelhouse"]:
        # The locked files only, each checked against its hash; no pip_proxy or pip_cert: the
        # wheelhouse is on the fleet's own network, over plain HTTP.
        url = record["wheelhouse"]
        return [shlex.join([f"{settings.venv_dir}/bin/pip", "install",
                            "--disable-pip-version-check", "--no-index",
                            "--find-links", f"{url}/files/",
                            "--trusted-host", urlsplit(url).hostname, "--no-deps",
                            "--require-hashes", "-r", f"{url}/requirements.lock"])]
    pip = pip_install(settings, settings.venv_dir, record["index_url"],
                      record["extra_index_urls"], record["find_links"])
    return [shlex.join(pip + options + requirements)
            for requirements, options in settings.stack_def().steps()]


def reads(settings: Settings) -> list[survey.Read]:
    """What ``stack_installed`` reads on a run that changes nothing (operations/survey.py)."""
    return [survey.Read(FileContents, {"path": record_path(settings)}),
            survey.Read(Distributions, {"python": settings.python}),
            survey.Read(FileContents, {"path": options_path(settings)})]


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
            yield _write_options(settings)
        return
    if not venv_ok:
        yield StringCommand(shlex.join(["python3", "-m", "venv", settings.venv_dir]))
    else:
        # pip takes 0.4.10+other-build as satisfying ==0.4.10: remove inexact ones first.
        inexact = [name for name, pin in wanted["packages"].items()
                   if installed.get(normal_name(name)) not in (None, pin)]
        if inexact:
            yield StringCommand(shlex.join([f"{settings.venv_dir}/bin/pip", "uninstall", "-y",
                                            *inexact]))
    yield from (StringCommand(command) for command in pip_commands(settings, wanted))
    # Recorded last: an interrupted install leaves no record and the next run installs again.
    path = shlex.quote(record_path(settings))
    yield StringCommand(f"printf '%s\\n' {shlex.quote(json.dumps(wanted, sort_keys=True))} "
                        f"> {path}.new && mv {path}.new {path}")
    yield _write_options(settings)


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
