"""The chart's "before build" checklist as pure rules: what a host's facts must show before
anything is built on it (tested on recorded states); the preflight stage reads the facts and
fails the host with these lines.

Example::

    failures = evaluate(settings, gpus=gpus, free_gb=free_gb, port_holders=holders,
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



def evaluate(settings: Settings, gpus: dict[str, Any], free_gb: dict[str, float | None],
             port_holders: list[dict[str, Any]] | None, pid1: str, driver: DriverPlan,
             model_missing: tuple[str, int] | None = None,
             server_pid: int = 0) -> list[Failure]:
    """Every failed check, from facts already gathered (pure: tested on real fixtures).
    ``driver``: what the driver stage will do; while it installs or reboots, the GPUs are
    checked after its reboot instead. ``model_missing``: the pinned model (as text) and the
    bytes of it not yet staged, which the model cache's disk must hold on top of
    ``min_free_disk_gb``. ``server_pid``: the server's own process under supervisord, which
    may hold the port."""
    failures = [Failure(*refusal) for refusal in driver.refusals]
    if not failures and not driver.acts:
        failures += gpu_failures(settings, gpus)
    for path, free in free_gb.items():
        needed: float = settings.min_free_disk_gb
        why = f"> {settings.min_free_disk_gb} GB"
        if model_missing and model_missing[1] and path == settings.model_cache_dir:
            needed += model_missing[1] / 1e9
            why = (f"> {needed:.1f} GB: {settings.min_free_disk_gb} GB for the stack and its "
                   f"work, {model_missing[1] / 1e9:.1f} GB for {model_missing[0]}")
        if free is None or free < needed:
            shown = "unknown" if free is None else f"{free:.1f} GB free"
            failures.append(Failure(
                "disk-space", f"{shown} at {path}", why,
                "free disk space or point install_dir/model_cache_dir at a larger disk"))
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
