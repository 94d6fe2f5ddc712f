"""A worker's venv as the deploy keeps it: the record of what it should hold, the pip commands
that install it from the stack's sources or the fleet's wheelhouse, and the installed SGLang's
options cache (pure; the python_env stage runs them).

Example::

    record = wanted_record(settings, wheelhouse=None)
    for command in pip_commands(settings, record):
        print(command)
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from urllib.parse import urlsplit

from pyinfra.api import StringCommand

from operations.facts.venv import SGLANG_OPTIONS_CODE
from operations.settings import Settings


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



def pip_commands(settings: Settings, record: dict) -> list[str]:
    if record["wheelhouse"]:
        # The locked files only, each checked against its hash; no pip_proxy or pip_cert: the
        # wheelhouse is on the fleet's own network, over plain HTTP.
        url = record["wheelhouse"]
        return [shlex.join([*pip(settings.venv_dir), "install",
                            "--disable-pip-version-check", "--no-index",
                            "--find-links", f"{url}/files/",
                            "--trusted-host", urlsplit(url).hostname, "--no-deps",
                            "--require-hashes", "-r", f"{url}/requirements.lock"])]
    install = pip_install(settings, settings.venv_dir, record["index_url"],
                          record["extra_index_urls"], record["find_links"])
    return [shlex.join(install + options + requirements)
            for requirements, options in settings.stack_def().steps()]
