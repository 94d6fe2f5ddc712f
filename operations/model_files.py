"""Which files of a model repository a server loads: weights in one format (the first of
WEIGHT_FORMATS the repository has: safetensors where both it and PyTorch's .bin are there),
and every other file but the weights of other formats and what no server reads (NEVER_LOADED:
docs, images, exports for other runtimes). A repository's own layout wins over guesses: the
settings ``model_files_add`` and ``model_files_skip`` (shell patterns on the path in the
repository) add to or take from the selection.

Example::

    select(pin.files, add=["original/*"], skip=[])   # also the original checkpoint
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

# Weight formats in the order servers prefer them: (name, the patterns of its files).
WEIGHT_FORMATS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("safetensors", ("*.safetensors", "*.safetensors.index.json")),
    ("pytorch", ("*.bin", "*.bin.index.json", "*.pt", "*.pth")),
)

# Never loaded by SGLang (or transformers under it): other runtimes' exports and checkpoints,
# documentation and pictures.
NEVER_LOADED: tuple[str, ...] = (
    "*.h5", "*.msgpack", "*.onnx", "*.onnx_data", "*.gguf", "*.ckpt", "*.tflite", "*.ot",
    "*.mlmodel", "onnx/*", "openvino/*", "coreml/*", "original/*",
    "*.md", "*.png", "*.jpg", "*.jpeg", "*.gif", "*.svg", "*.pdf", ".gitattributes",
)


def _matches(path: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(path, pattern) for pattern in patterns)


def select(files: Iterable[dict], add: Iterable[str] = (), skip: Iterable[str] = ()
           ) -> tuple[dict, ...]:
    """The files of ``files`` (the Hub's manifest entries, with "path") a server loads,
    ``add`` and ``skip`` applied last (skip wins)."""
    files = tuple(files)
    add, skip = tuple(add), tuple(skip)
    weights = [patterns for _, patterns in WEIGHT_FORMATS]
    chosen = next((patterns for patterns in weights
                   if any(_matches(f["path"], patterns) for f in files)), ())
    other_weights = [p for patterns in weights if patterns is not chosen for p in patterns]
    return tuple(f for f in files
                 if not _matches(f["path"], skip)
                 and (_matches(f["path"], add)
                      or not _matches(f["path"], (*other_weights, *NEVER_LOADED))))
