"""The driver stage end to end on the lab's simulated driver (lab/driver): bare hosts converge
in one run with their reboot, a host that never comes back is named while the others finish,
`missing` leaves an old branch and a proprietary module alone with a clear line, `upgrade`
replaces them with the open driver of the branch, serving hosts reboot one rolling batch at a
time, and a second run reboots nothing. Tests run in file order and share one lab."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import LAB_DIR, changed_hosts, curl, deploy, healthy_hosts, lab, ssh


def boots() -> list[tuple[float, str, str]]:
    """(time, host, event) for every power event of the lab's hosts so far: "boot", or "halt"
    and systemd-nspawn's exit status (133: the host rebooted itself)."""
    lines = (LAB_DIR / "run" / "boots.log").read_text().splitlines()
    return [(float(t), host, " ".join(event)) for t, host, *event in map(str.split, lines)]


def reboots(host: str) -> int:
    return sum(1 for _, name, event in boots() if name == host and event == "halt 133")


def loaded(host: str) -> str:
    return ssh(host, "head -n 1 /proc/driver/nvidia/version").stdout


@pytest.fixture(scope="module")
def fleet(root_required, tmp_path_factory):
    lab("up", "4", "--profiles", "bare,bare,old-driver,proprietary")
    lab("stuck-on-reboot", "lab-2")  # its firmware hangs: it never comes back
    tmp = tmp_path_factory.mktemp("driver")
    first = deploy(tmp, {"lab-1": {}, "lab-2": {"reboot_timeout_s": 15}, "lab-3": {},
                         "lab-4": {}})
    yield first, tmp
    lab("down")


def test_a_bare_host_converges_in_one_run_with_its_reboot(fleet):
    first, _ = fleet
    out = first.stdout + first.stderr
    assert "lab-1" in healthy_hosts(out), out
    assert reboots("lab-1") == 1
    assert "Open Kernel Module" in loaded("lab-1") and "570.153.02" in loaded("lab-1")
    assert ssh("lab-1", "test -d /sys/module/nouveau").returncode != 0
    assert ssh("lab-1", "systemctl is-active nvidia-persistenced").stdout.strip() == "active"
    assert curl("lab-1", "/health")[0] == 200


def test_a_host_that_never_comes_back_is_named_and_the_others_finish(fleet):
    first, _ = fleet
    out = first.stdout + first.stderr
    assert "[lab-2] did not come back within 15 s of its reboot" in out, out
    assert "lab-2  FAILED at 'Rolling batch | Reboot into the installed driver" in out
    assert "lab-1" in healthy_hosts(out)


def test_missing_leaves_an_old_branch_and_a_proprietary_module_alone_with_a_clear_line(fleet):
    first, _ = fleet
    out = first.stdout + first.stderr
    assert ("lab-3: preflight driver-version failed: found nvidia 565.57.01 (open) is loaded, "
            "below 570") in out
    assert ("lab-4: preflight driver-flavour failed: found the proprietary module nvidia "
            "580.95.05 (proprietary) is loaded on a Blackwell GPU") in out
    assert out.count("set driver_install=upgrade") >= 2
    assert reboots("lab-3") == reboots("lab-4") == 0
    assert "565.57.01" in loaded("lab-3") and "x86_64 Kernel Module" in loaded("lab-4")
    assert changed_hosts(out) >= {"lab-1"} and not changed_hosts(out) & {"lab-3", "lab-4"}


def test_upgrade_ends_on_the_open_driver_of_the_branch(fleet):
    _, tmp = fleet
    lab("reboot", "lab-2")  # its firmware fixed and powered on: it boots the installed driver
    second = deploy(tmp, {name: {"driver_install": "upgrade"}
                          for name in ("lab-1", "lab-2", "lab-3", "lab-4")})
    out = second.stdout + second.stderr
    assert second.returncode == 0, out
    assert "all 4 hosts healthy" in out
    assert "Open Kernel Module" in loaded("lab-2") and "570.153.02" in loaded("lab-2")
    assert "Open Kernel Module" in loaded("lab-3") and "570.153.02" in loaded("lab-3")
    # lab-4 runs the CUDA 13 stack: branch 580, open.
    assert "Open Kernel Module" in loaded("lab-4") and "580.95.05" in loaded("lab-4")
    assert ssh("lab-4", "dpkg -s cuda-drivers").returncode != 0
    assert reboots("lab-1") == reboots("lab-2") == 1  # already right: not rebooted again
    assert reboots("lab-3") == reboots("lab-4") == 1


def test_a_second_run_changes_nothing_and_reboots_nothing(fleet):
    _, tmp = fleet
    before = boots()
    again = deploy(tmp, {name: {"driver_install": "upgrade"}
                         for name in ("lab-1", "lab-2", "lab-3", "lab-4")})
    out = again.stdout + again.stderr
    assert again.returncode == 0, out
    assert changed_hosts(out) == set(), out
    assert boots() == before


@pytest.fixture(scope="module")
def serving(root_required, tmp_path_factory):
    lab("up", "2", "--profiles", "rtx5090-cu128,rtx5090-cu128")
    tmp = tmp_path_factory.mktemp("serving")
    first = deploy(tmp, {"lab-1": {}, "lab-2": {}})
    assert first.returncode == 0, first.stdout + first.stderr
    yield tmp
    lab("down")


def test_serving_hosts_reboot_one_rolling_batch_at_a_time(serving):
    settings = {"driver_install": "upgrade", "driver_branch": 580, "roll_batch": 1}
    result = deploy(serving, {"lab-1": settings, "lab-2": settings})
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "rolled batch 1: lab-1 (healthy)" in out and "rolled batch 2: lab-2 (healthy)" in out
    events = boots()
    halts = {host: t for t, host, event in events if event == "halt 133"}
    back = {host: max(t for t, h, event in events if h == host and event == "boot")
            for host in ("lab-1", "lab-2")}
    # lab-1 was down and back before lab-2 went down: the other one served meanwhile.
    assert halts["lab-1"] <= back["lab-1"] < halts["lab-2"] <= back["lab-2"]
    for host in ("lab-1", "lab-2"):
        assert "580.95.05" in loaded(host) and curl(host, "/health")[0] == 200
