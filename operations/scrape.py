"""What the monitoring hosts scrape, from the inventory: each worker's SGLang /metrics, each
router's metrics, and every host's node exporter (its node figures, and on workers the GPU and
server figures files/sglang_textfile.py writes for its textfile collector). A host added to the
inventory is a target after the next deploy; a host removed is dropped. Pure: the prometheus
stage renders it (files/monitoring/prometheus.yml.j2).

Example::

    for job in jobs():
        print(job.name, [target.address for target in job.targets])
"""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra import inventory

from operations.roles import address, is_gateway, is_worker, monitoring, settings_of

NODE_EXPORTER_PORT = 9100  # the distribution's node exporter's own
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"  # its textfile collector's (Debian's default)
TEXTFILE = f"{TEXTFILE_DIR}/sglang.prom"
RULES_PATH = "/etc/prometheus/sglang-alerts.rules.yml"


@dataclass(frozen=True)
class Target:
    address: str  # host:port, as the monitoring host reaches it
    host: str  # the inventory's name: the ``host`` label of everything scraped from it


@dataclass(frozen=True)
class Job:
    name: str
    targets: tuple[Target, ...]
    path: str = "/metrics"


def scraped() -> bool:
    """Whether the fleet has a monitoring host: without one nothing is installed for it."""
    return bool(monitoring())


def jobs() -> list[Job]:
    """The scrape jobs, in inventory order."""
    hosts = list(inventory)
    return [
        Job("sglang", tuple(Target(f"{address(h)}:{settings_of(h).port}", h.name)
                            for h in hosts if is_worker(h))),
        Job("router", tuple(Target(f"{address(h)}:{settings_of(h).router_metrics_port}", h.name)
                            for h in hosts if is_gateway(h))),
        Job("node", tuple(Target(f"{address(h)}:{NODE_EXPORTER_PORT}", h.name) for h in hosts)),
    ]


def prometheus_url(of=None) -> str | None:  # noqa: ANN001 (a pyinfra Host)
    """The first monitoring host's Prometheus, as the control machine reaches it; None
    without one."""
    found = of or next(iter(monitoring()), None)
    if found is None:
        return None
    return f"http://{address(found)}:{settings_of(found).prometheus_port}"
