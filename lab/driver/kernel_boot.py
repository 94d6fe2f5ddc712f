#!/usr/bin/python3
"""Lab host, at each boot (lab-kernel.service): what the kernel would load, shown where the
toolkit reads it on real hosts. Lab only; see __init__.py.

nouveau binds the GPU unless the initramfs (update_initramfs.py's copy of the modprobe
configuration) blacklists it; the nvidia module DKMS staged on disk loads only when nouveau
did not take the GPU first.
"""

import json
import re
import subprocess
from pathlib import Path

HARDWARE = Path("/etc/lab-gpu/gpus.json")  # the GPUs in the box, whatever driver runs them
INITRAMFS = Path("/boot/lab-initramfs/modprobe.d")
MODULE = Path("/usr/lib/lab-driver/nvidia-module.json")
KERNEL = Path("/run/lab-kernel")
WORDING = {  # /proc/driver/nvidia/version's first line, per flavour (NVIDIA's kernel_open README)
    "open": "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  {v}  Release Build  "
            "(dvs-builder@U16-I2-C04-12-1)  Thu Sep 25 20:51:20 UTC 2025",
    "proprietary": "NVRM version: NVIDIA UNIX x86_64 Kernel Module  {v}  Thu Sep 25 20:37:48 "
                   "UTC 2025",
}


def nouveau_blacklisted() -> bool:
    return any(re.search(r"^\s*blacklist\s+nouveau\b", conf.read_text(), re.M)
               for conf in INITRAMFS.glob("*.conf"))


def main() -> None:
    gpus = json.loads(HARDWARE.read_text()) if HARDWARE.exists() else []
    modules = KERNEL / "module"
    modules.mkdir(parents=True, exist_ok=True)
    nouveau = bool(gpus) and not nouveau_blacklisted()
    if nouveau:
        (modules / "nouveau").mkdir(exist_ok=True)
        (modules / "nouveau" / "initstate").write_text("live\n")
    module = json.loads(MODULE.read_text()) if MODULE.exists() else None
    if gpus and module and not nouveau:
        (modules / "nvidia").mkdir(exist_ok=True)
        (modules / "nvidia" / "version").write_text(module["version"] + "\n")
        driver = KERNEL / "driver" / "nvidia"
        driver.mkdir(parents=True, exist_ok=True)
        (driver / "version").write_text(
            WORDING[module["flavour"]].format(v=module["version"]) + "\nGCC version:  gcc "
            "version 12.2.0 (Debian 12.2.0-14+deb12u1)\n")
        subprocess.run(["mount", "--bind", str(KERNEL / "driver"), "/proc/driver"], check=True)
    if not Path("/sys/module").exists():  # a container's /sys is a read-only tmpfs without it
        subprocess.run(["mount", "-o", "remount,rw", "/sys"], check=True)
        Path("/sys/module").mkdir()
        subprocess.run(["mount", "-o", "remount,ro", "/sys"], check=True)
    subprocess.run(["mount", "--bind", str(modules), "/sys/module"], check=True)


if __name__ == "__main__":
    main()
