"""Real sizes through the wheelhouse: a model of real size and format (lab/real_size.py)
fetched once from the Hub stand-in by the wheelhouse, then pulled from the wheelhouse's nginx by
1, 4 and 8 workers at once with the toolkit's own fetcher (files/model_fetch.py, the job the
deploy gives a worker); a pull cut half-way and resumed; and what the file selection saves on a
repository holding both formats. Every worker keeps its own copy: the size is chosen for the
disk (SIZE_GB x the largest count must fit), and every copy is removed at the end.

    sudo .venv/bin/python bench/model_pull.py [--size-gb 4] [--counts 1 4 8] [--keep-lab]

Per count: the wall time until the last worker has verified its copy, the bytes nginx sent
(its access log), and the aggregate rate against one worker alone. Needs a lab of the largest
count with lab-gw (brought up here, and a first deploy of the fleet with the lab's small model).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab.control import HUB_ROOT  # noqa: E402
from lab.hosts import GATEWAY_HOST, ssh  # noqa: E402
from lab.inventory import LAB_DIR  # noqa: E402
from lab.real_size import model_dir, publish  # noqa: E402
from lab.stacks import HUB_URL  # noqa: E402
from operations import hub, model_files  # noqa: E402
from operations.snapshot import MODEL_FETCH_CODE, files_list  # noqa: E402

LAB = str(ROOT / "lab" / "lab")
PYINFRA = str(Path(sys.executable).with_name("pyinfra"))
WHEELHOUSE_CACHE = "/srv/sglang-wheelhouse/models"  # the wheelhouse's, as the deploy keeps it
ACCESS_LOG = "/var/log/nginx/sglang-wheelhouse.access.log"
WORKER_CACHE = "/var/cache/bench-model"
LIST = "/var/lib/sglang-fleet/model-files/bench.json"


def job(found: hub.Pin, cache: str, source: dict, record: str) -> dict:
    """The fetcher's job for ``found`` (its selected files, through a list file)."""
    return {"host": "bench", "repo": found.repo, "commit": found.commit, "files_file": LIST,
            "files_digest": files_list(found.files)[1], "cache": cache, "source": source,
            "token_file": None, "stall_timeout_s": 120, "progress_every_s": 3600,
            "record": record}


def put_list(host: dict, found: hub.Pin) -> None:
    text = shlex.quote(files_list(found.files)[0])
    ssh(host, f"mkdir -p {Path(LIST).parent} && printf '%s' {text} > {LIST}")


def fetch_command(spec: dict) -> str:
    return shlex.join(["python3", "-c", MODEL_FETCH_CODE, "fetch", json.dumps(spec)])


def nginx_bytes_since(line_count: int) -> tuple[int, int]:
    """(bytes sent in the log lines after ``line_count``, the log's line count now)."""
    lines = ssh(GATEWAY_HOST, f"cat {ACCESS_LOG}").stdout.splitlines()
    sent = 0
    for line in lines[line_count:]:
        fields = line.split('"')
        if len(fields) > 2:
            status_size = fields[2].split()
            if len(status_size) >= 2 and status_size[1].isdigit():
                sent += int(status_size[1])
    return sent, len(lines)


def pull(workers: list[dict], found: hub.Pin, mirror: str) -> tuple[float, int]:
    """Every worker of ``workers`` fetches ``found`` from the wheelhouse at once: (wall s,
    bytes nginx sent)."""
    for worker in workers:
        ssh(worker, f"rm -rf {WORKER_CACHE}")
        put_list(worker, found)
    _, before = nginx_bytes_since(0)
    spec = job(found, WORKER_CACHE, {"mirror": mirror}, f"{WORKER_CACHE}/verified.json")
    failures: list[str] = []

    def one(worker: dict) -> None:
        done = ssh(worker, fetch_command(spec), check=False)
        if done.returncode:
            failures.append(f"{worker['name']}: {done.stderr or done.stdout}")
    started = time.monotonic()
    threads = [threading.Thread(target=one, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    if failures:
        raise SystemExit("\n".join(failures))
    return wall, nginx_bytes_since(before)[0]


def resumed(worker: dict, found: hub.Pin, mirror: str) -> tuple[int, int, int]:
    """A pull killed half-way, then run again: (bytes in place when it was cut, bytes nginx
    sent for the second run, bytes that were missing)."""
    ssh(worker, f"rm -rf {WORKER_CACHE}")
    put_list(worker, found)
    spec = job(found, WORKER_CACHE, {"mirror": mirror}, f"{WORKER_CACHE}/verified.json")
    pid = ssh(worker, f"nohup {fetch_command(spec)} >/dev/null 2>&1 & echo $!").stdout.strip()
    half = found.size // 2
    while True:  # the size of what arrived so far, until half the model is there
        have = int(ssh(worker, f"du -sb {WORKER_CACHE} 2>/dev/null | cut -f1 || echo 0"
                       ).stdout.strip() or 0)
        if have >= half:
            break
        time.sleep(0.2)
    ssh(worker, f"kill -9 {pid}")
    kept = int(ssh(worker, f"du -sb {WORKER_CACHE} | cut -f1").stdout.strip())
    _, before = nginx_bytes_since(0)
    done = ssh(worker, fetch_command(spec), check=False)
    if done.returncode:
        raise SystemExit(done.stderr)
    sent = nginx_bytes_since(before)[0]
    return kept, sent, found.size


def free_gb() -> float:
    return shutil.disk_usage(LAB_DIR).free / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-gb", type=float, default=4)
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--keep-lab", action="store_true")
    args = parser.parse_args()
    largest = max(args.counts)
    print(f"disk free at the start: {free_gb():.1f} GB", flush=True)
    subprocess.run([LAB, "up", str(largest), "--profiles", ",".join(["rtx5090-cu13"] * largest),
                    "--gateway"], check=True, cwd=ROOT)
    deployed = subprocess.run([PYINFRA, "-y", "inventory.py", "deploy.py"], cwd=ROOT,
                              capture_output=True, text=True)
    if deployed.returncode:
        Path("/tmp/bench-failed.log").write_text(deployed.stdout + deployed.stderr)
        raise SystemExit("the first deploy failed (/tmp/bench-failed.log)")
    repo = f"lab/real-{args.size_gb:g}gb"
    folder = model_dir(args.size_gb)
    publish(HUB_ROOT, repo, folder)
    lock = LAB_DIR / "bench-model.lock.json"
    found = hub.pin_fleet({"bench": (repo, None, HUB_URL, None)}, lock)[0]["bench"]
    found = hub.Pin(found.repo, found.commit, model_files.select(found.files), found.endpoint)
    print(f"model {repo}@{found.commit[:12]}: {len(found.files)} files, "
          f"{found.size / 1e9:.2f} GB (safetensors shards of random bfloat16 weights)",
          flush=True)
    started = time.monotonic()
    put_list(GATEWAY_HOST, found)
    ssh(GATEWAY_HOST, fetch_command(job(found, WHEELHOUSE_CACHE, {"hub": HUB_URL},
                                        "/srv/sglang-wheelhouse/bench-verified.json")))
    print(f"the wheelhouse fetched it from the Hub stand-in once: "
          f"{time.monotonic() - started:.1f} s", flush=True)
    folder_name = "models--" + repo.replace("/", "--")
    mirror = (f"http://{GATEWAY_HOST['address']}:8091/_models/{folder_name}/snapshots/"
              f"{found.commit}")
    workers = [h for h in json.loads((LAB_DIR / "hosts.json").read_text())
               if h["name"] != GATEWAY_HOST["name"]]
    alone = None
    for count in args.counts:
        wall, sent = pull(workers[:count], found, mirror)
        rate = count * found.size / wall
        alone = alone or rate
        print(f"{count} worker(s) at once: {wall:6.1f} s, nginx sent {sent / 1e9:6.2f} GB "
              f"({sent / found.size:.2f} copies), {rate / 1e6:7.1f} MB/s in all, "
              f"{rate / alone:.2f} x one worker alone", flush=True)
    kept, sent, size = resumed(workers[0], found, mirror)
    print(f"cut at {kept / 1e9:.2f} of {size / 1e9:.2f} GB, then resumed: nginx sent "
          f"{sent / 1e9:.2f} GB the second time ({(sent - (size - kept)) / 1e6:+.1f} MB "
          "against what was missing)", flush=True)
    both = model_dir(args.size_gb, both_formats=True)
    publish(HUB_ROOT, f"{repo}-both", both)
    found_both = hub.pin_fleet({"bench": (f"{repo}-both", None, HUB_URL, None)},
                               lock)[0]["bench"]
    staged = sum(f["size"] for f in model_files.select(found_both.files))
    print(f"a repository with both formats: {found_both.size / 1e9:.2f} GB in all, "
          f"{staged / 1e9:.2f} GB staged, {(found_both.size - staged) / 1e9:.2f} GB saved",
          flush=True)
    print(f"disk free before the clean-up: {free_gb():.1f} GB", flush=True)
    for worker in workers[:largest]:
        ssh(worker, f"rm -rf {WORKER_CACHE}")
    ssh(GATEWAY_HOST, f"rm -rf {WHEELHOUSE_CACHE}/hub/{folder_name}")
    if not args.keep_lab:
        subprocess.run([LAB, "down"], check=True, cwd=ROOT)
    print(f"disk free after: {free_gb():.1f} GB", flush=True)



if __name__ == "__main__":
    main()
