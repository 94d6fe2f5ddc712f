"""Stage 3, model weights. The pinned snapshot (operations/hub.py) is staged in the host's Hugging
Face cache and every file verified against the Hub's hashes before any server (re)starts, so the
server runs offline and its health wait measures startup only.

With a ``sglang_wheelhouse`` host, that host alone fetches each pinned snapshot from the Hub (or
``hf_endpoint``) and serves it; workers fetch from it and never reach the Hub. Without one, each
worker fetches from the Hub itself. Either way the fetcher (files/model_fetch.py) checks every
file, names and fetches again a wrong one, prints progress during the run and fails a stalled
transfer; a staged snapshot moves no bytes.

Example::

    from operations.stages import weights
    weights.apply(settings, done)   # staged before the worker's server starts
"""

from __future__ import annotations

from pyinfra import host

from operations import runstate, survey
from operations.outcome import Done
from operations.settings import Settings
from operations.snapshot import (
    list_reads,
    list_written,
    selected,
    source,
    staged,
    status_read,
    token_kept,
    token_reads,
    worker_spec,
)


def reads(settings: Settings) -> list[survey.Read]:
    """What ``apply`` reads on a run that changes nothing (operations/survey.py)."""
    pin = runstate.current().pins.get(host.name)
    if pin is None:
        return []
    return [*token_reads(settings, "hub" in source(pin)), *list_reads(selected(settings, pin)),
            status_read(worker_spec(settings, pin))]


def apply(settings: Settings, done: Done) -> None:
    """A worker's pinned snapshot, staged in its model_cache_dir before its server starts."""
    pin = runstate.current().pins.get(host.name)
    if pin is not None:
        token_kept(name="Hugging Face token only where it fetches", settings=settings,
                   fetches_from_hub="hub" in source(pin))
        list_written(name="The model's file list", pin=selected(settings, pin))
        staged(name=f"Model {pin.repo}@{pin.commit[:12]} staged and verified",
               job=worker_spec(settings, pin))


