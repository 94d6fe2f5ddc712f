"""A model repository of real size in the real format, for measurements at real sizes (bench/):
safetensors shards of random bfloat16 weights named and shaped as a Llama-architecture
checkpoint's, with their index, a real config and the lab's real tokenizer; optionally the same
weights as PyTorch ``.bin`` files beside them (hard links: a repository holding both formats,
as many on the Hub do, at no extra disk). Written once into the lab's cache and kept (never
committed); published into the Hub stand-in by hard links.

    model_dir(size_gb=4)   # /var/lib/sglang-lab/cache/models/real-4gb
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path

from lab.inventory import LAB_DIR

MODELS = LAB_DIR / "cache" / "models"
HIDDEN, INTERMEDIATE, VOCAB = 4096, 11008, 32000  # Llama-2-7B's widths
SHARD_BYTES = 2 * 10**9  # the Hub's usual shard size


def _layer_tensors(layer: int) -> list[tuple[str, list[int]]]:
    prefix = f"model.layers.{layer}"
    return [(f"{prefix}.self_attn.{p}_proj.weight", [HIDDEN, HIDDEN]) for p in "qkvo"] + [
        (f"{prefix}.mlp.gate_proj.weight", [INTERMEDIATE, HIDDEN]),
        (f"{prefix}.mlp.up_proj.weight", [INTERMEDIATE, HIDDEN]),
        (f"{prefix}.mlp.down_proj.weight", [HIDDEN, INTERMEDIATE]),
        (f"{prefix}.input_layernorm.weight", [HIDDEN]),
        (f"{prefix}.post_attention_layernorm.weight", [HIDDEN])]


def _tensors(size_gb: float) -> tuple[int, list[tuple[str, list[int]]]]:
    """(layers, every tensor) of a checkpoint of about ``size_gb`` in bfloat16."""
    per_layer = sum(2 * _count(shape) for _, shape in _layer_tensors(0))
    ends = [("model.embed_tokens.weight", [VOCAB, HIDDEN]), ("model.norm.weight", [HIDDEN]),
            ("lm_head.weight", [VOCAB, HIDDEN])]
    fixed = sum(2 * _count(shape) for _, shape in ends)
    layers = max(1, round((size_gb * 1e9 - fixed) / per_layer))
    return layers, [ends[0], *(t for n in range(layers) for t in _layer_tensors(n)), *ends[1:]]


def _count(shape: list[int]) -> int:
    total = 1
    for width in shape:
        total *= width
    return total


def _write_shard(path: Path, tensors: list[tuple[str, list[int]]]) -> None:
    header: dict = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in tensors:
        size = 2 * _count(shape)
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned, as safetensors writes it
    with path.open("wb") as out:
        out.write(struct.pack("<Q", len(text)) + text)
        for _, shape in tensors:
            left = 2 * _count(shape)
            while left:
                chunk = os.urandom(min(left, 1 << 24))
                out.write(chunk)
                left -= len(chunk)


def model_dir(size_gb: float, both_formats: bool = False) -> Path:
    """The repository's files (written the first time, kept after)."""
    name = f"real-{size_gb:g}gb" + ("-both" if both_formats else "")
    folder = MODELS / name
    if (folder / "config.json").exists():
        return folder
    weights = model_dir(size_gb) if both_formats else None
    with tempfile.TemporaryDirectory(dir=MODELS.parent if MODELS.parent.exists() else None
                                     ) as scratch:
        work = Path(scratch) / name
        work.mkdir(parents=True)
        if weights is not None:  # the same weights, and PyTorch-named copies beside them
            for file in weights.iterdir():
                os.link(file, work / file.name)
                if file.suffix == ".safetensors":
                    os.link(file, work / file.name.replace("model-", "pytorch_model-")
                            .replace(".safetensors", ".bin"))
        else:
            _write_weights(work, size_gb)
        MODELS.mkdir(parents=True, exist_ok=True)
        os.replace(work, folder)
    return folder


def _write_weights(work: Path, size_gb: float) -> None:
    from scripts.make_tiny_model import write

    layers, tensors = _tensors(size_gb)
    shards: list[list[tuple[str, list[int]]]] = [[]]
    filled = 0
    for name, shape in tensors:
        if filled and filled + 2 * _count(shape) > SHARD_BYTES:
            shards.append([])
            filled = 0
        shards[-1].append((name, shape))
        filled += 2 * _count(shape)
    weight_map = {}
    for number, shard in enumerate(shards, start=1):
        shard_name = f"model-{number:05d}-of-{len(shards):05d}.safetensors"
        _write_shard(work / shard_name, shard)
        weight_map.update((name, shard_name) for name, _ in shard)
    total = sum(2 * _count(shape) for _, shape in tensors)
    (work / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2) + "\n")
    with tempfile.TemporaryDirectory() as tiny:  # the lab's real tokenizer and files
        for file in write(Path(tiny), seed=0):
            if file.suffix != ".safetensors":
                (work / file.name).write_bytes(file.read_bytes())
    config = json.loads((work / "config.json").read_text())
    config.update(hidden_size=HIDDEN, intermediate_size=INTERMEDIATE, num_hidden_layers=layers,
                  vocab_size=VOCAB,
                  num_attention_heads=32, num_key_value_heads=32, torch_dtype="bfloat16",
                  tie_word_embeddings=False)
    (work / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def publish(hub_root: Path, repo: str, folder: Path) -> str:
    """``folder`` as the next commit of ``repo`` in the Hub stand-in's root, by hard links (no
    copy of the weights); returns the commit."""
    import hashlib

    state_path = hub_root / repo / "repo.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {"main": None,
                                                                             "gated": False}
    listing = sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in folder.iterdir())
    commit = hashlib.sha1(f"{listing} {state['main']}".encode()).hexdigest()
    target = hub_root / repo / "commits" / commit
    if not target.exists():
        target.mkdir(parents=True)
        for file in folder.iterdir():
            os.link(file, target / file.name)
    state["main"] = commit
    state_path.write_text(json.dumps(state) + "\n")
    return commit
