"""One test per check per host. Each failure says what was found, the chart symptom it matches,
the likely cause and the fix (operations/checks.py)."""

from __future__ import annotations

import pytest

from operations import checks, scrape
from operations.facts.service import UnitState
from operations.managers import chosen
from tests.verify.conftest import run_fact


def _gathered(target, evidence, role: str) -> dict:
    if role not in target.roles:
        pytest.skip(f"{target.name} is not a {role}")
    gathered = evidence[target.name]
    if "unreachable" in gathered:
        pytest.fail(f"{target.name}: unreachable: {gathered['unreachable']}")
    return gathered


def _check(name: str, target, evidence) -> None:
    gathered = _gathered(target, evidence, "worker")
    finding = checks.CHECKS[name](target.settings, gathered)
    if not finding.ok:
        pytest.fail(finding.message(target.name), pytrace=False)


def test_disk(target, evidence):
    _check("disk", target, evidence)


def test_gpus(target, evidence):
    _check("gpus", target, evidence)


def test_driver(target, evidence):
    _check("driver", target, evidence)


def test_libnuma(target, evidence):
    _check("libnuma", target, evidence)


def test_torch_arch(target, evidence):
    _check("torch-arch", target, evidence)


def test_kernel_abi(target, evidence):
    _check("kernel-abi", target, evidence)


def test_pins(target, evidence):
    _check("pins", target, evidence)


def test_unit(target, evidence):
    _check("unit", target, evidence)


def test_user(target, evidence):
    _check("user", target, evidence)


def test_argv(target, evidence):
    _check("argv", target, evidence)


def test_port(target, evidence):
    _check("port", target, evidence)


def test_health(target, evidence):
    _check("health", target, evidence)


def test_metrics(target, evidence):
    _check("metrics", target, evidence)


def test_inference(target, evidence):
    _check("inference", target, evidence)


def test_model(target, evidence):
    _check("model", target, evidence)


def test_gpu_memory_use(target, evidence):
    _check("gpu-memory-use", target, evidence)


def test_restarts(target, evidence):
    """Read last: a restart loop shows as NRestarts growing since the evidence was gathered."""
    gathered = _gathered(target, evidence, "worker")
    runner = chosen(target.settings.service_manager, gathered["pid1"]).runner
    now = run_fact(target.host, UnitState, {"unit": runner})
    finding = checks.restarts_grew(gathered["unit"], now)
    if not finding.ok:
        pytest.fail(finding.message(target.name), pytrace=False)


def test_router_fronts_every_worker(target, evidence):
    """Every worker of the inventory is in the router and the router calls it healthy."""
    router = _gathered(target, evidence, "gateway")["router"]
    if "error" in router:
        pytest.fail(f"{target.name}: {router['error']}", pytrace=False)
    missing = [url for url in target.worker_urls if not router["workers"].get(url)]
    if missing:
        pytest.fail(f"{target.name}: the router does not send requests to {', '.join(missing)} "
                    f"(it has {router['workers']}): run the deploy, or diagnose those workers",
                    pytrace=False)


def test_router_inference(target, evidence):
    """A request sent to the router reaches a worker and returns tokens."""
    router = _gathered(target, evidence, "gateway")["router"]
    generate = router.get("generate", {})
    if generate.get("status") != 200 or not generate.get("tokens"):
        pytest.fail(f"{target.name}: a generate through the router gave {generate or router}",
                    pytrace=False)


def test_wheelhouse_serves_every_stack(target, evidence):
    """Each stack the workers use is fetched, locked and served."""
    locks = _gathered(target, evidence, "wheelhouse")["locks"]
    missing = [stack for stack, status in locks.items() if status != 200]
    if missing:
        pytest.fail(f"{target.name}: no lock served for {', '.join(missing)} "
                    f"(HTTP {[locks[s] for s in missing]}): run the deploy", pytrace=False)


def _scraped(target) -> dict[str, dict]:
    """Prometheus' active targets of this host, by job."""
    if target.prometheus is None:
        pytest.skip("the fleet has no monitoring host (sglang_monitoring)")
    try:
        found = scrape.targets(target.prometheus)
    except scrape.PrometheusError as error:
        pytest.fail(f"{target.name}: {error}", pytrace=False)
    return {t["labels"].get("job"): t for t in found if t["labels"].get("host") == target.name}


def test_scraped(target, evidence):
    """Prometheus scrapes this host: its node figures, and a worker's SGLang metrics."""
    jobs = ["node", *(["sglang"] if "worker" in target.roles else [])]
    found = _scraped(target)
    bad = [f"{job}: {found[job]['health']} ({found[job]['lastError']})" if job in found
           else f"{job}: not a target" for job in jobs
           if job not in found or found[job]["health"] != "up"]
    if bad:
        pytest.fail(f"{target.name}: Prometheus at {target.prometheus}: {'; '.join(bad)}: run "
                    "the deploy (it keeps the targets and exporters)", pytrace=False)


def test_prometheus_scrapes_every_target(target, evidence):
    """On the monitoring host: every target its config names is up."""
    if "monitoring" not in target.roles:
        pytest.skip(f"{target.name} is not a monitoring host")
    try:
        found = scrape.targets(target.prometheus)
    except scrape.PrometheusError as error:
        pytest.fail(f"{target.name}: {error}", pytrace=False)
    down = [f"{t['labels'].get('job')} {t['labels'].get('host')} ({t['lastError'] or t['health']})"
            for t in found if t["health"] != "up"]
    if down:
        pytest.fail(f"{target.name}: Prometheus cannot scrape: {', '.join(down)}", pytrace=False)
