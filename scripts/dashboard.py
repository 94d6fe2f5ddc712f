"""The Grafana dashboard (files/monitoring/grafana-dashboard.json), from the figures table
(operations/figures.py): a panel per figure, a line per host, a host picker and a Prometheus
picker, so it imports into an existing Grafana as it is (Dashboards, New, Import).

    python scripts/dashboard.py [--write]   # print it, or rewrite the file
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from operations.figures import FIGURES, query  # noqa: E402

PATH = Path(__file__).resolve().parent.parent / "files" / "monitoring" / "grafana-dashboard.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
HOSTS = 'label_values(up{job="sglang"}, host)'


def dashboard() -> dict:
    panels = []
    for number, figure in enumerate(FIGURES):
        panels.append({
            "id": number + 1, "type": "timeseries", "title": figure.title,
            "description": figure.description, "datasource": DATASOURCE,
            "gridPos": {"h": 8, "w": 12, "x": (number % 2) * 12, "y": (number // 2) * 8},
            "fieldConfig": {"defaults": {"unit": figure.unit}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom"},
                        "tooltip": {"mode": "multi"}},
            "targets": [{"refId": "A", "datasource": DATASOURCE, "legendFormat": "{{host}}",
                         "expr": query(figure, 'host=~"$host"')}],
        })
    return {
        "title": "SGLang fleet", "uid": "sglang-fleet", "tags": ["sglang", "rtx5090"],
        "description": "Written by the sglang-rtx5090 toolkit (scripts/dashboard.py): the "
                       "fleet's figures per host, as figures.py prints them.",
        "schemaVersion": 39, "version": 1, "editable": True, "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "label": "Prometheus", "type": "datasource",
             "query": "prometheus"},
            {"name": "host", "label": "Host", "type": "query", "datasource": DATASOURCE,
             "query": {"query": HOSTS, "refId": "hosts"}, "definition": HOSTS,
             "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2,
             "current": {"text": "All", "value": "$__all"}},
        ]},
        "panels": panels,
    }


def text() -> str:
    return json.dumps(dashboard(), indent=1) + "\n"


if __name__ == "__main__":
    if "--write" in sys.argv[1:]:
        PATH.write_text(text())
    else:
        sys.stdout.write(text())
