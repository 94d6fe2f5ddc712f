"""The driver stage's decisions and commands, on driver states hosts gave
(tests/fixtures/driver-states): which states each driver_install mode fixes, which it refuses
and with what words, and the commands that install the open driver."""

from __future__ import annotations

import pytest

from operations import drivers
from operations.diagnosis import diagnose
from operations.facts.gpu import NvidiaDriver
from operations.settings import DRIVER_MODES, SettingsError, validate
from operations.stages import driver
from tests.conftest import CAPTURES, FIXTURES, FakeHost
from tests.unit.test_operations import run_op
from tests.unit.test_preflight import gpus_from

STATES = FIXTURES / "driver-states"
LAB_REPO = "http://10.213.0.1/debian12/x86_64/"
NO_DRIVER = {"driver": None, "cuda": None, "gpus": [],
             "error": "nvidia-smi: command not found"}


def state(name: str, **changes) -> dict:
    found = NvidiaDriver().process((STATES / f"{name}.txt").read_text().splitlines())
    return {**found, **changes}


def settings(**data):
    return validate("gpu-01", {"stack": "cu128-nightly", **data})


def plan(name: str, gpus=NO_DRIVER, **data) -> drivers.DriverPlan:
    return drivers.plan(settings(**data), state(name), gpus)


def test_the_loaded_modules_flavour_comes_from_proc_driver_nvidia_versions_wording():
    real = (STATES / "h100-ubuntu2404-loaded.txt").read_text()
    assert drivers.loaded_module(real) == drivers.Module("open", "580.159.04")
    proprietary = state("lab-proprietary-580")["loaded"]
    assert drivers.loaded_module(proprietary) == drivers.Module("proprietary", "580.95.05")
    assert drivers.loaded_module("") is None


def test_a_real_gpu_hosts_driver_state_is_read_and_left_alone():
    """The fact's command on the real GPU host: its driver is fine, so no mode touches it; a
    newer branch would need packages it was not installed with."""
    real = state("h200-device")
    assert (real["os"], real["nouveau"], real["packages"]) == ("ubuntu-24.04", False, {})
    assert drivers.loaded_module(real["loaded"]) == drivers.Module("open", "580.159.04")
    h200 = {"driver": "580.159.04", "cuda": "13.0", "error": None,
            "gpus": [{"compute_cap": "9.0"}]}
    for mode in DRIVER_MODES:
        found = drivers.plan(settings(stack="cu13-stable", driver_install=mode), real, h200)
        assert (found.problems, found.refusals, found.acts) == ([], [], False)
    newer = drivers.plan(settings(stack="cu13-stable", driver_install="upgrade",
                                  driver_branch=590), real, h200)
    assert [r[0] for r in newer.refusals] == ["driver-install"]


def test_the_installed_module_comes_from_nvidias_and_ubuntus_package_names():
    assert drivers.installed_module(state("lab-pending-580-over-565")["packages"]) == \
        drivers.Module("open", "580.95.05")
    assert drivers.installed_module({"nvidia-dkms-580-open": "580.95.05-0ubuntu1"}) == \
        drivers.Module("open", "580.95.05")
    assert drivers.installed_module({"nvidia-dkms-570-server": "570.195.03-0ubuntu0.24.04.1"}) \
        == drivers.Module("proprietary", "570.195.03")
    assert drivers.installed_module({"nvidia-smi": "580.95.05-1"}) is None


def test_a_bare_host_gets_the_open_driver_nouveau_blacklisted_and_a_reboot():
    found = plan("lab-bare")
    assert (found.install, found.blacklist_nouveau, found.reboot, found.refusals) == (
        True, True, True, [])
    assert found.branch == 570 and not found.from_archive
    assert [p.key for p in found.problems] == ["nouveau-loaded", "driver-missing"]


def test_with_never_a_bare_host_is_refused_naming_what_is_missing():
    found = plan("lab-bare", driver_install="never")
    assert not found.acts
    assert [r[0] for r in found.refusals] == ["nouveau", "nvidia-driver"]
    assert "nvidia-smi: command not found" in found.refusals[1][1]
    assert "driver_install=missing" in found.refusals[1][3]


def test_an_old_branch_is_refused_by_missing_and_replaced_by_upgrade():
    gpus = gpus_from(CAPTURES / "rtx5090-565")
    [refusal] = plan("lab-open-565", gpus).refusals
    assert refusal[0] == "driver-version" and "565.57.01" in refusal[1]
    assert ">= 570" in refusal[2] and "driver_install=upgrade" in refusal[3]
    found = plan("lab-open-565", gpus, driver_install="upgrade")
    assert (found.install, found.reboot, found.blacklist_nouveau, found.remove) == (
        True, True, False, ())


def test_the_proprietary_module_on_blackwell_is_refused_or_replaced_by_the_open_one():
    gpus = {**NO_DRIVER, "error": "No devices were found"}
    [refusal] = plan("lab-proprietary-580", gpus, stack="cu13-stable").refusals
    assert refusal[0] == "driver-flavour" and "Blackwell" in refusal[1]
    found = plan("lab-proprietary-580", gpus, stack="cu13-stable", driver_install="upgrade")
    assert (found.install, found.reboot, found.remove, found.branch) == (
        True, True, ("cuda-drivers",), 580)


def test_an_installed_driver_not_yet_loaded_needs_only_its_reboot():
    found = plan("lab-pending-580-over-565",
                 {**NO_DRIVER, "error": "Failed to initialize NVML: Driver/library version "
                                        "mismatch"})
    assert (found.install, found.reboot) == (False, True)
    assert found.problems[0].key == "driver-pending-reboot"


def test_a_good_driver_is_left_alone_unless_upgrade_asks_for_a_newer_branch():
    gpus = gpus_from(CAPTURES / "rtx5090-570")
    for mode in DRIVER_MODES:
        assert not plan("lab-open-570", gpus, driver_install=mode).acts
    found = plan("lab-open-570", gpus, driver_install="upgrade", driver_branch=580)
    assert (found.install, found.reboot, found.branch) == (True, True, 580)
    assert not plan("lab-open-570", gpus, driver_branch=580).acts  # missing: never replaces


def test_no_devices_with_the_open_module_points_at_the_firmware_settings():
    gpus = {**NO_DRIVER, "error": "No devices were found"}
    [refusal] = plan("lab-open-570", gpus, driver_install="upgrade").refusals
    assert refusal[0] == "gpu-devices"
    assert "Resizable BAR" in refusal[3] and "Above 4G decoding" in refusal[3]


def test_upgrade_does_not_replace_a_driver_it_did_not_install_with_packages():
    """A driver from NVIDIA's .run installer: apt's packages would fight its files."""
    run_installed = state("lab-open-565", packages={})
    found = drivers.plan(settings(driver_install="upgrade"), run_installed,
                         gpus_from(CAPTURES / "rtx5090-565"))
    [refusal] = found.refusals
    assert not found.acts and refusal[0] == "driver-install"
    assert "nvidia-uninstall" in refusal[3]


def test_an_unsupported_distribution_is_named_and_nothing_is_planned():
    found = drivers.plan(settings(), state("lab-bare", os="rocky-9.4"), NO_DRIVER)
    [refusal] = found.refusals
    assert not found.acts and refusal[0] == "driver-install"
    assert "rocky-9.4" in refusal[1] and "debian-12, ubuntu-22.04, ubuntu-24.04" in refusal[1]


def test_ubuntu_takes_the_archives_genuine_branches_and_nvidias_repository_for_the_rest():
    noble = state("lab-bare", os="ubuntu-24.04")
    assert drivers.plan(settings(driver_branch=580), noble, NO_DRIVER).from_archive
    # noble's 570 is a transitional package to 580: a genuine 570 comes from NVIDIA.
    assert not drivers.plan(settings(), noble, NO_DRIVER).from_archive
    assert drivers.plan(settings(), state("lab-bare", os="ubuntu-22.04"), NO_DRIVER).from_archive
    mirrored = settings(driver_branch=580, driver_repo_url=LAB_REPO)
    assert not drivers.plan(mirrored, noble, NO_DRIVER).from_archive


@pytest.mark.parametrize("data, key, words", [
    ({"driver_install": "always"}, "driver_install", "must be one of never, missing, upgrade"),
    ({"driver_branch": 565}, "driver_branch", "no lower than 570"),
    ({"driver_repo_url": "ftp://mirror/nvidia"}, "driver_repo_url", "http(s) or file URL"),
    ({"reboot_timeout_s": 0}, "reboot_timeout_s", "integer >= 10"),
])
def test_bad_driver_settings_name_host_and_key(data, key, words):
    with pytest.raises(SettingsError) as error:
        settings(**data)
    assert f"gpu-01: setting {key!r}" in str(error.value) and words in str(error.value)


def test_a_bare_host_is_installed_from_the_configured_repository_in_order():
    fake = FakeHost("lab-1", {"NvidiaDriver": state("lab-bare"), "NvidiaGpus": NO_DRIVER,
                              "Pid1": "systemd"})
    commands = run_op(driver.packages, fake, settings=settings(driver_repo_url=LAB_REPO))
    assert commands[0].startswith("python3 -c") and \
        f"{LAB_REPO}cuda-keyring_1.1-1_all.deb" in commands[0] and "dpkg -i" in commands[0]
    assert commands[1] == (
        "printf '%s' 'deb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg] "
        f"{LAB_REPO} /\n' > /etc/apt/sources.list.d/cuda-debian12-x86_64.list")
    assert commands[2].endswith("apt-get -y -q -o Dpkg::Options::=--force-confold update")
    assert commands[3].endswith("install linux-headers-$(uname -r) nvidia-driver-pinning-570")
    assert commands[4].endswith("install nvidia-open")
    assert commands[5].endswith("> /etc/modprobe.d/blacklist-nouveau.conf")
    assert "blacklist nouveau" in commands[5] and "options nouveau modeset=0" in commands[5]
    assert commands[6] == "update-initramfs -u"


def test_the_driver_packages_yield_nothing_once_the_driver_is_loaded():
    fake = FakeHost("lab-1", {"Pid1": "systemd", "NvidiaDriver": state("lab-open-570"),
                              "NvidiaGpus": gpus_from(CAPTURES / "rtx5090-570")})
    assert run_op(driver.packages, fake, settings=settings(driver_repo_url=LAB_REPO)) == []


def test_replacing_the_proprietary_module_removes_cuda_drivers_in_the_same_transaction():
    fake = FakeHost("lab-3", {"Pid1": "systemd", "NvidiaDriver": state("lab-proprietary-580"),
                              "NvidiaGpus": {**NO_DRIVER, "error": "No devices were found"}})
    commands = run_op(driver.packages, fake, settings=settings(
        stack="cu13-stable", driver_install="upgrade", driver_repo_url=LAB_REPO))
    assert commands[-1].endswith("install nvidia-open cuda-drivers-")
    assert not any("cuda-keyring" in c for c in commands)  # installed already


@pytest.mark.parametrize("name, gpus, key", [
    ("lab-bare", NO_DRIVER, "nouveau-loaded"),
    ("lab-pending-580-over-565", NO_DRIVER, "driver-pending-reboot"),
    ("lab-proprietary-580", {**NO_DRIVER, "error": "No devices were found"},
     "proprietary-on-blackwell"),
    ("lab-open-565", gpus_from(CAPTURES / "rtx5090-565"), "driver-too-old"),
    ("lab-open-570", {**NO_DRIVER, "error": "No devices were found"}, "no-devices"),
])
def test_diagnose_names_the_driver_state_as_a_symptom_with_its_fix(name, gpus, key):
    texts = [p.text for p in drivers.problems(settings(), state(name), gpus)]
    diagnosis = diagnose({"driver_problems": texts, "journal": ["ImportError: whatever"],
                          "unit": {"ActiveState": "failed"}, "health": {}})
    assert diagnosis.symptom is not None and diagnosis.symptom.key == key
    assert diagnosis.evidence_line == texts[0]


@pytest.mark.parametrize("mode", DRIVER_MODES)
def test_in_a_container_the_driver_is_never_installed_and_its_host_is_told_to_provide_it(mode):
    """The machine's driver: read, never replaced, whatever driver_install says; a loaded one
    below the stack's branch is refused as the container host's to fix."""
    too_old = drivers.plan(settings(stack="cu13-stable", driver_install=mode),
                           state("lab-open-570"), NO_DRIVER, container=True)
    assert not too_old.acts and not too_old.install
    assert [r[0] for r in too_old.refusals] == ["driver-version"]
    assert "rent a machine whose driver is branch 580 or later" in too_old.refusals[0][3]
    # A driver installed by packages, good for the stack, and a newer branch asked for: still
    # nothing installed (outside a container, upgrade would replace it).
    asked = drivers.plan(settings(driver_install=mode, driver_branch=580), state("lab-open-570"),
                         NO_DRIVER, container=True)
    assert not asked.acts and not asked.install and not asked.refusals
    bare = drivers.plan(settings(driver_install=mode), state("lab-bare"), NO_DRIVER,
                        container=True)
    assert not bare.acts and bare.refusals
