"""What every top-level script (deploy.py, preflight.py, diagnose.py) does first.

Example::

    settings = run.host_settings("deploy")
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import threading
from collections.abc import Callable
from typing import NoReturn

from pyinfra import host, inventory, state
from pyinfra.api.arguments import pop_global_arguments
from pyinfra.api.host import Host
from pyinfra.context import ctx_host

from operations import hub, pipeline, preview, roles, runlock, runstate, secrets, survey
from operations.connection import guard_lost_hosts
from operations.facts.host import Login
from operations.outcome import refused
from operations.readiness import Failure, login_failure, model_failure
from operations.report import fleet_report
from operations.settings import Settings, SettingsError, fleet_settings


def _deploy_file_is_known_to_inspect() -> None:
    """pyinfra orders operations by ``inspect.stack()`` at every operation call; for frames of
    the deploy file (run with exec, not imported) ``inspect.getmodule`` misses its cache and
    scans every loaded module, each time: most of a no-op run's load time. Naming the file in
    that cache gives the same answer without the scans (measured in docs/benchmarks.md)."""
    path = state.current_deploy_filename
    if path:
        for name in (path, os.path.normcase(os.path.abspath(path))):
            inspect.modulesbyfile.setdefault(name, "__main__")


_pinning = threading.Lock()  # gevent's, under pyinfra


class _Stopped(Exception):  # noqa: N818 (not an error: the run was refused already)
    """The run was refused while loading another host: this host's load ends quietly."""


_refused: list[str] = []


def _refuse(what: str, todo: str) -> NoReturn:
    """Stop the run before any host is touched: one block, what and what to do, and a non-zero
    exit; a refusal is not a crash, so no traceback (unless --debug). Said once: the deploy
    loads for every host at once, and the other hosts' loads end quietly (a SystemExit left in
    a greenlet is printed as a traceback as the interpreter exits)."""
    if _refused:
        raise _Stopped
    _refused.append(what)
    if logging.getLogger("pyinfra").isEnabledFor(logging.DEBUG):
        raise  # noqa: PLE0704 (the refusal's own exception, with its traceback)
    raise SystemExit("--> Refused:\n    "
                     + what.replace("\n", "\n    ") + f"\n    What to do: {todo}") from None


def _pin_models(fleet: dict[str, Settings], ask_hub: bool) -> None:
    """Once per run, before any host changes: every worker's Hub model pinned to one commit
    (operations/hub.py), what was newly pinned said once. Without ``ask_hub`` (diagnosis), only
    what the lock file holds."""
    with _pinning:  # the deploy file loads for every host at once, in greenlets
        if _refused:
            raise _Stopped
        if not runstate.current().pinned:
            _pin_fleet_once(fleet, ask_hub)


def _pin_fleet_once(fleet: dict[str, Settings], ask_hub: bool) -> None:
    workers = {h.name for h in roles.workers()}
    models = {name: (s.model, s.model_revision, s.hf_endpoint,
                     secrets.load(name, s).get("HF_TOKEN"))
              for name, s in fleet.items() if name in workers and s.from_hub}
    runstate.current().pinned = True
    try:
        pins, refused, said = hub.pin_fleet(models, hub.lock_path(), ask_hub)
    except hub.HubError as error:
        _refuse(str(error), error.advice)
    runstate.current().pins.update(pins)
    runstate.current().refused.update(refused)
    for line in said:
        print(f"--> {line}")


def _router_key_given(fleet: dict[str, Settings]) -> None:
    """A fleet with gateways has the routers' control key on every gateway and worker: their
    routers add and remove workers for that key only (operations/router.py)."""
    gateways = [h.name for h in inventory if roles.is_gateway(h)]
    for name, settings in fleet.items():
        of = inventory.get_host(name)
        if gateways and (roles.is_gateway(of) or roles.is_worker(of)) and \
                "ROUTER_CONTROL_KEY" not in secrets.load(name, settings):
            raise SettingsError(
                f"{name}: secret ROUTER_CONTROL_KEY: missing: the routers of "
                f"{', '.join(gateways)} add and remove workers only for the fleet's control key; "
                "give it in the environment or the secrets_file (a long random string, the same "
                "for the whole fleet)")


def host_settings(verb: str) -> Settings:
    """This host's validated settings. Every host's settings and secrets are checked first: one
    bad value anywhere stops the run before any host is touched. The fleet's models are pinned
    (a deploy or preflight asks the Hub when the lock file has no pin; a diagnosis reads the
    lock file only); the lost-host guard and the end-of-run fleet summary are set up. The
    settings carry the pinned commit as ``model_revision``."""
    with _pinning:  # once per run, not once per host: the deploy file loads for every host
        fleet = runstate.current().settings
        if not fleet:
            try:
                fleet.update(fleet_settings({h.name: h.data.dict() for h in inventory},
                                            rolling={h.name for h in roles.workers()}))
                for name, settings in fleet.items():
                    secrets.load(name, settings)
                _router_key_given(fleet)
            except SettingsError as error:
                fleet.clear()
                _refuse(str(error), "correct the setting named (README: Settings), then run "
                                    "again")
    _pin_models(fleet, ask_hub=verb in ("deploy", "preflight"))
    guard_lost_hosts()
    _deploy_file_is_known_to_inspect()
    fleet_report(verb)
    hosts = [h for h in inventory if h in state.activated_hosts]
    if verb in ("deploy", "preflight"):
        survey.ahead(hosts, functools.partial(_read_ahead, verb))
    with _pinning:  # once per run
        if not runstate.current().locked:
            runstate.current().locked = True
            _lock([h for h in hosts if _changes(verb, h)], functools.partial(_read_ahead, verb))
    return roles.settings_of(host)


def _changes(verb: str, of: Host) -> bool:
    """Whether this run may change ``of``: a deploy that is not a preview, a diagnosis asked to
    remediate. The read-only runs take no run lock."""
    if verb == "deploy":
        return not preview.dry()
    return verb == "diagnose" and str(of.data.get("remediate", "false")).lower() == "true"


def _lock(hosts: list[Host], read_ahead: Callable[[Host], None]) -> None:
    """Hold the run lock on ``hosts`` whose login can change them (operations/runlock.py); the
    hosts left alone are refused by ``allowed``."""
    def can_change(of: Host) -> bool:
        with ctx_host.use(of):
            return _login_failure() is None

    def read_again(of: Host) -> None:
        with ctx_host.use(of):
            read_ahead(of)

    runstate.current().left_alone.update(runlock.settle(
        [h for h in hosts if can_change(h)],
        wait_s=lambda of: roles.settings_of(of).run_lock_wait_s, read_again=read_again))


def _read_ahead(verb: str, of: Host) -> None:
    """One host's survey: a login that is not root by the inventory's word is read first,
    with the other reads made without sudo, and the rest (with sudo) only when it can get root
    without a prompt."""
    reads = [*([runlock.take_read()] if _changes(verb, of) else []),
             *pipeline.reads(verb, roles.settings_of(of))]
    if _login_failure([r for r in reads if r.kwargs.get("_sudo") is False]) is None:
        survey.read(of, reads)  # (those read already are not read again)


def _login_failure(with_reads: list[survey.Read] | None = None) -> Failure | None:
    """Whether this host's SSH login can change it as root, read without sudo (with the
    survey's ``with_reads``, also without sudo: one round trip)."""
    arguments, _ = pop_global_arguments(state, host, {})
    if host.data.get("ssh_user") == "root" and not arguments["_sudo"]:
        return None  # root by the inventory's word: no round trip
    # Once (later asks are answered); the Host itself, not pyinfra's context proxy for it.
    survey.read(inventory.get_host(host.name),
                [survey.Read(Login, {"_sudo": False}), *(with_reads or [])])
    return login_failure(
        host.get_fact(Login, _sudo=False), sudo=bool(arguments["_sudo"]),
        sudo_password=bool(arguments["_sudo_password"]))  # or --same-sudo-password


def allowed() -> bool:
    """Whether this host may go on: its login can change it as root, and its model could be
    pinned. If not, the host gets one operation, which fails it with one preflight line, and
    nothing else: the login is read without sudo before any command that needs root, so no host
    stops half-way for want of privileges or waits on a sudo password prompt, and a model the
    Hub refuses changes nothing."""
    failure = _login_failure()
    if failure is None and host.name in runstate.current().refused:
        failure = model_failure(roles.settings_of(host).model,
                                          runstate.current().refused[host.name])
    if failure is None and host.name in runstate.current().left_alone:
        refused(name="Run lock", line=f"{host.name}: {runstate.current().left_alone[host.name]}",
                _sudo=False)
        return False
    if failure is None:
        return True
    # Without sudo: the refusal must not itself wait on a sudo password prompt.
    refused(name=f"Preflight: {failure.check}", line=failure.line(host.name),
                      _sudo=False)
    return False
