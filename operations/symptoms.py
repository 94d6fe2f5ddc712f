"""The chart's symptom table as data: signature -> symptom -> cause -> fix.

One row per symptom (the chart's five, the model snapshot the toolkit stages, and the NVIDIA
driver's states, operations/drivers.py); adding a symptom is adding a row. ``match`` finds the
first row whose signature appears in a piece of evidence (a log, an import error, a health answer).
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

# The driver's states, as operations/drivers.py words them (and real tools where they say so).
DRIVER_SYMPTOMS: tuple[Symptom, ...] = (
    Symptom(
        key="driver-pending-reboot",
        symptom="the installed NVIDIA driver is not the loaded one",
        signature=re.compile(r"the host has not rebooted since|Driver/library version mismatch"),
        cause="a driver was installed or changed and the host has not rebooted since",
        fix="reboot the host: the deploy does with driver_install=missing or upgrade, in its "
        "rolling batch",
    ),
    Symptom(
        key="nouveau-loaded",
        symptom="nouveau is loaded",
        signature=re.compile(r"nouveau is loaded"),
        cause="the kernel's own nouveau driver holds the GPU, so the nvidia module cannot load",
        fix="set driver_install=missing or upgrade: the deploy blacklists nouveau (modeset=0), "
        "rebuilds the initramfs and reboots",
    ),
    Symptom(
        key="proprietary-on-blackwell",
        symptom="the proprietary NVIDIA module on a Blackwell GPU",
        signature=re.compile(r"proprietary module .* on a Blackwell GPU|RmInitAdapter failed"),
        cause="Blackwell GPUs (RTX 50-series, sm_120) need NVIDIA's open kernel module; the "
        "proprietary one loads but cannot initialise them",
        fix="set driver_install=upgrade: the deploy installs nvidia-open of the branch and "
        "reboots the host",
    ),
    Symptom(
        key="driver-too-old",
        symptom="the NVIDIA driver is below the stack's minimum",
        signature=re.compile(r"is loaded, below \d+ for CUDA"),
        cause="the loaded driver branch is older than the stack's CUDA needs",
        fix="set driver_install=upgrade (the deploy reboots the host), or choose a stack for an "
        "older CUDA",
    ),
    Symptom(
        key="driver-missing",
        symptom="no NVIDIA driver loaded",
        signature=re.compile(r"no NVIDIA driver loaded|Found no NVIDIA driver on your system"),
        cause="no NVIDIA driver is installed, or it did not load",
        fix="set driver_install=missing (the default): the deploy installs the open driver and "
        "reboots the host",
    ),
    Symptom(
        key="no-devices",
        symptom="nvidia-smi: No devices were found",
        signature=re.compile(r"No devices were found"),
        cause="the driver loaded but sees no GPU: on RTX 5090 boards, Resizable BAR or Above "
        "4G decoding is off in the firmware",
        fix="enable Above 4G decoding and Resizable BAR in the firmware (BIOS/UEFI) settings, "
        "then reboot",
    ),
)
SYMPTOMS += DRIVER_SYMPTOMS

BY_KEY = {s.key: s for s in SYMPTOMS}


def match(evidence: str) -> tuple[Symptom, str] | None:
    """The symptom of the latest line in ``evidence`` that matches one, with that line (a
    traceback ends with the error itself; older lines may be from earlier failures)."""
    for line in reversed(evidence.splitlines()):
        for symptom in SYMPTOMS:
            if symptom.signature.search(line):
                return symptom, line.strip()
    return None
