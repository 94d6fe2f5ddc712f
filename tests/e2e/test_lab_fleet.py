"""The lab fleet end to end: three booted hosts (two good, one with a driver too old for CUDA
12.8), the real deploy over SSH, the network, idempotence, the chart's literal launch line, and
a clean teardown. Tests run in file order and share one lab."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lab.processes import descendants
from tests.e2e.conftest import (
    LAB_DIR,
    ROOT,
    HeldIndex,
    changed_hosts,
    curl,
    deploy,
    healthy_hosts,
    journal_after,
    journal_cursor,
    lab,
    lab_hosts,
    round_trips,
    ssh,
    start_deploy,
    unchanged_hosts,
    wait_for,
)

CHART_FLAGS = ("--quantization awq --max-total-tokens 1024 --mem-fraction-static 0.65 "
               "--trust-remote-code --disable-cuda-graph --disable-custom-all-reduce "
               "--disable-flashinfer --disable-radix-cache --attention-backend torch_native"
               ).split()


@pytest.fixture(scope="module")
def fleet(root_required):
    lab("up", "3", "--profiles", "rtx5090-cu128,rtx5090-cu13,old-driver")
    first = deploy()
    yield first
    lab("down")


def test_first_deploy_serves_two_hosts_and_names_the_failed_one(fleet):
    out = fleet.stdout + fleet.stderr
    assert fleet.returncode != 0, out
    assert ("lab-3: preflight driver-version failed: found nvidia 565.57.01 (open) is loaded, "
            "below 570") in out
    assert "needed driver >= 570" in out and "set driver_install=upgrade" in out
    assert {"lab-1", "lab-2"} <= healthy_hosts(out)
    assert "1 of 3 hosts failed: lab-3" in out
    assert changed_hosts(out) == {"lab-1", "lab-2"}


def test_failed_host_was_not_changed(fleet):
    assert ssh("lab-3", "test -e /opt/sglang || dpkg -s libnuma1").returncode != 0


def test_healthy_hosts_answer_health_and_generate_over_the_lab_network(fleet):
    for host in ("lab-1", "lab-2"):
        assert curl(host, "/health")[0] == 200
        status, body = curl(host, "/generate",
                            '{"text": "Hello", "sampling_params": {"max_new_tokens": 5}}')
        assert status == 200
        reply = json.loads(body)
        assert reply["meta_info"]["completion_tokens"] == 5 and reply["text"].strip()


def test_service_is_enabled_active_and_runs_as_its_own_user(fleet):
    result = ssh("lab-1", "systemctl is-enabled sglang; systemctl is-active sglang; "
                 "ps -o user= -p $(systemctl show -p MainPID --value sglang)")
    assert result.stdout.split() == ["enabled", "active", "sglang"]


def test_environment_file_is_root_only(fleet):
    assert ssh("lab-1", "stat -c '%U %a' /etc/sglang/sglang.env").stdout.split() == ["root",
                                                                                      "600"]


def test_second_deploy_changes_nothing_on_healthy_hosts_in_two_round_trips_each(fleet):
    """What every operation checks is read ahead, in one command per host (root login), the
    run lock taken first in it; the lock's release is the second. lab-3, refused by preflight,
    gets those and its refusal's failing command."""
    second = deploy(extra=("--debug",))
    out = second.stdout + second.stderr
    assert unchanged_hosts(out) == {"lab-1", "lab-2"}, out[-3000:]
    assert changed_hosts(out) & {"lab-1", "lab-2"} == set(), out[-3000:]
    assert round_trips(out) == {"lab-1": 2, "lab-2": 2, "lab-3": 3}
    for name in ("lab-1", "lab-2", "lab-3"):  # released: no lock left behind
        assert ssh(name, "test -e /var/lib/sglang-fleet/run-lock.json").returncode == 1


def test_charts_literal_line_is_refused_and_service_left_running(fleet, tmp_path):
    before = ssh("lab-1", "systemctl show -p MainPID --value sglang; "
                 "md5sum /etc/systemd/system/sglang.service").stdout
    result = deploy(tmp_path, {"lab-1": {"extra_flags": CHART_FLAGS}})
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "lab-1: SGLang 0.5.23 refuses the server argv, the service was left as it was" in out
    assert "ambiguous option: --disable-flashinfer could match" in out
    assert ssh("lab-1", "systemctl show -p MainPID --value sglang; "
               "md5sum /etc/systemd/system/sglang.service").stdout == before
    assert curl("lab-1", "/health")[0] == 200


def test_sandbox_exposure_is_at_most_4_while_serving(fleet):
    report = ssh("lab-1", "systemd-analyze security --no-pager sglang.service").stdout
    score = float(re.search(r"Overall exposure level for sglang.service: ([0-9.]+)",
                            report).group(1))
    assert score <= 4.0, report
    assert curl("lab-1", "/health")[0] == 200


def test_secrets_never_leak(fleet, tmp_path, monkeypatch):
    token, key = "hf_TESTtoken0123456789", "sk-TESTkey-0123456789"
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setenv("SGLANG_API_KEY", key)
    result = deploy(tmp_path, {"lab-1": {}}, extra=("-vvv", "--diff"))
    assert result.returncode == 0, result.stdout[-3000:]
    for secret in (token, key):
        assert secret not in result.stdout + result.stderr, "pyinfra printed a secret"
        # The pattern is split and joined by the shell into a file, so that no process of
        # the search itself carries the secret in its argv.
        half = len(secret) // 2
        leaks = ssh("lab-1", f"a={secret[:half]}; b={secret[half:]}; printf '%s\\n' \"$a$b\" "
                             f"> /run/pattern; grep -l -F -f /run/pattern "
                             f"/etc/systemd/system/sglang.service /proc/[0-9]*/cmdline "
                             f"2>/dev/null; journalctl --no-pager | grep -c -F -f /run/pattern; "
                             f"rm -f /run/pattern").stdout.split()
        assert leaks == ["0"], f"found in {leaks}"
    assert ssh("lab-1", "stat -c '%U %a' /etc/sglang/sglang.env /etc/sglang/api-key.json "
                        "/etc/sglang/hf-token").stdout.split() == ["root", "600"] * 3
    # The token is for fetching from the Hub only: the server runs offline without it.
    assert ssh("lab-1", "grep -c HF_TOKEN /etc/sglang/sglang.env").stdout.strip() == "0"
    body = '{"text": "Hi", "sampling_params": {"max_new_tokens": 2}}'
    assert curl("lab-1", "/generate", body)[0] == 401
    address = lab_hosts()["lab-1"]["address"]
    authorised = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-K",
                                 "-", "-d", body, f"http://{address}:8000/generate"],
                                input=f'header = "Authorization: Bearer {key}"\n',
                                capture_output=True, text=True).stdout
    assert authorised == "200"


def test_server_killed_with_sigkill_comes_back_by_itself(fleet):
    before = ssh("lab-2", "systemctl show -p MainPID --value sglang").stdout.strip()
    ssh("lab-2", f"kill -KILL {before}")
    assert wait_for(lambda: curl("lab-2", "/health")[0] == 200 and ssh(
        "lab-2", "systemctl show -p MainPID --value sglang").stdout.strip() != before,
        timeout=60)


def test_host_reboot_brings_the_service_back_by_itself(fleet):
    lab("reboot", "lab-1")
    assert wait_for(lambda: curl("lab-1", "/health")[0] == 200, timeout=60)
    assert ssh("lab-1", "systemctl is-active sglang").stdout.strip() == "active"


def test_host_lost_in_the_middle_of_a_run_is_named_and_the_others_finish(fleet, tmp_path):
    ssh("lab-1", "rm -f /opt/sglang/stack.json")  # lab-1 has real work: its stack again
    # lab-2 must fetch (pip skips the index for pins already installed): a new venv.
    ssh("lab-2", "systemctl stop sglang; rm -rf /opt/sglang/venv /opt/sglang/stack.json")
    with HeldIndex() as index:  # lab-2's install waits there until the host is lost
        running = start_deploy(tmp_path, {"lab-1": {}, "lab-2": {"pip_index_url": index.url}})
        try:
            assert index.reached.wait(300), "the run never reached lab-2's venv install"
            lab("poweroff", "lab-2")
            out, _ = running.communicate(timeout=300)
        finally:
            running.kill()
    try:
        assert running.returncode != 0
        assert "lab-1" in healthy_hosts(out), out[-3000:]
        assert re.search(r"1 of 2 hosts failed: lab-2", out), out[-3000:]
    finally:
        lab("reboot", "lab-2")
    assert deploy(tmp_path, {"lab-2": {}}).returncode == 0


def test_port_held_by_another_process_stops_preflight_and_changes_nothing(fleet, tmp_path):
    ssh("lab-2", "systemctl stop sglang && systemd-run --unit=squatter python3 -m http.server "
                 "8000")
    assert wait_for(lambda: any(  # a socket whose local port is 8000, in LISTEN (0A)
        f[1].endswith(":1F40") and f[3] == "0A" for f in map(str.split, ssh(
            "lab-2", "cat /proc/net/tcp /proc/net/tcp6").stdout.splitlines()[1:]) if len(f) > 3),
        timeout=30), "the squatter never listened on port 8000"
    try:
        before = ssh("lab-2", "md5sum /etc/systemd/system/sglang.service").stdout
        result = deploy(tmp_path, {"lab-2": {}})
        out = result.stdout + result.stderr
        assert result.returncode != 0
        assert re.search(r"lab-2: preflight port failed: found port 8000 held by pid \d+ "
                         r"\(python3, squatter.service\)", out), out
        assert "Install libnuma" not in out
        assert ssh("lab-2", "systemctl is-active sglang").stdout.strip() == "inactive"
        assert ssh("lab-2", "md5sum /etc/systemd/system/sglang.service").stdout == before
    finally:
        ssh("lab-2", "systemctl stop squatter")
    assert deploy(tmp_path, {"lab-2": {}}).returncode == 0


def test_nearly_full_disk_fails_preflight_before_installing(fleet, tmp_path):
    ssh("lab-2", "mkdir -p /srv/small && mount -t tmpfs -o size=64m tmpfs /srv/small && "
                 "fallocate -l 60M /srv/small/fill")
    try:
        result = deploy(tmp_path, {"lab-2": {"install_dir": "/srv/small/sglang",
                                             "model_cache_dir": "/srv/small/cache",
                                             "min_free_disk_gb": 1}})
        out = result.stdout + result.stderr
        assert result.returncode != 0
        # One filesystem under both paths: the stack, the model and the margin, each said.
        assert ("lab-2: preflight disk-space failed: found 0.0 GB free at /srv/small/cache and "
                "/srv/small/sglang; needed > ") in out, out[-3000:]
        assert "GB for the stack lab-cu13-stable, " in out and "GB for the model " in out
        assert ssh("lab-2", "ls /srv/small").stdout.split() == ["fill"]
    finally:
        ssh("lab-2", "umount /srv/small")


def test_deploy_interrupted_during_the_venv_install_converges_next_time(fleet, tmp_path):
    ssh("lab-1", "systemctl stop sglang; rm -rf /opt/sglang/venv /opt/sglang/stack.json")
    with HeldIndex() as index:  # the install waits there: the kill below lands inside it
        running = start_deploy(tmp_path, {"lab-1": {"pip_index_url": index.url}})
        try:
            assert index.reached.wait(300), "the deploy never reached the venv install"
        finally:
            running.kill()  # the control side dies mid-install...
            running.wait()
        uv = ssh("lab-1", "pgrep -f 'venv/bin/uv pip install'").stdout.split()
        assert uv, "uv is waiting on the index, so it must still run"
        ssh("lab-1", f"kill -KILL {' '.join(uv)}")  # ...and so does the install it started
    assert ssh("lab-1", "test -e /opt/sglang/stack.json").returncode != 0
    again = deploy(tmp_path, {"lab-1": {}})
    assert again.returncode == 0, again.stdout[-3000:]
    assert curl("lab-1", "/health")[0] == 200
    # The killed run's lock did not stop this one: its connection was gone, and it says so.
    assert re.search(r"lab-1: took over the run lock from the run of \S+ \(pid "
                     rf"{running.pid}, since [^)]+\): its connection to this host is gone",
                     again.stdout), again.stdout[-3000:]


def test_bad_setting_stops_the_run_before_any_operation(fleet, tmp_path):
    result = deploy(tmp_path, {"lab-1": {"model": "Qwen/x; reboot"}, "lab-2": {}})
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "lab-1: setting 'model'" in out and "nothing was changed on any host" in out
    assert "Starting operation" not in out
    # Said once, though the deploy loads for both hosts at once; a refusal is not a crash.
    assert out.count("--> Refused:") == 1 and "Traceback" not in out, out


def test_mistyped_setting_in_data_is_refused_with_the_closest_name(fleet):
    """`--data profil=debugging` used to end "No change" on every host: the user believed the
    profile had changed."""
    result = deploy(extra=("--data", "profil=debugging"))
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "unknown setting 'profil': did you mean 'profile'?" in out
    assert "Starting operation" not in out


def running(processes: list[tuple[int, str]]) -> list[int]:
    """Those that have not exited (zombies have: see lab/processes.py)."""
    alive = []
    for pid, started in processes:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[19] == started and fields[0] not in "ZX":
            alive.append(pid)
    return alive


def other_checkout(tmp_path: Path) -> Path:
    """A second checkout of this tree (what git tracks and would track), as a second operator
    has: its own directory, fleet file and modules."""
    copy = tmp_path / "checkout-b"
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    return copy


def test_two_deploys_started_together_change_and_restart_each_host_once(fleet, tmp_path):
    change = {"lab-1": {"profile": "debugging"}, "lab-2": {"profile": "debugging"}}
    cursors = {name: journal_cursor(name) for name in change}
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir()
    b_dir.mkdir()
    runs = [start_deploy(a_dir, change), start_deploy(b_dir, change, cwd=other_checkout(tmp_path))]
    try:
        outs = [run.communicate(timeout=900)[0] for run in runs]
    finally:
        for run in runs:
            run.kill()
    for run, out in zip(runs, outs, strict=True):
        assert run.returncode == 0, out[-3000:]
        assert {"lab-1", "lab-2"} <= healthy_hosts(out), out[-3000:]
    changed = [changed_hosts(out) & set(change) for out in outs]
    assert changed[0].isdisjoint(changed[1]) and changed[0] | changed[1] == set(change), changed
    for name, cursor in cursors.items():  # one start of each server, by whichever run
        assert journal_after(name, cursor).count("Started sglang.service") == 1, name
    naming = [out for run, out in zip(runs[::-1], outs, strict=True)
              if re.search(rf"held by the run of \S+ \(pid {run.pid}, since ", out)]
    assert naming, "neither run named the other"
    assert "Could not get lock" not in "".join(outs)  # no two apt-gets at once


def test_lab_down_leaves_nothing_behind(fleet):
    recorded = {p.stem: int(p.read_text()) for p in (LAB_DIR / "run").glob("*.pid")}
    assert {"proxy", "wheelhouse", "hub", "host-lab-1"} <= set(recorded)
    started = [(pid, Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
               for pid in recorded.values()]
    inside = descendants([pid for name, pid in recorded.items() if name.startswith("host-")])
    assert len(inside) > 10, "the check must see the hosts' own processes (systemd, sshd, ...)"
    lab("down")
    assert not [m for m in Path("/proc/mounts").read_text().splitlines()
                if str(LAB_DIR) in m]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "sglab0" not in links and "vb-lab-" not in links
    assert running(started + inside) == []
    assert not (LAB_DIR / "hosts").exists() and not (LAB_DIR / "hosts.json").exists()
