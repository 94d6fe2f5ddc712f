"""Stage 0, driver: the NVIDIA open driver the stack needs, nouveau out of its way, the reboot
that loads it, and nvidia-persistenced. ``driver_install`` says how far it may go
(operations/drivers.py decides; preflight refuses what it may not fix). It runs first in the
host's rolling batch: a reboot takes a server down, so serving hosts reboot a batch at a time.

Example::

    from operations.stages import driver
    driver.apply(settings, done)   # done.reboot: the reboot, if any
"""

from __future__ import annotations

import shlex
import time

from pyinfra import host, logger
from pyinfra.api import FunctionCommand, StringCommand, operation
from pyinfra.api.operation import OperationMeta
from pyinfra.connectors.util import clear_askpass_cache

from operations import drivers, report, runlock, survey
from operations.facts.gpu import NvidiaDriver
from operations.facts.host import Pid1
from operations.managers import in_container
from operations.outcome import Done, fail
from operations.readiness import gpu_failures
from operations.router import leave_commands
from operations.settings import Settings

APT = "DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Options::=--force-confold"
# Fetches the keyring package with the Python every host has (no curl on a minimal image).
_DOWNLOAD = ("python3 -c 'import sys, urllib.request; "
             "urllib.request.urlretrieve(sys.argv[1], sys.argv[2])'")


@operation(is_idempotent=True)
def packages(settings: Settings):
    """The open driver of the branch installed (staged for the next boot) from NVIDIA's
    repository, pinned to its branch, or from the distribution's archive where that has the
    genuine branch; nouveau blacklisted (modeset off) in a rebuilt initramfs while it is loaded.

    + settings: the host's validated settings
    """
    plan, state, _ = drivers.read(settings)
    if plan.refusals or not plan.acts:
        return  # preflight failed the host already, or nothing to do
    commands = []
    if plan.install and plan.from_archive:
        commands += [f"{APT} update",
                     f"{APT} install {drivers.HEADERS} nvidia-driver-{plan.branch}-open"]
    elif plan.install:
        os_name = state["os"]
        if drivers.KEYRING_PACKAGE not in state["packages"]:
            deb = f"/tmp/{drivers.KEYRING_DEB}"
            url = shlex.quote(drivers.keyring_url(settings, os_name))
            commands.append(f"{_DOWNLOAD} {url} {deb} && dpkg -i {deb} && rm -f {deb}")
        line = drivers.list_line(settings, os_name)
        if state["repo_list"] != line.strip():
            commands.append(f"printf '%s' {shlex.quote(line)} > {drivers.list_file(os_name)}")
        removed = " ".join(f"{name}-" for name in plan.remove)
        commands += [f"{APT} update",
                     f"{APT} install {drivers.HEADERS} "
                     f"{drivers.PINNING.format(branch=plan.branch)}",
                     f"{APT} install {drivers.FLAVOUR_PACKAGES['open']} {removed}".rstrip()]
    if plan.blacklist_nouveau:
        commands += [f"mkdir -p /etc/modprobe.d && printf '%s' "
                     f"{shlex.quote(drivers.NOUVEAU_BLACKLIST)} > {drivers.NOUVEAU_CONF}",
                     "update-initramfs -u"]
    for command in commands:
        yield StringCommand(command)


@operation(is_idempotent=True)
def rebooted(settings: Settings):
    """Reboot when the loaded driver is not the installed one, or nouveau is loaded; leave the
    routers first; wait (``reboot_timeout_s``) until the host answers with a new boot id.

    + settings: the host's validated settings
    """
    plan, state, _ = drivers.read(settings)
    if plan.refusals or not plan.reboot:
        return
    before = state["boot_id"]
    yield from leave_commands(settings)
    # The session that holds the run lock ends with the reboot: its lease holds it meanwhile.
    yield runlock.keep_command(settings.reboot_timeout_s + runlock.LEASE_S)
    # Detached, so the SSH channel closes before the host goes down (as pyinfra's reboot).
    yield StringCommand("( sleep 1 && systemctl reboot ) </dev/null >/dev/null 2>&1 &")

    def back(state, host) -> bool:  # noqa: ARG001 (pyinfra's FunctionCommand signature)
        return wait_for_new_boot(host, before, settings.reboot_timeout_s)

    yield FunctionCommand(back, (), {})
    yield runlock.renew_command()  # held by this run's new session again


def wait_for_new_boot(host, before: str, timeout_s: int) -> bool:  # noqa: ANN001
    """Reconnect until the host's boot id is not ``before``; False (and the host named) when
    it has not come back within ``timeout_s``."""
    clear_askpass_cache(host)  # the host's files from before the reboot are gone
    host.disconnect()
    report.rebooting(host.name, True)
    try:
        return _reconnect(host, before, timeout_s)
    finally:
        report.rebooting(host.name, False)


def _reconnect(host, before: str, timeout_s: int) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(2)
        host.connect(show_errors=False)
        if not host.connected:
            continue
        try:
            now = host.get_fact(NvidiaDriver, _sudo=False)["boot_id"]
        except Exception:  # noqa: BLE001 (still going down: the session broke)
            now = before
        if now and now != before:
            clear_askpass_cache(host)
            return True
        host.disconnect()
    line = (f"did not come back within {timeout_s} s of its reboot (reboot_timeout_s): check "
            "its console; the rest of the fleet goes on")
    report.note(host.name, line)
    logger.error(f"{host.print_prefix}{line}")
    return False


@operation(is_idempotent=True)
def loaded(settings: Settings, reboot: OperationMeta):
    """After this run's reboot: the open module of the branch is loaded, nouveau is not, and
    the GPUs pass preflight's checks (deferred until the driver was there to read them).

    + settings: the host's validated settings
    + reboot: the reboot operation of this run
    """
    if not reboot.changed:
        return
    plan, state, gpus = drivers.read(settings)
    found = [problem.text for problem in plan.problems]
    module = drivers.loaded_module(state["loaded"])
    if module and module.branch < plan.branch:
        found.append(f"{module} is loaded, not the branch {plan.branch} that was installed")
    if found:
        yield fail([f"{host.name}: driver after the reboot: {text}; "
                    "see `dkms status` and `journalctl -k -b` on the host" for text in found])
        return
    failures = gpu_failures(settings, gpus)
    if failures:
        yield fail([failure.line(host.name) for failure in failures])


@operation(is_idempotent=True)
def persistence():
    """nvidia-persistenced enabled and running where the driver ships it (keeps the GPUs
    initialised between processes)."""
    state = host.get_fact(NvidiaDriver)
    enabled, _, active = state["persistenced"].partition("/")
    if not enabled or enabled == "not-found" or not state["loaded"]:
        return
    if (enabled, active) != ("enabled", "active"):
        yield f"systemctl enable --now {drivers.PERSISTENCED}"


def reads(settings: Settings) -> list[survey.Read]:
    """What the stage reads on a run that changes nothing (operations/survey.py): the driver
    state (drivers.read)."""
    return [survey.Read(NvidiaDriver)]


def apply(settings: Settings, done: Done) -> None:
    """The stage's operations; records the reboot, which the health stage waits after. In a
    container (no systemd) the driver is the host's: read, never installed (preflight says
    so), and its persistence daemon the host's too."""
    packages(name="NVIDIA open driver installed (staged for the next boot)", settings=settings)
    reboot = rebooted(name="Reboot into the installed driver, only when it is not loaded",
                      settings=settings)
    loaded(name="After a reboot: the open driver loaded, the GPUs seen", settings=settings,
           reboot=reboot)
    if not in_container(host.get_fact(Pid1)):
        persistence(name="nvidia-persistenced enabled and running")
    done.reboot = reboot
