"""The host itself: its disk, who listens on a port, the SSH login and sudo, PID 1, user
accounts, the dynamic linker's libnuma and a process's user and argv."""

from __future__ import annotations

import shlex
from typing import Any

from pyinfra.api import FactBase

from operations.facts.status import YesNo


class FreeDisk(FactBase):
    """The filesystem that holds ``path`` or its nearest existing parent (the path may not exist
    yet on a bare host): ``{"free_gb": free space in GB (10^9 bytes), "mount": where it is
    mounted}`` (two paths on one filesystem share its space), or None."""

    def command(self, path: str) -> str:
        return (f"p={shlex.quote(path)}; while [ ! -e \"$p\" ]; do p=$(dirname \"$p\"); done; "
                "df -Pk \"$p\" | tail -n 1")

    def process(self, output: list[str]) -> dict | None:
        try:
            fields = output[-1].split()
            return {"free_gb": int(fields[3]) * 1024 / 1e9, "mount": fields[5]}
        except (IndexError, ValueError):
            return None


# Finds who listens on a TCP port without ss or netstat (a real GPU host had neither):
# /proc/net/tcp{,6} for the socket inode in LISTEN (0A), then /proc/*/fd for its owner.
_PORT_SCRIPT = r"""
port_hex=$(printf '%04X' "$1")
inodes=$(cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk -v p=":$port_hex" \
  '$4 == "0A" && substr($2, length($2) - 4) == p { print $10 }')
[ -n "$inodes" ] || exit 0
# One find per socket, not a readlink per open file: a GPU host has thousands.
for inode in $inodes; do
  find /proc/[0-9]*/fd -maxdepth 1 -lname "socket:\[$inode\]" 2>/dev/null
done | while read -r fd; do
  pid=${fd#/proc/}; pid=${pid%%/*}
  unit=$(grep -o '[^/]*\.service' /proc/$pid/cgroup 2>/dev/null | head -n 1)
  echo "$pid $(cat /proc/$pid/comm 2>/dev/null) ${unit:--}"
done | sort -u
echo listening
"""


class PortListener(FactBase):
    """Who listens on a TCP port: ``None`` when nobody does, else a list of
    ``{"pid": int, "comm": str, "unit": str|None}`` (empty when the owner is not visible)."""

    def command(self, port: int) -> str:
        return f"sh -c {shlex.quote(_PORT_SCRIPT)} port {int(port)}"

    def process(self, output: list[str]) -> list[dict[str, Any]] | None:
        if "listening" not in output:
            return None
        holders = []
        for line in output:
            parts = line.split()
            if len(parts) == 3 and parts[0].isdigit():
                unit = None if parts[2] == "-" else parts[2]
                holders.append({"pid": int(parts[0]), "comm": parts[1], "unit": unit})
        return holders

    @staticmethod
    def default() -> None:
        return None


class Login(FactBase):
    """Who the SSH login is and what sudo lets it do; read with ``_sudo=False``, before any
    command that needs root.

    Returns ``{"user": str, "uid": int, "sudo": "ok" | "password" | "missing" | "denied",
    "said": str}``: ``said`` is sudo's own words when it refused.
    """

    def command(self) -> str:
        return ("id -un; id -u; if ! command -v sudo >/dev/null; then echo missing; "
                "elif said=$(sudo -n true 2>&1); then echo ok; "
                "else echo refused; printf '%s\\n' \"$said\" | head -n 3; fi")

    @staticmethod
    def default() -> Any:
        return {"user": "?", "uid": -1, "sudo": "missing", "said": "nothing readable came back"}

    def process(self, output: list[str]) -> dict[str, Any]:
        if len(output) < 3 or not output[1].strip().isdigit():
            return self.default()
        said = " ".join(line.strip() for line in output[3:])
        sudo = output[2].strip()
        if sudo == "refused":
            # sudo's words, and sudo-rs's (Ubuntu 25.10 and later)
            asks = ("password is required", "interactive authentication is required")
            sudo = "password" if any(words in said for words in asks) else "denied"
        return {"user": output[0].strip(), "uid": int(output[1]), "sudo": sudo, "said": said}


class Pid1(FactBase):
    """The name of PID 1 (``systemd`` on a systemd host)."""

    def command(self) -> str:
        return "cat /proc/1/comm 2>/dev/null || echo unknown"

    @staticmethod
    def default() -> Any:  # what a host that cannot be read gives
        return "unknown"

    def process(self, output: list[str]) -> str:
        return output[0].strip() if output else "unknown"


class UserExists(YesNo):
    """Whether a user account exists (one getent; pyinfra's Users fact reads every account's
    groups and last login, seconds on a busy host)."""

    def command(self, user: str) -> str:
        return f"getent passwd {shlex.quote(user)} >/dev/null && echo yes || echo no"


class LibnumaLinked(FactBase):
    """Whether the dynamic linker finds libnuma.so.1 (``ldconfig -p``)."""

    def command(self) -> str:
        return ("(ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null) "
                "| grep -c 'libnuma.so.1 ' || true")

    @staticmethod
    def default() -> Any:  # what a host that cannot be read gives
        return False

    def process(self, output: list[str]) -> bool:
        return bool(output) and output[-1].strip().isdigit() and int(output[-1]) > 0


class ProcessInfo(FactBase):
    """A process's user and argv: ``{"user": str, "argv": [...]}``, or None if it is gone."""

    def command(self, pid: int) -> str:
        pid = int(pid)
        return (f"[ -d /proc/{pid} ] && [ {pid} -gt 0 ] && {{ stat -c %U /proc/{pid}; "
                f"tr '\\0' '\\n' < /proc/{pid}/cmdline; }} || true")

    @staticmethod
    def default() -> Any:  # what a host that cannot be read gives
        return None

    def process(self, output: list[str]) -> dict[str, Any] | None:
        return {"user": output[0], "argv": output[1:]} if output else None
