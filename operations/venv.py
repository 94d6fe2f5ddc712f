"""A worker's venv as the deploy keeps it: the record of what it should hold, the installer
commands (uv by default, pip by the ``installer`` setting) that install it from the stack's
sources or the fleet's wheelhouse, and the installed SGLang's options cache (pure; the
python_env stage runs them).

Example::

    record = wanted_record(settings, wheelhouse=None)
    for command in install_commands(settings, record):
        print(command)
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from urllib.parse import urlsplit

from pyinfra.api import StringCommand

from operations.facts.venv import SGLANG_OPTIONS_CODE
from operations.settings import Settings
from operations.stacks import UV_VERSION

INSTALLER_LOCK = "installer.lock"  # the wheelhouse's lock of uv, beside requirements.lock
# pip's step options as uv spells them (stacks.Stack.install_steps).
UV_OPTIONS = {"--pre": "--prerelease=allow"}


def pip(venv_dir: str) -> list[str]:
    """The venv's pip, run as a module: a venv made by another tool (uv) may have pip's module
    and no ``bin/pip`` script (seen on the team's GPU host)."""
    return [f"{venv_dir}/bin/python", "-m", "pip"]


def record_path(settings: Settings) -> str:
    return f"{settings.install_dir}/stack.json"



def options_path(settings: Settings) -> str:
    """The installed SGLang's version and accepted flags, read once after each install so that
    a no-op deploy need not import SGLang (seconds on a GPU host) to render the unit."""
    return f"{settings.install_dir}/sglang-options.json"



def write_options(settings: Settings) -> StringCommand:
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



def pip_sources(settings: Settings, index_url: str, extra_index_urls: Sequence[str] = (),
                find_links: Sequence[str] = ()) -> list[str]:
    """pip options for these sources, with the host's proxy and CA bundle."""
    options = ["--disable-pip-version-check", "--index-url", index_url]
    for url in extra_index_urls:
        options += ["--extra-index-url", url]
    for url in find_links:
        options += ["--find-links", url]
    urls = [index_url, *extra_index_urls, *find_links]
    for plain_host in sorted({name for u in urls if u.startswith("http://")
                              and (name := urlsplit(u).hostname)}):
        options += ["--trusted-host", plain_host]  # pip ignores plain-HTTP indexes otherwise
    if settings.pip_proxy:
        options += ["--proxy", settings.pip_proxy]
    if settings.pip_cert:
        options += ["--cert", settings.pip_cert]
    return options



def pip_install(settings: Settings, venv_dir: str, index_url: str,
                extra_index_urls: Sequence[str] = (), find_links: Sequence[str] = ()) -> list[str]:
    """``pip install`` in a venv from these sources."""
    return [*pip(venv_dir), "install",
            *pip_sources(settings, index_url, extra_index_urls, find_links)]



def _uv(settings: Settings, outside: bool = True) -> list[str]:
    """``uv pip install`` into the venv, byte-compiled as pip does; ``outside``: from the
    stack's sources, with the host's proxy and CA bundle as uv reads them (its environment),
    else from the wheelhouse, on the fleet's own network."""
    environment = [f"{name}={settings.pip_proxy}" for name in ("HTTP_PROXY", "HTTPS_PROXY")
                   if settings.pip_proxy and outside]
    if settings.pip_cert and outside:
        environment.append(f"SSL_CERT_FILE={settings.pip_cert}")
    return [*(["env", *environment] if environment else []), f"{settings.venv_dir}/bin/uv",
            "pip", "install", "--python", settings.python, "--compile-bytecode"]


def installer_command(settings: Settings, record: dict) -> str | None:
    """uv put into the venv at its pin, from where the stack comes from; None with pip."""
    if settings.installer != "uv":
        return None
    if record["wheelhouse"]:
        return _locked(settings, record["wheelhouse"], INSTALLER_LOCK)
    return shlex.join([*pip_install(settings, settings.venv_dir, record["index_url"],
                                    record["extra_index_urls"], record["find_links"]),
                       f"uv=={UV_VERSION}"])


def _locked(settings: Settings, url: str, lock: str, uv: bool = False) -> str:
    """A lock of the wheelhouse installed: its files only, each checked against its hash,
    from the worker's own copy of them (wheels_fetch_spec); no pip_proxy or pip_cert: the
    wheelhouse is on the fleet's own network, over plain HTTP."""
    head = _uv(settings, outside=False) if uv else [
        *pip(settings.venv_dir), "install", "--disable-pip-version-check",
        "--trusted-host", urlsplit(url).hostname or url]
    return shlex.join([*head, "--no-index", "--find-links", wheels_staged(settings),
                       "--no-deps", "--require-hashes", "-r", f"{url}/{lock}"])


def wheels_dir(settings: Settings) -> str:
    """Where a worker keeps the wheelhouse's files of its stack while it installs them."""
    return f"{settings.install_dir}/wheels"


def wheels_staged(settings: Settings) -> str:
    # the fetcher's layout (files/model_fetch.py): a snapshot of links to verified blobs
    return f"{wheels_dir(settings)}/hub/models--stack--{settings.stack}/snapshots/locked"


def wheels_fetch_spec(settings: Settings, record: dict, host_name: str) -> dict:
    """The wheelhouse's files of the stack fetched to the worker before they are installed,
    as a model snapshot is (files/model_fetch.py): a cut transfer resumes where it stopped and
    every file is checked against its sha256; the file list is the wheelhouse's."""
    url = record["wheelhouse"]
    return {"host": host_name, "repo": f"stack/{settings.stack}", "commit": "locked",
            "label": f"stack {settings.stack} wheels", "files_url": f"{url}/files.json",
            "listed_by": "the sha256 the wheelhouse locked it with",
            "cache": wheels_dir(settings), "source": {"mirror": f"{url}/files"},
            "stall_timeout_s": settings.model_stall_timeout_s, "progress_every_s": 10,
            "record": f"{wheels_dir(settings)}/verified.json"}


def install_commands(settings: Settings, record: dict) -> list[str]:
    """The stack installed by the host's installer: from the wheelhouse's lock (its files
    fetched first: wheels_fetch_spec), or step by step from the stack's sources."""
    uv = settings.installer == "uv"
    if record["wheelhouse"]:
        return [_locked(settings, record["wheelhouse"], "requirements.lock", uv)]
    if uv:
        sources = ["--index-strategy", "unsafe-best-match",  # pip's: the best version anywhere
                   "--index-url", record["index_url"],
                   *(w for u in record["extra_index_urls"] for w in ("--extra-index-url", u)),
                   *(w for u in record["find_links"] for w in ("--find-links", u))]
        return [shlex.join([*_uv(settings), *sources,
                            *(UV_OPTIONS.get(option, option) for option in options),
                            *requirements])
                for requirements, options in settings.stack_def().steps()]
    install = pip_install(settings, settings.venv_dir, record["index_url"],
                          record["extra_index_urls"], record["find_links"])
    return [shlex.join(install + options + requirements)
            for requirements, options in settings.stack_def().steps()]
