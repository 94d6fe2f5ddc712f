"""Stage one model snapshot in a Hugging Face cache, every file checked against the Hub's own
hashes for that commit. Runs on the host (standard library only) as root.

    python3 model_fetch.py status SPEC   # JSON: is it staged (by a stat record); bytes missing
    python3 model_fetch.py fetch SPEC    # fetch what is missing or wrong, verify, link
    python3 model_fetch.py check SPEC    # JSON: every file hashed again (verification)

SPEC (JSON): host, repo, commit, files [{path, size, sha256 | blob}] (or files_file and
files_digest: the list in a file, its sha256: a list of any length, no command line limit; or
files_url: the list as the wheelhouse serves it for a stack's wheels; label: what to call it;
listed_by: whose hashes the list has, for what it says),
cache (HF_HOME), source ({"hub": endpoint} or {"mirror": base URL of a staged snapshot}),
token_file, stall_timeout_s, progress_every_s, record (where the stat record of verified blobs
is kept). A list file that is missing or not the one named means "not staged" to status and is
an error to fetch and check.

The layout is the Hub cache's: hub/models--org--name/blobs/<sha256 or blob sha1> and
snapshots/<commit>/<path> -> ../../blobs/..., so SGLang and transformers find it offline. A file
is written under a temporary name and takes its place only once its hash matches: a cut-off or
corrupted transfer never looks staged.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

CHUNK = 1 << 20


def label(spec: dict) -> str:
    """What the fetch is called in what it says: a model snapshot, unless the spec names it."""
    return spec.get("label") or f"model {spec['repo']}@{spec['commit'][:12]}"


def repo_dir(spec: dict) -> str:
    return os.path.join(spec["cache"], "hub", "models--" + spec["repo"].replace("/", "--"))


def blob_name(file: dict) -> str:
    return file.get("sha256") or file["blob"]


def hasher(file: dict):
    """sha256 for LFS files; git's blob sha1 (over a header with the size) for the others."""
    if "sha256" in file:
        return hashlib.sha256()
    digest = hashlib.sha1()
    digest.update(b"blob %d\0" % file["size"])
    return digest


def hash_file(path: str, file: dict) -> str:
    digest = hasher(file)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def stamp(path: str) -> list[int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return [found.st_size, found.st_mtime_ns, found.st_ino]


def read_record(spec: dict) -> dict:
    try:
        with open(spec["record"]) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def link_path(spec: dict, file: dict) -> str:
    return os.path.join(repo_dir(spec), "snapshots", spec["commit"], file["path"])


def blob_path(spec: dict, file: dict) -> str:
    return os.path.join(repo_dir(spec), "blobs", blob_name(file))


def unverified(spec: dict) -> list[dict]:
    """Files whose blob is not known good: missing, changed since it was verified, or not
    linked into the snapshot. The record is keyed by the blob's path: two models may hold the
    same file."""
    record = read_record(spec)
    return [f for f in spec["files"]
            if record.get(blob_path(spec, f)) is None
            or record[blob_path(spec, f)] != stamp(blob_path(spec, f))
            or not os.path.exists(link_path(spec, f))]


def checked_manifest(spec: dict) -> None:
    """Paths stay inside the snapshot and hashes are hashes: the manifest came over a network."""
    for file in spec["files"]:
        parts = file["path"].split("/")
        if file["path"].startswith("/") or ".." in parts or "" in parts:
            raise FetchError(f"the manifest names a path outside the snapshot: {file['path']!r}")
        if not all(c in "0123456789abcdef" for c in blob_name(file)) or \
                len(blob_name(file)) not in (40, 64):
            raise FetchError(f"the manifest's hash for {file['path']!r} is not a hash")


def status(spec: dict) -> dict:
    todo = unverified(spec)
    return {"staged": not todo, "missing_bytes": sum(f["size"] for f in todo),
            "size": sum(f["size"] for f in spec["files"])}


def check(spec: dict) -> dict:
    """Every file of the snapshot hashed again; what differs from the manifest."""
    bad = []
    for file in spec["files"]:
        path = link_path(spec, file)
        if not os.path.exists(path):
            bad.append({"path": file["path"], "expected": blob_name(file), "found": "missing"})
            continue
        found = hash_file(path, file)
        if found != blob_name(file):
            bad.append({"path": file["path"], "expected": blob_name(file), "found": found})
    return {"ok": not bad, "bad": bad, "files": len(spec["files"])}


class Progress:
    def __init__(self, spec: dict, total: int):
        self.spec, self.total, self.done = spec, total, 0
        self.moved = 0  # of ``done``: over the network in this run (not kept from before)
        self.started = self.last = time.monotonic()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        percent = 100 * self.done / self.total if self.total else 100
        rate = self.done / elapsed
        said = (f"{label(self.spec)}: "
                f"{self.done / 1e9:.2f} of {self.total / 1e9:.2f} GB ({percent:.0f}%), "
                f"{rate / 1e6:.1f} MB/s")
        if rate > 0 and self.done < self.total:
            left = int((self.total - self.done) / rate)
            said += f", {left // 60}:{left % 60:02d} left"
        return said

    def add(self, count: int) -> None:
        self.done += count
        if time.monotonic() - self.last >= self.spec.get("progress_every_s", 10):
            self.last = time.monotonic()
            print(self.line(), flush=True)


class FetchError(Exception):
    pass


class KeepAuthOnSameHost(urllib.request.HTTPRedirectHandler):
    """The token goes only to the host it was meant for: the Hub redirects a large file to a
    CDN (as huggingface_hub does, the header is dropped when the host changes). The control
    machine's Hub client (operations/hub.py) uses this opener too."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).netloc != \
                urllib.parse.urlsplit(req.full_url).netloc:
            new.remove_header("Authorization")
        return new


OPENER = urllib.request.build_opener(KeepAuthOnSameHost)


def url_of(spec: dict, file: dict) -> str:
    path = urllib.parse.quote(file["path"])
    source = spec["source"]
    if "mirror" in source:
        return f"{source['mirror'].rstrip('/')}/{path}"
    return (f"{source['hub'].rstrip('/')}/{spec['repo']}/resolve/{spec['commit']}/{path}")


def download(spec: dict, file: dict, target: str, progress: Progress) -> str:
    """Fetch one file to ``target``; returns the hash of its bytes. What an earlier transfer
    left in ``target`` (cut off: the host rebooted, the connection broke) is kept and the rest
    asked for with a Range request; a source that answers with the whole file (200) starts it
    again from the first byte. The hash covers the whole file either way."""
    request = urllib.request.Request(url_of(spec, file))
    token_file = spec.get("token_file")
    if token_file and "hub" in spec["source"] and os.path.exists(token_file):
        with open(token_file) as handle:
            request.add_header("Authorization", f"Bearer {handle.read().rstrip(chr(10))}")
    have = os.path.getsize(target) if os.path.exists(target) else 0
    if have == file["size"] and hash_file(target, file) == blob_name(file):
        return blob_name(file)  # all there already (a run stopped before putting it in place)
    if 0 < have < file["size"]:
        request.add_header("Range", f"bytes={have}-")
    digest, received, promised = hasher(file), 0, -1
    try:
        with OPENER.open(request, timeout=spec.get("stall_timeout_s", 60)) as reply:
            resumed = reply.status == 206 and 0 < have < file["size"]
            # what this reply said it sends, counted from the file's first byte
            promised = int(reply.headers.get("Content-Length") or -1) + (have if resumed else 0)
            if resumed and not reply.headers.get("Content-Range", "").startswith(
                    f"bytes {have}-"):
                raise FetchError(f"{url_of(spec, file)}: asked for bytes {have}- and was sent "
                                 f"{reply.headers.get('Content-Range')}")
            with open(target, "r+b" if resumed else "wb") as out:
                if resumed:  # the bytes kept count in the hash; the transfer goes on after them
                    for chunk in iter(lambda: out.read(CHUNK), b""):
                        digest.update(chunk)
                    received = have
                    progress.add(have)
                    print(f"{spec['host']}: {file['path']}: resuming at {have} of "
                          f"{file['size']} bytes", flush=True)
                # read1: what has arrived (up to CHUNK), so a cut transfer keeps it all
                for chunk in iter(lambda: reply.read1(CHUNK), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    progress.moved += len(chunk)
                    progress.add(len(chunk))
    except urllib.error.HTTPError as error:
        code = error.headers.get("X-Error-Code", "")
        said = error.headers.get("X-Error-Message") or error.reason
        raise FetchError(f"{url_of(spec, file)}: HTTP {error.code} {code} {said}") from None
    except TimeoutError:
        raise FetchError(f"{file['path']}: the transfer stalled: no data for "
                         f"{spec.get('stall_timeout_s', 60)} s from {url_of(spec, file)} "
                         f"after {received} of {file['size']} bytes") from None
    except (urllib.error.URLError, OSError) as error:
        raise FetchError(f"{url_of(spec, file)}: {getattr(error, 'reason', error)}") from None
    if received < promised:  # the connection ended early: what came is kept for the next run
        raise FetchError(f"{file['path']}: the transfer ended after {received} of "
                         f"{file['size']} bytes from {url_of(spec, file)}; the next run "
                         "resumes it")
    if received != file["size"]:
        return f"{received} bytes of {file['size']}"
    return digest.hexdigest()


def fetch(spec: dict) -> int:
    checked_manifest(spec)
    todo = unverified(spec)
    blobs = os.path.join(repo_dir(spec), "blobs")
    os.makedirs(blobs, exist_ok=True)
    record = read_record(spec)
    # A blob already on disk is hashed before anything is fetched: only wrong ones move.
    wanted = []
    for file in todo:
        blob = os.path.join(blobs, blob_name(file))
        if os.path.exists(blob):
            found = hash_file(blob, file)
            if found == blob_name(file):
                record[blob] = stamp(blob)
                continue
            print(f"{spec['host']}: {spec['repo']}@{spec['commit'][:12]} {file['path']}: "
                  f"expected {blob_name(file)}, found {found}: fetching it again", flush=True)
        wanted.append(file)
    progress = Progress(spec, sum(f["size"] for f in wanted))
    started = time.monotonic()
    for file in wanted:
        blob = os.path.join(blobs, blob_name(file))
        partial = blob + ".incomplete"
        for attempt in (1, 2):
            found = download(spec, file, partial, progress)
            if found == blob_name(file):
                break
            print(f"{spec['host']}: {spec['repo']}@{spec['commit'][:12]} {file['path']}: "
                  f"expected {blob_name(file)}, found {found}"
                  + (": fetching it again" if attempt == 1 else ""), flush=True)
        else:
            os.unlink(partial)
            listed = spec.get("listed_by") or f"the Hub's hash for commit {spec['commit']}"
            raise FetchError(f"{file['path']} does not match {listed} after 2 transfers: the "
                             "source serves other bytes; it was not used")
        os.chmod(partial, 0o644)
        os.replace(partial, blob)
        record[blob] = stamp(blob)
    for file in spec["files"]:
        link = link_path(spec, file)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        relative = os.path.relpath(os.path.join(blobs, blob_name(file)), os.path.dirname(link))
        if not (os.path.islink(link) and os.readlink(link) == relative):
            if os.path.lexists(link):
                os.unlink(link)
            os.symlink(relative, link)
    os.makedirs(os.path.dirname(spec["record"]), exist_ok=True)
    with open(spec["record"] + ".new", "w") as handle:
        json.dump(record, handle)
    os.replace(spec["record"] + ".new", spec["record"])
    if wanted:
        progress.done = progress.total
        print(progress.line() + f"; {len(wanted)} of {len(spec['files'])} files fetched in "
              f"{time.monotonic() - started:.1f} s, all {len(spec['files'])} verified",
              flush=True)
        source = spec["source"]
        where = f"the Hub ({source['hub']})" if "hub" in source else \
            f"the wheelhouse ({source['mirror'].split('/_models/')[0]})"
        there = sum(f["size"] for f in spec["files"]) - progress.moved
        print(f"fetched {progress.moved} bytes from {where}; {there} bytes were there already",
              flush=True)
    else:
        print(f"{label(spec)}: all "
              f"{len(spec['files'])} files verified, nothing fetched", flush=True)
    return 0


def with_files(spec: dict) -> dict:
    """``spec`` with its file list, read from files_file (or files_url: the wheelhouse's list
    of a stack's wheels) when it is not inline."""
    if "files" in spec:
        return spec
    if "files_url" in spec:
        try:
            with OPENER.open(spec["files_url"], timeout=spec.get("stall_timeout_s", 60)) as reply:
                return {**spec, "files": json.loads(reply.read())}
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise FetchError(f"no file list at {spec['files_url']}: "
                             f"{getattr(error, 'reason', error)}") from None
    try:
        with open(spec["files_file"], "rb") as handle:
            text = handle.read()
    except OSError as error:
        raise FetchError(f"no file list at {spec['files_file']}: {error.strerror}") from None
    if hashlib.sha256(text).hexdigest() != spec["files_digest"]:
        raise FetchError(f"the file list at {spec['files_file']} is not the one named")
    return {**spec, "files": json.loads(text)}


def main(argv: list[str]) -> int:
    mode, spec = argv[0], json.loads(argv[1])
    try:
        spec = with_files(spec)
    except FetchError as error:
        if mode == "status":  # not written yet: the deploy writes it before it fetches
            print(json.dumps({"staged": False, "missing_bytes": None, "why": str(error)}))
            return 0
        print(f"{spec['host']}: {label(spec)}: {error}",
              file=sys.stderr, flush=True)
        return 1
    if mode == "status":
        print(json.dumps(status(spec)))
        return 0
    if mode == "check":
        print(json.dumps(check(spec)))
        return 0
    try:
        return fetch(spec)
    except FetchError as error:
        print(f"{spec['host']}: {label(spec)}: {error}",
              file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
