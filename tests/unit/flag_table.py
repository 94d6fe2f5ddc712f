"""SGLang's real argument parser, rebuilt from the flag table generated from the real package
(files/sglang-flags), for dry-parsing argvs in unit tests."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FLAGS_DIR = ROOT / "files" / "sglang-flags"

# The stand-in's parser builder, loaded as a file: its package only works inside a built wheel.
_spec = importlib.util.spec_from_file_location(
    "standin_server_args", ROOT / "lab" / "standin" / "sglang" / "srt" / "server_args.py")
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
add_table_args = _module.add_table_args
PINNED = "0.5.23"


def table(version: str = PINNED) -> dict:
    return json.loads((FLAGS_DIR / f"{version}.json").read_text())


def options(version: str = PINNED) -> set[str]:
    return {o for action in table(version)["actions"] for o in action["options"]}


class RejectedError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would exit 2; keep its message
        raise RejectedError(message)


def dry_parse(argv: list[str], version: str = PINNED) -> argparse.Namespace:
    parser = _Parser(prog="sglang.launch_server")
    add_table_args(parser, table(version))
    return parser.parse_args(argv)


# The chart's model as its config.json declares it (Qwen/Qwen3-32B-AWQ, trimmed to what the
# toolkit reads): an AWQ checkpoint, so the chart's --quantization awq.
CHART_MODEL_CONFIG = {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
                      "quantization_config": {"bits": 4, "group_size": 128,
                                              "quant_method": "awq", "version": "gemm",
                                              "zero_point": True}}
