"""What the monitoring role writes, before any host: the scrape targets from the inventory (a
host added is a target, a removed one is not), a Prometheus config the distribution's promtool
accepts, the dashboard made from the figures table, and the figures' queries."""

from __future__ import annotations

import json

import pytest
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pyinfra.api import Config, Inventory, State
from pyinfra.context import ctx_inventory, ctx_state

from operations import scrape
from operations.figures import FIGURES, query
from operations.settings import validate
from scripts import dashboard
from tests.conftest import ROOT, promtool

MONITORING = ROOT / "files" / "monitoring"


def fleet(workers: list[tuple[str, dict]]):
    """A pyinfra inventory of these workers and one host that is gateway and monitoring."""
    inventory = Inventory(([*workers, ("infra-01", {"ssh_hostname": "10.0.0.9"})], {}),
                          sglang_gateways=(["infra-01"], {}),
                          sglang_monitoring=(["infra-01"], {}))
    return inventory, State(inventory, Config())


WORKERS = [("gpu-01", {"ssh_hostname": "10.0.0.1"}),
           ("vast-7", {"ssh_hostname": "10.0.0.2", "ssh_port": 41022, "port": 8001})]


def jobs_of(workers: list[tuple[str, dict]]) -> dict[str, list[tuple[str, str]]]:
    inventory, state = fleet(workers)
    with ctx_inventory.use(inventory), ctx_state.use(state):
        return {job.name: [(t.address, t.host) for t in job.targets] for job in scrape.jobs()}


def test_targets_come_from_the_inventory_and_follow_it():
    assert jobs_of(WORKERS) == {
        "sglang": [("10.0.0.1:8000", "gpu-01"), ("10.0.0.2:8001", "vast-7")],
        "router": [("10.0.0.9:29000", "infra-01")],
        "node": [("10.0.0.1:9100", "gpu-01"), ("10.0.0.2:9100", "vast-7"),
                 ("10.0.0.9:9100", "infra-01")]}
    fewer = jobs_of(WORKERS[:1])
    assert "vast-7" not in {host for targets in fewer.values() for _, host in targets}


def test_the_prometheus_config_is_one_promtool_accepts(tmp_path):
    inventory, state = fleet(WORKERS)
    with ctx_inventory.use(inventory), ctx_state.use(state):
        jobs = scrape.jobs()
    rules = tmp_path / "sglang-alerts.rules.yml"
    rules.write_text((MONITORING / "sglang-alerts.rules.yml").read_text())
    templates = Environment(loader=FileSystemLoader(MONITORING), undefined=StrictUndefined,
                            trim_blocks=True, lstrip_blocks=True)
    config = tmp_path / "prometheus.yml"
    config.write_text(templates.get_template("prometheus.yml.j2").render(
        settings=validate("infra-01", {}), jobs=jobs, rules_path=str(rules),
        host_name="infra-01", self_address="10.0.0.9"))
    checked = promtool("check", "config", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 9 rules found" in checked.stdout
    text = config.read_text()
    assert 'targets: ["10.0.0.2:8001"]' in text and 'host: "vast-7"' in text


def test_the_dashboard_file_is_the_one_the_figures_make():
    assert (MONITORING / "grafana-dashboard.json").read_text() == dashboard.text(), \
        "run python scripts/dashboard.py --write"
    panels = json.loads(dashboard.text())["panels"]
    assert [p["title"] for p in panels] == [f.title for f in FIGURES]
    assert all('host=~"$host"' in p["targets"][0]["expr"] for p in panels)


@pytest.mark.parametrize("figure", FIGURES, ids=[f.column for f in FIGURES])
def test_each_figure_is_one_series_per_host_with_or_without_a_host_matcher(figure):
    fleet_wide, picked = query(figure), query(figure, 'host=~"$host"')
    assert "[[host]]" not in fleet_wide + picked and "{}" not in fleet_wide
    assert "by (host" in fleet_wide and picked.count("$host") == figure.query.count("[[host]]")
