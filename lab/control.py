"""The control side of the lab: the base root every host's overlay shares, the bridge, and the
services on it (apt proxy, wheelhouse, NVIDIA driver repository, Hugging Face Hub stand-in)."""

from __future__ import annotations

import shutil
import socket
import sys
import time
from pathlib import Path

from lab import hub
from lab.driver import repo
from lab.inventory import LAB_DIR, LOCK
from lab.processes import RUN, LabError, run, say, start
from lab.stacks import (
    DRIVER_REPO_PORT,
    DRIVER_REPO_URL,
    GATEWAY,
    HUB_GATED,
    HUB_MODEL,
    HUB_PORT,
    PROXY_PORT,
    WHEELHOUSE_PORT,
)
from lab.standin.build import build_all
from operations.stacks import UV_VERSION

HERE = Path(__file__).resolve().parent
BRIDGE = "sglab0"
SUBNET = "10.213.0.0/24"
BASE = LAB_DIR / "base"
BASE_DONE = LAB_DIR / "base.done"
HUB_ROOT = LAB_DIR / "hub"
TOOLS = LAB_DIR / "cache" / "tools"  # kept by `lab down` (only --purge removes it)

# supervisor: what a rented container image runs its services with (masked on systemd hosts)
BASE_PACKAGES = "systemd,systemd-sysv,dbus,openssh-server,python3,iproute2,sudo,supervisor"
DRIVER_REPO = LAB_DIR / "nvidia-repo"


# The base root: debootstrapped once, then read-only, shared by every host's overlay.

def debian_mirror() -> str:
    """The Debian mirror this machine's own apt uses."""
    for source in [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]:
        if source.exists():
            for line in source.read_text().splitlines():
                words = line.split()
                if line.startswith("URIs:") and len(words) > 1 and "security" not in words[1]:
                    return words[1]
                if line.startswith("deb ") and "security" not in line:
                    return next(w for w in words[1:] if "://" in w)
    raise LabError("no Debian mirror found in /etc/apt: the base root needs one")


def build_base() -> None:
    if BASE_DONE.exists() and BASE_PACKAGES in BASE_DONE.read_text():
        return  # built, with today's package list
    if BASE.exists():  # a build that was cut off, or one of an older package list
        # debootstrap mounts /proc (and more) inside while it runs: a killed one leaves them.
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(f"{BASE}/")), reverse=True):
            run("umount", "-l", mount, check=False)
        shutil.rmtree(BASE)
    say("building the base root with debootstrap (once; about a minute)")
    run("debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm",
        str(BASE), debian_mirror())
    wants = BASE / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    target = wants / "systemd-networkd.service"
    if not target.exists():
        target.symlink_to("/lib/systemd/system/systemd-networkd.service")
    (BASE / "etc/machine-id").write_text("")  # each host gets its own at boot
    BASE_DONE.write_text(time.strftime("%Y-%m-%dT%H:%M:%S ") + BASE_PACKAGES + "\n")


# Control side: bridge, apt proxy, wheelhouse.

def network_up() -> None:
    if run("ip", "link", "show", BRIDGE, check=False).returncode != 0:
        run("ip", "link", "add", BRIDGE, "type", "bridge")
    run("ip", "addr", "replace", f"{GATEWAY}/24", "dev", BRIDGE)
    run("ip", "link", "set", BRIDGE, "up")


def services_up() -> None:
    RUN.mkdir(parents=True, exist_ok=True)
    # squid, not caching: the hosts' only way out, like a fleet's egress proxy.
    logs = RUN / "proxy"
    logs.mkdir(exist_ok=True)
    shutil.chown(logs, "proxy", "proxy")
    conf = RUN / "squid.conf"
    conf.write_text(f"http_port {GATEWAY}:{PROXY_PORT}\nacl lab src {SUBNET}\n"
                    "acl SSL_ports port 443\nhttp_access deny CONNECT !SSL_ports\n"
                    "http_access allow lab\nhttp_access deny all\ncache deny all\n"
                    f"pid_filename {logs}/squid.pid\ncache_log {logs}/cache.log\n"
                    f"access_log {logs}/access.log\ncoredump_dir {logs}\n"
                    "shutdown_lifetime 1 seconds\ncache_effective_user proxy\npinger_enable off\n")
    start("proxy", ["squid", "-N", "-f", str(conf)], RUN / "proxy.log")
    wheelhouse = LAB_DIR / "wheelhouse"
    shutil.rmtree(wheelhouse, ignore_errors=True)
    build_all(wheelhouse)
    uv_wheel_into(wheelhouse / "simple" / "uv")
    start("wheelhouse", [sys.executable, "-m", "http.server", str(WHEELHOUSE_PORT), "--bind",
                         GATEWAY, "--directory", str(wheelhouse)], RUN / "wheelhouse.log")
    repo.build(DRIVER_REPO, LAB_DIR / "driver-gpg", DRIVER_REPO_URL)
    start("nvidia-repo", [sys.executable, "-m", "http.server", str(DRIVER_REPO_PORT), "--bind",
                          GATEWAY, "--directory", str(DRIVER_REPO)], RUN / "nvidia-repo.log")
    # A new Hub: the models' main at their first commit, nothing pinned yet.
    hub.reset(HUB_ROOT)
    hub.publish(HUB_ROOT, HUB_MODEL, seed=0)
    hub.publish(HUB_ROOT, HUB_GATED, seed=1, gated=True)
    LOCK.unlink(missing_ok=True)
    start("hub", [sys.executable, str(HERE / "hub.py"), "serve", str(HUB_ROOT), GATEWAY,
                  str(HUB_PORT)], RUN / "hub.log")
    for port in (PROXY_PORT, WHEELHOUSE_PORT, HUB_PORT, DRIVER_REPO_PORT):
        wait_port(GATEWAY, port, 15, f"lab service on {GATEWAY}:{port}")


def uv_wheel_into(index: Path) -> None:
    """uv's real wheel (the default installer, a static binary the lab's hosts run) in the lab's
    index, fetched from the package index once into the lab's cache."""
    wheels = TOOLS / f"uv-{UV_VERSION}"
    if not any(wheels.glob("uv-*.whl")):
        run(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary",
            ":all:", "--dest", str(wheels), f"uv=={UV_VERSION}")
    index.mkdir(parents=True, exist_ok=True)
    for wheel in wheels.glob("uv-*.whl"):
        shutil.copy(wheel, index / wheel.name)


def wait_port(address: str, port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise LabError(f"{what} did not answer within {timeout:.0f}s")
