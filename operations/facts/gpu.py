"""The GPUs and the NVIDIA driver: what nvidia-smi reports, and the driver as the kernel and
apt see it.

Example::

    from pyinfra import host
    from operations.facts.gpu import NvidiaGpus
    gpus = host.get_fact(NvidiaGpus)   # {"driver": "570.153.02", "cuda": "12.8", "gpus": [...]}
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pyinfra.api import FactBase

from operations import nvidia
from operations.facts.status import split_status, with_status


class NvidiaGpus(FactBase):
    """GPUs, driver and CUDA version as nvidia-smi reports them.

    Returns ``{"driver": str|None, "cuda": str|None, "gpus": [{index, name, memory_total_mib,
    memory_used_mib, driver_version, compute_cap}, ...], "error": str|None}``;
    ``error`` holds nvidia-smi's own words when it is missing or cannot reach the driver.
    """

    def command(self) -> str:
        fields = ",".join(nvidia.QUERY_FIELDS)
        return with_status(
            "command -v nvidia-smi >/dev/null || "
            "{ echo 'nvidia-smi: command not found'; exit 127; }"
            f"; nvidia-smi --query-gpu={fields} --format=csv,noheader,nounits || exit $?"
            "; echo ---; nvidia-smi | head -n 4"
        )

    @staticmethod
    def default() -> Any:  # what a host that cannot be read gives
        return {"driver": None, "cuda": None, "gpus": [], "error": "nvidia-smi could not be read"}

    def process(self, output: list[str]) -> dict[str, Any]:
        lines, status = split_status(output)
        if status != 0:
            return {"driver": None, "cuda": None, "gpus": [], "error": " ".join(lines).strip()}
        split = lines.index("---") if "---" in lines else len(lines)
        gpus = nvidia.parse_query_csv("\n".join(lines[:split]))
        driver, cuda, _ = nvidia.parse_plain("\n".join(lines[split + 1:]))
        # Plain dicts: facts must be JSON data (`pyinfra HOST fact ...` prints them).
        return {"driver": driver or (gpus[0].driver_version if gpus else None), "cuda": cuda,
                "gpus": [asdict(gpu) for gpu in gpus], "error": None}


_DRIVER_SCRIPT = r"""
. /etc/os-release 2>/dev/null; echo "os=$ID-$VERSION_ID"
echo "boot_id=$(cat /proc/sys/kernel/random/boot_id)"
echo "loaded=$(head -n 1 /proc/driver/nvidia/version 2>/dev/null)"
[ -d /sys/module/nouveau ] && echo "nouveau=1"
echo "repo_list=$(cat /etc/apt/sources.list.d/cuda-*-x86_64.list 2>/dev/null | head -n 1)"
echo "persistenced=$(systemctl is-enabled nvidia-persistenced 2>/dev/null)/$(systemctl \
is-active nvidia-persistenced 2>/dev/null)"
dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Version}\n' 2>/dev/null | sed -n -E \
  's/^ii +((nvidia|libnvidia|linux-modules-nvidia|cuda-drivers|cuda-keyring)\S*) /package=\1 /p'
exit 0
"""


class NvidiaDriver(FactBase):
    """The NVIDIA driver as the kernel and apt see it, in one round trip.

    Returns ``{"os": "debian-12", "boot_id": str, "loaded": /proc/driver/nvidia/version's first
    line or "", "nouveau": bool, "repo_list": NVIDIA's apt source line or "", "persistenced":
    "enabled/active", "packages": {name: version}}`` (installed driver packages only).
    """

    def command(self) -> str:
        return _DRIVER_SCRIPT

    @staticmethod
    def default() -> dict[str, Any]:  # what a host that cannot be read gives
        return {"os": "", "boot_id": "", "loaded": "", "nouveau": False, "repo_list": "",
                "persistenced": "", "packages": {}}

    def process(self, output: list[str]) -> dict[str, Any]:
        found = self.default()
        for line in output:
            key, _, value = line.partition("=")
            if key == "package":
                name, _, version = value.partition(" ")
                found["packages"][name] = version.strip()
            elif key == "nouveau":
                found["nouveau"] = True
            elif key in found:
                found[key] = value.strip()
        return found
