"""Runs on the host with the venv's python: imports torch, then the kernel package, as SGLang
does, and prints one JSON line: torch's build facts and the kernel import's own words.

    VENV/bin/python -c "$(cat torch_kernel_probe.py)" TORCH_MODULE KERNEL_MODULE

prints {"torch": version, "cuda": CUDA version, "arch_list": [...], "kernel_error": null or the
traceback of the kernel import (an ABI mismatch shows here)}. A failing torch import is the
program's own traceback and exit status 1.
"""

import importlib
import json
import sys
import traceback

torch = importlib.import_module(sys.argv[1])
try:
    importlib.import_module(sys.argv[2])
    kernel_error = None
except Exception:
    kernel_error = traceback.format_exc()
print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda,
                  "arch_list": torch.cuda.get_arch_list(), "kernel_error": kernel_error}))
