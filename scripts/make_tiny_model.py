"""Write a tiny model in the real Hugging Face format: a Llama-architecture causal LM (an
architecture SGLang supports) with random weights, a real byte-level BPE tokenizer and the
files the Hub serves for a model repository. A few hundred KB; standard library only.

    python scripts/make_tiny_model.py OUT_DIR [--seed N] [--awq]

``--awq``: AWQ's checkpoint layout (what AutoAWQ writes, GEMM version, 4 bits, group size 128):
every linear layer of the decoder as packed int32 ``qweight``/``qzeros`` and float16 ``scales``,
with the ``quantization_config`` in config.json that SGLang's ``--quantization awq`` reads. The
chart's model (Qwen3-32B-AWQ) is such a checkpoint; the quantized values are random too.

The same seed gives the same bytes, so a repository built from it has stable hashes; another
seed is "a new commit" of the same model.
"""

from __future__ import annotations

import argparse
import json
import random
import struct
from pathlib import Path

LAYERS = 2
HEADS = 4
KV_HEADS = 2
# AWQ quantizes input features in groups of 128: its layers need widths of whole groups.
HIDDEN, INTERMEDIATE = 64, 128
AWQ_HIDDEN, AWQ_INTERMEDIATE, AWQ_GROUP, AWQ_PACK = 128, 256, 128, 8  # 8 4-bit values an int32
# Heads of 64: FlashInfer's Hopper prefill kernels refuse 32 (a static assertion when it
# compiles them, seen on a real H200), as real models' 64 and 128 are not.
AWQ_HEADS, AWQ_KV_HEADS = 2, 1
AWQ_CONFIG = {"quant_method": "awq", "bits": 4, "group_size": AWQ_GROUP, "zero_point": True,
              "version": "gemm", "modules_to_not_convert": None}
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


# safetensors dtype -> struct format
FORMATS = {"F32": "f", "F16": "e", "I32": "i"}


def tensors(vocab: int, awq: bool = False) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Every tensor's (safetensors dtype, shape)."""
    hidden, intermediate = (AWQ_HIDDEN, AWQ_INTERMEDIATE) if awq else (HIDDEN, INTERMEDIATE)
    heads, kv_heads = (AWQ_HEADS, AWQ_KV_HEADS) if awq else (HEADS, KV_HEADS)
    head = hidden // heads
    plain = "F16" if awq else "F32"
    shapes = {"model.embed_tokens.weight": (plain, (vocab, hidden)),
              "model.norm.weight": (plain, (hidden,)), "lm_head.weight": (plain, (vocab, hidden))}
    for layer in range(LAYERS):
        prefix = f"model.layers.{layer}"
        shapes[f"{prefix}.input_layernorm.weight"] = (plain, (hidden,))
        shapes[f"{prefix}.post_attention_layernorm.weight"] = (plain, (hidden,))
        for name, (out_features, in_features) in {
                "self_attn.q_proj": (heads * head, hidden),
                "self_attn.k_proj": (kv_heads * head, hidden),
                "self_attn.v_proj": (kv_heads * head, hidden),
                "self_attn.o_proj": (hidden, heads * head),
                "mlp.gate_proj": (intermediate, hidden), "mlp.up_proj": (intermediate, hidden),
                "mlp.down_proj": (hidden, intermediate)}.items():
            if not awq:
                shapes[f"{prefix}.{name}.weight"] = (plain, (out_features, in_features))
                continue
            # AutoAWQ's GEMM layout: input features first, 8 output features an int32.
            groups = in_features // AWQ_GROUP
            shapes[f"{prefix}.{name}.qweight"] = ("I32", (in_features, out_features // AWQ_PACK))
            shapes[f"{prefix}.{name}.qzeros"] = ("I32", (groups, out_features // AWQ_PACK))
            shapes[f"{prefix}.{name}.scales"] = ("F16", (groups, out_features))
    return shapes


def _values(name: str, dtype: str, count: int, rng: random.Random) -> list:
    if dtype == "I32" and name.endswith(".qzeros"):
        return [-0x77777778] * count  # 0x88888888: every 4-bit zero point is 8, the middle
    if dtype == "I32":
        return [rng.getrandbits(32) - 2**31 for _ in range(count)]
    if name.endswith(".scales"):
        return [0.002] * count  # (q - 8) * 0.002: weights of the same size as the plain model's
    if name.endswith("norm.weight"):
        return [1.0] * count
    return [rng.gauss(0.0, 0.02) for _ in range(count)]


def safetensors(shapes: dict[str, tuple[str, tuple[int, ...]]], seed: int) -> bytes:
    """The safetensors format: an 8-byte little-endian header length, a JSON header, the data
    (norms are ones, the rest small random numbers)."""
    rng = random.Random(seed)
    header: dict = {"__metadata__": {"format": "pt"}}
    chunks, offset = [], 0
    for name, (dtype, shape) in sorted(shapes.items()):
        count = 1
        for dim in shape:
            count *= dim
        data = struct.pack(f"<{count}{FORMATS[dtype]}", *_values(name, dtype, count, rng))
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the format aligns the data to 8 bytes
    return struct.pack("<Q", len(encoded)) + encoded + b"".join(chunks)


def write(out: Path, seed: int = 0, awq: bool = False) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    tok, vocab = tokenizer()
    bos, eos = vocab - 2, vocab - 1
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        # AWQ's kernels compute in float16 (SGLang refuses bfloat16 for awq).
        "torch_dtype": "float16" if awq else "float32", "vocab_size": vocab,
        "hidden_size": AWQ_HIDDEN if awq else HIDDEN,
        "intermediate_size": AWQ_INTERMEDIATE if awq else INTERMEDIATE,
        "num_hidden_layers": LAYERS, "num_attention_heads": AWQ_HEADS if awq else HEADS,
        "num_key_value_heads": AWQ_KV_HEADS if awq else KV_HEADS, "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu",
        "tie_word_embeddings": False, "bos_token_id": bos, "eos_token_id": eos,
        "transformers_version": "4.57.1",
    }
    if awq:
        config["quantization_config"] = dict(AWQ_CONFIG)
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
        "README.md": f"# tiny-llama{'-awq' if awq else ''}\n\nRandom weights (seed {seed}) for "
                     "tests; not a language model anyone should use.\n",
    }
    written = []
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")
        written.append(out / name)
    (out / "model.safetensors").write_bytes(safetensors(tensors(vocab, awq), seed))
    written.append(out / "model.safetensors")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--awq", action="store_true", help="AWQ's checkpoint layout")
    args = parser.parse_args()
    for path in write(args.out, args.seed, args.awq):
        print(f"{path.stat().st_size:>9}  {path}")


if __name__ == "__main__":
    main()
