"""The chart's "before build" checklist as pure rules: what a host's facts must show before
anything is built on it (tested on recorded states); the preflight stage reads the facts and
fails the host with these lines.

Example::

    failures = evaluate(settings, gpus=gpus, disks=disks, port_holders=holders,
                        pid1="systemd", driver=plan)
    lines = [failure.line("gpu-01") for failure in failures]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from operations.drivers import DriverPlan
from operations.managers import SERVICE_UNIT
from operations.settings import Settings


@dataclass(frozen=True)
class Failure:
    check: str
    found: str
    needed: str
    todo: str

    def line(self, host_name: str) -> str:
        return (f"{host_name}: preflight {self.check} failed: found {self.found}; "
                f"needed {self.needed}; {self.todo}")



def disk_failures(settings: Settings, disks: dict[str, dict | None],
                  needs: dict[str, list[tuple[str, float]]]) -> list[Failure]:
    """Each filesystem against what its paths must take: the needs of every path on it, plus
    ``disk_margin_gb``, and never less than ``min_free_disk_gb``; a refusal says each part."""
    failures: list[Failure] = []
    todo = "free disk space or point install_dir/model_cache_dir at a larger disk"
    mounts: dict[str, tuple[float, list[str]]] = {}
    for path, disk in sorted(disks.items()):
        if disk is None:
            failures.append(Failure("disk-space", f"unknown free space at {path}",
                                    f"> {settings.min_free_disk_gb} GB", todo))
        else:
            mounts.setdefault(disk["mount"], (disk["free_gb"], []))[1].append(path)
    for free, paths in mounts.values():
        parts = [need for path in paths for need in needs.get(path, [])]
        total = sum(gb for _, gb in parts) + settings.disk_margin_gb
        needed = max(total, float(settings.min_free_disk_gb))
        if free < needed:
            said = [f"{gb:.1f} GB for {what}" for what, gb in parts]
            said.append(f"{settings.disk_margin_gb} GB margin (disk_margin_gb)")
            floor = (f"; at least {settings.min_free_disk_gb} GB (min_free_disk_gb)"
                     if needed > total else "")
            failures.append(Failure("disk-space", f"{free:.1f} GB free at {' and '.join(paths)}",
                                    f"> {needed:.1f} GB: {', '.join(said)}{floor}", todo))
    return failures


def gpu_failures(settings: Settings, gpus: dict[str, Any]) -> list[Failure]:
    """The GPUs nvidia-smi reports against what the fleet needs (count, class, memory)."""
    failures: list[Failure] = []
    if gpus.get("error"):
        failures.append(Failure("gpu-count", f"nvidia-smi: {gpus['error']}", "at least one GPU",
                                "check that the GPUs are visible to nvidia-smi"))
    elif not gpus.get("gpus"):
        failures.append(Failure("gpu-count", "no GPU", "at least one GPU",
                                "check that the GPUs are visible to nvidia-smi"))
    for gpu in gpus.get("gpus", []):
        if gpu["compute_cap"] != settings.gpu_compute_capability:
            failures.append(Failure(
                "compute-capability", f"GPU {gpu['index']} {gpu['name']} compute capability "
                f"{gpu['compute_cap']}", f"{settings.gpu_compute_capability} (RTX 5090, sm_120)",
                "run on RTX 5090 hosts, or set gpu_compute_capability for this host"))
        if gpu["memory_total_mib"] < settings.min_gpu_memory_mib:
            failures.append(Failure(
                "gpu-memory", f"GPU {gpu['index']} {gpu['name']} {gpu['memory_total_mib']} MiB",
                f">= {settings.min_gpu_memory_mib} MiB (32 GB class)",
                "use a 32 GB GPU, or set min_gpu_memory_mib for this host"))
    return failures



def evaluate(settings: Settings, gpus: dict[str, Any], disks: dict[str, dict | None],
             port_holders: list[dict[str, Any]] | None, pid1: str, driver: DriverPlan,
             needs: dict[str, list[tuple[str, float]]] | None = None,
             server_pid: int = 0) -> list[Failure]:
    """Every failed check, from facts already gathered (pure: tested on real fixtures).
    ``driver``: what the driver stage will do; while it installs or reboots, the GPUs are
    checked after its reboot instead. ``disks``: each path's filesystem (facts.host.FreeDisk);
    ``needs``: what each path's disk must take on top of ``disk_margin_gb`` (what, GB): the
    stack about to be installed, the model bytes not yet staged. ``server_pid``: the server's
    own process under supervisord, which may hold the port."""
    failures = [Failure(*refusal) for refusal in driver.refusals]
    if not failures and not driver.acts:
        failures += gpu_failures(settings, gpus)
    failures += disk_failures(settings, disks, needs or {})
    if port_holders is not None:
        others = [h for h in port_holders if h["unit"] != SERVICE_UNIT
                  and not (server_pid and h["pid"] == server_pid)]
        if others or not port_holders:
            who = ", ".join(f"pid {h['pid']} ({h['comm']}, {h['unit'] or 'no unit'})"
                            for h in others) or "a process this user cannot see"
            failures.append(Failure(
                "port", f"port {settings.port} held by {who}",
                f"port {settings.port} free or held by {SERVICE_UNIT}",
                "stop that process (a stale container: docker rm -f sglang) or choose another "
                "port"))
    if settings.service_manager == "systemd" and pid1 != "systemd":
        failures.append(Failure("service-manager", f"PID 1 is {pid1!r}",
                                "systemd as PID 1 (service_manager=systemd)",
                                "set service_manager=auto for this host: supervisord then "
                                "runs the server"))
    return failures



LOGIN_NEEDED = "root, or a user with sudo (without a password, or with _sudo_password given)"



def login_failure(login: dict[str, Any], sudo: bool, sudo_password: bool) -> Failure | None:
    """Whether the SSH login can change the host as root: logged in as root, or through sudo
    that will not stop to ask for a password nobody gave (pure)."""
    user = login["user"]
    found = f"login {user} (uid {login['uid']})"
    if login["uid"] < 0:
        return Failure("login", f"no answer to `id` ({login['said']})", LOGIN_NEEDED,
                       "check that the login's shell prints nothing but command output")
    if login["uid"] == 0 and not (sudo and login["sudo"] == "missing"):
        return None  # root (through sudo too, where sudo exists)
    if not sudo:
        return Failure("login", f"{found}, not root, and sudo is off", LOGIN_NEEDED,
                       "run with --sudo, or set _sudo=True for this host in the inventory")
    if login["sudo"] == "ok" or (login["sudo"] == "password" and sudo_password):
        return None
    if login["sudo"] == "password":
        # sudo says the same to a user it would never allow: both are told what to do.
        return Failure("login", f"{found}: sudo asks for a password and none was given "
                       f"({user} may need its password for sudo, or may not use sudo at all)",
                       LOGIN_NEEDED, f"let {user} use sudo without a password ('{user} "
                       f"ALL=(ALL) NOPASSWD: ALL' in /etc/sudoers.d/{user}), or set "
                       "_sudo_password for this host (or run with --same-sudo-password)")
    if login["sudo"] == "missing":
        return Failure("login", f"{found}: sudo is not installed", LOGIN_NEEDED,
                       "install sudo, or log in as root")
    return Failure("login", f"{found} may not use sudo ({login['said']})", LOGIN_NEEDED,
                   f"let {user} use sudo ('{user} ALL=(ALL) NOPASSWD: ALL' in "
                   f"/etc/sudoers.d/{user}), or log in as root")



def model_failure(model: str, error: Any) -> Failure:
    """The Hub refused the host's model (an ``operations.hub.HubError``)."""
    return Failure("model", f"{model}: {error.said}",
                   "a model and revision the Hub serves to this fleet", error.advice)


def role_failure(role: str, pid1: str) -> Failure | None:
    """A gateway or wheelhouse runs its services under systemd: a host without it (a rented
    container) cannot take the role (pure)."""
    if pid1 == "systemd":
        return None
    return Failure("service-manager", f"PID 1 is {pid1!r} (a container)",
                   f"systemd as PID 1: the {role} runs its services as systemd units",
                   f"put the {role} on a host booted with systemd (a VM or a box you own); "
                   "rented containers serve as workers only")
