"""What "gone" means when the lab stops its processes (lab/processes.py): exited, zombies
included, since a zombie's entry is its parent's to remove (PID 1 on CI's machines, which may reap
late)."""

from __future__ import annotations

import subprocess
import sys

from lab import processes


def test_a_running_process_is_running_and_an_exited_unreaped_one_is_gone():
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    try:
        state, started = processes._stat(child.pid)
        assert state != "Z" and processes._running(child.pid, started)
        child.stdin.close()  # it exits; not reaped until wait(): a zombie meanwhile
        assert processes._wait_gone(child.pid, started, timeout=30)
        assert processes._stat(child.pid)[0] == "Z", "still in /proc as a zombie: counted as gone"
    finally:
        child.wait()
    assert processes._stat(child.pid) is None


def test_a_recorded_pid_now_used_by_another_process_is_not_the_one_the_lab_started():
    state, started = processes._stat(1)
    assert processes._running(1, started)
    assert not processes._running(1, str(int(started) + 1))
