"""Faults put into a running lab: the chart's causes on a host, a poweroff, a reboot, a reboot
that never comes back, and a new commit of a model on the Hub stand-in."""

from __future__ import annotations

from lab import hub
from lab.control import HUB_ROOT
from lab.hosts import HOSTS, _stuck, boot_host, read_hosts, ssh, wait_up
from lab.processes import LabError, say, stop
from lab.stacks import CAUSE_WHEELS, GATEWAY, LAB_STACKS, WHEELHOUSE_PORT

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
    wait_up(host)
    say(f"{name} {'restarted (its entrypoint only)' if host.get('container') else 'rebooted'}")


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
