"""Lab host profiles: which captured GPUs a lab host simulates, and the lab stack it runs.

A GPU is a folder of captured nvidia-smi outputs under gpus/captures/; adding a GPU model or
driver is adding such a folder and naming it here.
"""

HOST_PROFILES: dict[str, dict] = {
    "rtx5090-cu128": {"gpus": ["rtx5090-570"], "stack": "lab-cu128-nightly"},
    "rtx5090-cu13": {"gpus": ["rtx5090-580"], "stack": "lab-cu13-stable"},
    "rtx5090x2-cu128": {"gpus": ["rtx5090-570", "rtx5090-570"], "stack": "lab-cu128-nightly"},
    # Must fail preflight: driver 565 is too old for CUDA 12.8 (>= 570).
    "old-driver": {"gpus": ["rtx5090-565"], "stack": "lab-cu128-nightly"},
    # No GPU: the router's host (lab up --gateway).
    "gateway": {"gpus": [], "stack": None},
}

# `lab up N` takes the first N of these (cycling): two good hosts first.
DEFAULT_ORDER = ["rtx5090-cu128", "rtx5090-cu13", "rtx5090x2-cu128", "old-driver"]
