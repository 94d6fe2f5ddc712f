"""Runs on the host (system python3, as root): the deploy's run lock, one run at a time per host.

    run_lock.py ACTION PATH HOLDER LEASE_S

ACTION: "take" (free, ours already, or stale: take it), "renew" (ours: push its lease on),
"keep" (ours: held by its lease alone, across a reboot that ends every SSH session), "release"
(ours: remove it). HOLDER (JSON): the run asking, {"run", "control", "user", "pid", "since",
"started"}. Prints one JSON line: {"state": ..., "holder": ..., "why": ...}; "state" is one of
taken, ours, took-over (the holder before, and why it was stale), held (another live run: its
holder), released, not-ours.

A lock is live while its lease has not ended and the SSH session that took it (the first
ancestor that is not a shell or sudo: sshd's process for that connection, or the control
program itself on a local connection) still runs: a run that was killed is recognised at once
(its connection closed), one whose control machine vanished when its lease ends.
"""

import fcntl
import json
import os
import sys
import time

_NOT_SESSIONS = {"sh", "bash", "dash", "zsh", "sudo", "su", "doas", "dzdo", "env", "timeout"}


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(comm, parent, start time in clock ticks since boot) of a process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except OSError:
        return None
    comm = text[text.index("(") + 1:text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()
    return comm, int(fields[1]), int(fields[19])


def _session() -> list[int] | None:
    """[pid, start time] of the process whose life is this run's connection, if any."""
    pid = os.getppid()
    while pid > 1:
        found = _stat(pid)
        if found is None:
            return None
        comm, parent, started = found
        if comm not in _NOT_SESSIONS:
            return [pid, started]
        pid = parent
    return None


def _boot() -> str:
    with open("/proc/sys/kernel/random/boot_id") as boot:
        return boot.read().strip()


def _stale(record: dict, now: float) -> str | None:
    """Why ``record``'s run no longer holds the lock, or None while it does."""
    if now >= record.get("expires", 0):
        return "its lease ended"
    session = record.get("session")
    if session is None:
        return None  # held by its lease alone (across a reboot)
    if record.get("boot") != _boot():
        return "this host rebooted since"
    found = _stat(session[0])
    if found is None or found[2] != session[1]:
        return "its connection to this host is gone"
    return None


def main(action: str, path: str, holder: dict, lease_s: float) -> dict:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(descriptor, "r+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one judge at a time on this host
        try:
            record = json.loads(lock.read() or "null")
        except ValueError:
            record = None  # a write cut short: nobody's
        now = time.time()
        ours = bool(record) and record.get("run") == holder["run"]
        if action == "release":
            if ours:
                os.unlink(path)
            return {"state": "released" if ours else "not-ours", "holder": record}
        if action in ("renew", "keep") and not ours:
            return {"state": "not-ours", "holder": record}
        why = _stale(record, now) if record and not ours else None
        if record and not ours and why is None:
            return {"state": "held", "holder": record}
        mine = {**holder, "expires": now + lease_s, "boot": _boot(),
                "session": None if action == "keep" else _session()}
        lock.seek(0)
        lock.truncate()
        lock.write(json.dumps(mine))
        lock.flush()
        os.fsync(lock.fileno())
        if ours or action != "take":
            return {"state": "ours", "holder": mine}
        if record:
            return {"state": "took-over", "holder": record, "why": why}
        return {"state": "taken", "holder": mine}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]),
                          float(sys.argv[4]))))
