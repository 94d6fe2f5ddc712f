"""The team's real GPU host as a fleet of one, deployed by the toolkit itself from the host
(a container: no systemd, PID 1 is its own agent; no package index; docs/serving-on-real-gpu.md):

    SGLANG_FLEET=scripts/gpu_host/gpu_fleet.py pyinfra -y inventory.py deploy.py

Its stack is cu13-0.5.16 as it travelled: the wheels in /tmp/wheels, installed with --no-deps
(only what SGLang imports to serve travelled), into the host's own venv beside its torch.
"""

from dataclasses import replace

from operations.stacks import STACKS

_STACK = STACKS["cu13-0.5.16"]
OFFLINE = replace(_STACK, name="cu13-0.5.16-offline", index_url="file:///tmp/empty-index",
                  install_steps=((tuple(_STACK.packages), ("--no-deps",)),))

gpu_servers = [("@local", {
    "stack": OFFLINE.name,
    "custom_stacks": {OFFLINE.name: OFFLINE},
    "pip_find_links": ["file:///tmp/wheels"],
    "venv_path": "/opt/torch/.venv",
    "model": "/tmp/tiny-awq",
    "gpu_compute_capability": "9.0",  # an H200, not an RTX 5090
    "min_free_disk_gb": 10,
    "health_timeout_s": 420,  # a first start compiles kernels: up to 2 minutes seen
})]
