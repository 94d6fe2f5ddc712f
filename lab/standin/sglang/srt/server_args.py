"""ServerArgs.add_cli_args rebuilt from the flag table generated from the real SGLang
(scripts/generate_flag_table.py), so argparse accepts and rejects exactly what it does there,
abbreviations and ambiguities included."""

import argparse
import json
import os
import re
import sys
from datetime import datetime
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


def snapshot(model_path: str, revision: str | None) -> str | None:
    """Where the model is: a directory, or its snapshot in the Hugging Face cache (HF_HOME),
    as transformers resolves it offline (a commit directly, a branch through refs/)."""
    if model_path.startswith("/"):
        return model_path
    repo = os.path.join(os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")),
                        "hub", "models--" + model_path.replace("/", "--"))
    commit = revision or "main"
    if not re.fullmatch(r"[0-9a-f]{40}", commit):
        try:
            with open(os.path.join(repo, "refs", commit)) as ref:
                commit = ref.read().strip()
        except OSError:
            return None
    return os.path.join(repo, "snapshots", commit)


def load_config(model_path: str, revision: str | None) -> dict:
    """config.json, as transformers loads it offline, with its errors."""
    folder = snapshot(model_path, revision)
    path = os.path.join(folder, "config.json") if folder else None
    if path is None or not os.path.isfile(path):
        # transformers 5.24's words (tests/unit/test_diagnosis.py, REAL_LOGS).
        raise OSError(
            "We couldn't connect to 'https://huggingface.co' to load the files, and couldn't "
            "find them in the cached files.\nCheck your internet connection or see how to run "
            "the library in offline mode at "
            "'https://huggingface.co/docs/transformers/installation#offline-mode'.")
    try:
        with open(path) as handle:
            return json.load(handle)
    except ValueError:
        raise OSError(f"It looks like the config file at '{path}' is not a valid JSON file."
                      ) from None


# Quantizations SGLang converts between on its own (an AWQ checkpoint runs as awq_marlin).
_SAME_QUANTIZATION = {"awq_marlin": "awq", "gptq_marlin": "gptq"}


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
        """The part of SGLang's resolution and validation (ServerArgs.__post_init__ in 0.5.16)
        that the toolkit's flags reach, with its words: the model's config resolved as
        transformers does (offline: from HF_HOME only), the asked quantization checked against
        the checkpoint's, CUDA graphs turned off for torch_native attention."""
        self.model_config = load_config(self.model_path, self.revision) \
            if os.environ.get("HF_HUB_OFFLINE") == "1" or self.model_path.startswith("/") \
            else {}
        declared = (self.model_config.get("quantization_config") or {}).get("quant_method")
        asked = self.quantization
        if declared and asked and _SAME_QUANTIZATION.get(asked, asked) != declared:
            raise ValueError(
                f"Quantization method specified in the model config ({declared}) does not "
                f"match the quantization method specified in the `quantization` argument "
                f"({asked}).")
        if self.attention_backend == "torch_native":
            stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
            print(f"[{stamp}] Cuda graph is disabled because of using torch native attention "
                  "backend", file=sys.stderr, flush=True)
            self.disable_cuda_graph = True

    def check_server_args(self) -> None:
        """What launch_server checks after __post_init__ (0.5.16: engine.py)."""
        assert self.tp_size % self.nnodes == 0, "tp_size must be divisible by number of nodes"
