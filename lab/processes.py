"""Commands and processes the lab runs: a command whose failure is a LabError, and the daemons
the lab starts and stops, recorded by PID under LAB_DIR/run."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from lab.inventory import LAB_DIR

RUN = LAB_DIR / "run"


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
