"""Monitoring end to end: a systemd worker, a rented-container worker (supervisord, no systemd)
and lab-gw (gateway, wheelhouse and the monitoring host). The deploy sets up the distribution's
Prometheus on lab-gw and the node exporter and the workers' figures everywhere; every host is
scraped, container included; each dashboard panel has data after traffic; figures.py prints it;
verification checks it; a stopped worker fires its alert and diagnosis says what Prometheus saw;
a host removed from the inventory is dropped from the targets. Tests run in file order and
share one lab."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.hosts import GATEWAY_HOST
from operations import scrape
from operations.figures import FIGURES
from tests.e2e.conftest import (
    ROOT,
    curl,
    deploy,
    failures_by_test,
    lab,
    round_trips,
    ssh,
    unchanged_hosts,
    verify_fleet,
    wait_for,
)

PROMETHEUS = f"http://{GATEWAY_HOST['address']}:9090"  # lab-gw's
WORKERS = ["lab-1", "lab-2"]
DASHBOARD = ROOT / "files" / "monitoring" / "grafana-dashboard.json"


def fleet_file(tmp_path: Path, workers: list[str] = WORKERS) -> Path:
    fleet = tmp_path / "fleet.py"
    fleet.write_text(
        "from lab.inventory import lab_gateways, lab_hosts\n"
        f"gpu_servers = [(n, d) for n, d in lab_hosts() if n in {workers!r}]\n"
        "sglang_gateways = sglang_wheelhouse = sglang_monitoring = [\n"
        "    (n, {**d, 'scrape_interval_s': 5}) for n, d in lab_gateways()]\n")
    return fleet


def targets() -> dict[tuple[str, str], str]:
    return {(t["labels"]["job"], t["labels"]["host"]): t["health"]
            for t in scrape.targets(PROMETHEUS)}


def send_traffic() -> None:
    body = '{"text": "Hello", "sampling_params": {"max_new_tokens": 40}}'
    for _ in range(6):
        for name in WORKERS:
            assert curl(name, "/generate", body)[0] == 200


@pytest.fixture(scope="module")
def first(root_required, tmp_path_factory):
    lab("up", "2", "--profiles", "rtx5090-cu13,vast", "--gateway")
    fleet = fleet_file(tmp_path_factory.mktemp("first"))
    yield deploy(fleet=fleet), fleet
    lab("down")


def test_every_host_is_scraped_container_included(first):
    done, _ = first
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    expected = {("sglang", "lab-1"), ("sglang", "lab-2"), ("router", "lab-gw"),
                ("node", "lab-1"), ("node", "lab-2"), ("node", "lab-gw"),
                ("prometheus", "lab-gw")}
    found = wait_for(lambda: (t := targets()).keys() == expected and set(t.values()) == {"up"}
                     and t, 60)
    assert found, f"not every target up: {targets()}"
    # lab-2 runs no systemd: its exporters are supervisord's programs
    status = ssh("lab-2", "supervisorctl status").stdout
    assert "sglang-node-exporter" in status and "sglang-textfile" in status


def test_a_second_deploy_changes_nothing_in_two_round_trips_each(first):
    _, fleet = first
    again = deploy(fleet=fleet, extra=("--debug",))
    out = again.stdout + again.stderr
    assert again.returncode == 0, out[-3000:]
    assert unchanged_hosts(out) >= {"lab-1", "lab-gw"}, out[-3000:]
    assert round_trips(out) == {"lab-1": 2, "lab-2": 2, "lab-gw": 2}


def test_every_dashboard_panel_has_data_for_every_worker_after_traffic(first):
    send_traffic()
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert [p["title"] for p in panels] == [f.title for f in FIGURES]

    def empty() -> list[str]:
        return [f"{panel['title']} ({name})" for panel in panels for name in WORKERS
                if name not in {s["metric"].get("host") for s in scrape.instant(
                    PROMETHEUS, panel["targets"][0]["expr"].replace("$host", ".*"))}]

    # (rates need two scrapes after the traffic)
    assert wait_for(lambda: not empty(), 90), f"panels without data: {empty()}"


def test_figures_prints_the_fleets_figures_per_worker(first):
    _, fleet = first
    send_traffic()
    rate = "sum by (host) (rate(sglang:num_requests_total[1m])) > 0"
    assert wait_for(lambda: {s["metric"]["host"] for s in scrape.instant(PROMETHEUS, rate)}
                    == set(WORKERS), 60), "no requests scraped"
    shown = subprocess.run([sys.executable, str(ROOT / "figures.py")], capture_output=True,
                           text=True, cwd=ROOT, env={**os.environ, "SGLANG_FLEET": str(fleet)},
                           timeout=120)
    assert shown.returncode == 0, shown.stderr
    header, *rows = shown.stdout.splitlines()
    assert header.split()[:3] == ["host", "up", "healthy"]
    container = ssh("lab-2", "supervisorctl status; cat /var/lib/prometheus/node-exporter/"
                             "sglang.prom; tail -5 /var/log/sglang/sglang-textfile.log").stdout
    assert [row.split()[:3] for row in rows] == [["lab-1", "1", "1"], ["lab-2", "1", "1"]], (
        shown.stdout, container)
    # requests per second over the last minute: the traffic above
    column = header.split().index("req/s")
    assert all(float(row.split()[column]) > 0 for row in rows), shown.stdout


def test_verification_checks_each_workers_metrics_and_that_prometheus_scrapes_it(
        first, tmp_path):
    _, fleet = first
    result, junit = verify_fleet(tmp_path, fleet)
    assert result.returncode == 0, result.stdout[-3000:]
    cases = {case.get("name"): case for case in junit.iter("testcase")}
    for passed in ("test_metrics[lab-1]", "test_metrics[lab-2]", "test_scraped[lab-1]",
                   "test_scraped[lab-2]", "test_scraped[lab-gw]",
                   "test_prometheus_scrapes_every_target[lab-gw]"):
        assert cases[passed].find("failure") is None and cases[passed].find("skipped") is None


def test_a_stopped_worker_fires_its_alert_and_diagnosis_says_what_prometheus_saw(
        first, tmp_path):
    _, fleet = first
    ssh("lab-1", "systemctl stop sglang")
    try:
        firing = ('ALERTS{alertname="SGLangWorkerDown",host="lab-1",'
                  'alertstate="firing"}')
        assert wait_for(lambda: scrape.instant(PROMETHEUS, firing), 180), \
            "SGLangWorkerDown never fired for lab-1"
        result, junit = verify_fleet(tmp_path, fleet)
        assert "lab-1" in failures_by_test(junit)["test_scraped[lab-1]"]
        diagnosed = deploy(fleet=fleet, script="diagnose.py")
        out = diagnosed.stdout + diagnosed.stderr
        assert "Prometheus, last 15 minutes: stopped answering /metrics" in out, out[-3000:]
    finally:
        repaired = deploy(fleet=fleet)
    assert repaired.returncode == 0, (repaired.stdout + repaired.stderr)[-3000:]


def test_a_host_removed_from_the_inventory_is_dropped_and_comes_back_when_added(
        first, tmp_path):
    _, fleet = first
    fewer = deploy(fleet=fleet_file(tmp_path, ["lab-1"]))
    assert fewer.returncode == 0, (fewer.stdout + fewer.stderr)[-3000:]
    # (Prometheus applies a reloaded config's targets a moment after the reload)
    assert wait_for(lambda: "lab-2" not in {host for _, host in targets()}, 30), targets()
    again = deploy(fleet=fleet)
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert wait_for(lambda: {("sglang", "lab-2"), ("node", "lab-2")} <= targets().keys(), 30), \
        targets()
