"""Model weights end to end: three workers and lab-gw (gateway and wheelhouse) against the lab's
Hugging Face Hub stand-in. The model's main is pinned once for the fleet, fetched from the Hub
once (by the wheelhouse), verified and staged on every worker before its server starts offline;
a second deploy moves nothing; main moving upstream changes nothing until the revision does;
a flipped byte is named and repaired; a gated model without a token is refused before any
change. Tests run in file order and share one lab."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from lab.hosts import host_address
from lab.stacks import HUB_GATED, HUB_MODEL, HUB_URL
from operations.model_files import select
from tests.e2e.conftest import (
    LAB_DIR,
    changed_hosts,
    curl,
    deploy,
    deploy_with_gateway,
    failures_by_test,
    lab,
    ssh,
    verify_fleet,
)

WORKERS = ["lab-1", "lab-2", "lab-3"]
LAB_1 = host_address(1) + " "  # lab-1, as nginx's log begins its lines
CACHE = "/var/cache/sglang/hub/models--" + HUB_MODEL.replace("/", "--")


def hub_stats() -> dict:
    out = subprocess.run(["curl", "-s", "-m", "10", f"{HUB_URL}/_lab/stats"],
                         capture_output=True, text=True).stdout
    return json.loads(out)


def lock() -> dict:
    return json.loads((LAB_DIR / "fleet.lock.json").read_text())


def pinned() -> str:
    return lock()["pins"][f"{HUB_URL} {HUB_MODEL}"]


def served_revision(name: str) -> str:
    argv = ssh(name, "tr '\\0' ' ' < /proc/$(systemctl show -p MainPID --value sglang)/cmdline"
               ).stdout.split()
    return argv[argv.index("--revision") + 1]


@pytest.fixture(scope="module")
def first(root_required, tmp_path_factory):
    lab("up", "3", "--profiles", "rtx5090-cu13,rtx5090-cu128,rtx5090-cu13", "--gateway")
    yield deploy_with_gateway(tmp_path_factory.mktemp("first"))
    lab("down")


def test_main_is_pinned_once_and_every_worker_serves_that_commit_offline(first):
    out = first.stdout + first.stderr
    assert first.returncode == 0, out[-3000:]
    commit = pinned()
    assert out.count(f"pinned {HUB_MODEL} at {commit} (its main now)") == 1
    for name in WORKERS:
        assert served_revision(name) == commit
        assert ssh(name, "grep -x 'HF_HUB_OFFLINE=\"1\"' /etc/sglang/sglang.env").returncode == 0
        assert ssh(name, f"test -f {CACHE}/snapshots/{commit}/config.json").returncode == 0


def test_the_hub_sent_each_file_once_for_the_whole_fleet(first):
    """Each file the server loads, once; the repository's README is not one of them."""
    manifest = lock()["manifests"][f"{HUB_URL} {HUB_MODEL}@{pinned()}"]
    files = {f["path"] for f in select(manifest)}
    assert "README.md" in {f["path"] for f in manifest} and "README.md" not in files
    gets = hub_stats()["gets"]
    assert {key.rsplit("/", 1)[1]: n for key, n in gets.items()} == {f: 1 for f in files}
    out = first.stdout + first.stderr  # progress is shown as it comes, on stderr
    assert f"model {HUB_MODEL}@{pinned()[:12]}: " in out and "verified" in out


def test_a_second_deploy_moves_no_model_bytes_and_changes_nothing(first, tmp_path):
    before = hub_stats()
    again = deploy_with_gateway(tmp_path)
    out = again.stdout + again.stderr
    assert again.returncode == 0, out[-3000:]
    assert hub_stats() == before
    assert changed_hosts(out) == set(), out[-3000:]


def test_a_stacks_wheel_cut_part_way_is_resumed_from_the_wheelhouse(first, tmp_path):
    """A worker's stack install from the wheelhouse was cut part-way through its largest
    wheel (what a reboot leaves: the bytes that came); the next deploy asks nginx for the rest
    only, checks every file's sha256, installs, and keeps no wheels once installed."""
    record = json.loads(ssh("lab-1", "cat /opt/sglang/stack.json").stdout)
    url = record["wheelhouse"]
    listed = json.loads(ssh("lab-gw", f"cat /srv/sglang-wheelhouse/stacks/{record['stack']}/"
                                      "files.json").stdout)
    wheel = max(listed, key=lambda f: f["size"])
    kept = wheel["size"] // 2
    blobs = f"/opt/sglang/wheels/hub/models--stack--{record['stack']}/blobs"
    fetch_half = (f"import urllib.request; r = urllib.request.Request('{url}/files/"
                  f"{wheel['path']}', headers={{'Range': 'bytes=0-{kept - 1}'}}); "
                  f"open('{blobs}/{wheel['sha256']}.incomplete', 'wb').write("
                  "urllib.request.urlopen(r).read())")
    ssh("lab-1", f"systemctl stop sglang; rm -rf /opt/sglang/venv /opt/sglang/stack.json; "
                 f"mkdir -p {blobs} && python3 -c \"{fetch_half}\"")
    log = "/var/log/nginx/sglang-wheelhouse.access.log"
    start = int(ssh("lab-gw", f"stat -c %s {log}").stdout)
    again = deploy_with_gateway(tmp_path)
    out = again.stdout + again.stderr
    assert again.returncode == 0, out[-3000:]
    assert f"resuming at {kept} of {wheel['size']} bytes" in out, out[-3000:]
    # nginx's log since: that wheel, to lab-1, the rest of it and nothing more
    sent = [line.split('"')[2].split() for line in
            ssh("lab-gw", f"tail -c +{start + 1} {log}").stdout.splitlines()
            if f"/files/{wheel['path']} " in line and line.startswith(LAB_1)]
    assert sent == [["206", str(wheel["size"] - kept)]], sent
    assert "stack " in out and "GB fetched from the wheelhouse" in out
    assert ssh("lab-1", "test -e /opt/sglang/wheels").returncode != 0
    assert curl("lab-1", "/health")[0] == 200


def test_a_flipped_byte_is_named_by_verification_and_repaired_by_the_next_deploy(
        first, tmp_path):
    weights = next(f for f in lock()["manifests"][f"{HUB_URL} {HUB_MODEL}@{pinned()}"]
                   if f["path"] == "model.safetensors")
    blob = f"{CACHE}/blobs/{weights['sha256']}"
    ssh("lab-2", f"python3 -c \"p='{blob}'; d=bytearray(open(p,'rb').read()); d[100]^=1; "
                 f"open(p,'wb').write(d)\"")
    result, junit = verify_fleet(tmp_path)
    failures = failures_by_test(junit)
    assert result.returncode == 1
    assert f"model.safetensors (expected {weights['sha256']}, found " in \
        failures["test_model[lab-2]"]
    assert not [n for n in failures if n.endswith("[lab-1]") or n.endswith("[lab-3]")]
    repaired = deploy_with_gateway(tmp_path)
    out = repaired.stdout + repaired.stderr
    assert repaired.returncode == 0, out[-3000:]
    assert re.search(rf"model.safetensors: expected {weights['sha256']}, found [0-9a-f]{{64}}: "
                     "fetching it again", out), out[-3000:]
    result, _ = verify_fleet(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]


def test_main_moving_upstream_changes_nothing_until_the_revision_does(first, tmp_path):
    old = pinned()
    moved = lab("hub-advance").stdout.strip().rsplit(" ", 1)[1]
    assert moved != old
    quiet = deploy_with_gateway(tmp_path)
    assert quiet.returncode == 0 and changed_hosts(quiet.stdout) == set(), quiet.stdout[-3000:]
    assert {served_revision(n) for n in WORKERS} == {old}
    before = hub_stats()["gets"]
    rolled = deploy_with_gateway(tmp_path, model_revision=moved, roll_batch=1)
    out = rolled.stdout + rolled.stderr
    assert rolled.returncode == 0, out[-3000:]
    for number, name in enumerate(WORKERS, start=1):
        assert f"rolled batch {number}: {name} (healthy)" in out, out[-3000:]
        assert served_revision(name) == moved
    fetched = {k: n - before.get(k, 0) for k, n in hub_stats()["gets"].items()
               if n != before.get(k, 0)}
    assert fetched and all(moved in key for key in fetched) and set(fetched.values()) == {1}


def test_a_gated_model_without_a_token_is_refused_before_any_change(first, tmp_path):
    before = ssh("lab-1", "md5sum /etc/systemd/system/sglang.service").stdout
    refused = deploy(tmp_path, {"lab-1": {"model": HUB_GATED}})
    out = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert (f"lab-1: preflight model failed: found {HUB_GATED}: HTTP 401 GatedRepo Access to "
            f"model {HUB_GATED} is restricted" in out), out[-3000:]
    assert "accept the model's conditions on its Hub page and give HF_TOKEN" in out
    assert "lab-1  FAILED at 'Preflight: model'" in out
    assert ssh("lab-1", "md5sum /etc/systemd/system/sglang.service").stdout == before


def test_a_transfer_cut_half_way_resumes_on_the_next_deploy(first, tmp_path):
    """A worker that fetches from the Hub itself (no wheelhouse in this fleet): the Hub stops
    sending half-way through a file, the deploy fails that host with the stall named; the
    next deploy asks for the rest only, says so, and serves the new commit."""
    moved = lab("hub-advance").stdout.strip().rsplit(" ", 1)[1]
    (LAB_DIR / "hub" / "stall").touch()
    try:
        cut = deploy(tmp_path, {"lab-1": {"model_revision": moved,
                                          "model_stall_timeout_s": 3}})
    finally:
        (LAB_DIR / "hub" / "stall").unlink()
    out = cut.stdout + cut.stderr
    assert cut.returncode != 0 and "the transfer stalled: no data for 3 s" in out, out[-3000:]
    partial = ssh("lab-1", f"find {CACHE}/blobs -name '*.incomplete' -size +0 "
                           "-printf '%f %s\\n'").stdout.split()
    assert len(partial) == 2, partial  # what arrived before the cut is kept
    cut_blob, kept = partial[0].removesuffix(".incomplete"), int(partial[1])
    before = hub_stats()["bytes"]
    again = deploy(tmp_path, {"lab-1": {"model_revision": moved}})
    out = again.stdout + again.stderr
    assert again.returncode == 0, out[-3000:]
    resumed = re.search(r"resuming at (\d+) of (\d+) bytes", out)
    assert resumed and int(resumed.group(1)) == kept, out[-3000:]
    staged = select(lock()["manifests"][f"{HUB_URL} {HUB_MODEL}@{moved}"])
    cut = next(f for f in staged if cut_blob in (f.get("sha256"), f.get("blob")))
    sent = hub_stats()["bytes"] - before
    # The rest of the cut file (and what the cache lacked besides): nothing sent twice.
    assert cut["size"] - kept <= sent <= sum(f["size"] for f in staged) - kept, (sent, staged)
    assert served_revision("lab-1") == moved
