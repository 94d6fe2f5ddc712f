#!/usr/bin/python3
"""Lab hosts' update-initramfs (initramfs-tools' command, same options): the "initramfs" is the
modprobe configuration the kernel reads at the next boot (kernel_boot.py). Lab only."""

import shutil
import sys
from pathlib import Path

TARGET = Path("/boot/lab-initramfs/modprobe.d")

if "-u" not in sys.argv[1:] and "-c" not in sys.argv[1:]:
    print("Usage: update-initramfs {-c|-d|-u} [-k version] [-v] [-b directory]", file=sys.stderr)
    sys.exit(2)
shutil.rmtree(TARGET, ignore_errors=True)
TARGET.mkdir(parents=True)
for folder in ("/lib/modprobe.d", "/etc/modprobe.d"):
    for conf in sorted(Path(folder).glob("*.conf")):
        shutil.copy(conf, TARGET / conf.name)
print("update-initramfs: Generating /boot/initrd.img-lab")
