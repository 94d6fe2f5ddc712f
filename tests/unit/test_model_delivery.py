"""Model delivery against the lab's Hub stand-in: the fleet pins one commit and records it, the
host fetcher stages a snapshot the real huggingface_hub client reads offline, verifies every
file against the Hub's hashes, names and repairs a corrupted one, and times out a stalled
transfer; the Hub's refusals become lines that say what to do. The stand-in itself is checked
against the real client."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from lab import hub as standin
from operations import FILES_DIR, hub

FETCH = str(FILES_DIR / "model_fetch.py")
REPO = "Qwen/Qwen3-32B-AWQ"


@pytest.fixture()
def served(tmp_path):
    root = tmp_path / "hub"
    commit = standin.publish(root, REPO, seed=0)
    standin.publish(root, "lab/gated", seed=1, gated=True)
    stats: dict = {"gets": {}, "bytes": 0}
    server = ThreadingHTTPServer(("127.0.0.1", 0), standin.make_handler(root, stats))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root, commit, stats
    server.shutdown()
    server.server_close()


def pin(endpoint, lock, revision=None, repo=REPO, token=None, hosts=("gpu-01",)):
    return hub.pin_fleet({h: (repo, revision, endpoint, token) for h in hosts}, lock)


def spec(tmp_path, found: hub.Pin, source: dict, **extra) -> dict:
    return {"host": "gpu-01", **found.manifest(), "cache": str(tmp_path / "cache"),
            "source": source, "token_file": None, "stall_timeout_s": 5, "progress_every_s": 0,
            "record": str(tmp_path / "record.json"), **extra}


def run(mode: str, spec_: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, FETCH, mode, json.dumps(spec_)], capture_output=True,
                          text=True, timeout=60)


def test_main_is_pinned_once_for_the_fleet_and_kept_after_it_moves(served, tmp_path):
    endpoint, root, commit, _ = served
    lock = tmp_path / "fleet.lock.json"
    pins, errors, said = pin(endpoint, lock, hosts=("gpu-01", "gpu-02"))
    assert not errors and {p.commit for p in pins.values()} == {commit}
    assert said == [f"pinned {REPO} at {commit} (its main now), recorded in {lock}: every host "
                    "serves it until model_revision changes"]
    assert {f["path"] for f in pins["gpu-01"].files} >= {"config.json", "model.safetensors"}
    safetensors = next(f for f in pins["gpu-01"].files if f["path"] == "model.safetensors")
    assert len(safetensors["sha256"]) == 64 and "blob" not in safetensors
    moved = standin.publish(root, REPO, seed=5)
    again, _, said = pin(endpoint, lock)
    assert again["gpu-01"].commit == commit and said == []  # the lock wins over the new main
    assert pin(endpoint, lock, revision=moved)[0]["gpu-01"].commit == moved


def test_the_hubs_refusals_say_what_the_hub_said_and_what_to_do(served, tmp_path):
    endpoint, *_ = served
    lock = tmp_path / "lock.json"
    cases = {("org/absent", None, None): ("RepoNotFound", "check the model id"),
             (REPO, "0" * 40, None): ("RevisionNotFound", "check model_revision"),
             ("lab/gated", None, None): ("401 GatedRepo", "accept the model's conditions"),
             ("lab/gated", None, "hf_not_approved"): ("403 GatedRepo", "not approved")}
    for (repo, revision, token), (said, advice) in cases.items():
        _, errors, _ = pin(endpoint, lock, revision=revision, repo=repo, token=token)
        assert said in errors["gpu-01"].said and advice in errors["gpu-01"].advice, repo
    assert pin(endpoint, lock, repo="lab/gated", token=standin.APPROVED_TOKEN)[0]


def test_a_snapshot_is_fetched_once_verified_and_read_offline_by_the_real_client(
        served, tmp_path):
    endpoint, _, commit, stats = served
    found = pin(endpoint, tmp_path / "lock.json")[0]["gpu-01"]
    job = spec(tmp_path, found, {"hub": endpoint})
    assert json.loads(run("status", job).stdout)["staged"] is False
    fetched = run("fetch", job)
    assert fetched.returncode == 0, fetched.stderr
    assert f"{len(found.files)} of {len(found.files)} files fetched" in fetched.stdout
    assert set(stats["gets"].values()) == {1} and len(stats["gets"]) == len(found.files)
    assert json.loads(run("status", job).stdout) == {"staged": True, "missing_bytes": 0,
                                                     "size": found.size}
    again = run("fetch", job)
    assert "nothing fetched" in again.stdout and set(stats["gets"].values()) == {1}
    from huggingface_hub import snapshot_download

    offline = snapshot_download(REPO, revision=commit, cache_dir=tmp_path / "cache" / "hub",
                                local_files_only=True)
    assert json.loads((Path(offline) / "config.json").read_text())["model_type"] == "llama"


def test_a_flipped_byte_is_named_and_fetched_again(served, tmp_path):
    endpoint, *_ = served
    found = pin(endpoint, tmp_path / "lock.json")[0]["gpu-01"]
    job = spec(tmp_path, found, {"hub": endpoint})
    assert run("fetch", job).returncode == 0
    weights = next(f for f in found.files if f["path"] == "model.safetensors")
    blob = Path(job["cache"]) / "hub" / f"models--{REPO.replace('/', '--')}" / "blobs" / \
        weights["sha256"]
    data = bytearray(blob.read_bytes())
    data[100] ^= 1
    blob.write_bytes(bytes(data))
    checked = json.loads(run("check", job).stdout)
    assert checked["ok"] is False and checked["bad"][0]["path"] == "model.safetensors"
    assert json.loads(run("status", job).stdout)["staged"] is False
    repaired = run("fetch", job)
    assert (f"gpu-01: {REPO}@{found.commit[:12]} model.safetensors: expected "
            f"{weights['sha256']}, found ") in repaired.stdout
    assert json.loads(run("check", job).stdout)["ok"] is True


def test_a_source_serving_other_bytes_never_gets_staged(served, tmp_path):
    endpoint, root, commit, _ = served
    found = pin(endpoint, tmp_path / "lock.json")[0]["gpu-01"]
    (root / REPO / "commits" / commit / "config.json").write_text('{"tampered": true}\n')
    failed = run("fetch", spec(tmp_path, found, {"hub": endpoint}))
    assert failed.returncode == 1
    assert "config.json does not match the Hub's hash" in failed.stderr
    assert "found" in failed.stdout and "fetching it again" in failed.stdout
    assert not any(Path(tmp_path / "cache").rglob("snapshots/*/config.json"))


def test_a_stalled_transfer_times_out_with_a_clear_error(served, tmp_path):
    endpoint, root, *_ = served
    found = pin(endpoint, tmp_path / "lock.json")[0]["gpu-01"]
    (root / "stall").touch()
    try:
        failed = run("fetch", spec(tmp_path, found, {"hub": endpoint}, stall_timeout_s=1))
    finally:
        (root / "stall").unlink()
    assert failed.returncode == 1
    assert "the transfer stalled: no data for 1 s" in failed.stderr


def test_a_transfer_cut_off_part_way_resumes_where_it_stopped(served, tmp_path):
    """The first run's transfer of the weights stalls half-way and fails; the next run asks
    for the rest (a Range request): over both runs the source sends each byte once, and the
    file is verified whole before it is used."""
    endpoint, root, commit, stats = served
    found = pin(endpoint, tmp_path / "lock.json")[0]["gpu-01"]
    weights = next(f for f in found.files if f["path"] == "model.safetensors")
    job = {**spec(tmp_path, found, {"hub": endpoint}, stall_timeout_s=1), "files": [weights]}
    (root / "stall").touch()
    try:
        cut = run("fetch", job)
    finally:
        (root / "stall").unlink()
    assert cut.returncode == 1 and "the transfer stalled" in cut.stderr
    assert stats["bytes"] == weights["size"] // 2
    resumed = run("fetch", job)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming at {weights['size'] // 2} of {weights['size']} bytes" in resumed.stdout
    assert stats["bytes"] == weights["size"]  # nothing sent twice
    assert json.loads(run("check", job).stdout)["ok"] is True


def test_files_in_subfolders_and_two_models_sharing_a_cache_stay_staged(served, tmp_path):
    endpoint, root, commit, _ = served
    nested = root / REPO / "commits" / commit / "original" / "params.json"
    nested.parent.mkdir()
    nested.write_text('{"dim": 64}\n')
    other = standin.publish(root, "lab/other", seed=0)  # the same files: the same blobs
    lock = tmp_path / "lock.json"
    first = pin(endpoint, lock)[0]["gpu-01"]
    second = pin(endpoint, lock, repo="lab/other")[0]["gpu-01"]
    assert second.commit == other and "original/params.json" in {f["path"] for f in first.files}
    jobs = [spec(tmp_path, found, {"hub": endpoint}) for found in (first, second)]
    for job in jobs:
        assert run("fetch", job).returncode == 0
    for job in jobs:  # one record for the cache: neither model's entry hides the other's
        assert json.loads(run("status", job).stdout)["staged"] is True
        assert "nothing fetched" in run("fetch", job).stdout
    from huggingface_hub import snapshot_download

    offline = snapshot_download(REPO, revision=commit, cache_dir=tmp_path / "cache" / "hub",
                                local_files_only=True)
    assert json.loads((Path(offline) / "original" / "params.json").read_text()) == {"dim": 64}


def test_a_manifest_path_outside_the_snapshot_is_refused(served, tmp_path):
    endpoint, *_ = served
    found = pin(endpoint, tmp_path / "lock.json")[0]["gpu-01"]
    job = spec(tmp_path, found, {"hub": endpoint})
    job["files"][0] = {**job["files"][0], "path": "../../etc/cron.d/x"}
    refused = run("fetch", job)
    assert refused.returncode == 1
    assert "the manifest names a path outside the snapshot: '../../etc/cron.d/x'" in refused.stderr
    assert not (tmp_path / "etc").exists()


def test_the_real_client_downloads_from_the_hub_standin(served, tmp_path, monkeypatch):
    endpoint, _, commit, _ = served
    from huggingface_hub import snapshot_download

    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    path = snapshot_download(REPO, revision="main", cache_dir=tmp_path / "client",
                             endpoint=endpoint)
    assert Path(path).name == commit and (Path(path) / "model.safetensors").stat().st_size > 0


def test_a_paged_listing_is_walked_through_a_mirror_under_a_path_prefix(tmp_path):
    """The Hub pages a tree listing with an absolute `Link: <...>; rel="next"`; a mirror behind
    a proxy serves it all under a prefix (hf_endpoint = http://mirror/hf). Every page is
    listed and every file fetched through the prefix (the next page's URL used to get the
    prefix twice: a 404 at preflight)."""
    root = tmp_path / "hub"
    commit = standin.publish(root, REPO, seed=0)
    server = standin.server(root, "127.0.0.1", 0, "/hf")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}/hf"
        pins, errors, _ = pin(endpoint, tmp_path / "fleet.lock.json")
        assert not errors, errors
        found = pins["gpu-01"]
        assert found.commit == commit
        every = {name for name, _ in standin.files_of(root / REPO / "commits" / commit)}
        assert {f["path"] for f in found.files} == every
        assert len(every) > standin.TREE_PAGE  # more than one page was walked
        fetched = run("fetch", spec(tmp_path, found, {"hub": endpoint}))
        assert fetched.returncode == 0, fetched.stderr
        assert f"{len(every)} of {len(every)} files fetched" in fetched.stdout
    finally:
        server.shutdown()
        server.server_close()


def test_large_files_redirected_to_another_host_are_fetched_and_the_token_stays_home(tmp_path):
    """The real Hub answers a large (LFS) file with a 302 to its CDN, on another host: the
    pin's HEAD and the host's fetch follow it; the Hugging Face token goes to the Hub only,
    never to the CDN (a gated model's token would otherwise leave for a third party)."""
    root = tmp_path / "hub"
    standin.publish(root, "lab/gated", seed=1, gated=True)
    stats: dict = {"gets": {}, "bytes": 0}
    cdn = ThreadingHTTPServer(("127.0.0.1", 0), standin.make_handler(root, stats))
    home = ThreadingHTTPServer(("127.0.0.1", 0), standin.make_handler(
        root, stats, cdn=f"http://127.0.0.1:{cdn.server_address[1]}"))
    for server in (cdn, home):
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{home.server_address[1]}"
        pins, errors, _ = pin(endpoint, tmp_path / "fleet.lock.json", repo="lab/gated",
                              token=standin.APPROVED_TOKEN)
        assert not errors, errors
        found = pins["gpu-01"]
        token = tmp_path / "hf-token"
        token.write_text(standin.APPROVED_TOKEN + "\n")
        fetched = run("fetch", spec(tmp_path, found, {"hub": endpoint}, token_file=str(token)))
        assert fetched.returncode == 0, fetched.stderr
        large = [f["path"] for f in found.files if "sha256" in f]
        assert large, "the repository has LFS files"
        assert {f"lab/gated/{found.commit}/{name}" for name in large} <= set(stats["gets"])
        assert stats["cdn_authorization"] and set(stats["cdn_authorization"]) == {None}
        assert json.loads(run("check", spec(tmp_path, found, {"hub": endpoint}))
                          .stdout)["ok"] is True
    finally:
        for server in (cdn, home):
            server.shutdown()
            server.server_close()


def test_only_the_weights_the_server_loads_are_fetched_and_a_long_list_goes_in_a_file(
        tmp_path, monkeypatch):
    """A repository holding .safetensors and .bin weights and thousands of small files: a
    worker stages the safetensors and the rest the server reads, not the .bin copy; its file
    list (too long for one command line argument: 128 KiB) reaches the fetcher in a file,
    and a list that is not the one named is refused."""
    from operations import snapshot
    from operations.settings import Settings

    many = {f"extra/part-{i:04d}.json": b"{}" for i in range(3000)}
    copy = {"pytorch_model.bin": bytes(range(256)) * 4096}  # 1 MiB the server never reads
    root = tmp_path / "hub"
    standin.publish(root, REPO, seed=0, extra={**many, **copy})
    monkeypatch.setattr(standin, "TREE_PAGE", 1000)
    stats: dict = {"gets": {}, "bytes": 0}
    server = ThreadingHTTPServer(("127.0.0.1", 0), standin.make_handler(root, stats))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        found = pin(endpoint, tmp_path / "fleet.lock.json")[0]["gpu-01"]
        chosen = snapshot.selected(Settings(), found)
        names = {f["path"] for f in chosen.files}
        assert "pytorch_model.bin" not in names and "model.safetensors" in names
        assert len(names) > 3000
        assert {f["path"] for f in found.files} - names == {"pytorch_model.bin", "README.md"}
        text, digest = snapshot.files_list(chosen.files)
        assert len(text) > 131072  # more than one argv string may hold
        (tmp_path / "list.json").write_text(text)
        job = {**spec(tmp_path, chosen, {"hub": endpoint}), "files_file":
               str(tmp_path / "list.json"), "files_digest": digest}
        del job["files"]
        fetched = run("fetch", job)
        assert fetched.returncode == 0, fetched.stderr
        assert f"{len(names)} of {len(names)} files fetched" in fetched.stdout
        assert not any("pytorch_model.bin" in key for key in stats["gets"])
        assert json.loads(run("status", job).stdout)["staged"] is True
        (tmp_path / "list.json").write_text(text.replace("part-0001", "part-9999"))
        assert json.loads(run("status", job).stdout)["staged"] is False
        refused = run("fetch", job)
        assert refused.returncode == 1 and "is not the one named" in refused.stderr
    finally:
        server.shutdown()
        server.server_close()
