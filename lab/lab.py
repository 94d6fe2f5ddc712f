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
import json
import os
import re
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.control import (  # noqa: E402
    BRIDGE,
    DRIVER_REPO,
    HUB_ROOT,
    build_base,
    network_up,
    services_up,
)
from lab.faults import CAUSES, cause, hub_advance, poweroff, reboot, stuck_on_reboot  # noqa: E402
from lab.hosts import (  # noqa: E402
    GATEWAY_HOST,
    HOSTS,
    SSH_KEY,
    add_login,
    as_container,
    boot_host,
    boot_loop,
    host_address,
    prepare_host,
    read_hosts,
    ssh,
    wait_up,
    without_supervisor_service,
)
from lab.inventory import LAB_DIR, LOCK, SECRETS, write_secrets  # noqa: E402
from lab.limits import raise_limits, restore_limits  # noqa: E402
from lab.processes import (  # noqa: E402
    RUN,
    LabError,
    _end,
    _ours,
    _pid_file,
    _running,
    descendants,
    run,
    say,
    stop,
)
from lab.profiles import DEFAULT_ORDER, HOST_PROFILES  # noqa: E402
from lab.stacks import HUB_MODEL  # noqa: E402

NEEDED = {"debootstrap": "debootstrap", "systemd-nspawn": "systemd-container",
          "squid": "squid", "ip": "iproute2", "ssh-keygen": "openssh-client", "gpg": "gnupg"}


def require_root_and_tools() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, overlays, systemd-nspawn): "
                       "run it with sudo")
    missing = sorted({pkg for tool, pkg in NEEDED.items() if not shutil.which(tool)})
    if missing:
        raise LabError(f"missing Debian packages: {' '.join(missing)}; install them with: "
                       f"apt-get install -y {' '.join(missing)}  (or: make lab-deps)")


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
              "stack": HOST_PROFILES[profile]["stack"],
              **({"container": True, "ssh_port": HOST_PROFILES[profile]["container"]["ssh_port"],
                  "sftp": HOST_PROFILES[profile]["container"]["sftp"]}
                 if "container" in HOST_PROFILES[profile] else {})}
             for number, profile in enumerate(chosen, start=1)]
    if gateway:
        hosts.append(dict(GATEWAY_HOST))
        write_secrets()  # the routers' control key, as an operator keeps it (outside the repo)
    for host in hosts:
        root = prepare_host(host["name"], host["address"], host["profile"])
        if host.get("container"):
            as_container(root, host["address"], HOST_PROFILES[host["profile"]]["container"])
        else:
            without_supervisor_service(root)
        if login:
            add_login(root, login)
            host["login"] = login
        boot_host(host["name"], root)
    for host in hosts:
        wait_up(host)
        say(f"{host['name']} up at {host['address']} ({host['profile']}"
            f"{', login ' + login + ' with sudo' if login else ''})")
    (LAB_DIR / "hosts.json").write_text(json.dumps(hosts, indent=1) + "\n")


def _lab_mounts() -> list[str]:
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    return sorted((m for m in mounts if m.startswith(str(HOSTS) + "/")), reverse=True)


def down(purge: bool) -> None:
    require_root_and_tools()
    (LAB_DIR / "hosts.json").unlink(missing_ok=True)
    SECRETS.unlink(missing_ok=True)
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
        if host.get("container"):  # no systemd: PID 1 is its entrypoint
            words = ssh(host, "supervisorctl status sglang", check=False).stdout.split()
            say(f"{host['name']} {host['address']} {host['profile']}: container, supervisor "
                f"program sglang {words[1] if len(words) > 1 else '-'}")
            continue
        state = ssh(host, "systemctl is-system-running; "
                    "systemctl is-active sglang.service", check=False).stdout.split()
        say(f"{host['name']} {host['address']} {host['profile']}: system "
            f"{state[0] if state else 'unreachable'}, sglang.service "
            f"{state[1] if len(state) > 1 else '-'}")
    return 0


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
