"""Write a tiny model in the real Hugging Face format: a Llama-architecture causal LM (an
architecture SGLang supports) with random weights, a real byte-level BPE tokenizer and the
files the Hub serves for a model repository. A few hundred KB; standard library only.

    python scripts/make_tiny_model.py OUT_DIR [--seed N]

The same seed gives the same bytes, so a repository built from it has stable hashes; another
seed is "a new commit" of the same model.
"""

from __future__ import annotations

import argparse
import json
import random
import struct
from pathlib import Path

HIDDEN = 64
LAYERS = 2
HEADS = 4
KV_HEADS = 2
INTERMEDIATE = 128
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>"]


def _byte_alphabet() -> list[str]:
    """GPT-2's byte-to-unicode table: every byte is one printable character."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    chars, extra = [], 0
    for byte in range(256):
        if byte in printable:
            chars.append(chr(byte))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def tokenizer() -> tuple[dict, int]:
    """A byte-level BPE tokenizer.json (no merges: one token per byte) and its vocab size."""
    vocab = {char: index for index, char in enumerate(_byte_alphabet())}
    added = [{"id": len(vocab) + i, "content": token, "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": True}
             for i, token in enumerate(SPECIALS)]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                           "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": []},
    }, len(vocab) + len(added)


def tensors(vocab: int) -> dict[str, tuple[int, ...]]:
    head = HIDDEN // HEADS
    shapes = {"model.embed_tokens.weight": (vocab, HIDDEN), "model.norm.weight": (HIDDEN,),
              "lm_head.weight": (vocab, HIDDEN)}
    for layer in range(LAYERS):
        prefix = f"model.layers.{layer}"
        shapes.update({
            f"{prefix}.input_layernorm.weight": (HIDDEN,),
            f"{prefix}.post_attention_layernorm.weight": (HIDDEN,),
            f"{prefix}.self_attn.q_proj.weight": (HEADS * head, HIDDEN),
            f"{prefix}.self_attn.k_proj.weight": (KV_HEADS * head, HIDDEN),
            f"{prefix}.self_attn.v_proj.weight": (KV_HEADS * head, HIDDEN),
            f"{prefix}.self_attn.o_proj.weight": (HIDDEN, HEADS * head),
            f"{prefix}.mlp.gate_proj.weight": (INTERMEDIATE, HIDDEN),
            f"{prefix}.mlp.up_proj.weight": (INTERMEDIATE, HIDDEN),
            f"{prefix}.mlp.down_proj.weight": (HIDDEN, INTERMEDIATE),
        })
    return shapes


def safetensors(shapes: dict[str, tuple[int, ...]], seed: int) -> bytes:
    """The safetensors format: an 8-byte little-endian header length, a JSON header, the data
    (F32 here; norms are ones, the rest small random numbers)."""
    rng = random.Random(seed)
    header: dict = {"__metadata__": {"format": "pt"}}
    chunks, offset = [], 0
    for name, shape in sorted(shapes.items()):
        count = 1
        for dim in shape:
            count *= dim
        values = [1.0] * count if name.endswith("norm.weight") else [
            rng.gauss(0.0, 0.02) for _ in range(count)]
        data = struct.pack(f"<{count}f", *values)
        header[name] = {"dtype": "F32", "shape": list(shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the format aligns the data to 8 bytes
    return struct.pack("<Q", len(encoded)) + encoded + b"".join(chunks)


def write(out: Path, seed: int = 0) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    tok, vocab = tokenizer()
    bos, eos = vocab - 2, vocab - 1
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "torch_dtype": "float32",
        "vocab_size": vocab, "hidden_size": HIDDEN, "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS, "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu",
        "tie_word_embeddings": False, "bos_token_id": bos, "eos_token_id": eos,
        "transformers_version": "4.57.1",
    }
    files = {
        "config.json": json.dumps(config, indent=2) + "\n",
        "generation_config.json": json.dumps({"bos_token_id": bos, "eos_token_id": eos,
                                              "do_sample": False}, indent=2) + "\n",
        "tokenizer.json": json.dumps(tok, ensure_ascii=False) + "\n",
        "tokenizer_config.json": json.dumps({
            "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": SPECIALS[0],
            "eos_token": SPECIALS[1], "model_max_length": 2048,
            "chat_template": "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n"
                             "{% endfor %}assistant:"}, indent=2) + "\n",
        "special_tokens_map.json": json.dumps({"bos_token": SPECIALS[0],
                                               "eos_token": SPECIALS[1]}, indent=2) + "\n",
        "README.md": f"# tiny-llama\n\nRandom weights (seed {seed}) for tests; not a language "
                     "model anyone should use.\n",
    }
    written = []
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")
        written.append(out / name)
    (out / "model.safetensors").write_bytes(safetensors(tensors(vocab), seed))
    written.append(out / "model.safetensors")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for path in write(args.out, args.seed):
        print(f"{path.stat().st_size:>9}  {path}")


if __name__ == "__main__":
    main()
