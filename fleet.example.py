"""A real fleet: copy to fleet.py (or point SGLANG_FLEET at a copy) and list your hosts.

Each list is a pyinfra group; a host is an address or (address, {settings}). Settings not given
here come from group_data/ and then the defaults (README: Settings).
"""

gpu_servers = [
    ("gpu-01.example.internal", {"ssh_user": "root"}),
    ("gpu-02.example.internal", {"ssh_user": "root", "tp_size": 2}),
]

# Optional: the router in front of the GPU hosts, and the host that fetches the stacks' wheels
# and apt packages once for the fleet (same OS release as the GPU hosts). One host may do both.
sglang_gateways = [("infra-01.example.internal", {"ssh_user": "root"})]
sglang_wheelhouse = [("infra-01.example.internal", {"ssh_user": "root"})]
