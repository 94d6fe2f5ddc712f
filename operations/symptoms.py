"""The chart's symptom table as data: signature -> symptom -> cause -> fix.

One row per symptom (the chart's five, and the model snapshot the toolkit stages); adding a
symptom is adding a row. ``match`` finds the first row whose
signature appears in a piece of evidence (a log, an import error, a health answer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Symptom:
    key: str
    symptom: str
    signature: re.Pattern[str]
    cause: str
    fix: str


SYMPTOMS: tuple[Symptom, ...] = (
    Symptom(
        key="segfault",
        symptom="Fatal Python error: Segmentation fault",
        signature=re.compile(r"Fatal Python error: Segmentation fault|SIGSEGV|signal=SEGV"),
        cause="FlashInfer or CUDA graph initialisation fails on Blackwell (sm_120), or a "
        "sgl_kernel ABI mismatch",
        fix="use the minimal-stable profile: CUDA graph off, FlashInfer off, "
        "--attention-backend torch_native",
    ),
    Symptom(
        key="abi-mismatch",
        symptom="undefined symbol: _ZN3c10... (ABI incompatibility)",
        # c10, at and torch C++ symbols, const members (_ZNK) too: a real report's was
        # `_ZNK3c106SymInt6sym_neERKS0_` (tests/unit/test_diagnosis.py).
        signature=re.compile(r"undefined symbol: _ZNK?(3c10|2at|5torch)\w*"),
        cause="PyTorch and the SGLang kernel package were built against different versions",
        fix="install the pre-built kernel wheel that matches the installed torch (redeploy the "
        "stack), or rebuild the kernel against the same PyTorch",
    ),
    Symptom(
        key="libnuma-missing",
        symptom="libnuma.so.1: cannot open shared object file",
        signature=re.compile(r"libnuma\.so\.1: cannot open shared object file"),
        cause="the libnuma system library is missing",
        fix="apt-get install -y libnuma-dev libnuma1",
    ),
    Symptom(
        key="no-kernel-image",
        symptom="no kernel image is available for execution on the device",
        signature=re.compile(r"no kernel image is available for execution on the device"),
        cause="the build does not support sm_120 (Blackwell)",
        fix='use a stack whose builds cover sm_120 (PyTorch nightly cu128 or the CUDA 13 '
        'stack), or set TORCH_CUDA_ARCH_LIST="12.0+PTX" when building',
    ),
    Symptom(
        key="model-not-staged",
        symptom="the model is not in the cache (offline start)",
        # transformers' words for a config it cannot find offline, SGLang's for no weights,
        # safetensors' for a cut-off file.
        signature=re.compile(r"couldn't find (it|them) in the cached files|Cannot find any "
                             r"model weights|Error while deserializing header|is not a valid "
                             r"JSON file"),
        cause="the pinned model snapshot is missing or incomplete in model_cache_dir, and the "
        "server runs offline (HF_HUB_OFFLINE=1)",
        fix="run the deploy: it stages the pinned snapshot and verifies every file before the "
        "server starts",
    ),
    Symptom(
        key="quantization-mismatch",
        symptom="the --quantization flag does not match the model's checkpoint",
        # Real SGLang 0.5.16: at weight loading for a checkpoint without that quantization, in
        # its argument validation for one with another (tests/fixtures/sglang-real).
        signature=re.compile(r"Cannot find the config file for \w+|does not match the "
                             r"quantization method specified in the `quantization` argument"),
        cause="a quantization was asked (extra_flags) that the model's config.json does not "
        "declare",
        fix="drop --quantization from extra_flags: the deploy passes what the model declares",
    ),
    Symptom(
        key="health-503",
        symptom="health check returns HTTP 503",
        # Only what a server that failed for memory prints: a /health 503 alone is also what
        # every real server answers while it warms up (tests/fixtures/sglang-real).
        signature=re.compile(r"Not enough memory|CUDA out of memory|OutOfMemoryError|"
                             r"leave no GPU memory for the KV cache"),
        cause="server initialisation or model loading failed (memory)",
        fix="lower memory use: --mem-fraction-static 0.65 and --max-total-tokens 1024",
    ),
)

BY_KEY = {s.key: s for s in SYMPTOMS}


def match(evidence: str) -> tuple[Symptom, str] | None:
    """The symptom of the latest line in ``evidence`` that matches one, with that line (a
    traceback ends with the error itself; older lines may be from earlier failures)."""
    for line in reversed(evidence.splitlines()):
        for symptom in SYMPTOMS:
            if symptom.signature.search(line):
                return symptom, line.strip()
    return None
