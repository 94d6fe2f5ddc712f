"""Generate SGLang's accepted-flag table from the real SGLang package.

Run inside a venv that has the real ``sglang`` wheel (``pip install --no-deps sglang==X``
plus what importing ``sglang.srt.server_args`` asks for; no GPU needed)::

    python scripts/generate_flag_table.py > files/sglang-flags/0.5.23.json

The table records, per argparse action, what the lab's SGLang stand-in needs to rebuild a parser
with the same semantics: option strings, whether it takes a value, nargs, choices and default.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib.metadata import version


def describe(action: argparse.Action) -> dict:
    takes_value = action.nargs != 0
    entry: dict = {"options": list(action.option_strings), "dest": action.dest}
    if not takes_value:
        entry["kind"] = "store_const"
        entry["const"] = action.const if isinstance(action.const, (bool, int, str, float)) else True
    else:
        entry["kind"] = "append" if isinstance(action, argparse._AppendAction) else "store"
        if action.nargs is not None:
            entry["nargs"] = action.nargs
        if action.choices is not None:
            entry["choices"] = [str(c) for c in action.choices]
        if action.type is not None and action.type is not str:
            # int, float, or the name of SGLang's own converter (human_readable_int, loads...)
            entry["type"] = getattr(action.type, "__name__", "str")
    default = action.default
    if isinstance(default, (bool, int, float, str)) or default is None:
        entry["default"] = default
    return entry


def main() -> int:
    from sglang.srt.server_args import ServerArgs

    parser = argparse.ArgumentParser()
    ServerArgs.add_cli_args(parser)
    actions = [describe(a) for a in parser._actions if a.option_strings and a.dest != "help"]
    table = {"sglang_version": version("sglang"), "actions": actions}
    json.dump(table, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
