"""Kernel limits that many booted hosts need: raised by lab up, put back by lab down."""

from __future__ import annotations

import json
from pathlib import Path

from lab.inventory import LAB_DIR
from lab.processes import say

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
