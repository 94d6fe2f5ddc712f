"""The end of a run in a few lines, however large the fleet: a line per host that changed
(and what), failed (and where, with its notes) or was left untouched; one line for the hosts
that were healthy and changed nothing; the failed hosts by name. Without ``-v``, pyinfra's
"[host] Skipped" lines (an operation only other hosts declared) and "[host] No changes" lines
are not printed.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import sys

from pyinfra import logger, state
from pyinfra.api.host import Host
from pyinfra.api.state import BaseStateCallback

from operations import preview, runstate
from operations.rollout import summary

_outcomes: dict[str, str] = {}
_notes: dict[str, list[str]] = {}
_registered: list[str] = []
_rebooting: set[str] = set()  # hosts the run rebooted and waits for: not "unreachable"


class _Recorder(BaseStateCallback):
    @staticmethod
    def host_connect_error(state, host, error) -> None:
        if host.name not in _rebooting:
            _outcomes.setdefault(host.name, f"unreachable: {error}")

    @staticmethod
    def operation_host_error(state, host, op_hash, retry_count=0, max_retries=0) -> None:
        if host.name in runstate.current().plan.untouched:
            return  # not failed: left as it was (below)
        names = ", ".join(state.get_op_meta(op_hash).names)
        _outcomes.setdefault(host.name, f"FAILED at {names!r}")


# pyinfra's per-host lines for an operation another host declared, or one that changed nothing:
# at 64 hosts, thousands of lines the summary says in one.
_QUIET = re.compile(r"\]\s+(\x1b\[[0-9;]*m)?(Skipped|No changes)(\x1b\[0m)?\s*$")
_CHANGES_SHOWN = 4  # operation names per changed host; the rest counted


class _QuietNoops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return state.print_noop_info or not _QUIET.search(str(record.getMessage()))


def changes(host: Host) -> list[str]:
    """The names of the operations that changed this host in this run, in order."""
    found = []
    for op_hash in state.get_op_order():
        data = state.ops[host].get(op_hash)
        if data and data.operation_meta.is_complete() and data.operation_meta.did_change():
            found.append(sorted(state.get_op_meta(op_hash).names)[0].rsplit(" | ", 1)[-1])
    return found


def _cut_short(host: Host) -> bool:
    """Whether an operation declared for this host never ran: the run ended at an error that
    was not one host's (a bug, an interrupt)."""
    return any(data and not data.operation_meta.is_complete()
               for data in (state.ops[host].get(op_hash) for op_hash in state.get_op_order()))


def _changed_text(names: list[str]) -> str:
    more = len(names) - _CHANGES_SHOWN
    return "; changed: " + ", ".join(names[:_CHANGES_SHOWN]) + (f" and {more} more" if more > 0
                                                                  else "")


def _hosts_text(hosts: list[str]) -> str:
    return hosts[0] if len(hosts) == 1 else f"{', '.join(hosts)} ({len(hosts)} hosts)"


def _print_summary(verb: str) -> None:
    if verb == "deploy" and preview.is_preview():
        print("\n--> Plan (a preview: nothing was changed on any host):")
        for line in preview.lines():
            print(f"    {line}")
        if preview.REFUSED:  # a pipeline gates its rollout on the preview's exit status
            print(f"--> {len(preview.REFUSED)} host(s) would fail: "
                  f"{', '.join(sorted(preview.REFUSED))}")
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)  # (an exit handler's SystemExit is ignored: pyinfra exits 0 on --dry)
        return
    if not state.is_executing and not _outcomes:
        return  # stopped before execution (e.g. bad settings): nothing ran on any host
    names = [h.name for h in state.inventory]
    for lost in state.failed_hosts:  # failed outside an operation's error (a lost host)
        _outcomes.setdefault(lost.name, "FAILED: it stopped answering or a fact could not "
                                          "be read (see its errors above)")
    for name in runstate.current().plan.untouched:
        _outcomes.setdefault(name, "untouched: the roll stopped before its batch; it serves "
                                   "the previous configuration")
    if state.is_executing:
        for found in state.inventory:
            if _cut_short(found):
                _outcomes.setdefault(found.name, "FAILED: the run stopped at an error before "
                                                 "this host's operations were done (above)")
    ok = "healthy" if verb == "deploy" else "ok"
    quiet: list[str] = []
    lines: dict[str, list[str]] = {}  # a line's text: its hosts (the same change, one line)
    alone: list[tuple[str, str, list[str]]] = []  # failed, untouched or with notes: each alone
    for found in state.inventory:
        name = found.name
        changed = changes(found) if state.is_executing else []
        notes = list(dict.fromkeys(_notes.get(name, [])))
        if name not in _outcomes and not changed and not notes:
            quiet.append(name)
        elif name in _outcomes or notes:
            alone.append((name, _outcomes.get(name, ok) + (
                _changed_text(changed) if changed and name not in _outcomes else ""), notes))
        else:
            lines.setdefault(ok + _changed_text(changed), []).append(name)
    shown: list[tuple[str, str, list[str]]] = [
        (_hosts_text(hosts), text, []) for text, hosts in lines.items()]
    shown += [(name, text, notes) for name, text, notes in alone]
    width = max((len(n) for n in names), default=4)
    print(f"\n--> Fleet summary ({verb}):")
    for label, text, notes in shown:
        print(f"    {label:<{width}}  {text}")
        for note_text in notes:
            print(f"    {'':<{width}}  {note_text}")
    if quiet:
        print(f"    {ok}, nothing changed: {', '.join(quiet)} ({len(quiet)} host"
              f"{'s' if len(quiet) > 1 else ''})")
    for line in summary():
        print(f"--> {line}")
    failed = [n for n in names if n in _outcomes and n not in runstate.current().plan.untouched]
    if failed:
        print(f"--> {len(failed)} of {len(names)} hosts failed: {', '.join(failed)}")
    else:
        print(f"--> all {len(names)} hosts {ok}")


def rebooting(host_name: str, waiting: bool) -> None:
    """While the run waits for a host it rebooted, failed connections are expected."""
    (_rebooting.add if waiting else _rebooting.discard)(host_name)


def note(host_name: str, text: str) -> None:
    """A line shown under the host in the summary (a diagnosis, a fallback in use)."""
    _notes.setdefault(host_name, []).append(text)


def fleet_report(verb: str) -> None:
    """Record each host's first failure; print the summary when the run ends (once)."""
    if _registered:
        return
    _registered.append(verb)
    state.add_callback_handler(_Recorder())
    logger.addFilter(_QuietNoops())
    atexit.register(_print_summary, verb)
