"""Fleet verification with testinfra: the hosts and settings come from the same inventory the
deploy uses (``inventory.py``: your fleet, else the lab); ``--hosts`` still works for one-off
runs (settings then come from the defaults and ``--sglang-data key=value``).

Evidence is gathered from every host in parallel once, with the deploy's own facts; each test is
one check on one host. The run ends with a host x check table; ``--junitxml`` gives JUnit XML.
"""

from __future__ import annotations

import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import testinfra

from operations import hub, roles
from operations.checks import gather
from operations.facts.python import PythonJson
from operations.facts.service import HEALTH_CODE, ROUTER_CODE
from operations.hub import Pin
from operations.router import GATEWAY_KEY_PATH, worker_url
from operations.scrape import prometheus_url
from operations.settings import Settings, fleet_settings


@dataclass
class Target:
    name: str
    host: Any  # testinfra.host.Host
    settings: Settings
    roles: frozenset[str] = frozenset({"worker"})  # and/or "gateway", "wheelhouse"
    pin: Pin | None = None  # the model commit a worker serves (the deploy's lock file)
    # For gateways: the workers the router should front; for wheelhouses: the fleet's stacks.
    worker_urls: tuple[str, ...] = ()
    stacks: tuple[str, ...] = ()
    prometheus: str | None = None  # the fleet's monitoring host's, if it has one


def roles_of(host) -> frozenset[str]:
    """The deploy's roles (operations/roles.py) of a pyinfra inventory host."""
    found = {role for role, test in (("gateway", roles.is_gateway),
                                     ("wheelhouse", roles.is_wheelhouse),
                                     ("monitoring", roles.is_monitoring)) if test(host)}
    return frozenset(found or {"worker"})


def pytest_addoption(parser):
    parser.addoption("--sglang-data", action="append", default=[],
                     help="key=value (JSON values allowed) settings for --hosts runs")


def run_fact(host, fact_class, kwargs: dict[str, Any]):
    """Run one of the deploy's pyinfra facts over testinfra: same command, same parser."""
    fact = fact_class()
    result = host.run(fact.command(**kwargs))
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    return fact.process(lines) if lines or not hasattr(fact, "default") else fact.default()


def _ssh_config(data: dict) -> str | None:
    if data.get("ssh_strict_host_key_checking") != "no":
        return None
    handle, path = tempfile.mkstemp(prefix="verify-ssh-", suffix=".conf")
    os.write(handle, b"Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n")
    os.close(handle)
    return path


def _inventory_targets(config) -> list[Target]:
    inventory = roles.inventory_outside_a_run()
    hosts = {h.name: h for h in inventory}
    data = {name: h.data.dict() for name, h in hosts.items()}
    workers = [h for h in inventory if roles.is_worker(h)]
    settings = fleet_settings(data, rolling={h.name for h in workers})
    worker_urls = tuple(worker_url(h, settings[h.name]) for h in workers)
    # The commits the deploy pinned, from its lock file (no Hub request).
    pins, _, _ = hub.pin_fleet({h.name: (settings[h.name].model, settings[h.name].model_revision,
                                         settings[h.name].hf_endpoint, None)
                                for h in workers if settings[h.name].from_hub},
                               hub.lock_path(), ask_hub=False)
    stacks = tuple(sorted({settings[h.name].stack for h in workers}))
    prometheus = next((prometheus_url(h, settings[h.name]) for h in inventory
                       if roles.is_monitoring(h)), None)
    targets = []
    for name, host_data in data.items():
        address = roles.address(hosts[name])
        user = host_data.get("ssh_user") or "root"
        port = host_data.get("ssh_port") or 22
        # A login other than root reaches root's view (root-only files, the journal, /proc of
        # the service) through sudo, as the deploy does: _sudo in the inventory, or --sudo.
        kwargs = {k: v for k, v in {"ssh_identity_file": host_data.get("ssh_key"),
                                    "ssh_config": _ssh_config(host_data),
                                    "sudo": host_data.get("_sudo") or config.getoption("sudo")
                                    }.items() if v}
        if name.startswith("@local"):  # pyinfra's local connector: this machine
            host = testinfra.get_host("local://")
        else:
            host = testinfra.get_host(f"paramiko://{user}@{address}:{port}", **kwargs)
        targets.append(Target(name, host, settings[name], roles_of(hosts[name]),
                              pins.get(name), worker_urls, stacks, prometheus))
    return targets


def _cli_targets(config) -> list[Target]:
    data: dict[str, Any] = {}
    for item in config.getoption("--sglang-data"):
        key, _, value = item.partition("=")
        try:
            data[key] = json.loads(value)
        except ValueError:
            data[key] = value
    hosts = testinfra.get_hosts(config.getoption("hosts").split(","),
                                ssh_config=config.getoption("ssh_config"),
                                ssh_identity_file=config.getoption("ssh_identity_file"))
    names = [str(h.backend.get_pytest_id()) for h in hosts]
    settings = fleet_settings({name: data for name in names})
    return [Target(name, host, settings[name]) for name, host in zip(names, hosts, strict=True)]


def pytest_configure(config):
    if config.getoption("hosts", None):
        config._sglang_targets = _cli_targets(config)
    else:
        config._sglang_targets = _inventory_targets(config)
    config._sglang_results = {}


def pytest_generate_tests(metafunc):
    if "target" in metafunc.fixturenames:
        targets = metafunc.config._sglang_targets
        metafunc.parametrize("target", targets, ids=[t.name for t in targets])


@pytest.fixture(scope="session")
def evidence(request) -> dict[str, dict]:
    """Evidence from every host, gathered in parallel once."""
    targets = request.config._sglang_targets

    def one(target: Target) -> dict:
        try:
            found = {}
            if "worker" in target.roles:
                found = gather(lambda fact, kwargs: run_fact(target.host, fact, kwargs),
                               target.settings, target.pin, target.name)
            if "gateway" in target.roles:
                found["router"] = run_fact(target.host, PythonJson, {
                    "python": "python3", "code": ROUTER_CODE,
                    "args": (f"http://127.0.0.1:{target.settings.router_port}",
                             GATEWAY_KEY_PATH)})
            if "wheelhouse" in target.roles:
                found["locks"] = {stack: run_fact(target.host, PythonJson, {
                    "python": "python3", "code": HEALTH_CODE, "args": (
                        f"http://127.0.0.1:{target.settings.wheelhouse_port}/{stack}/"
                        "requirements.lock",)}).get("status") for stack in target.stacks}
            return found
        except Exception as error:  # unreachable host: every check reports it
            return {"unreachable": f"{type(error).__name__}: {error}"}

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(targets)))) as pool:
        return dict(zip([t.name for t in targets], pool.map(one, targets), strict=True))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    target = getattr(item, "callspec", None) and item.callspec.params.get("target")
    if target is not None and report.when == "call":
        check = item.originalname.removeprefix("test_").replace("_", "-")
        item.config._sglang_results[(target.name, check)] = report.outcome


def pytest_terminal_summary(terminalreporter, config):
    results = config._sglang_results
    if not results:
        return
    hosts = list(dict.fromkeys(h for h, _ in results))
    checks = list(dict.fromkeys(c for _, c in results))
    width = max(len(c) for c in checks)
    terminalreporter.section("fleet verification: host x check")
    terminalreporter.write_line(f"{'check':<{width}}  " + "  ".join(hosts))
    for check in checks:
        cells = [results.get((host, check), "-").replace("passed", "pass")
                 .replace("failed", "FAIL") for host in hosts]
        terminalreporter.write_line(f"{check:<{width}}  " + "  ".join(
            f"{cell:<{len(host)}}" for cell, host in zip(cells, hosts, strict=True)))
