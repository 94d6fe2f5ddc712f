"""The NVIDIA driver: where each distribution gets the open driver of a branch (data), and what
a host's driver state calls for under ``driver_install`` (pure, tested on lab and real states).

Sources: ../shared/notes/driver-install.md (NVIDIA's installation guide and kernel_open README,
the Ubuntu archive, field reports), summarised in README "The driver stage".

Example::

    plan, state, gpus = drivers.read(settings)   # the host's driver, its GPUs, the plan
    plan.reboot, plan.refusals     # what the driver stage will do, or why it may not
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pyinfra import host

from operations.facts.gpu import NvidiaDriver, NvidiaGpus
from operations.facts.host import Pid1
from operations.managers import in_container
from operations.settings import Settings
from operations.symptoms import BY_KEY

# NVIDIA's CUDA repository, per distribution path; its keyring package sits at its root.
NVIDIA_REPO = "https://developer.download.nvidia.com/compute/cuda/repos/{path}/x86_64/"
KEYRING_DEB = "cuda-keyring_1.1-1_all.deb"
KEYRING_PACKAGE = "cuda-keyring"
KEYRING_FILE = "/usr/share/keyrings/cuda-archive-keyring.gpg"
PINNING = "nvidia-driver-pinning-{branch}"  # pins apt to the branch: an upgrade stays in it
FLAVOUR_PACKAGES = {"open": "nvidia-open", "proprietary": "cuda-drivers"}  # NVIDIA's
HEADERS = "linux-headers-$(uname -r)"  # DKMS builds the module against the running kernel
NOUVEAU_CONF = "/etc/modprobe.d/blacklist-nouveau.conf"
NOUVEAU_BLACKLIST = "blacklist nouveau\noptions nouveau modeset=0\n"
PERSISTENCED = "nvidia-persistenced.service"


@dataclass(frozen=True)
class Distribution:
    repo_path: str  # NVIDIA's name for it in repository URLs and the list file
    # Branches the distribution's own archive has as genuine open packages (installed from
    # there, ``nvidia-driver-<branch>-open``); every other branch comes from NVIDIA's repository.
    archive_branches: tuple[int, ...] = ()


DISTRIBUTIONS: dict[str, Distribution] = {
    "ubuntu-22.04": Distribution("ubuntu2204", (570, 575, 580)),
    # The archive's 570 is a transitional package that installs 580: a genuine 570 comes from
    # NVIDIA's repository.
    "ubuntu-24.04": Distribution("ubuntu2404", (575, 580)),
    # Debian's archive has only 535, too old for Blackwell.
    "debian-12": Distribution("debian12"),
}

# Packages that put an nvidia kernel module on disk, and its flavour: NVIDIA's repository,
# then Ubuntu's DKMS and prebuilt module packages.
MODULE_PACKAGES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"nvidia-kernel-open-dkms"), "open"),
    (re.compile(r"nvidia-kernel-dkms"), "proprietary"),
    (re.compile(r"nvidia-dkms-\d+(-server)?-open"), "open"),
    (re.compile(r"nvidia-dkms-\d+(-server)?"), "proprietary"),
    (re.compile(r"linux-modules-nvidia-\d+(-server)?-open-.+"), "open"),
    (re.compile(r"linux-modules-nvidia-\d+(-server)?-(?!open-).+"), "proprietary"),
)


@dataclass(frozen=True)
class Module:
    flavour: str  # "open" | "proprietary"
    version: str

    @property
    def branch(self) -> int:
        return int(self.version.split(".", 1)[0])

    def __str__(self) -> str:
        return f"nvidia {self.version} ({self.flavour})"


def loaded_module(line: str) -> Module | None:
    """The loaded module from /proc/driver/nvidia/version's first line: the open module says
    "Open Kernel Module", the proprietary one "Kernel Module" alone (NVIDIA's kernel_open
    README)."""
    found = re.search(r"Kernel Module(?: for \S+)?\s+(\d+\.\d+(?:\.\d+)?)\s", line + " ")
    if not found:
        return None
    return Module("open" if "Open Kernel Module" in line else "proprietary", found.group(1))


def installed_module(packages: dict[str, str]) -> Module | None:
    """The module the installed packages put on disk (what loads at the next boot)."""
    for name, version in sorted(packages.items()):
        for pattern, flavour in MODULE_PACKAGES:
            if pattern.fullmatch(name):
                upstream = re.match(r"(?:\d+:)?(\d+\.\d+(?:\.\d+)?)", version)
                if upstream:
                    return Module(flavour, upstream.group(1))
    return None


@dataclass(frozen=True)
class Problem:
    key: str  # a row of operations/symptoms.py
    text: str


def _blackwell(settings: Settings, gpus: dict[str, Any]) -> bool:
    """Blackwell (compute capability 10 and up) needs the open module. The GPUs say so when
    nvidia-smi can read them; else the fleet's setting does (an RTX 5090 host: 12.0)."""
    caps = [gpu["compute_cap"] for gpu in gpus.get("gpus", []) if gpu.get("compute_cap")]
    caps = caps or [settings.gpu_compute_capability]
    return any(float(cap) >= 10 for cap in caps)


def problems(settings: Settings, state: dict[str, Any], gpus: dict[str, Any]) -> list[Problem]:
    """What is wrong with the host's driver now, most telling first (pure)."""
    stack = settings.stack_def()
    loaded = loaded_module(state.get("loaded") or "")
    installed = installed_module(state.get("packages") or {})
    found = []
    if installed and installed != loaded:
        found.append(Problem("driver-pending-reboot", f"{installed} is installed but "
                             f"{loaded or 'no nvidia module'} is loaded: the host has not "
                             "rebooted since"))
    if state.get("nouveau"):
        found.append(Problem("nouveau-loaded", "nouveau is loaded: it holds the GPU, the nvidia "
                             "module cannot load"))
    if loaded and loaded.flavour == "proprietary" and _blackwell(settings, gpus):
        found.append(Problem("proprietary-on-blackwell", f"the proprietary module {loaded} is "
                             f"loaded on a Blackwell GPU ({state['loaded'].strip()})"))
    elif loaded and loaded.branch < stack.min_driver:
        found.append(Problem("driver-too-old", f"{loaded} is loaded, below {stack.min_driver} "
                             f"for CUDA {stack.cuda} (stack {stack.name})"))
    if not loaded:
        found.append(Problem("driver-missing", "no NVIDIA driver loaded (nvidia-smi: "
                             f"{gpus.get('error') or 'no driver version'})"))
    elif "No devices were found" in (gpus.get("error") or "") and not any(
            p.key == "proprietary-on-blackwell" for p in found):
        found.append(Problem("no-devices", f"{loaded} is loaded, and nvidia-smi says: No "
                             "devices were found"))
    return found


@dataclass(frozen=True)
class DriverPlan:
    """What the driver stage does on a host, decided before it changes anything."""

    branch: int  # the branch it installs
    problems: list[Problem] = field(default_factory=list)
    refusals: list[tuple[str, str, str, str]] = field(default_factory=list)  # preflight Failure
    install: bool = False
    from_archive: bool = False  # the distribution's archive, not NVIDIA's repository
    remove: tuple[str, ...] = ()  # installed packages of the flavour it replaces
    blacklist_nouveau: bool = False
    reboot: bool = False

    @property
    def acts(self) -> bool:
        return self.install or self.reboot

    def summary(self) -> str:
        """What it does (when it ``acts``), and why."""
        steps = []
        if self.install:
            source = "the distribution's archive" if self.from_archive else "NVIDIA's repository"
            steps.append(f"install the open driver {self.branch} from {source}")
        if self.blacklist_nouveau:
            steps.append("blacklist nouveau")
        steps.append("reboot")
        return f"driver: {', '.join(steps)} ({'; '.join(p.text for p in self.problems)})"


# What to do about a driver problem in a container: its host provides the driver.
CONTAINER_FIX = ("the driver belongs to the container's host and is never installed from "
                 "inside it: rent a machine whose driver is branch {min} or later")

# Problem key -> (preflight check, what is needed) when the stage may not fix it; what to do is
# the symptom table's fix (operations/symptoms.py), the same words diagnose.py gives.
_REFUSED = {
    "driver-pending-reboot": ("driver-reboot", "the installed driver loaded"),
    "nouveau-loaded": ("nouveau", "nouveau blacklisted and not loaded"),
    "proprietary-on-blackwell": ("driver-flavour", "NVIDIA's open kernel module (Blackwell GPUs "
                                 "need it)"),
    "driver-too-old": ("driver-version", "driver >= {min} for stack {stack} (CUDA {cuda})"),
    "driver-missing": ("nvidia-driver", "an NVIDIA driver >= {min} loaded"),
    "no-devices": ("gpu-devices", "the GPUs visible to the driver (RTX 5090 boards show none "
                   "without Above 4G decoding and Resizable BAR)"),
}


def plan(settings: Settings, state: dict[str, Any], gpus: dict[str, Any],
         container: bool = False) -> DriverPlan:
    """What ``driver_install`` allows for this state (pure). In a ``container`` (a rented
    GPU's, operations/managers.py) the driver is the host's: nothing is installed, whatever
    ``driver_install`` says, and what is wrong is refused as the host's to fix. ``never``
    changes nothing; ``missing`` installs when no nvidia module is loaded and finishes a
    pending install with its reboot; ``upgrade`` also replaces a loaded driver below
    ``driver_branch`` or the proprietary module on a Blackwell GPU. What it may not fix is
    refused (preflight lines)."""
    stack = settings.stack_def()
    branch = settings.driver_branch or stack.min_driver
    found = problems(settings, state, gpus)
    keys = {p.key for p in found}
    loaded = loaded_module(state.get("loaded") or "")
    installed = installed_module(state.get("packages") or {})
    blackwell = _blackwell(settings, gpus)
    installed_good = installed is not None and installed.branch >= branch and (
        installed.flavour == "open" or not blackwell)
    fixable = {"never": set(),
               "missing": {"driver-missing", "driver-pending-reboot", "nouveau-loaded"},
               "upgrade": {"driver-missing", "driver-pending-reboot", "nouveau-loaded",
                           "proprietary-on-blackwell", "driver-too-old"}}[
        "never" if container else settings.driver_install]
    replace_loaded = (not container and settings.driver_install == "upgrade"
                      and loaded is not None
                      and (loaded.branch < branch or "proprietary-on-blackwell" in keys))
    if loaded is not None and not replace_loaded:
        fixable = fixable - {"nouveau-loaded", "driver-missing"}
    if "driver-pending-reboot" in fixable and "driver-pending-reboot" in keys and installed_good:
        # The reboot loads the good driver already installed: what the loaded one lacks goes.
        fixable = fixable | {"driver-too-old", "proprietary-on-blackwell", "no-devices",
                             "nouveau-loaded", "driver-missing"}
    refusals = [(_REFUSED[p.key][0], p.text, _REFUSED[p.key][1].format(
        min=stack.min_driver, stack=stack.name, cuda=stack.cuda),
        CONTAINER_FIX.format(min=stack.min_driver) if container else BY_KEY[p.key].fix)
        for p in found if p.key not in fixable]
    if refusals or not ((keys & fixable) or replace_loaded):
        return DriverPlan(branch, found, refusals)
    install = not installed_good
    if install and replace_loaded and installed is None:
        return DriverPlan(branch, found, [(
            "driver-install", f"{loaded} is loaded and no driver package is installed (NVIDIA's "
            ".run installer?): packages cannot replace it", "a driver apt can replace",
            "run nvidia-uninstall on the host, then deploy again")])
    distro = DISTRIBUTIONS.get(state.get("os", ""))
    if install and distro is None:
        return DriverPlan(branch, found, [(
            "driver-install", f"{state.get('os') or 'an unknown distribution'}: the driver "
            f"stage installs on {', '.join(sorted(DISTRIBUTIONS))} only",
            f"the open NVIDIA driver {branch} installed",
            "install it by hand and reboot, or set driver_install=never")])
    from_archive = bool(distro and branch in distro.archive_branches
                        and not settings.driver_repo_url)
    remove = tuple(sorted(name for name in state.get("packages") or {}
                          if name == FLAVOUR_PACKAGES["proprietary"])) if install else ()
    return DriverPlan(branch, found, [], install, from_archive, remove,
                      bool(state.get("nouveau")), True)


def read(settings: Settings) -> tuple[DriverPlan, dict[str, Any], dict[str, Any]]:
    """The current host's plan, driver state and GPUs. Its facts are read ahead with the
    host's other checks (operations/survey.py), and from the host again once it has run a
    command (an install, a reboot)."""
    state, gpus = host.get_fact(NvidiaDriver), host.get_fact(NvidiaGpus)
    return plan(settings, state, gpus, in_container(host.get_fact(Pid1))), state, gpus


def repo_url(settings: Settings, os_name: str) -> str:
    return settings.driver_repo_url or NVIDIA_REPO.format(path=DISTRIBUTIONS[os_name].repo_path)


def keyring_url(settings: Settings, os_name: str) -> str:
    return settings.driver_keyring_url or repo_url(settings, os_name) + KEYRING_DEB


def list_file(os_name: str) -> str:
    """The cuda-keyring package's own list file: replaced, so only one URL is in use."""
    return f"/etc/apt/sources.list.d/cuda-{DISTRIBUTIONS[os_name].repo_path}-x86_64.list"


def list_line(settings: Settings, os_name: str) -> str:
    return f"deb [signed-by={KEYRING_FILE}] {repo_url(settings, os_name)} /\n"
