#!/usr/bin/python3
"""Simulated nvidia-smi for lab hosts, shipped by the lab's stand-in ``nvidia-smi`` package
(lab/driver/repo.py; never installed by a real deploy).

Answers as the real one does for the driver the simulated kernel loaded at boot (what
/proc/driver/nvidia/version shows): none loaded, a userspace of another version than the module
(an install before its reboot) or the proprietary module on a Blackwell GPU fail with the real
messages; otherwise it prints the real formats from captured outputs: /etc/lab-gpu/gpus.json
names the box's GPUs, /etc/lab-gpu/captures/<gpu>-<branch>/ holds one capture folder per GPU
model and driver branch (nvidia-smi.txt, query-gpu.csv, nvidia-smi-q.xml; see captures/).
Several GPUs are the capture repeated with its index and bus id changed. Memory in use comes
from the SGLang stand-in's usage file while its process lives.
"""

import csv
import io
import json
import os
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(os.environ.get("LAB_GPU_DIR", "/etc/lab-gpu"))
# The loaded module, as the kernel holds it: the real nvidia-smi asks the kernel through
# /dev/nvidiactl; this one reads the simulated kernel's state (lab/driver/kernel_boot.py), which
# /proc/driver/nvidia shows too, except inside a service with its own /proc (ProtectProc=).
LOADED = Path("/run/lab-kernel/driver/nvidia/version")
NVML = Path("/usr/share/lab-driver/nvml-version")
USAGE = Path("/run/sglang/lab-gpu-usage.json")


def fail(message: str, status: int) -> None:
    print(message)
    sys.exit(status)


def gpus() -> list[Path]:
    """The capture folder of each GPU, for the loaded driver; exits as the real one does."""
    loaded = LOADED.read_text().splitlines()[0] if LOADED.exists() else ""
    version = re.search(r"\s(\d+\.\d+(?:\.\d+)?)\s", loaded)
    if not version:
        fail("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
             "Make sure that the latest NVIDIA driver is installed and running.", 9)
    library = NVML.read_text().strip()
    if library != version.group(1):
        fail(f"Failed to initialize NVML: Driver/library version mismatch\n"
             f"NVML library version: {library.rsplit('.', 1)[0]}", 18)
    branch = version.group(1).split(".")[0]
    found = [ROOT / "captures" / f"{model}-{branch}"
             for model in json.loads((ROOT / "gpus.json").read_text())]
    blackwell = any(float(query_value(f, "compute_cap")) >= 10 for f in found)
    if "Open Kernel Module" not in loaded and blackwell:
        fail("No devices were found", 6)  # RmInitAdapter failed: Blackwell needs the open module
    return found


def query_value(folder: Path, field: str) -> str:
    rows = list(csv.reader(io.StringIO((folder / "query-gpu.csv").read_text()),
                           skipinitialspace=True))
    return dict(zip([h.split(" [")[0] for h in rows[0]], rows[1], strict=True))[field].strip()


def used_mib() -> int:
    try:
        usage = json.loads(USAGE.read_text())
        os.kill(int(usage["pid"]), 0)
        return int(usage["mib_per_gpu"])
    except (OSError, ValueError, KeyError):
        return 0


def bus_id(capture_bus: str, index: int) -> str:
    bus = int(capture_bus.split(":")[1], 16) + index
    parts = capture_bus.split(":")
    return f"{parts[0]}:{bus:02X}:{parts[2]}"


def query_row(folder: Path, index: int) -> dict[str, tuple[str, str]]:
    """field -> (value, unit) from the capture's --query-gpu CSV (header with units)."""
    rows = list(csv.reader(io.StringIO((folder / "query-gpu.csv").read_text()),
                           skipinitialspace=True))
    values = {}
    for head, value in zip(rows[0], rows[1], strict=True):
        match = re.match(r"(\S+)(?: \[(.+)\])?", head.strip())
        name, unit = match.group(1), match.group(2) or ""
        values[name] = (value.strip().removesuffix(unit).strip() if unit else value.strip(), unit)
    total = int(values["memory.total"][0])
    used = used_mib()
    values["index"] = (str(index), "")
    values["memory.used"] = (str(used), "MiB")
    values["memory.free"] = (str(total - 488 - used), "MiB")
    values["pci.bus_id"] = (bus_id(values["pci.bus_id"][0], index), "")
    values["count"] = (str(len(gpus())), "")
    # Not in the captures (taken idle): an idle GPU's figures, a server's memory above.
    values["utilization.gpu"] = ("0", "%")
    values["power.draw"] = (f"{float(values['power.limit'][0]) * 0.06:.2f}", "W")
    return values


def query(fields: list[str], options: list[str]) -> None:
    rows = [query_row(folder, i) for i, folder in enumerate(gpus())]
    for name in fields:
        if name not in rows[0]:
            print(f'Field "{name}" is not a valid field to query.')
            sys.exit(2)
    units = "nounits" not in options
    if "noheader" not in options:
        print(", ".join(f"{f} [{rows[0][f][1]}]" if rows[0][f][1] and units else f
                        for f in fields))
    for row in rows:
        print(", ".join(f"{row[f][0]} {row[f][1]}" if row[f][1] and units else row[f][0]
                        for f in fields))


def _right(text: str, match: re.Match) -> str:
    """``text`` right-aligned in the width the captured value and its padding had."""
    return f"{text:>{len(match.group(1)) + len(match.group(2)) + 3}} /"


def plain() -> None:
    folders = gpus()
    lines = (folders[0] / "nvidia-smi.txt").read_text().splitlines()
    head_end = next(i for i, line in enumerate(lines) if line.startswith("|===")) + 1
    block = lines[head_end:head_end + 4]
    rest = lines[head_end + 4:]
    out = lines[:head_end]
    used = used_mib()
    for index, folder in enumerate(folders):
        first, second, third, rule = (folder / "nvidia-smi.txt").read_text().splitlines()[
            head_end:head_end + 4] if folder != folders[0] else block
        capture_bus = re.search(r"[0-9A-F]{8}:[0-9A-F]{2}:[0-9A-F]{2}\.\d", first).group(0)
        first = first.replace(capture_bus, bus_id(capture_bus, index))
        first = re.sub(r"^\|\s+\d+ ", f"| {index:>3} ", first)
        second = re.sub(r"(\s*)(\d+)MiB /", lambda m: _right(f"{used}MiB", m), second, count=1)
        out += [first, second, third, rule]
    print("\n".join(out + rest))


def xml() -> None:
    folders = gpus()
    root = ET.fromstring((folders[0] / "nvidia-smi-q.xml").read_text())
    for gpu in root.findall("gpu"):
        root.remove(gpu)
    used = used_mib()
    for index, folder in enumerate(folders):
        gpu = ET.fromstring((folder / "nvidia-smi-q.xml").read_text()).find("gpu")
        new_bus = bus_id(gpu.get("id"), index)
        gpu.set("id", new_bus)
        gpu.find("minor_number").text = str(index)
        gpu.find("pci/pci_bus_id").text = new_bus
        memory = gpu.find("fb_memory_usage")
        total = int(memory.findtext("total").split()[0])
        reserved = int(memory.findtext("reserved").split()[0])
        memory.find("used").text = f"{used} MiB"
        memory.find("free").text = f"{total - reserved - used} MiB"
        root.append(gpu)
    root.find("attached_gpus").text = str(len(folders))
    ET.indent(root, space="\t")
    print('<?xml version="1.0" ?>')
    print('<!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_v13.dtd">')
    print(ET.tostring(root, encoding="unicode"))


def main(args: list[str]) -> None:
    query_fields = next((a.split("=", 1)[1] for a in args if a.startswith("--query-gpu=")), None)
    formats = next((a.split("=", 1)[1] for a in args if a.startswith("--format=")), "")
    if query_fields:
        if not formats.startswith("csv"):
            print('Invalid combination of input arguments. Please run "nvidia-smi -h" for help.')
            sys.exit(2)
        query(query_fields.split(","), formats.split(","))
    elif "-q" in args and "-x" in args:
        xml()
    elif args == ["-L"]:
        for index, folder in enumerate(gpus()):
            row = query_row(folder, index)
            print(f"GPU {index}: {row['name'][0]} (UUID: {row['uuid'][0]})")
    elif not args:
        plain()
    else:
        print('Invalid combination of input arguments. Please run "nvidia-smi -h" for help.')
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
