"""The gateway: the real ``sglang-router`` from PyPI, as a systemd service on the hosts of the
inventory group ``sglang_gateways``, in front of the fleet's workers (operations/roles.py).

The router starts with every worker of the inventory and checks their health itself; the
workers keep their own membership current through the router's worker API: a worker leaves
every router before its server restarts (a change, a roll, a repair) and joins again once it
is healthy, so a worker that fails health stays out.

Example::

    # fleet.py
    gpu_servers = ["gpu-01", "gpu-02"]
    sglang_gateways = ["gw-01"]
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import StringCommand, deploy, operation
from pyinfra.operations import apt, files, systemd

from operations import FILES_DIR, restarts, secrets, survey
from operations.facts.host import Pid1, UserExists
from operations.facts.venv import Distributions
from operations.outcome import Done, refused_without_systemd
from operations.roles import settings_of, workers
from operations.router import (
    GATEWAY_KEY_PATH,
    control_key_written,
    worker_url,
)
from operations.settings import Settings
from operations.users import system_user
from operations.venv import pip_install

UNIT = "sglang-router.service"
ROUTER_USER = "sglang-router"
PYPI = "https://pypi.org/simple"


def router_venv(settings: Settings) -> str:
    return f"{settings.router_dir}/venv"


@operation(is_idempotent=True)
def router_installed(settings: Settings):
    """A venv holding exactly ``sglang-router==router_version``.

    + settings: the gateway's validated settings
    """
    venv = router_venv(settings)
    installed = host.get_fact(Distributions, python=f"{venv}/bin/python")
    if installed.get("sglang-router") == settings.router_version:
        return
    if "error" in installed:
        yield StringCommand(shlex.join(["python3", "-m", "venv", venv]))
    pip = pip_install(settings, venv, settings.pip_index_url or PYPI)
    yield StringCommand(shlex.join([*pip, f"sglang-router=={settings.router_version}"]))


def launcher_path(settings: Settings) -> str:
    return f"{settings.router_dir}/router_launch.py"


def reads(settings: Settings) -> list[survey.Read]:
    """What ``apply`` reads on a run that changes nothing (operations/survey.py)."""
    return [survey.Read(Pid1), *survey.apt_reads(), survey.Read(UserExists, {"user": ROUTER_USER}),
            survey.Read(Distributions, {"python": f"{router_venv(settings)}/bin/python"}),
            *secrets.private_reads(GATEWAY_KEY_PATH), *survey.put_reads(launcher_path(settings)),
            *survey.put_reads(f"/etc/systemd/system/{UNIT}"), *survey.service_reads(UNIT)]


@deploy("Gateway")
def apply(settings: Settings, done: Done) -> None:
    """The router's venv and unit; restarted when either changed."""
    if refused_without_systemd("gateway"):
        return
    apt.packages(name="Install Python venv tooling", packages=["python3-venv", "ca-certificates"],
                 update=True, cache_time=24 * 3600, extra_install_args="--no-install-recommends")
    system_user(name=f"System user {ROUTER_USER}", user=ROUTER_USER, home=settings.router_dir)
    venv = router_installed(name=f"sglang-router {settings.router_version} in its venv",
                            settings=settings)
    key = control_key_written(name="The routers' control key (root-only)", settings=settings,
                              path=GATEWAY_KEY_PATH)
    launcher = files.put(name="The router's launcher (the key from its credential)",
                         src=str(FILES_DIR / "router_launch.py"), dest=launcher_path(settings),
                         mode="644")
    urls = [worker_url(h, settings_of(h)) for h in workers()]
    unit = files.template(
        name=f"{UNIT} in front of {len(urls)} workers",
        src=str(FILES_DIR / "sglang-router.service.j2"),
        dest=f"/etc/systemd/system/{UNIT}", settings=settings, venv=router_venv(settings),
        worker_urls=urls, router_user=ROUTER_USER, key_path=GATEWAY_KEY_PATH,
        launcher=launcher_path(settings))
    restarts.after(name=f"{UNIT} restarted after a change", service=UNIT,
                   changes=[unit, venv, key, launcher], daemon_reload=True)
    systemd.service(name=f"{UNIT} enabled and running", service=UNIT, running=True,
                    enabled=True)


