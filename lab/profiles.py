"""Lab host profiles: the GPUs in the box, the NVIDIA driver it was set up with (flavour,
branch; None: none, nouveau drives the GPU) and the lab stack it runs.

A GPU is named by its captures under gpus/captures/<gpu>-<branch>/ (one per driver branch the
lab's driver repository has, lab/driver/repo.py); adding a GPU model is adding such folders.
"""

HOST_PROFILES: dict[str, dict] = {
    "rtx5090-cu128": {"gpus": ["rtx5090"], "driver": ("open", 570), "stack": "lab-cu128-nightly"},
    "rtx5090-cu13": {"gpus": ["rtx5090"], "driver": ("open", 580), "stack": "lab-cu13-stable"},
    "rtx5090x2-cu128": {"gpus": ["rtx5090", "rtx5090"], "driver": ("open", 570),
                        "stack": "lab-cu128-nightly"},
    # An old branch: 565 is too old for CUDA 12.8 (>= 570).
    "old-driver": {"gpus": ["rtx5090"], "driver": ("open", 565), "stack": "lab-cu128-nightly"},
    # A bare box as delivered: no NVIDIA driver, nouveau drives the GPU.
    "bare": {"gpus": ["rtx5090"], "driver": None, "stack": "lab-cu128-nightly"},
    # The proprietary module on a Blackwell GPU: it loads, but finds no device.
    "proprietary": {"gpus": ["rtx5090"], "driver": ("proprietary", 580),
                    "stack": "lab-cu13-stable"},
    # Rented GPU containers (no systemd; the driver is the machine's, preinstalled here as the
    # machine's own): "container" says what the image's entrypoint runs (lab/container/).
    # A Vast.ai-like image: supervisord is the entrypoint, SSH on 22.
    "vast": {"gpus": ["rtx5090"], "driver": ("open", 580), "stack": "lab-cu13-stable",
             "container": {"init": "supervisord", "ssh_port": 22, "sftp": True}},
    # A RunPod-like image: the start script starts sshd only (no supervisor installed), on an
    # odd port, without SFTP.
    "runpod": {"gpus": ["rtx5090"], "driver": ("open", 580), "stack": "lab-cu13-stable",
               "container": {"init": "sshd", "ssh_port": 2222, "sftp": False}},
    # A container on a machine whose driver is too old for the CUDA 13 stack (>= 580).
    "vast-old-driver": {"gpus": ["rtx5090"], "driver": ("open", 570), "stack": "lab-cu13-stable",
                        "container": {"init": "supervisord", "ssh_port": 22, "sftp": True}},
    # No GPU: the router's host (lab up --gateway).
    "gateway": {"gpus": [], "driver": None, "stack": None},
}

# `lab up N` takes the first N of these (cycling): two good hosts first.
DEFAULT_ORDER = ["rtx5090-cu128", "rtx5090-cu13", "rtx5090x2-cu128", "old-driver"]
