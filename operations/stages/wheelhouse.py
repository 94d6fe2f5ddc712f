"""The wheelhouse: a host of the inventory group ``sglang_wheelhouse`` fetches each stack the
fleet uses from outside once, locks every file with its sha256, and serves them on the fleet's
network; workers install from there only, with ``--require-hashes``. It also runs apt-cacher-ng,
so the fleet's apt packages cross the uplink once. A stack stays fetched: a dated nightly keeps
installing after the upstream index has dropped it.

The wheelhouse host must run the workers' OS release (the same Python): it resolves the stack as
the workers' pip would.

Example::

    # fleet.py
    gpu_servers = ["gpu-01", "gpu-02"]
    sglang_wheelhouse = ["infra-01"]
"""

from __future__ import annotations

import functools
import hashlib
import json
import shlex
from io import StringIO

from pyinfra import host
from pyinfra.api import StringCommand, deploy, operation
from pyinfra.facts.files import File, FileContents
from pyinfra.operations import apt, files, systemd

from operations import FILES_DIR, restarts, survey
from operations.facts.host import Pid1
from operations.outcome import Done, refused_without_systemd
from operations.roles import address, settings_of, workers
from operations.settings import Settings
from operations.snapshot import (
    MIRROR_PATH,
    fleet_pins,
    fleet_selection,
    list_reads,
    list_written,
    staged,
    status_read,
    token_kept,
    token_reads,
    wheelhouse_cache,
    wheelhouse_job,
)
from operations.stacks import UV_VERSION
from operations.venv import pip_sources, wanted_record
from operations.watch import streamed, watched

SITE = "/etc/nginx/conf.d/sglang-wheelhouse.conf"
OLD_UNIT = "sglang-wheelhouse.service"  # Python's http.server, before nginx
APT_CACHE_CONF = "/etc/apt-cacher-ng/sglang-fleet.conf"  # read after acng.conf
STACK_FETCH_CODE = (FILES_DIR / "wheelhouse_fetch.py").read_text()


def apt_cache_conf(settings: Settings) -> str:
    """Conservative upstream use: a new connection per download, one request at a time, and
    retries (the lab's egress proxy saw failed downloads passed on to apt as 503s)."""
    lines = ["ReuseConnections: 0", "PipelineDepth: 1", "DlMaxRetries: 5"]
    if settings.apt_upstream_proxy:
        lines.append(f"Proxy: {settings.apt_upstream_proxy}")
    return "\n".join(lines) + "\n"


def fetch_spec(settings: Settings, worker: Settings) -> dict:
    """What to fetch for a worker's stack and uv (the default installer), from the worker's
    sources, through the wheelhouse host's own proxy and CA bundle; its digest names it."""
    record = wanted_record(worker)
    steps = worker.stack_def().steps()
    sources = pip_sources(settings, record["index_url"], record["extra_index_urls"],
                          record["find_links"])
    installer = [f"uv=={UV_VERSION}"]
    digest = hashlib.sha256(json.dumps([record, steps, installer],
                                       sort_keys=True).encode()).hexdigest()
    return {"sources": sources, "steps": steps, "installer": installer, "digest": digest}


def stacks_dir(settings: Settings) -> str:
    return f"{settings.wheelhouse_dir}/stacks"


@operation(is_idempotent=True)
def stack_fetched(settings: Settings, worker: Settings):
    """The worker's stack, fetched and locked once; fetched again only when its pins or sources
    change.

    + settings: the wheelhouse's validated settings
    + worker: a worker's validated settings (its stack and sources)
    """
    spec = fetch_spec(settings, worker)
    stack_dir = f"{stacks_dir(settings)}/{worker.stack}"
    if host.get_fact(FileContents, path=f"{stack_dir}/stack.sha256") == [spec["digest"]]:
        return
    tool = f"{settings.wheelhouse_dir}/tool-venv"
    yield StringCommand(f"test -x {tool}/bin/python || python3 -m venv {tool}")
    fetch = shlex.join([f"{tool}/bin/python", "-c", STACK_FETCH_CODE, stack_dir,
                        json.dumps(spec)])
    yield streamed(watched(f"stack {worker.stack} fetching", stack_dir, 0, fetch),
                   summary=functools.partial(_fetched, worker.stack))


def _fetched(stack: str, lines: list[str]) -> str:
    done = next((line for line in reversed(lines) if " GB in " in line), "")
    return f"stack {stack}: fetched and locked" + (f" ({done.split(': ', 1)[1]})" if done else "")


def reads(settings: Settings) -> list[survey.Read]:
    """What ``apply`` reads on a run that changes nothing (operations/survey.py)."""
    stacks = {s.stack for s in map(settings_of, workers())}
    return [survey.Read(Pid1), *survey.apt_reads(), *survey.put_reads(APT_CACHE_CONF),
            *survey.service_reads("apt-cacher-ng.service"),
            *(survey.Read(FileContents, {"path": f"{stacks_dir(settings)}/{stack}/stack.sha256"})
              for stack in sorted(stacks)),
            *wheelhouse_reads(settings, stacks_dir(settings)),
            survey.Read(File, {"path": f"/etc/systemd/system/{OLD_UNIT}"}),
            *survey.put_reads(SITE), *survey.service_reads("nginx.service")]


@deploy("Wheelhouse")
def apply(settings: Settings, done: Done) -> None:
    """apt-cacher-ng for the fleet's apt, each worker stack fetched and locked, each pinned
    model fetched and verified, and the files served over HTTP."""
    if refused_without_systemd("wheelhouse"):
        return
    apt.packages(name="Install apt-cacher-ng and Python venv tooling",
                 packages=["apt-cacher-ng", "nginx", "python3-venv", "ca-certificates"],
                 update=True,
                 cache_time=24 * 3600, extra_install_args="--no-install-recommends")
    conf = files.put(name="apt-cacher-ng: upstream proxy and retries",
                     src=StringIO(apt_cache_conf(settings)), dest=APT_CACHE_CONF)
    restarts.after(name="apt-cacher-ng restarted after a change", service="apt-cacher-ng",
                   changes=[conf])
    systemd.service(name="apt-cacher-ng running", service="apt-cacher-ng", running=True,
                    enabled=True)
    fleet = {s.stack: s for s in map(settings_of, workers())}
    for stack in host.loop(sorted(fleet)):
        stack_fetched(name=f"Stack {stack} fetched and locked", settings=settings,
                      worker=fleet[stack])
    on_wheelhouse(settings, stacks_dir(settings))
    python_server_retired(name=f"{OLD_UNIT} (Python's http.server) retired")
    site = files.template(
        name="nginx: the stacks and models, to the fleet's workers only",
        src=str(FILES_DIR / "sglang-wheelhouse.nginx.conf.j2"), dest=SITE,
        settings=settings, root=stacks_dir(settings),
        allowed=sorted({address(w) for w in workers()}))
    restarts.after(name="nginx reloaded after a change", service="nginx", changes=[site],
                   reload=True)
    systemd.service(name="nginx enabled and running", service="nginx", running=True,
                    enabled=True)


@operation(is_idempotent=True)
def python_server_retired():
    """The wheelhouse's earlier server (a unit running Python's http.server on the port nginx
    now serves) stopped and removed."""
    if host.get_fact(File, path=f"/etc/systemd/system/{OLD_UNIT}"):
        yield StringCommand(f"systemctl disable --now {OLD_UNIT}; rm -f "
                            f"/etc/systemd/system/{OLD_UNIT} && systemctl daemon-reload")


def on_wheelhouse(settings: Settings, served_root: str) -> None:
    """Each pinned snapshot fetched once for the fleet and served beside the stacks
    (``served_root``, the directory the wheelhouse serves)."""
    files.directory(name="Model cache of the fleet", path=f"{wheelhouse_cache(settings)}/hub")
    files.directory(name="Wheelhouse served root", path=served_root)
    files.link(name="Models served under /_models/", path=f"{served_root}/{MIRROR_PATH}",
               target=f"{wheelhouse_cache(settings)}/hub")
    token_kept(name="Hugging Face token for the fleet's fetches", settings=settings,
               fetches_from_hub=True)
    for pin in host.loop(fleet_pins()):
        list_written(name=f"Model {pin.repo}@{pin.commit[:12]}: its file list",
                     pin=fleet_selection(pin))
        staged(name=f"Model {pin.repo}@{pin.commit[:12]} fetched once for the fleet, verified",
               job=wheelhouse_job(settings, pin))


def wheelhouse_reads(settings: Settings, served_root: str) -> list[survey.Read]:
    """What ``on_wheelhouse`` reads on a run that changes nothing (operations/survey.py)."""
    return [*survey.directory_reads(f"{wheelhouse_cache(settings)}/hub", served_root),
            *survey.link_reads(f"{served_root}/{MIRROR_PATH}"),
            *token_reads(settings, fetches_from_hub=True),
            *(r for pin in fleet_pins() for r in list_reads(fleet_selection(pin))),
            *(status_read(wheelhouse_job(settings, pin)) for pin in fleet_pins())]
