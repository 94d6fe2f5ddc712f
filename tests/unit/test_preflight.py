"""Preflight on facts parsed from real outputs: a real RTX 5090 passes, an H100 or an old driver
fails with one line per check naming host, check, found, needed and what to do."""

from __future__ import annotations

from dataclasses import asdict, replace

from operations import drivers, nvidia
from operations.facts.gpu import NvidiaDriver
from operations.readiness import evaluate, role_failure
from operations.settings import validate
from operations.stages.preflight import checklist
from tests.conftest import CAPTURES, FIXTURES, FakeHost
from tests.unit.test_operations import run_op


def gpus_from(folder, count: int = 1) -> dict:
    header_and_row = (folder / "query-gpu.csv").read_text().splitlines()[:2]
    [gpu] = nvidia.parse_query_csv("\n".join(header_and_row))
    driver, cuda, _ = nvidia.parse_plain((folder / "nvidia-smi.txt").read_text())
    return {"driver": driver, "cuda": cuda, "error": None,
            "gpus": [asdict(replace(gpu, index=i)) for i in range(count)]}


def driver_state(name: str) -> dict:
    """The NVIDIA driver fact as a host gave it (tests/fixtures/driver-states)."""
    lines = (FIXTURES / "driver-states" / f"{name}.txt").read_text().splitlines()
    return NvidiaDriver().process(lines)


RTX5090_570 = gpus_from(CAPTURES / "rtx5090-570")
OPEN_570 = driver_state("lab-open-570")
GOOD_DISK = {"/opt/sglang": {"free_gb": 500.0, "mount": "/"},
             "/var/cache/sglang": {"free_gb": 500.0, "mount": "/"}}


def failures(gpus=RTX5090_570, disk=GOOD_DISK, holders=None, pid1="systemd", driver=OPEN_570,
             server_pid=0, settings=None, **data):
    settings = settings or validate("gpu-01", {"stack": "cu128-nightly", **data})
    return evaluate(settings, gpus, disk, holders, pid1, drivers.plan(settings, driver, gpus),
                    server_pid=server_pid)


def test_rtx5090_with_32607_mib_on_driver_570_passes():
    assert RTX5090_570["gpus"][0]["memory_total_mib"] == 32607
    assert failures() == []


def test_two_rtx5090s_pass():
    assert failures(gpus=gpus_from(CAPTURES / "rtx5090-570", count=2)) == []


def test_driver_565_is_too_old_for_cuda_12_8():
    [failure] = failures(gpus=gpus_from(CAPTURES / "rtx5090-565"),
                         driver=driver_state("lab-open-565"))
    assert failure.check == "driver-version"
    assert "565.57.01" in failure.found and ">= 570" in failure.needed


def test_cuda13_stack_needs_driver_580():
    [failure] = failures(stack="cu13-stable")
    assert failure.check == "driver-version" and ">= 580" in failure.needed
    open_580 = {**OPEN_570, "loaded": OPEN_570["loaded"].replace("570.153.02", "580.95.05"),
                "packages": {}}
    assert failures(gpus=gpus_from(CAPTURES / "rtx5090-580"), driver=open_580,
                    stack="cu13-stable") == []


def test_real_h100_fails_compute_capability_but_not_memory():
    real = {"os": "ubuntu-24.04", "packages": {}, "nouveau": False, "loaded": (
        FIXTURES / "driver-states" / "h100-ubuntu2404-loaded.txt").read_text()}
    checks = {f.check: f for f in failures(gpus=gpus_from(
        FIXTURES / "gpu-hosts" / "h100-ubuntu2404"), driver=real, stack="cu13-stable")}
    assert set(checks) == {"compute-capability"}
    assert "9.0" in checks["compute-capability"].found


NO_SMI = {"driver": None, "cuda": None, "gpus": [], "error": "nvidia-smi: command not found"}


def test_missing_driver_is_named_with_nvidia_smis_words_when_the_stage_may_not_install():
    found = failures(gpus=NO_SMI, driver=driver_state("lab-bare"), driver_install="never")
    assert [f.check for f in found] == ["nouveau", "nvidia-driver"]
    assert "command not found" in found[1].found


def test_a_bare_host_passes_preflight_when_the_driver_stage_installs_its_driver():
    """Its GPUs are checked after the reboot (operations/stages/driver.py loaded)."""
    assert failures(gpus=NO_SMI, driver=driver_state("lab-bare")) == []


def test_disk_below_threshold_names_path():
    [failure] = failures(disk={"/opt/sglang": {"free_gb": 42.0, "mount": "/"},
                               "/var/cache/sglang": {"free_gb": 500.0, "mount": "/cache"}})
    assert failure.check == "disk-space" and "/opt/sglang" in failure.found


def test_port_held_by_another_process_names_it():
    [failure] = failures(holders=[{"pid": 4242, "comm": "python3", "unit": None}])
    assert failure.check == "port" and "pid 4242 (python3" in failure.found


def test_port_held_by_our_own_unit_passes():
    assert failures(holders=[{"pid": 7, "comm": "python", "unit": "sglang.service"}]) == []


def test_no_systemd_as_pid1_passes_under_supervisord_by_default():
    assert failures(pid1="bash") == []  # service_manager auto: the server runs under supervisord


def test_no_systemd_as_pid1_fails_when_systemd_is_asked_for():
    [failure] = failures(pid1="bash", service_manager="systemd")
    assert failure.check == "service-manager"
    assert "set service_manager=auto" in failure.todo


def test_port_held_by_our_supervisor_program_passes_and_another_process_fails():
    holders = [{"pid": 41, "comm": "python3", "unit": None}]
    assert failures(pid1="bash", holders=holders, server_pid=41) == []
    [failure] = failures(pid1="bash", holders=holders, server_pid=40)
    assert failure.check == "port"


def test_checklist_operation_fails_host_with_one_line_per_check():
    fake = FakeHost("gpu-09", {"NvidiaGpus": gpus_from(CAPTURES / "rtx5090-565"),
                               "NvidiaDriver": driver_state("lab-open-565"),
                               "FreeDisk": {"free_gb": 1.0, "mount": "/"},
                               "FileContents": None, "PortListener": None, "Pid1": "systemd"})
    [command] = run_op(checklist, fake, settings=validate("gpu-09", {"stack": "cu128-nightly"}))
    lines = [line for line in command.split("'") if line.startswith("gpu-09:")]
    # One disk: install_dir and model_cache_dir on one filesystem share its space.
    assert [line.split()[2] for line in lines] == ["driver-version", "disk-space"]
    assert command.endswith("exit 1")


def test_checklist_operation_yields_nothing_when_all_pass():
    fake = FakeHost("gpu-01", {"NvidiaGpus": RTX5090_570, "NvidiaDriver": OPEN_570,
                               "FreeDisk": {"free_gb": 500.0, "mount": "/"},
                               "FileContents": None, "PortListener": None, "Pid1": "systemd"})
    assert run_op(checklist, fake, settings=validate("gpu-01", {"stack": "cu128-nightly"})) == []


NEEDS = {"/opt/sglang": [("the stack cu13-stable", 9.5)],
         "/var/cache/sglang": [("the model Qwen/Qwen3-32B-AWQ@0123456789ab", 19.1)]}


def disk_failures(disk: dict, **data) -> list:
    settings = validate("gpu-01", {"stack": "cu128-nightly", **data})
    return evaluate(settings, RTX5090_570, disk, None, "systemd",
                    drivers.plan(settings, OPEN_570, RTX5090_570), needs=NEEDS)


def test_one_disk_must_hold_the_stack_the_model_and_the_margin_and_says_the_three():
    one = {path: {"free_gb": 30.0, "mount": "/"} for path in NEEDS}
    [failure] = disk_failures(one, min_free_disk_gb=20)
    assert failure.line("gpu-01") == (
        "gpu-01: preflight disk-space failed: found 30.0 GB free at /opt/sglang and "
        "/var/cache/sglang; needed > 38.6 GB: 9.5 GB for the stack cu13-stable, 19.1 GB for "
        "the model Qwen/Qwen3-32B-AWQ@0123456789ab, 10 GB margin (disk_margin_gb); free disk "
        "space or point install_dir/model_cache_dir at a larger disk")
    assert disk_failures({p: {"free_gb": 38.7, "mount": "/"} for p in NEEDS},
                         min_free_disk_gb=20) == []


def test_two_disks_each_hold_their_own_part():
    two = {"/opt/sglang": {"free_gb": 30.0, "mount": "/"},
           "/var/cache/sglang": {"free_gb": 30.0, "mount": "/cache"}}
    assert disk_failures(two, min_free_disk_gb=0) == []  # 19.5 and 29.1 GB needed
    [failure] = disk_failures(two, min_free_disk_gb=0, disk_margin_gb=12)
    assert failure.found == "30.0 GB free at /var/cache/sglang"


def test_the_charts_floor_holds_when_the_parts_are_smaller():
    [failure] = disk_failures({p: {"free_gb": 60.0, "mount": "/"} for p in NEEDS})
    assert failure.needed.endswith("; at least 100 GB (min_free_disk_gb)")


def test_the_default_stack_needs_its_measured_size_and_an_unmeasured_one_more():
    """cu13-stable was measured installed (bench/stack_install.py); a stack nobody measured is
    assumed larger than any that was."""
    from operations.stacks import DEFAULT_STACK, STACKS, UNMEASURED_STACK_GB
    settings = validate("gpu-01", {})
    assert settings.stack == DEFAULT_STACK and STACKS[DEFAULT_STACK].installed_gb is not None
    assert STACKS["cu128-nightly"].disk_gb == UNMEASURED_STACK_GB
    assert UNMEASURED_STACK_GB > max(s.installed_gb or 0 for s in STACKS.values())


def test_a_gateway_or_wheelhouse_without_systemd_is_refused_with_its_line():
    assert role_failure("gateway", "systemd") is None
    failure = role_failure("wheelhouse", "supervisord")
    assert failure is not None and failure.check == "service-manager"
    assert "put the wheelhouse on a host booted with systemd" in failure.line("infra-01")
