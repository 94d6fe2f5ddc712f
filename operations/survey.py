"""Read ahead: every fact a host's operations will read on a run that changes nothing, read in
one round trip per host (per login: sudo or not), every host at once, while the deploy loads.
The operations' own ``host.get_fact`` calls (pyinfra's operations' included) are then answered
from what was read, until that host runs a command; from then on every read goes to the host,
as without a survey. A read that looks at other hosts too (``after``: a router's view of a
worker) is answered only while none of them has run a command either.

Without it a no-op costs a round trip per fact (about 30 per worker); a fact missing from the
list costs its own round trip, as before, and nothing else.

Example::

    survey.ahead(hosts, lambda h: survey.read(h, [survey.Read(File, {"path": "/etc/x"})]))
    host.get_fact(File, path="/etc/x")  # answered from the survey: no round trip
"""

from __future__ import annotations

import copy
import inspect
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
from pyinfra import state
from pyinfra.api import StringCommand
from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS, pop_global_arguments
from pyinfra.api.facts import FactBase
from pyinfra.api.host import Host
from pyinfra.context import ctx_host
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import Directory, File, Link, Sha1File
from pyinfra.facts.server import Date
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

from operations.facts.python import PythonJson, python_batch_command

_MARK = "__sglang_survey__"
_MISSING = "__sglang_survey_missing__"
_MARKED = re.compile(rf"(?P<before>.*){_MARK}(?P<index>\d+)(?: (?P<code>\d+))?")


@dataclass(frozen=True)
class Read:
    """One fact read as an operation reads it: its class and arguments (``_sudo`` and the
    other connector arguments included, as the operation passes them)."""

    fact: type[FactBase]
    kwargs: dict[str, Any] = field(default_factory=dict)
    after: tuple[str, ...] = ()  # other hosts it looks at: stale once one ran a command

    def on(self, host: Host) -> Any:
        """The fact's value on ``host``, read as the operations read it."""
        return host.get_fact(self.fact, **self.kwargs)


def put_reads(path: str) -> list[Read]:
    """What pyinfra's ``files.put`` and ``files.template`` read for ``path``."""
    return [Read(File, {"path": path}), Read(Directory, {"path": os.path.dirname(path)}),
            Read(Sha1File, {"path": path})]


def apt_reads() -> list[Read]:
    """What pyinfra's ``apt.packages`` (``update=True, cache_time=...``) reads."""
    return [Read(File, {"path": "/var/lib/apt/periodic/update-success-stamp"}), Read(Date),
            Read(DebPackages)]


def service_reads(unit: str) -> list[Read]:
    """What pyinfra's ``systemd.service`` (``running=True, enabled=True``) reads."""
    return [Read(fact, {"services": [unit], "machine": None, "user_mode": False,
                        "user_name": None}) for fact in (SystemdStatus, SystemdEnabled)]


def directory_reads(*paths: str) -> list[Read]:
    return [Read(Directory, {"path": path}) for path in paths]


def link_reads(path: str) -> list[Read]:
    return [Read(Link, {"path": path})]


# --- the answers --------------------------------------------------------------------------


@dataclass
class _Answers:
    values: dict[str, Any] = field(default_factory=dict)
    after: dict[str, tuple[str, ...]] = field(default_factory=dict)  # key: Read.after
    reading: int = 0  # inside a fact read: its command is not a change


_ANSWERS: dict[str, _Answers] = {}
_CHANGED: set[str] = set()  # hosts that ran a command in this run
_HOST_ARGUMENTS: dict[str, dict[str, Any]] = {}  # each host's connector arguments (inventory)
_once = threading.Lock()  # gevent's, under pyinfra


def connector_arguments(arguments: Any) -> dict[str, Any]:
    """Of pyinfra's global arguments, those its connector takes (sudo and the like)."""
    return {k: v for k, v in arguments.items() if k in CONNECTOR_ARGUMENT_KEYS}


def host_connector_arguments(host: Host) -> dict[str, Any]:
    """The connector arguments the inventory gives ``host`` (sudo and the like), read once."""
    if host.name not in _HOST_ARGUMENTS:
        _HOST_ARGUMENTS[host.name] = connector_arguments(pop_global_arguments(state, host,
                                                                               {})[0])
    return _HOST_ARGUMENTS[host.name]


def _keys(host: Host, fact: type[FactBase], args: tuple, kwargs: dict) -> tuple[str, str, dict,
                                                                                 dict]:
    """(the read's key, its connector arguments' key, those arguments, the fact's arguments),
    split as pyinfra splits a fact call: the call's own connector arguments over the running
    operation's over the host's (pyinfra's own split, per read, is most of a no-op's control
    time)."""
    fact_kwargs = {k: v for k, v in kwargs.items() if not k.startswith("_")}
    if args or fact_kwargs:
        fact_kwargs = inspect.getcallargs(fact().command, *args, **fact_kwargs)
        fact_kwargs.pop("self", None)
    connector = {**host_connector_arguments(host),
                 **connector_arguments(host.current_op_global_arguments or {}),
                 **connector_arguments(kwargs)}
    connector_key = repr(sorted(connector.items()))
    return (f"{fact.__module__}.{fact.__name__}{sorted(fact_kwargs.items())!r}{connector_key}",
            connector_key, connector, fact_kwargs)


def _hook(host: Host) -> None:
    """Answer this host's fact reads from the survey; forget it at the host's first command."""
    if "get_fact" in vars(host):
        return
    answers = _ANSWERS.setdefault(host.name, _Answers())
    real_get_fact, real_run, real_put = host.get_fact, host.run_shell_command, host.put_file

    def get_fact(fact: Any, *args: Any, **kwargs: Any) -> Any:
        # A short fact (pyinfra's ShortFactBase) is never read ahead: read as usual.
        key = _keys(host, fact, args, kwargs)[0] if isinstance(fact, type) and issubclass(
            fact, FactBase) else None
        if key in answers.values and _CHANGED.isdisjoint(answers.after.get(key, ())):
            return copy.deepcopy(answers.values[key])
        answers.reading += 1
        try:
            return real_get_fact(fact, *args, **kwargs)
        finally:
            answers.reading -= 1

    def changes(real: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            if not answers.reading:
                answers.values.clear()
                _CHANGED.add(host.name)
            return real(*args, **kwargs)
        return run

    host.get_fact = get_fact  # type: ignore[method-assign,assignment]
    host.run_shell_command = changes(real_run)  # type: ignore[method-assign]
    host.put_file = changes(real_put)  # type: ignore[method-assign]


def _text(command: str | StringCommand | None) -> str | None:
    return command.get_raw_value() if isinstance(command, StringCommand) else command


def _section(fact: FactBase, kwargs: dict[str, Any]) -> str:
    command = _text(fact.command(**kwargs) if callable(fact.command) else fact.command)
    declared = fact.requires_command
    requires = _text(declared(**kwargs) if callable(declared) else declared)
    if requires:
        return (f"if command -v {requires} >/dev/null 2>&1; then ( {command} ) 2>/dev/null; "
                f"else echo {_MISSING}; fi")
    return f"( {command} ) 2>/dev/null"


def read(host: Host, reads: list[Read]) -> None:
    """Read ``reads`` on ``host`` ahead (one round trip per login: sudo or not) and answer the
    operations' reads from them. A fact whose command failed, is missing or does not parse is
    not kept: the operation reads it itself. Nothing for a host outside the survey (``ahead``)
    or a read already answered."""
    answers = _ANSWERS.get(host.name)
    if answers is None:
        return
    groups: dict[str, tuple[dict, list[tuple[str, FactBase, dict, Read]]]] = {}
    with ctx_host.use(host):
        for one in reads:
            key, connector_key, connector, fact_kwargs = _keys(host, one.fact, (),
                                                               dict(one.kwargs))
            fact = one.fact()
            group = groups.setdefault(connector_key, (connector, []))[1]
            if key not in answers.values and all(key != k for k, *_ in group) and \
                    not fact.check_preconditions(state, host):
                # A fact that must run before the others read (the run lock) goes first.
                group.insert(0 if getattr(fact, "survey_first", False) else len(group),
                             (key, fact, fact_kwargs, one))
    answers.reading += 1  # the survey's own command is not a change
    try:
        for connector, items in groups.values():
            if items:
                _answer(host, answers, connector, items)
    finally:
        answers.reading -= 1


def forget(host: Host) -> None:
    """Drop what was read on ``host``: its reads go to the host again (read while another run
    held it, say), until ``read`` reads them anew."""
    answers = _ANSWERS.get(host.name)
    if answers is not None:
        answers.values.clear()
        answers.after.clear()


def _answer(host: Host, answers: _Answers, connector: dict,
            items: list[tuple[str, FactBase, dict, Read]]) -> None:
    try:
        ran, output = host.run_shell_command(
            StringCommand(command([(fact, kwargs) for _, fact, kwargs, _ in items])),
            print_output=state.print_fact_output, print_input=state.print_fact_input,
            **connector)
    except Exception:  # noqa: BLE001 (the operations read it themselves, and say why)
        return
    if not ran:
        return
    found = values([(fact, kwargs) for _, fact, kwargs, _ in items], output.stdout_lines)
    for index, value in found.items():
        key, _, _, one = items[index]
        answers.values[key] = value
        if one.after:
            answers.after[key] = one.after


def command(facts: list[tuple[FactBase, dict[str, Any]]]) -> str:
    """One shell command that runs every fact's command, each marked with its exit status;
    the snippets of the system's python3 share one interpreter (``python_batch_command``)."""
    snippets = [(i, kwargs["code"], tuple(kwargs.get("args", ())))
                for i, (fact, kwargs) in enumerate(facts)
                if isinstance(fact, PythonJson) and kwargs["python"] == "python3"
                and not kwargs.get("env")]
    batched = {i for i, _, _ in snippets}
    sections = [f"echo {_MARK}{i}; {_section(fact, kwargs)}; echo {_MARK}{i} $?"
                for i, (fact, kwargs) in enumerate(facts) if i not in batched]
    if snippets:
        sections.append(f"{python_batch_command(_MARK, snippets)} 2>/dev/null")
    return "; ".join(sections)


def values(facts: list[tuple[FactBase, dict[str, Any]]], lines: list[str]) -> dict[int, Any]:
    """Each fact's value (by index) from the output of ``command``, parsed by its own
    ``process``; a fact whose command failed, is missing or does not parse has none."""
    found = {}
    for index, (output, code) in enumerate(_sections(lines, len(facts))):
        fact = facts[index][0]
        if code != "0" or output == [_MISSING]:
            continue
        try:
            found[index] = fact.process(output) if output else fact.default()
        except Exception:  # noqa: BLE001, S112 (none: the operation reads it itself)
            continue
    return found


def _sections(lines: list[str], count: int) -> list[tuple[list[str], str | None]]:
    """Each fact's output lines and exit status, from the marked output of the survey. The end
    marker may follow output that did not end its last line (a file without a final newline):
    what comes before it on its line is that last line."""
    found: list[tuple[list[str], str | None]] = [([], None) for _ in range(count)]
    current = None
    for line in lines:
        marked = _MARKED.fullmatch(line)
        index = int(marked["index"]) if marked and int(marked["index"]) < count else None
        if index is None:
            if current is not None:
                found[current][0].append(line)
        elif marked is None or marked["code"] is None:
            current = index
        else:
            if marked["before"] and current == index:
                found[index][0].append(marked["before"])
            found[index] = (found[index][0], marked["code"])
            current = None
    return found


def ahead(hosts: list[Host], plan: Callable[[Host], None]) -> None:
    """Once per run, while the deploy loads: ``plan(host)`` (which calls ``read``) for every
    host at once, one greenlet each, in the host's context; from then on each host's fact
    reads are answered from what was read."""
    with _once:
        if _ANSWERS:
            return  # read already: the deploy file loads once per host
        for host in hosts:
            _hook(host)

        def in_context(host: Host) -> None:
            with ctx_host.use(host):
                plan(host)
        gevent.joinall([gevent.spawn(in_context, host) for host in hosts])
