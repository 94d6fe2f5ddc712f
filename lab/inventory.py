"""The lab hosts that are up, as pyinfra inventory entries (used by ../inventory.py)."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from lab.stacks import DRIVER_REPO_URL, HUB_URL, INDEX_URL, LAB_STACKS, PROXY_URL

LAB_DIR = Path(os.environ.get("SGLANG_LAB_DIR", "/var/lib/sglang-lab"))
LOCK = LAB_DIR / "fleet.lock.json"  # the lab fleet's lock file (operations/hub.py)
# The lab fleet's secrets file (the ``secrets_file`` setting): the routers' control key, written
# by ``lab up --gateway``. Secrets from the environment win over it, as for any fleet.
SECRETS = LAB_DIR / "secrets.env"


def write_secrets() -> None:
    SECRETS.parent.mkdir(parents=True, exist_ok=True)
    SECRETS.touch(mode=0o600)
    SECRETS.write_text(f"ROUTER_CONTROL_KEY={secrets.token_urlsafe(32)}\n")


def router_key() -> str:
    """The lab routers' control key (for tests that call the router's worker API)."""
    return SECRETS.read_text().partition("=")[2].strip()


def _secrets() -> dict:
    return {"secrets_file": str(SECRETS)} if SECRETS.exists() else {}


def _read(role: str | None) -> list[dict]:
    try:
        hosts = json.loads((LAB_DIR / "hosts.json").read_text())
    except (OSError, ValueError):
        return []
    return [host for host in hosts if host.get("role") == role]


def _ssh(host: dict) -> dict:
    login = host.get("login")  # lab up --login USER: root may not log in; USER has sudo
    return {
        **({"_sudo": True} if login else {}),
        "ssh_hostname": host["address"],
        "ssh_user": login or "root",
        "ssh_key": str(LAB_DIR / "ssh" / "id_ed25519"),
        "ssh_known_hosts_file": "/dev/null",
        "ssh_strict_host_key_checking": "no",
        # A container: SSH on its odd port; without SFTP, files go over SCP.
        **({"ssh_port": host["ssh_port"]} if host.get("ssh_port", 22) != 22 else {}),
        **({"ssh_file_transfer_protocol": "scp"} if host.get("sftp") is False else {}),
    }


def lab_gateways() -> list[tuple[str, dict]]:
    """The lab's gateway host, if it was brought up (lab up --gateway); it is the wheelhouse
    too. sglang-router comes from PyPI and apt-cacher-ng fetches through the lab's proxy."""
    return [(host["name"], {**_ssh(host), **_secrets(), "pip_proxy": PROXY_URL,
                            "pip_cert": "/etc/lab-ca.pem", "apt_upstream_proxy": PROXY_URL})
            for host in _read("gateway")]


def lab_hosts() -> list[tuple[str, dict]]:
    return [(host["name"], {
        **_ssh(host),
        **_secrets(),
        "stack": host["stack"],
        "custom_stacks": LAB_STACKS,
        "pip_index_url": INDEX_URL,
        "hf_endpoint": HUB_URL,
        "driver_repo_url": DRIVER_REPO_URL,  # the lab's NVIDIA repository, as a mirror is given
        # Lab hosts live on the control machine's disk, which is smaller than a GPU box's.
        "min_free_disk_gb": 5,
        "disk_margin_gb": 2,
        "health_timeout_s": 60,
    }) for host in _read(None)]
