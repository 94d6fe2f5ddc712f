"""The monitoring role: the distribution's Prometheus on the hosts of the inventory group
``sglang_monitoring`` (the gateway's host can take it), scraping what operations/scrape.py
lists from the inventory, with the fleet's alerting rules (files/monitoring/). A new config is
checked by promtool before Prometheus reloads it.

Example::

    # fleet.py
    gpu_servers = ["gpu-01", "gpu-02"]
    sglang_gateways = sglang_monitoring = ["infra-01"]
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import StringCommand, deploy, operation
from pyinfra.api.operation import OperationMeta
from pyinfra.operations import apt, files, systemd

from operations import FILES_DIR, restarts, survey
from operations.facts.host import Pid1
from operations.outcome import Done, refused_without_systemd
from operations.roles import address
from operations.scrape import RULES_PATH, jobs
from operations.settings import Settings

CONFIG = "/etc/prometheus/prometheus.yml"
DEFAULTS = "/etc/default/prometheus"
UNIT = "prometheus.service"


def reads(settings: Settings) -> list[survey.Read]:  # noqa: ARG001 (every stage's face)
    """What ``apply`` reads on a run that changes nothing (operations/survey.py)."""
    return [survey.Read(Pid1), *survey.apt_reads(),
            *(read for path in (RULES_PATH, CONFIG, DEFAULTS) for read in survey.put_reads(path)),
            *survey.service_reads(UNIT)]


@operation(is_idempotent=True)
def config_checked(changes: list[OperationMeta]):
    """promtool's check of the config and the rules it loads, when either changed: a config
    Prometheus would refuse fails this host before it reloads (Prometheus keeps the one it
    runs), and is removed, so that the next run writes it and checks it again.

    + changes: the operations that write them
    """
    if any(change.changed for change in changes):
        config = shlex.quote(CONFIG)
        yield StringCommand(f"promtool check config {config} || {{ rm -f {config}; exit 1; }}")


@deploy("Monitoring")
def apply(settings: Settings, done: Done) -> None:  # noqa: ARG001 (every stage's face)
    """Prometheus installed, configured from the inventory, checked, reloaded on a change."""
    if refused_without_systemd("monitoring"):
        return
    apt.packages(name="Install Prometheus", packages=["prometheus"], update=True,
                 cache_time=24 * 3600, extra_install_args="--no-install-recommends")
    rules = files.put(name="The fleet's alerting rules",
                      src=str(FILES_DIR / "monitoring" / "sglang-alerts.rules.yml"),
                      dest=RULES_PATH, mode="644")
    scraped = jobs()
    config = files.template(
        name=f"Prometheus scrapes {sum(len(job.targets) for job in scraped)} targets of the "
             "inventory",
        src=str(FILES_DIR / "monitoring" / "prometheus.yml.j2"), dest=CONFIG, mode="644",
        settings=settings, jobs=scraped, rules_path=RULES_PATH, host_name=host.name,
        self_address=address(host))
    defaults = files.template(
        name="Prometheus: its address and retention",
        src=str(FILES_DIR / "monitoring" / "prometheus.defaults.j2"), dest=DEFAULTS,
        settings=settings)
    config_checked(name="promtool: the config and rules are valid", changes=[rules, config])
    restarts.after(name="Prometheus reloaded after a config change", service=UNIT,
                   changes=[rules, config], reload=True)
    restarts.after(name="Prometheus restarted after its address or retention changed",
                   service=UNIT, changes=[defaults])
    systemd.service(name="Prometheus enabled and running", service=UNIT, running=True,
                    enabled=True)
