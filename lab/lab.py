"""A lab fleet on one machine: booted Debian hosts (systemd-nspawn, systemd as PID 1, sshd) with
simulated RTX 5090s, on a private bridge, with an apt proxy, a package index and a Hugging Face Hub
stand-in on the control side.

    lab/lab up [N] [--profiles a,b,...] [--gateway] [--login USER]
                                          bring up N hosts (replacing any running lab), and
                                          lab-gw: the router's gateway and the wheelhouse;
                                          --login: hosts refuse root logins and USER logs in
                                          with passwordless sudo, as on cloud images
    lab/lab status                        what is up
    lab/lab cause HOST CAUSE              put a host into one of the chart's causes
    lab/lab hub-advance [REPO]            the Hub stand-in's model moves its main to a new commit
    lab/lab reboot HOST                   power a host off cleanly and boot it again
    lab/lab stuck-on-reboot HOST          the host's next reboot never comes back (firmware)
    lab/lab poweroff HOST                 power a host off (it becomes unreachable)
    lab/lab down [--purge]                remove everything up made (--purge: the base root too)

Needs root, debootstrap, systemd-container (systemd-nspawn) and squid.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab import hub  # noqa: E402
from lab.driver import repo  # noqa: E402
from lab.inventory import LAB_DIR, LOCK  # noqa: E402
from lab.profiles import DEFAULT_ORDER, HOST_PROFILES  # noqa: E402
from lab.stacks import (  # noqa: E402
    CAUSE_WHEELS,
    DRIVER_REPO_PORT,
    DRIVER_REPO_URL,
    GATEWAY,
    HUB_GATED,
    HUB_MODEL,
    HUB_PORT,
    LAB_STACKS,
    PROXY_PORT,
    WHEELHOUSE_PORT,
)
from lab.standin.build import build_all  # noqa: E402

HERE = Path(__file__).resolve().parent
BRIDGE = "sglab0"
SUBNET = "10.213.0.0/24"
BASE = LAB_DIR / "base"
BASE_DONE = LAB_DIR / "base.done"
HOSTS = LAB_DIR / "hosts"
RUN = LAB_DIR / "run"
SSH_KEY = LAB_DIR / "ssh" / "id_ed25519"
HUB_ROOT = LAB_DIR / "hub"

BASE_PACKAGES = "systemd,systemd-sysv,dbus,openssh-server,python3,iproute2,sudo"
NEEDED = {"debootstrap": "debootstrap", "systemd-nspawn": "systemd-container",
          "squid": "squid", "ip": "iproute2", "ssh-keygen": "openssh-client", "gpg": "gnupg"}
DRIVER_REPO = LAB_DIR / "nvidia-repo"
BOOTS = LAB_DIR / "run" / "boots.log"  # each host's boots and halts, with times


class LabError(RuntimeError):
    pass


def say(message: str) -> None:
    print(f"lab: {message}", flush=True)


def run(*args: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise LabError(f"{' '.join(args)} failed ({result.returncode}): "
                       f"{(result.stderr or result.stdout).strip()[-800:]}")
    return result


def require_root_and_tools() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, overlays, systemd-nspawn): "
                       "run it with sudo")
    missing = sorted({pkg for tool, pkg in NEEDED.items() if not shutil.which(tool)})
    if missing:
        raise LabError(f"missing Debian packages: {' '.join(missing)}; install them with: "
                       f"apt-get install -y {' '.join(missing)}  (or: make lab-deps)")


# Processes the lab started, recorded by PID; only those are ever stopped.
#
# "Gone" means exited: /proc has no such process, or it is a zombie. A zombie has released its
# memory, files, sockets and mounts and can never run again; only its parent can remove its
# entry, and the lab's daemons outlive the `lab up` that started them, so that parent is PID 1.
# Where PID 1 is not systemd (CI's machines) it may reap late, and waiting for it would wait
# on something neither the lab nor its user can change.

def _pid_file(name: str) -> Path:
    return RUN / f"{name}.pid"


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) of a process, or None when /proc has no such process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], fields[19]


def _ours(pid: int) -> bool:
    """Whether pid is alive and is a process the lab started (its argv names the lab dir)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return str(LAB_DIR) in argv


def _running(pid: int, started: str) -> bool:
    """Whether the process that started at ``started`` has not exited yet (see above). A
    thread-group leader shows as a zombie while its other threads still run: that is running."""
    found = _stat(pid)
    if found is None or found[1] != started:
        return False
    if found[0] not in ("Z", "X"):
        return True
    try:
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except OSError:
        return False


def _wait_gone(pid: int, started: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _running(pid, started):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def start(name: str, args: list[str], log: Path) -> int:
    RUN.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                   start_new_session=True)
    _pid_file(name).write_text(str(process.pid))
    return process.pid


def stop(name: str, timeout: float = 20) -> None:
    """Stop a process the lab started; returns once it has exited (SIGTERM, then SIGKILL)."""
    path = _pid_file(name)
    try:
        pid = int(path.read_text())
    except (OSError, ValueError):
        return
    found = _stat(pid)
    if found and _ours(pid):
        _end(pid, found[1], name, timeout)
    path.unlink(missing_ok=True)


def _end(pid: int, started: str, name: str, timeout: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, started, timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not _wait_gone(pid, started, 10):
            raise LabError(f"{name} (pid {pid}) still runs 10 s after SIGKILL")


def descendants(pids: list[int]) -> list[tuple[int, str]]:
    """Every process below these (pid, start time): a booted host's processes are below its
    systemd-nspawn."""
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:  # parent and start time from one read: a reused PID cannot mix them
            fields = Path(entry, "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append((int(entry.name), fields[19]))
        except (OSError, ValueError, IndexError):
            continue
    found, todo = [], list(pids)
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child[0])
    return found


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
    if BASE.exists():
        shutil.rmtree(BASE)  # a build that was cut off
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


def wait_port(address: str, port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise LabError(f"{what} did not answer within {timeout:.0f}s")


# Hosts.

def host_address(number: int) -> str:
    return f"10.213.0.{10 + number}"


GATEWAY_HOST = {"name": "lab-gw", "address": "10.213.0.9", "profile": "gateway",
                "role": "gateway"}


def add_login(root: Path, user: str) -> None:
    """What cloud images give: a user with the fleet's key and passwordless sudo; root may not
    log in over SSH."""
    if not (root / "home" / user).exists():
        run("chroot", str(root), "useradd", "--create-home", "--shell", "/bin/bash", user)
    ssh_dir = root / "home" / user / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(SSH_KEY.with_suffix(".pub").read_text())
    run("chroot", str(root), "chown", "-R", f"{user}:{user}", f"/home/{user}/.ssh")
    sudoers = root / "etc/sudoers.d" / user
    sudoers.write_text(f"{user} ALL=(ALL) NOPASSWD: ALL\n")
    sudoers.chmod(0o440)
    (root / "etc/ssh/sshd_config.d/10-lab-no-root.conf").write_text("PermitRootLogin no\n")
    (root / "root/.ssh/authorized_keys").unlink(missing_ok=True)


def prepare_host(name: str, address: str, profile: str) -> Path:
    folder = HOSTS / name
    for sub in ("upper", "work", "root"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    run("mount", "-t", "overlay", "overlay", "-o",
        f"lowerdir={BASE},upperdir={folder / 'upper'},workdir={folder / 'work'}",
        str(folder / "root"))
    root = folder / "root"
    (root / "etc/hostname").write_text(f"{name}\n")
    with open(root / "etc/hosts", "a") as hosts:  # as an installer writes it: sudo looks it up
        hosts.write(f"127.0.1.1\t{name}\n")
    (root / "etc/systemd/network/10-host0.network").write_text(
        f"[Match]\nName=host0\n\n[Network]\nAddress={address}/24\n")
    ssh = root / "root/.ssh"
    ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
    (ssh / "authorized_keys").write_text(SSH_KEY.with_suffix(".pub").read_text())
    (root / "etc/apt/apt.conf.d/90lab-proxy").write_text(
        f'Acquire::http::Proxy "http://{GATEWAY}:{PROXY_PORT}";\n')
    # The control machine trusts certificate authorities a fresh host does not (pip over the
    # proxy needs them): its bundle, for the pip_cert setting.
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", root / "etc/lab-ca.pem")
    gpus = HOST_PROFILES[profile]["gpus"]
    if not gpus:
        return root
    (root / "etc/lab-gpu").mkdir(parents=True, exist_ok=True)
    (root / "etc/lab-gpu/gpus.json").write_text(json.dumps(gpus) + "\n")
    for capture in (HERE / "gpus" / "captures").iterdir():
        if capture.is_dir() and capture.name.rsplit("-", 1)[0] in gpus:
            shutil.copytree(capture, root / "etc/lab-gpu/captures" / capture.name)
    install_kernel(root)
    if HOST_PROFILES[profile]["driver"]:
        flavour, branch = HOST_PROFILES[profile]["driver"]
        preinstall_driver(root, flavour, branch)
    return root


def install_kernel(root: Path) -> None:
    """The simulated kernel's boot step and update-initramfs (lab/driver)."""
    tools = root / "usr/lib/lab-driver"
    tools.mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "driver" / "kernel_boot.py", tools / "kernel-boot")
    shutil.copy(HERE / "driver" / "update_initramfs.py", root / "usr/sbin/update-initramfs")
    (root / "etc/systemd/system/lab-kernel.service").write_text(
        "[Unit]\nDescription=Lab kernel: load the GPU's driver (lab/driver)\n"
        "DefaultDependencies=no\nBefore=sysinit.target\n\n[Service]\nType=oneshot\n"
        "RemainAfterExit=yes\nExecStart=/usr/bin/python3 /usr/lib/lab-driver/kernel-boot\n\n"
        "[Install]\nWantedBy=sysinit.target\n")
    wants = root / "etc/systemd/system/sysinit.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / "lab-kernel.service").unlink(missing_ok=True)
    (wants / "lab-kernel.service").symlink_to("/etc/systemd/system/lab-kernel.service")


def preinstall_driver(root: Path, flavour: str, branch: int) -> None:
    """What an earlier setup from NVIDIA's repository left: its packages installed (dpkg), and
    nouveau blacklisted in the initramfs, as NVIDIA's .run installer does it."""
    debs = repo.preinstalled(DRIVER_REPO, flavour, branch)
    staging = root / "tmp/lab-debs"
    staging.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        shutil.copy(deb, staging / deb.name)
    run("chroot", str(root), "dpkg", "-i", *[f"/tmp/lab-debs/{deb.name}" for deb in debs])
    shutil.rmtree(staging)
    (root / "etc/modprobe.d").mkdir(exist_ok=True)
    (root / "etc/modprobe.d/nvidia-installer-disable-nouveau.conf").write_text(
        "# generated by nvidia-installer\nblacklist nouveau\noptions nouveau modeset=0\n")
    run("chroot", str(root), "/usr/sbin/update-initramfs", "-u")


def boot_host(name: str, root: Path) -> None:
    start(f"host-{name}", [sys.executable, str(Path(__file__).resolve()), "boot-loop", name,
                           str(root)], HOSTS / name / "console.log")


def _stuck(name: str) -> Path:
    return RUN / f"host-{name}.stuck"


def boot_loop(name: str, root: Path) -> int:
    """A host's power: boot it, and boot it again when it reboots itself (systemd-nspawn exits
    133), unless it was made to never come back; SIGTERM powers it off cleanly."""
    child: subprocess.Popen | None = None
    stopping = False

    def power_off(*_: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, power_off)
    while not stopping:
        with open(BOOTS, "a") as log:
            log.write(f"{time.time():.3f} {name} boot\n")
        child = subprocess.Popen(["systemd-nspawn", "--boot", "--directory", str(root),
                                  "--register=no", "--keep-unit", f"--network-bridge={BRIDGE}",
                                  f"--machine={name}"])
        code = child.wait()
        with open(BOOTS, "a") as log:
            log.write(f"{time.time():.3f} {name} halt {code}\n")
        if code != 133:
            return code
        if _stuck(name).exists():
            while not stopping:  # powered on, never answers again, until powered off
                signal.pause()
    return 0


def ssh_argv(host: dict, command: str) -> list[str]:
    """ssh running a command as root on a lab host: logged in as root, or as its login user
    (lab up --login) through sudo."""
    login = host.get("login") or "root"
    if login != "root":
        command = f"sudo -n sh -c {shlex.quote(command)}"
    return ["ssh", "-i", str(SSH_KEY), "-o", "StrictHostKeyChecking=no", "-o",
            "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
            f"{login}@{host['address']}", command]


def ssh(host: dict, command: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(*ssh_argv(host, command), check=check)


def read_hosts() -> list[dict]:
    try:
        return json.loads((LAB_DIR / "hosts.json").read_text())
    except (OSError, ValueError):
        return []


# Kernel limits a booted host uses several of (systemd and its services each take inotify
# instances); the defaults (128 instances) stop at about 20 hosts. Raised by up, restored by down.
KERNEL_LIMITS = {"fs/inotify/max_user_instances": 16, "fs/inotify/max_user_watches": 2048}
SAVED_LIMITS = LAB_DIR / "kernel-limits.json"


def raise_limits(hosts: int) -> None:
    saved = json.loads(SAVED_LIMITS.read_text()) if SAVED_LIMITS.exists() else {}
    for key, per_host in KERNEL_LIMITS.items():
        path = Path("/proc/sys") / key
        now, wanted = int(path.read_text()), 128 + per_host * hosts
        if now < wanted:
            saved.setdefault(key, now)
            path.write_text(f"{wanted}\n")
            say(f"raised {key.replace('/', '.')} from {now} to {wanted} for {hosts} hosts "
                "(lab/lab down puts it back)")
    if saved:
        SAVED_LIMITS.write_text(json.dumps(saved) + "\n")


def restore_limits() -> None:
    if not SAVED_LIMITS.exists():
        return
    for key, value in json.loads(SAVED_LIMITS.read_text()).items():
        (Path("/proc/sys") / key).write_text(f"{value}\n")
        say(f"restored {key.replace('/', '.')} to {value}")
    SAVED_LIMITS.unlink()


def up(count: int, profiles: list[str] | None, gateway: bool = False,
       login: str | None = None) -> None:
    require_root_and_tools()
    if login is not None and (login == "root" or not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}",
                                                                   login)):
        raise LabError(f"--login {login!r}: a user name other than root ([a-z_][a-z0-9_-]*)")
    chosen = profiles or [DEFAULT_ORDER[i % len(DEFAULT_ORDER)] for i in range(count)]
    unknown = [p for p in chosen if p not in HOST_PROFILES or p == "gateway"]  # --gateway
    if unknown:
        raise LabError(f"unknown host profile(s) {unknown}; known: "
                       f"{sorted(p for p in HOST_PROFILES if p != 'gateway')}")
    down(purge=False)  # also clears what an earlier, killed run left behind
    LAB_DIR.mkdir(parents=True, exist_ok=True)
    raise_limits(len(chosen) + int(gateway))
    build_base()
    if not SSH_KEY.exists():
        SSH_KEY.parent.mkdir(mode=0o700, exist_ok=True)
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sglang-lab", "-f", str(SSH_KEY))
    network_up()
    services_up()
    hosts = [{"name": f"lab-{number}", "address": host_address(number), "profile": profile,
              "stack": HOST_PROFILES[profile]["stack"]}
             for number, profile in enumerate(chosen, start=1)]
    if gateway:
        hosts.append(dict(GATEWAY_HOST))
    for host in hosts:
        root = prepare_host(host["name"], host["address"], host["profile"])
        if login:
            add_login(root, login)
            host["login"] = login
        boot_host(host["name"], root)
    for host in hosts:
        wait_port(host["address"], 22, 90, f"sshd on {host['name']}")
        ssh(host, "systemctl is-system-running --wait >/dev/null || true")
        say(f"{host['name']} up at {host['address']} ({host['profile']}"
            f"{', login ' + login + ' with sudo' if login else ''})")
    (LAB_DIR / "hosts.json").write_text(json.dumps(hosts, indent=1) + "\n")


def _lab_mounts() -> list[str]:
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    return sorted((m for m in mounts if m.startswith(str(HOSTS) + "/")), reverse=True)


def down(purge: bool) -> None:
    require_root_and_tools()
    (LAB_DIR / "hosts.json").unlink(missing_ok=True)
    if RUN.exists():
        host_pids = [int(p.read_text()) for p in sorted(RUN.glob("host-*.pid"))
                     if p.read_text().strip().isdigit()]
        inside = descendants([pid for pid in host_pids if _ours(pid)])
        for pid_file in sorted(RUN.glob("host-*.pid")):
            stop(pid_file.stem)
        stop("wheelhouse")
        stop("hub")
        stop("nvidia-repo")
        stop("proxy")
        # A host whose nspawn did not shut it down cleanly can leave its processes behind.
        for pid, started in inside:
            if _running(pid, started):
                _end(pid, started, f"process {pid} of a lab host", 5)
    for mount in _lab_mounts():
        run("umount", mount, check=False)
        if mount in _lab_mounts():
            run("umount", "-l", mount, check=False)
    for link in run("ip", "-o", "link", "show").stdout.splitlines():
        name = link.split(":")[1].strip().split("@")[0]
        if name == BRIDGE or name.startswith("vb-lab-"):
            run("ip", "link", "delete", name, check=False)
    restore_limits()
    for path in (HOSTS, RUN, LAB_DIR / "wheelhouse", HUB_ROOT, LOCK, DRIVER_REPO):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if purge:
        shutil.rmtree(LAB_DIR, ignore_errors=True)


def status() -> int:
    hosts = read_hosts()
    if not hosts:
        say("no lab hosts are up (lab/lab up 2)")
        return 1
    for name in ("proxy", "wheelhouse", "hub", "nvidia-repo"):
        pid = _pid_file(name).read_text().strip() if _pid_file(name).exists() else "-"
        say(f"{name}: pid {pid} {'running' if pid != '-' and _ours(int(pid)) else 'STOPPED'}")
    for host in hosts:
        state = ssh(host, "systemctl is-system-running; "
                    "systemctl is-active sglang.service", check=False).stdout.split()
        say(f"{host['name']} {host['address']} {host['profile']}: system "
            f"{state[0] if state else 'unreachable'}, sglang.service "
            f"{state[1] if len(state) > 1 else '-'}")
    return 0


# Causes: each puts a host into one of the chart's causes the way it happens for real.

def _cause_wheel(host: dict, package: str) -> str:
    pins = LAB_STACKS[host["stack"]].packages
    dist = f"{package}-lab-standin"
    version = next(v for d, v, _, _ in CAUSE_WHEELS if d == dist and v.startswith(pins[dist]))
    return (f"http://{GATEWAY}:{WHEELHOUSE_PORT}/causes/"
            f"{dist.replace('-', '_')}-{version}-py3-none-any.whl")


def _edit_unit(sed: str) -> str:
    return (f"sed -i -E '{sed}' /etc/systemd/system/sglang.service && systemctl daemon-reload && "
            "systemctl restart sglang.service")


CAUSES = {
    "libnuma": ("libnuma missing (symptom 3)",
                lambda h: "apt-get remove -y -q libnuma1 >/dev/null && systemctl restart sglang"),
    "abi": ("kernel built for another torch (symptom 2)",
            lambda h: f"/opt/sglang/venv/bin/pip install -q --no-deps --force-reinstall "
                      f"{_cause_wheel(h, 'sgl-kernel')} && systemctl restart sglang"),
    "no-sm120": ("torch build without sm_120 (symptom 4)",
                 lambda h: f"/opt/sglang/venv/bin/pip install -q --no-deps --force-reinstall "
                           f"{_cause_wheel(h, 'torch')} && systemctl restart sglang"),
    "cuda-graph": ("CUDA graphs and FlashInfer on sm_120 (symptom 1)",
                   lambda h: _edit_unit("s/ --disable-cuda-graph//; "
                                        "s/ --sampling-backend pytorch//")),
    "oom": ("memory fraction leaves no room (symptom 5, process dies)",
            lambda h: _edit_unit("s/--mem-fraction-static [0-9.]+/--mem-fraction-static 0.97/")),
    "kv-too-big": ("KV cache does not fit (symptom 5, /health stays 503)",
                   lambda h: _edit_unit("s/--max-total-tokens [0-9]+/--max-total-tokens 65536/")),
}


def cause(name: str, which: str) -> None:
    host = next((h for h in read_hosts() if h["name"] == name), None)
    if host is None:
        raise LabError(f"no lab host named {name!r} is up")
    if which not in CAUSES:
        raise LabError(f"unknown cause {which!r}; known: {', '.join(CAUSES)}")
    ssh(host, CAUSES[which][1](host))
    say(f"{name}: {CAUSES[which][0]}")


def poweroff(name: str) -> dict:
    host = next((h for h in read_hosts() if h["name"] == name), None)
    if host is None:
        raise LabError(f"no lab host named {name!r} is up")
    stop(f"host-{name}")
    return host


def reboot(name: str) -> None:
    """What a reboot is to the host: a clean poweroff, then a boot of the same disk."""
    host = poweroff(name)
    _stuck(name).unlink(missing_ok=True)
    boot_host(name, HOSTS / name / "root")
    wait_port(host["address"], 22, 90, f"sshd on {name}")
    ssh(host, "systemctl is-system-running --wait >/dev/null || true")
    say(f"{name} rebooted")


def stuck_on_reboot(name: str) -> None:
    if not any(h["name"] == name for h in read_hosts()):
        raise LabError(f"no lab host named {name!r} is up")
    _stuck(name).write_text("")


def hub_advance(repository: str) -> str:
    """The model's main moves to a new commit upstream (new weights)."""
    state = HUB_ROOT / repository / "repo.json"
    if not state.exists():
        raise LabError(f"the Hub stand-in has no repository {repository!r}")
    commits = len(list((HUB_ROOT / repository / "commits").iterdir()))
    return hub.publish(HUB_ROOT, repository, seed=100 + commits)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="lab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    up_parser = sub.add_parser("up")
    up_parser.add_argument("count", nargs="?", type=int, default=2)
    up_parser.add_argument("--profiles", help=f"comma-separated, from {sorted(HOST_PROFILES)}")
    up_parser.add_argument("--gateway", action="store_true", help="and lab-gw: gateway, wheelhouse")
    up_parser.add_argument("--login", metavar="USER",
                           help="log in as USER with passwordless sudo; root logins refused")
    down_parser = sub.add_parser("down")
    down_parser.add_argument("--purge", action="store_true", help="remove the base root too")
    sub.add_parser("status")
    cause_parser = sub.add_parser("cause")
    cause_parser.add_argument("host")
    cause_parser.add_argument("cause", choices=sorted(CAUSES))
    sub.add_parser("hub-advance").add_argument("repo", nargs="?", default=HUB_MODEL)
    sub.add_parser("reboot").add_argument("host")
    sub.add_parser("poweroff").add_argument("host")
    sub.add_parser("stuck-on-reboot").add_argument("host")
    boot_parser = sub.add_parser("boot-loop")  # internal: a host's power (boot_host)
    boot_parser.add_argument("host")
    boot_parser.add_argument("root")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            up(args.count, args.profiles.split(",") if args.profiles else None, args.gateway,
               args.login)
        elif args.command == "down":
            down(args.purge)
            say("down: no lab hosts, interfaces, mounts or lab processes are left")
        elif args.command == "status":
            return status()
        elif args.command == "cause":
            cause(args.host, args.cause)
        elif args.command == "hub-advance":
            say(f"{args.repo}: main is now {hub_advance(args.repo)}")
        elif args.command == "reboot":
            reboot(args.host)
        elif args.command == "stuck-on-reboot":
            stuck_on_reboot(args.host)
            say(f"{args.host}: its next reboot will not come back")
        elif args.command == "boot-loop":
            return boot_loop(args.host, Path(args.root))
        elif args.command == "poweroff":
            poweroff(args.host)
            say(f"{args.host} powered off")
    except LabError as error:
        print(f"lab: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
