"""What the monitoring hosts scrape, from the inventory: each worker's SGLang /metrics, each
router's metrics, and every host's node exporter (its node figures, and on workers the GPU and
server figures files/sglang_textfile.py writes for its textfile collector). A host added to the
inventory is a target after the next deploy; a host removed is dropped. The prometheus stage
renders it (files/monitoring/prometheus.yml.j2); verification and diagnosis read Prometheus
back (its HTTP API, from the control machine).

Example::

    for job in jobs():
        print(job.name, [target.address for target in job.targets])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
from pyinfra import inventory
from pyinfra.api.host import Host

from operations.roles import address, is_gateway, is_worker, monitoring, settings_of
from operations.settings import Settings

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


def prometheus_url(of: Host, settings: Settings) -> str:
    """A monitoring host's Prometheus, as the control machine and the fleet reach it."""
    return f"http://{address(of)}:{settings.prometheus_port}"


class PrometheusError(Exception):
    pass


def _get(prometheus: str, path: str, params: dict[str, str]) -> Any:
    try:
        reply = requests.get(f"{prometheus}{path}", params=params, timeout=10)
    except requests.RequestException as error:
        raise PrometheusError(f"Prometheus at {prometheus} does not answer: {error}") from None
    if reply.status_code != 200:
        raise PrometheusError(f"Prometheus at {prometheus} refused {params}: HTTP "
                              f"{reply.status_code} {reply.text[:200]}")
    return reply.json()["data"]


def instant(prometheus: str, promql: str) -> list[dict[str, Any]]:
    """An instant query's series ({"metric": labels, "value": [time, text]})."""
    return _get(prometheus, "/api/v1/query", {"query": promql})["result"]


def targets(prometheus: str) -> list[dict[str, Any]]:
    """Prometheus' active targets (labels, health, last error)."""
    return _get(prometheus, "/api/v1/targets", {"state": "active"})["activeTargets"]


# What a diagnosis adds from Prometheus: the host's last 15 minutes, as (words, PromQL).
RECENT = (
    ("answered /metrics", 'min_over_time(up{job="sglang",host="%s"}[15m])'),
    ("KV cache use up to", 'max_over_time(sglang:token_usage{host="%s"}[15m])'),
    ("queued up to", 'max_over_time(sglang:num_queue_reqs{host="%s"}[15m])'),
    ("running up to", 'max_over_time(sglang:num_running_reqs{host="%s"}[15m])'),
    ("restarts", 'delta(sglang_fleet_server_restarts{host="%s"}[15m])'),
    ("GPU memory up to", 'max_over_time(sglang_fleet_gpu_memory_used_bytes{host="%s"}[15m]) '
                         '/ sglang_fleet_gpu_memory_total_bytes{host="%s"}'),
)


def recent(prometheus: str, host_name: str) -> str | None:
    """One line of what Prometheus saw of a host in the last 15 minutes; None without data (or
    without an answer: a diagnosis goes on without it)."""
    said = []
    for words, promql in RECENT:
        try:
            series = instant(prometheus, promql.replace("%s", host_name))
        except PrometheusError:
            return None
        values = [float(s["value"][1]) for s in series]
        if not values:
            continue
        value = max(values)
        if words == "answered /metrics":
            said.append("answered /metrics throughout" if value >= 1
                        else "stopped answering /metrics")
        elif "use" in words or "memory" in words:
            said.append(f"{words} {value * 100:.0f}%")
        else:
            said.append(f"{words} {value:.0f}")
    return f"Prometheus, last 15 minutes: {', '.join(said)}" if said else None
