"""The fleet's figures as data: what each is called, its PromQL per host (from what the
monitoring hosts scrape: operations/scrape.py) and its unit. The Grafana dashboard
(files/monitoring/grafana-dashboard.json, made by scripts/dashboard.py) has a panel per figure;
figures.py prints them per host from Prometheus. Adding a figure is adding a row.

``[[host]]`` in a query is where a host matcher goes: none for the whole fleet, Grafana's
``host=~"$host"`` in the dashboard.

Example::

    for figure in FIGURES:
        print(figure.column, query(figure))
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    column: str  # figures.py's column
    title: str  # the dashboard panel's title
    query: str  # one series per host (a ``host`` label)
    unit: str  # Grafana's unit name; figures.py formats by it
    description: str


FIGURES: tuple[Figure, ...] = (
    Figure("up", "Server answers /metrics", 'max by (host) (up{job="sglang",[[host]]})',
           "none", "1: Prometheus scrapes the SGLang server; 0: it does not answer."),
    Figure("healthy", "Server healthy (/health 200)",
           "max by (host) (sglang_fleet_server_healthy{[[host]]})", "none",
           "1: /health answers 200 on the worker (files/sglang_textfile.py)."),
    Figure("req/s", "Requests per second",
           "sum by (host) (rate(sglang:num_requests_total{[[host]]}[1m]))", "reqps",
           "Requests finished per second, over the last minute."),
    Figure("tok/s", "Generated tokens per second",
           "sum by (host) (rate(sglang:generation_tokens_total{[[host]]}[1m]))", "none",
           "Tokens generated per second, over the last minute."),
    Figure("running", "Running requests", "sum by (host) (sglang:num_running_reqs{[[host]]})",
           "none", "Requests being generated now."),
    Figure("queued", "Queued requests", "sum by (host) (sglang:num_queue_reqs{[[host]]})",
           "none", "Requests waiting for a slot (the KV cache or max_running_requests)."),
    Figure("KV use", "KV cache use", "max by (host) (sglang:token_usage{[[host]]})",
           "percentunit", "How full the KV cache is."),
    Figure("TTFT p95", "Time to first token, 95th percentile",
           "histogram_quantile(0.95, sum by (host, le) "
           "(rate(sglang:time_to_first_token_seconds_bucket{[[host]]}[5m])))", "s",
           "95% of requests got their first token within this time, over 5 minutes."),
    Figure("GPU mem", "GPU memory used",
           "sum by (host) (sglang_fleet_gpu_memory_used_bytes{[[host]]}) / "
           "sum by (host) (sglang_fleet_gpu_memory_total_bytes{[[host]]})", "percentunit",
           "Of all the host's GPUs' memory (nvidia-smi)."),
    Figure("GPU util", "GPU utilisation",
           "avg by (host) (sglang_fleet_gpu_utilization_ratio{[[host]]})", "percentunit",
           "Mean over the host's GPUs (nvidia-smi)."),
    Figure("GPU C", "GPU temperature",
           "max by (host) (sglang_fleet_gpu_temperature_celsius{[[host]]})", "celsius",
           "The hottest of the host's GPUs (nvidia-smi)."),
    Figure("GPU W", "GPU power", "sum by (host) (sglang_fleet_gpu_power_watts{[[host]]})",
           "watt", "All the host's GPUs (nvidia-smi)."),
    Figure("restarts", "Server restarts (15 minutes)",
           "max by (host) (delta(sglang_fleet_server_restarts{[[host]]}[15m]))", "none",
           "Restarts by the service manager in the last 15 minutes (a loop: the chart's "
           "symptoms)."),
)


def query(figure: Figure, host_matcher: str = "") -> str:
    """The figure's PromQL, for the hosts ``host_matcher`` selects (none: every host)."""
    if host_matcher:
        return figure.query.replace("[[host]]", host_matcher)
    return figure.query.replace(",[[host]]", "").replace("{[[host]]}", "")


def formatted(figure: Figure, value: float | None) -> str:
    """A value as figures.py prints it."""
    if value is None:
        return "-"
    if figure.unit == "percentunit":
        return f"{value * 100:.0f}%"
    if figure.unit == "s":
        return f"{value:.2f} s"
    if figure.unit in ("none", "celsius") and float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.1f}"
