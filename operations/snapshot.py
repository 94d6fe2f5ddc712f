"""A pinned model snapshot on a host: the fetcher's job spec (files/model_fetch.py), where it
comes from (the fleet's wheelhouse or the Hub), its stat record, and the operations that stage
it verified and keep the Hub token only where it is fetched from the Hub.

Example::

    job = worker_spec(settings, pin)
    staged(name="Model staged and verified", job=job)
"""

from __future__ import annotations

import functools
import hashlib
import json
import shlex
from dataclasses import replace
from io import StringIO
from typing import Any

from pyinfra import host
from pyinfra.api import StringCommand, operation
from pyinfra.facts.files import File, Sha256File
from pyinfra.operations import files

from operations import FILES_DIR, hub, model_files, roles, runstate, secrets, survey
from operations.facts.python import PythonJson
from operations.settings import Settings
from operations.watch import streamed

MODEL_FETCH_CODE = (FILES_DIR / "model_fetch.py").read_text()


TOKEN_PATH = "/etc/sglang/hf-token"  # only on hosts that fetch from the Hub


MIRROR_PATH = "_models"  # under the wheelhouse's served root


def wheelhouse_cache(settings: Settings) -> str:
    return f"{settings.wheelhouse_dir}/models"


LISTS_DIR = "/var/lib/sglang-fleet/model-files"  # the fetchers' file lists, by content


def selected(settings: Settings, pin: hub.Pin) -> hub.Pin:
    """``pin`` with the files a server loads (operations/model_files.py), as this host's
    settings add or skip."""
    return replace(pin, files=model_files.select(pin.files, settings.model_files_add,
                                                 settings.model_files_skip))


def files_list(files: tuple[dict, ...]) -> tuple[str, str]:
    """(the file list as the fetcher reads it, its sha256)."""
    text = json.dumps(list(files), sort_keys=True)
    return text, hashlib.sha256(text.encode()).hexdigest()


def spec(settings: Settings, pin: hub.Pin, cache: str, source: dict[str, str],
         record: str, host_name: str | None = None) -> dict[str, Any]:
    """What the fetcher needs: the commit, where to stage it, where from, and the file list in
    a file of its own on the host (``list_written``: any number of files, no command line
    limit); ``record``: where the stat record of verified blobs is kept (root-only: the record
    decides what is trusted without hashing, and the cache belongs to the service user)."""
    digest = files_list(pin.files)[1]
    return {"host": host_name or host.name, "repo": pin.repo, "commit": pin.commit,
            "files_file": f"{LISTS_DIR}/{digest}.json", "files_digest": digest,
            "cache": cache, "source": source,
            "token_file": TOKEN_PATH if "hub" in source else None,
            "stall_timeout_s": settings.model_stall_timeout_s, "progress_every_s": 10,
            "record": record}


@operation(is_idempotent=True)
def list_written(pin: hub.Pin):
    """The fetcher's file list for ``pin`` on the host, named by its digest.

    + pin: the pin, its files as this host stages them (``selected``)
    """
    text, digest = files_list(pin.files)
    if host.get_fact(Sha256File, path=f"{LISTS_DIR}/{digest}.json") != digest:
        yield from files.put._inner(src=StringIO(text), dest=f"{LISTS_DIR}/{digest}.json",
                                    mode="644")


def list_reads(pin: hub.Pin) -> list[survey.Read]:
    path = f"{LISTS_DIR}/{files_list(pin.files)[1]}.json"
    return [survey.Read(Sha256File, {"path": path}), *survey.put_reads(path)]


def worker_spec(settings: Settings, pin: hub.Pin, host_name: str | None = None,
                source_: dict[str, str] | None = None) -> dict:
    """A worker's snapshot (the files its server loads): in its model_cache_dir, from the
    wheelhouse or the Hub (``source_`` replaces that, for a check that fetches nothing)."""
    return spec(settings, selected(settings, pin), settings.model_cache_dir,
                source_ or source(pin), f"{settings.install_dir}/model-blobs.verified.json",
                host_name)


def source(pin: hub.Pin) -> dict[str, str]:
    """The wheelhouse's copy when the fleet has one, else the Hub (or its mirror)."""
    wheelhouse = roles.wheelhouse()
    if wheelhouse is None:
        return {"hub": pin.endpoint}
    folder = "models--" + pin.repo.replace("/", "--")
    return {"mirror": f"http://{roles.address(wheelhouse)}:"
                      f"{roles.settings_of(wheelhouse).wheelhouse_port}/{MIRROR_PATH}/{folder}/"
                      f"snapshots/{pin.commit}"}


def model_config_path(settings: Settings) -> str:
    """Where the host's copy of the served model's config.json is: the pinned snapshot in the
    Hugging Face cache, or the model's own directory."""
    if not settings.from_hub:
        return f"{settings.model.rstrip('/')}/config.json"
    folder = "models--" + settings.model.replace("/", "--")
    return (f"{settings.model_cache_dir}/hub/{folder}/snapshots/{settings.model_revision}/"
            "config.json")


def status_read(job: dict[str, Any]) -> survey.Read:
    """The read of a job's stat record (the survey reads it ahead)."""
    return survey.Read(PythonJson, {"python": "python3", "code": MODEL_FETCH_CODE,
                                    "args": ("status", json.dumps(job, sort_keys=True))})


def status(job: dict[str, Any]) -> dict[str, Any]:
    """{"staged": bool, "missing_bytes": int, "size": int} from the stat record (no hashing)."""
    return status_read(job).on(host)


@operation(is_idempotent=True)
def staged(job: dict[str, Any]):
    """The pinned snapshot in a Hugging Face cache, every file verified; nothing moves when it
    is already there.

    + job: the fetcher's spec (``worker_spec``, or the wheelhouse's)
    """
    if status(job).get("staged"):
        return
    yield streamed(fetch_command(job), summary=functools.partial(fetched, f"model {job['repo']}"))


def fetched(what: str, lines: list[str]) -> str | None:
    """The fetcher's last word, for the run's summary: bytes moved, from where."""
    said = next((line for line in reversed(lines) if line.startswith("fetched ")), None)
    if said is None:
        return None
    moved, _, rest = said[len("fetched "):].partition(" bytes from ")
    return f"{what}: {int(moved) / 1e9:.2f} GB fetched from {rest}"


@operation(is_idempotent=True)
def token_kept(settings: Settings, fetches_from_hub: bool):
    """The Hugging Face token as a root-only file on a host that fetches from the Hub, and on
    no other host (a worker behind a wheelhouse, a server: they run offline).

    + settings: the host's validated settings
    + fetches_from_hub: whether this host fetches snapshots from the Hub itself
    """
    token = _kept_token(settings, fetches_from_hub)
    if token:
        yield from secrets.put_private(TOKEN_PATH, token + "\n")
    elif host.get_fact(File, path=TOKEN_PATH):
        yield StringCommand(f"rm -f {shlex.quote(TOKEN_PATH)}")


def fetch_command(job: dict[str, Any]) -> str:
    return shlex.join(["python3", "-c", MODEL_FETCH_CODE, "fetch", json.dumps(job, sort_keys=True)])


def restage_command(settings: Settings) -> str | None:
    """On a worker: the command that stages its pinned snapshot again (a remedy)."""
    pin = runstate.current().pins.get(host.name)
    return fetch_command(worker_spec(settings, pin)) if pin else None


def _kept_token(settings: Settings, fetches_from_hub: bool) -> str | None:
    """The token this host keeps on disk: only a host that fetches from the Hub has one."""
    return secrets.load(host.name, settings).get("HF_TOKEN") if fetches_from_hub else None


def token_reads(settings: Settings, fetches_from_hub: bool) -> list[survey.Read]:
    if _kept_token(settings, fetches_from_hub):
        return secrets.private_reads(TOKEN_PATH)
    return [survey.Read(File, {"path": TOKEN_PATH})]


def fleet_pins() -> list[hub.Pin]:
    """Every distinct pin the workers serve."""
    pins = runstate.current().pins.values()
    return sorted({(p.endpoint, p.repo, p.commit): p for p in pins}.values(),
                  key=lambda p: (p.repo, p.commit))


def fleet_selection(pin: hub.Pin) -> hub.Pin:
    """``pin`` with every file any worker serving it stages: what the wheelhouse holds."""
    wanted: dict[str, dict] = {}
    for worker in roles.workers():
        mine = runstate.current().pins.get(worker.name)
        if mine is not None and (mine.repo, mine.commit) == (pin.repo, pin.commit):
            wanted.update((f["path"], f) for f in selected(roles.settings_of(worker),
                                                           pin).files)
    return replace(pin, files=tuple(f for f in pin.files if f["path"] in wanted))


def wheelhouse_job(settings: Settings, pin: hub.Pin) -> dict[str, Any]:
    return spec(settings, fleet_selection(pin), wheelhouse_cache(settings),
                {"hub": pin.endpoint}, f"{settings.wheelhouse_dir}/model-blobs.verified.json")
