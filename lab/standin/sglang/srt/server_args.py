"""ServerArgs.add_cli_args rebuilt from the flag table generated from the real SGLang
(scripts/generate_flag_table.py), so argparse accepts and rejects exactly what it does there,
abbreviations and ambiguities included."""

import argparse
import json
import re
from pathlib import Path

FLAGS_FILE = Path(__file__).parent / "flags.json"  # written into the wheel by lab/standin/build


def human_readable_int(value: str) -> int:
    """SGLang's converter: 1k -> 1000, 1Ki -> 1024, plain integers as they are."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)", value.strip())
    if not match:
        return int(value)
    number, suffix = match.groups()
    scale = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
             "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}[suffix]
    return int(float(number) * scale)


# Converters by the name the table records; any other converter keeps the string.
_TYPES = {"int": int, "float": float, "human_readable_int": human_readable_int,
          "loads": json.loads}


def add_table_args(parser: argparse.ArgumentParser, table: dict) -> None:
    """Add every action of a flag table to ``parser``."""
    for action in table["actions"]:
        kwargs = {"dest": action["dest"], "default": action.get("default")}
        if action["kind"] == "store_const":
            kwargs.update(action="store_const", const=action.get("const", True))
        else:
            kwargs["action"] = "append" if action["kind"] == "append" else "store"
            if "nargs" in action:
                kwargs["nargs"] = action["nargs"]
            convert = _TYPES.get(action.get("type", ""))
            if convert:
                kwargs["type"] = convert
            if "choices" in action:
                choices = action["choices"]
                kwargs["choices"] = [convert(c) for c in choices] if convert else choices
        parser.add_argument(*action["options"], **kwargs)


class ServerArgs:
    @staticmethod
    def add_cli_args(parser: argparse.ArgumentParser) -> None:
        add_table_args(parser, json.loads(FLAGS_FILE.read_text()))

    def __init__(self, **values) -> None:
        self.__dict__.update(values)
        self.__post_init__()

    @classmethod
    def from_cli_args(cls, args: argparse.Namespace) -> "ServerArgs":
        return cls(**vars(args))

    def __post_init__(self) -> None:
        """The part of SGLang's resolution and validation that the toolkit's flags reach."""

    def check_server_args(self) -> None:
        """What launch_server checks after __post_init__."""
