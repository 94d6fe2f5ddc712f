"""The fleet's figures now, per host, from the monitoring host's Prometheus: whether each server
answers and is healthy, requests and tokens per second, running and queued requests, KV cache
use, time to first token, GPU memory, utilisation, temperature and power, restarts
(operations/figures.py says each).

    python figures.py                          # the Prometheus of the fleet's monitoring host
    python figures.py http://10.0.0.9:9090     # this one

The fleet is the deploy's (inventory.py: $SGLANG_FLEET, else ./fleet.py, else the lab); its
first ``sglang_monitoring`` host is asked, at its address and ``prometheus_port``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from operations.figures import FIGURES, formatted, query  # noqa: E402
from operations.scrape import PrometheusError, instant  # noqa: E402


def prometheus_of_fleet() -> str:
    """The first monitoring host's Prometheus, from the inventory as the deploy loads it
    (pyinfra's loader: group data included)."""
    from operations.roles import inventory_outside_a_run, is_monitoring
    from operations.scrape import prometheus_url
    from operations.settings import validate

    inventory = inventory_outside_a_run()
    found = next((h for h in inventory if is_monitoring(h)), None)
    if found is None:
        raise SystemExit("the fleet has no sglang_monitoring host: add one and deploy, or name "
                         "a Prometheus: python figures.py http://HOST:9090")
    return prometheus_url(found, validate(found.name, found.data.dict()))


def current(prometheus: str) -> dict[str, dict[str, float]]:
    """host -> figure column -> value, for every figure Prometheus has a value of."""
    found: dict[str, dict[str, float]] = {}
    for figure in FIGURES:
        try:
            series = instant(prometheus, query(figure))
        except PrometheusError as error:
            raise SystemExit(str(error)) from None
        for one in series:
            value = float(one["value"][1])
            if value == value:  # NaN: no data in the window (no requests, no TTFT)
                found.setdefault(one["metric"].get("host", "?"), {})[figure.column] = value
    return found


def table(found: dict[str, dict[str, float]]) -> list[str]:
    columns = ["host", *(figure.column for figure in FIGURES)]
    rows = [[host, *(formatted(figure, values.get(figure.column)) for figure in FIGURES)]
            for host, values in sorted(found.items())]
    widths = [max(len(row[i]) for row in [columns, *rows]) for i in range(len(columns))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in [columns, *rows]]


def main(argv: list[str]) -> int:
    prometheus = (argv[0] if argv else prometheus_of_fleet()).rstrip("/")
    found = current(prometheus)
    if not found:
        print(f"Prometheus at {prometheus} has no figures of the fleet yet (scraped after a "
              "deploy with a sglang_monitoring host)")
        return 1
    print("\n".join(table(found)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
