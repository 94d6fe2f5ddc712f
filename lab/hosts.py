"""The lab's hosts: each one's root (an overlay on the base root, with its GPUs and driver), its
power (booted by systemd-nspawn, again on each reboot), SSH to it, and the list of those up."""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from lab.control import BASE, BRIDGE, DRIVER_REPO, wait_port
from lab.driver import repo
from lab.inventory import LAB_DIR
from lab.processes import RUN, run, start
from lab.profiles import HOST_PROFILES
from lab.stacks import GATEWAY, PROXY_PORT

HERE = Path(__file__).resolve().parent
HOSTS = LAB_DIR / "hosts"
SSH_KEY = LAB_DIR / "ssh" / "id_ed25519"
BOOTS = LAB_DIR / "run" / "boots.log"  # each host's boots and halts, with times


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


def as_container(root: Path, address: str, container: dict) -> None:
    """A rented GPU container's image: its entrypoint (lab/container/entrypoint.sh) is PID 1,
    not systemd; sshd on ``ssh_port``; without ``sftp``, no SFTP subsystem; an image whose
    entrypoint runs only sshd has no supervisor installed."""
    shutil.copy(HERE / "container" / "entrypoint.sh", root / "lab-entrypoint")
    settings = {"ADDRESS": address, "SSH_PORT": container["ssh_port"], "INIT": container["init"]}
    if not container["sftp"]:
        config = (root / "etc/ssh/sshd_config").read_text()
        (root / "etc/ssh/sshd_config.no-sftp").write_text("".join(
            line for line in config.splitlines(keepends=True)
            if not line.lstrip().startswith("Subsystem")))
        settings["SSHD_CONFIG"] = "/etc/ssh/sshd_config.no-sftp"
    (root / "etc/lab-container.env").write_text(
        "".join(f"{key}={value}\n" for key, value in settings.items()))
    if container["init"] != "supervisord":
        run("chroot", str(root), "dpkg", "--purge", "supervisor")


def without_supervisor_service(root: Path) -> None:
    """A systemd host: the base root's supervisor package stays, its service masked."""
    (root / "etc/systemd/system/supervisor.service").unlink(missing_ok=True)
    (root / "etc/systemd/system/supervisor.service").symlink_to("/dev/null")


def is_container(root: Path) -> bool:
    return (root / "lab-entrypoint").exists()


def wait_up(host: dict) -> None:
    """Until its sshd answers and, on a systemd host, its boot has finished."""
    wait_port(host["address"], host.get("ssh_port", 22), 90, f"sshd on {host['name']}")
    if not host.get("container"):
        ssh(host, "systemctl is-system-running --wait >/dev/null || true")


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
    start(f"host-{name}", [sys.executable, str(HERE / "lab.py"), "boot-loop", name,
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
        # A container runs its entrypoint as PID 1; a host boots systemd.
        init = ["/lab-entrypoint"] if is_container(root) else []
        child = subprocess.Popen(["systemd-nspawn", *([] if init else ["--boot"]),
                                  "--directory", str(root), "--register=no", "--keep-unit",
                                  f"--network-bridge={BRIDGE}", f"--machine={name}", *init])
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
    return ["ssh", "-i", str(SSH_KEY), "-p", str(host.get("ssh_port", 22)), "-o",
            "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o",
            "LogLevel=ERROR", "-o", "BatchMode=yes", f"{login}@{host['address']}", command]


def ssh(host: dict, command: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(*ssh_argv(host, command), check=check)


def read_hosts() -> list[dict]:
    try:
        return json.loads((LAB_DIR / "hosts.json").read_text())
    except (OSError, ValueError):
        return []
