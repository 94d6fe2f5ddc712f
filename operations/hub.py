"""The Hugging Face Hub, read from the control machine: a model's ``main`` resolved to a commit
once for the whole fleet, and that commit's manifest (every file's size and the Hub's own hash:
sha256 of LFS files, git blob sha1 of the others). Both are kept in the fleet's lock file, so
later runs serve the same commit, and a no-op run asks the Hub nothing.

The protocol is the one ``huggingface_hub`` speaks (``model_info``, the tree listing, error
codes in ``X-Error-Code``); ``hf_endpoint`` points it at a mirror.

Example::

    pins, errors, said = hub.pin_fleet({"gpu-01": ("Qwen/Qwen3-32B-AWQ", None,
                                                  "https://huggingface.co", None)},
                                       lock=hub.lock_path())
    pins["gpu-01"].commit, pins["gpu-01"].size
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from operations import FILES_DIR

COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
TIMEOUT_S = 30

# What to do about each of the Hub's refusals (X-Error-Code), as a user would need it.
ADVICE = {
    "RepoNotFound": "check the model id (and hf_endpoint); a private model needs HF_TOKEN",
    "RevisionNotFound": "check model_revision: a full commit sha of that model",
    "GatedRepo": "accept the model's conditions on its Hub page and give HF_TOKEN "
                 "(environment or secrets_file)",
    "Forbidden": "the token is not approved for this gated model: request access on its Hub "
                 "page, or use a token that has it",
}


class HubError(RuntimeError):
    """The Hub refused or could not be reached; the message says what it said."""

    def __init__(self, said: str, advice: str):
        super().__init__(said)
        self.said = said
        self.advice = advice


@dataclass(frozen=True)
class Pin:
    """One model at one commit, with the Hub's manifest for that commit."""

    repo: str
    commit: str
    files: tuple[dict, ...]  # {"path", "size", "sha256"} (LFS) or {"path", "size", "blob"}
    endpoint: str

    @property
    def size(self) -> int:
        return sum(f["size"] for f in self.files)

    def manifest(self) -> dict:
        return {"repo": self.repo, "commit": self.commit, "files": list(self.files)}




def _host_fetcher() -> ModuleType:
    """files/model_fetch.py, the fetcher the hosts run, as a module: the control machine speaks
    to the Hub with the same HTTP client (its redirect rule keeps the token on the Hub's host)."""
    spec = importlib.util.spec_from_file_location("model_fetch", FILES_DIR / "model_fetch.py")
    assert spec is not None and spec.loader is not None  # a file of this checkout
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_OPENER = _host_fetcher().OPENER


def _get(endpoint: str, path: str, token: str | None, method: str = "GET") -> tuple[Any, Any]:
    """``path`` under ``endpoint`` (which may hold a path prefix: a mirror's), or an absolute
    URL on the endpoint's own host (a next page's ``Link``; the token goes nowhere else)."""
    url = path if "://" in path else endpoint.rstrip("/") + path
    if urllib.parse.urlsplit(url)[:2] != urllib.parse.urlsplit(endpoint)[:2]:
        raise HubError(f"{endpoint} sent a link to another host: {url}",
                       "check hf_endpoint: it does not answer like the Hub")
    request = urllib.request.Request(url, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with _OPENER.open(request, timeout=TIMEOUT_S) as response:
            return (json.load(response) if method == "GET" else None), response.headers
    except urllib.error.HTTPError as error:
        code = error.headers.get("X-Error-Code") or ""
        message = error.headers.get("X-Error-Message") or error.reason
        advice = ADVICE["Forbidden"] if error.code == 403 else ADVICE.get(
            code, "check hf_endpoint and the model id")
        raise HubError(" ".join(w for w in (f"HTTP {error.code}", code, message) if w),
                       advice) from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise HubError(f"cannot reach {endpoint}: {reason}",
                       "check hf_endpoint and the control machine's network") from None


def resolve(endpoint: str, repo: str, revision: str, token: str | None) -> str:
    """The commit a revision (a branch, a tag or a commit) names now."""
    quoted = urllib.parse.quote(revision, safe="")
    info, _ = _get(endpoint, f"/api/models/{repo}/revision/{quoted}", token)
    commit = info.get("sha") if isinstance(info, dict) else None
    if not isinstance(commit, str) or not COMMIT_RE.match(commit):
        raise HubError(f"model info for {repo}@{revision} has no commit sha",
                       "check hf_endpoint: it does not answer like the Hub")
    return commit


def manifest(endpoint: str, repo: str, commit: str, token: str | None) -> tuple[dict, ...]:
    """Every file of the commit with its size and the Hub's hash (the tree listing, paged)."""
    files: list[dict] = []
    path: str | None = f"/api/models/{repo}/tree/{commit}?recursive=true&expand=false"
    while path:
        entries, headers = _get(endpoint, path, token)
        for entry in entries:
            if entry.get("type") != "file":
                continue
            parts = str(entry.get("path", "")).split("/")
            if not entry.get("path") or entry["path"].startswith("/") or ".." in parts:
                raise HubError(f"{repo}@{commit} lists a path outside the repository: "
                               f"{entry.get('path')!r}", "check hf_endpoint")
            lfs = entry.get("lfs")
            files.append({"path": entry["path"], "size": int(entry["size"]),
                          **({"sha256": lfs["oid"]} if lfs else {"blob": entry["oid"]})})
        link = re.search(r'<([^>]+)>;\s*rel="next"', headers.get("Link", ""))
        # The next page as linked: an absolute URL (its path holds a mirror's prefix already),
        # or a reference resolved against the page it came from.
        path = urllib.parse.urljoin(endpoint.rstrip("/") + "/", link.group(1)) if link else None
    if not files:
        raise HubError(f"{repo}@{commit} lists no files", "check the model id and revision")
    # The listing is public for a gated model; its files are not: ask for one as a fetch would.
    smallest = min(files, key=lambda f: f["size"])["path"]
    _get(endpoint, f"/{repo}/resolve/{commit}/{urllib.parse.quote(smallest)}", token, "HEAD")
    return tuple(sorted(files, key=lambda f: f["path"]))


def lock_path() -> Path:
    """Beside the fleet file (``fleet.lock.json``), so that users can commit it;
    ``SGLANG_LOCK`` names another."""
    if os.environ.get("SGLANG_LOCK"):
        return Path(os.environ["SGLANG_LOCK"])
    fleet = os.environ.get("SGLANG_FLEET")
    if fleet:
        return Path(fleet).with_suffix(".lock.json")
    return Path(__file__).resolve().parent.parent / "fleet.lock.json"


def _read_lock(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {"pins": {}, "manifests": {}}
    except (OSError, ValueError) as error:
        raise HubError(f"cannot read the lock file {path}: {error}",
                       "fix or delete it (it is written again)") from None
    return {"pins": data.get("pins", {}), "manifests": data.get("manifests", {})}


def _key(endpoint: str, repo: str) -> str:
    return f"{endpoint.rstrip('/')} {repo}"


def pin_fleet(models: dict[str, tuple[str, str | None, str, str | None]], lock: Path,
              ask_hub: bool = True) -> tuple[dict[str, Pin], dict[str, HubError], list[str]]:
    """Pin every host's model: ``models`` maps host -> (repo, model_revision or None, endpoint,
    the host's Hugging Face token or None).

    A host without model_revision serves the commit recorded in the lock file, else ``main``
    resolved now (once per model, for every host) and recorded. Returns the pins, the hosts
    whose model could not be pinned (with the Hub's words), and what was newly pinned.
    Without ``ask_hub`` (diagnosis, verification) only what the lock file holds is pinned, and
    a host it holds nothing for is left out. Runs of the same checkout pin one at a time (the
    lock file has one writer at a time: the second reads what the first recorded).
    """
    with _one_writer(lock):
        return _pin_fleet(models, lock, ask_hub)


@contextlib.contextmanager
def _one_writer(lock: Path) -> Iterator[None]:
    """The lock file's directory held (flock) for the whole read, resolve and write: no other
    file beside the fleet file, and a run killed midway holds nothing."""
    try:
        directory = os.open(lock.parent, os.O_RDONLY)
    except OSError as error:
        raise HubError(f"cannot open the lock file's directory {lock.parent}: {error.strerror}",
                       "run from a checkout whose fleet file's directory exists") from None
    try:
        fcntl.flock(directory, fcntl.LOCK_EX)
        yield
    finally:
        os.close(directory)


def _pin_fleet(models: dict[str, tuple[str, str | None, str, str | None]], lock: Path,
               ask_hub: bool) -> tuple[dict[str, Pin], dict[str, HubError], list[str]]:
    recorded = _read_lock(lock)
    pins: dict[str, Pin] = {}
    errors: dict[str, HubError] = {}
    said: list[str] = []
    changed = False
    commits: dict[tuple[str, str, str | None], str | HubError] = {}
    for name, (repo, revision, endpoint, token) in models.items():
        key = (endpoint, repo, revision)
        if key not in commits:
            try:
                if revision:
                    commits[key] = revision
                elif _key(endpoint, repo) in recorded["pins"]:
                    commits[key] = recorded["pins"][_key(endpoint, repo)]
                elif not ask_hub:
                    continue
                else:
                    commits[key] = resolve(endpoint, repo, "main", token)
                    recorded["pins"][_key(endpoint, repo)] = commits[key]
                    changed = True
                    said.append(f"pinned {repo} at {commits[key]} (its main now), recorded in "
                                f"{lock}: every host serves it until model_revision changes")
            except HubError as error:
                commits[key] = error
        found = commits[key]
        if isinstance(found, HubError):
            errors[name] = found
            continue
        manifest_key = f"{_key(endpoint, repo)}@{found}"
        if manifest_key not in recorded["manifests"]:
            if not ask_hub:
                continue
            try:
                recorded["manifests"][manifest_key] = list(manifest(endpoint, repo, found, token))
                changed = True
            except HubError as error:
                commits[key] = errors[name] = error
                continue
        pins[name] = Pin(repo, found, tuple(recorded["manifests"][manifest_key]), endpoint)
    if changed:  # whole or not at all: a cut-off write must not stop every later run
        partial = lock.with_name(lock.name + ".new")
        partial.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
        os.replace(partial, lock)
    return pins, errors, said

