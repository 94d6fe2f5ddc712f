"""Which hosts do what, from the inventory's groups: gateways (group ``sglang_gateways``) run
the router, wheelhouses (group ``sglang_wheelhouse``) fetch a stack's wheels once for the fleet
and cache its apt packages, monitoring hosts (group ``sglang_monitoring``) run Prometheus and
scrape the fleet; every other host is a worker, an SGLang server. One host may have several of
those roles.

Example::

    # fleet.py
    gpu_servers = ["gpu-01", "gpu-02"]
    sglang_gateways = ["infra-01"]
    sglang_wheelhouse = ["infra-01"]
    sglang_monitoring = ["infra-01"]
"""

from __future__ import annotations

from dataclasses import replace

from pyinfra import host, inventory
from pyinfra.api import Inventory
from pyinfra.api.host import Host

from operations import FILES_DIR, runstate
from operations.settings import Settings, validate

GATEWAYS = "sglang_gateways"
WHEELHOUSES = "sglang_wheelhouse"
MONITORING = "sglang_monitoring"
APT_CACHE_PORT = 3142  # apt-cacher-ng's, on the wheelhouse


def is_gateway(of: Host | None = None) -> bool:
    return GATEWAYS in (of or host).groups


def is_wheelhouse(of: Host | None = None) -> bool:
    return WHEELHOUSES in (of or host).groups


def is_monitoring(of: Host | None = None) -> bool:
    return MONITORING in (of or host).groups


def is_worker(of: Host | None = None) -> bool:
    return not (is_gateway(of) or is_wheelhouse(of) or is_monitoring(of))


def workers() -> list[Host]:
    return [h for h in inventory if is_worker(h)]


def address(of: Host) -> str:
    """Where the fleet's other hosts reach this one."""
    return of.data.get("ssh_hostname") or of.name


def settings_of(of: Host) -> Settings:
    """A host's settings as its own deploy runs with them: validated (for the whole fleet,
    before any operation, once per run: operations/run.py), with the model's pinned commit as
    ``model_revision``."""
    run = runstate.current()
    settings = run.settings.get(of.name) or validate(of.name, of.data.dict())
    pin = run.pins.get(of.name)
    return replace(settings, model_revision=pin.commit) if pin else settings


def wheelhouse() -> Host | None:
    return next((h for h in inventory if is_wheelhouse(h)), None)


def wheelhouse_url(stack: str) -> str | None:
    """Where workers find a stack's locked files; None without a wheelhouse."""
    found = wheelhouse()
    if found is None:
        return None
    return f"http://{address(found)}:{settings_of(found).wheelhouse_port}/{stack}"


def apt_proxy() -> str | None:
    """The wheelhouse's apt cache; None without a wheelhouse."""
    found = wheelhouse()
    return f"http://{address(found)}:{APT_CACHE_PORT}" if found else None


def router_urls() -> list[str]:
    """Every gateway's router, as the workers reach it."""
    return [f"http://{address(h)}:{settings_of(h).router_port}" for h in inventory
            if is_gateway(h)]


def monitoring() -> list[Host]:
    """The hosts that scrape the fleet; none: nothing is scraped and no exporter installed."""
    return [h for h in inventory if is_monitoring(h)]


def inventory_outside_a_run() -> Inventory:
    """The fleet as the deploy loads it (inventory.py, by pyinfra's own loader: group data
    included), for what reads it outside a pyinfra run (verification, figures.py)."""
    from types import SimpleNamespace

    from pyinfra.context import ctx_state
    from pyinfra_cli.inventory import make_inventory

    root = FILES_DIR.parent
    # (the loader records the file it runs on a state)
    with ctx_state.use(SimpleNamespace(current_exec_filename=None)):
        return make_inventory(str(root / "inventory.py"), cwd=str(root))
