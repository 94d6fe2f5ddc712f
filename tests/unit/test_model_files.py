"""Which files of a repository a worker stages (operations/model_files.py): the weights in one
format, what the server reads beside them, and the settings' patterns."""

from __future__ import annotations

from operations.model_files import select


def paths(*names: str) -> list[dict]:
    return [{"path": name, "size": 1} for name in names]


BOTH_FORMATS = paths(
    "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
    "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
    "model.safetensors.index.json", "pytorch_model-00001-of-00002.bin",
    "pytorch_model-00002-of-00002.bin", "pytorch_model.bin.index.json", "README.md",
    ".gitattributes", "modeling_custom.py", "merges.txt", "original/consolidated.00.pth",
    "onnx/model.onnx", "flax_model.msgpack")


def chosen(files: list[dict], **patterns: list[str]) -> set[str]:
    return {f["path"] for f in select(files, **patterns)}


def test_safetensors_win_where_both_formats_are_there_and_the_rest_the_server_reads_stays():
    assert chosen(BOTH_FORMATS) == {
        "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
        "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
        "model.safetensors.index.json", "modeling_custom.py", "merges.txt"}


def test_a_repository_with_pytorch_weights_only_keeps_them():
    files = paths("config.json", "pytorch_model.bin", "tokenizer.model", "model.onnx")
    assert chosen(files) == {"config.json", "pytorch_model.bin", "tokenizer.model"}


def test_patterns_add_and_skip_and_skip_wins():
    assert "original/consolidated.00.pth" in chosen(BOTH_FORMATS, add=["original/*"])
    assert "merges.txt" not in chosen(BOTH_FORMATS, skip=["*.txt"])
    assert "README.md" not in chosen(BOTH_FORMATS, add=["*.md"], skip=["README*"])


def test_a_repository_without_weights_keeps_its_other_files():
    assert chosen(paths("config.json", "notes.md")) == {"config.json"}
