"""A real fleet: copy to fleet.py (or point SGLANG_FLEET at a copy) and list your hosts.

Each list is a pyinfra group; a host is an address or (address, {settings}). Settings not given
here come from group_data/ and then the defaults (README: Settings).
"""

# Every GPU host serves one commit of the model. The first run pins the model's main and
# records it in fleet.lock.json beside this file (commit that file); to move the fleet to
# another commit, name it here: the change rolls through the fleet in roll_batch batches.
_MODEL = {"model": "Qwen/Qwen3-32B-AWQ",
         # "model_revision": "<a full 40-hex commit sha of the model, e.g. from fleet.lock.json>",
         }

gpu_servers = [
    ("gpu-01.example.internal", {"ssh_user": "root", **_MODEL}),
    ("gpu-02.example.internal", {"ssh_user": "root", "tp_size": 2, **_MODEL}),
    # A cloud image: root may not log in; a user with passwordless sudo does.
    ("gpu-03.example.internal", {"ssh_user": "ubuntu", "_sudo": True, **_MODEL}),
]

# Optional: the router in front of the GPU hosts, and the host that fetches the stacks' wheels,
# the model snapshots and apt packages once for the fleet (same OS release as the GPU hosts).
# One host may do both.
sglang_gateways = [("infra-01.example.internal", {"ssh_user": "root"})]
sglang_wheelhouse = [("infra-01.example.internal", {"ssh_user": "root"})]

# Optional: Prometheus scraping the whole fleet (every worker's metrics, the routers', every
# host's node and GPU figures) with the fleet's alert rules (README: Monitoring).
sglang_monitoring = [("infra-01.example.internal", {"ssh_user": "root"})]
