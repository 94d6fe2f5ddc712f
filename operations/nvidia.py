"""Parsers for nvidia-smi's real output formats (plain table, --query-gpu CSV, -q -x XML).

Pure functions over text, so they are tested on outputs captured from real hosts
(tests/fixtures/gpu-hosts).
"""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

# The fields the toolkit asks nvidia-smi for, in this order.
QUERY_FIELDS = ("index", "name", "memory.total", "memory.used", "driver_version", "compute_cap")


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    memory_total_mib: int
    memory_used_mib: int | None = None
    driver_version: str | None = None
    compute_cap: str | None = None


def _mib(value: str) -> int:
    return int(value.strip().removesuffix("MiB").strip())


def parse_query_csv(text: str, fields: tuple[str, ...] = QUERY_FIELDS) -> list[Gpu]:
    """Parse ``--query-gpu=...`` output, with or without header and units.

    A header names the fields (``memory.total [MiB]``); without one (``noheader``) the columns
    are ``fields``, the list that was queried.
    """
    rows = [r for r in csv.reader(io.StringIO(text), skipinitialspace=True) if r]
    if not rows:
        return []
    names = [re.sub(r"\s*\[.*\]$", "", h.strip()) for h in rows[0]]
    if "name" in names and "memory.total" in names:
        header, rows = names, rows[1:]
    else:
        header = list(fields)
    gpus = []
    for position, row in enumerate(rows):
        values = dict(zip(header, (v.strip() for v in row), strict=False))
        gpus.append(Gpu(
            index=int(values.get("index", position)),
            name=values["name"],
            memory_total_mib=_mib(values["memory.total"]),
            memory_used_mib=_mib(values["memory.used"]) if "memory.used" in values else None,
            driver_version=values.get("driver_version"),
            compute_cap=values.get("compute_cap"),
        ))
    return gpus


_HEADER_RE = re.compile(r"Driver Version:\s*([\d.]+)\s+CUDA Version:\s*([\d.]+)")
_ROW1_RE = re.compile(r"^\|\s+(\d+)\s+(.+?)\s+(On|Off)\s+\|")
_MEM_RE = re.compile(r"(\d+)MiB\s*/\s*(\d+)MiB")


def parse_plain(text: str) -> tuple[str | None, str | None, list[Gpu]]:
    """Parse plain ``nvidia-smi``: (driver version, CUDA version, GPUs)."""
    header = _HEADER_RE.search(text)
    driver, cuda = (header.group(1), header.group(2)) if header else (None, None)
    gpus: list[Gpu] = []
    lines = text.splitlines()
    for number, line in enumerate(lines):
        first = _ROW1_RE.match(line)
        if not first or number + 1 >= len(lines):
            continue
        memory = _MEM_RE.search(lines[number + 1])
        if memory:
            gpus.append(Gpu(index=int(first.group(1)), name=first.group(2).strip(),
                            memory_total_mib=int(memory.group(2)),
                            memory_used_mib=int(memory.group(1)), driver_version=driver))
    return driver, cuda, gpus


def parse_xml(text: str) -> tuple[str | None, str | None, list[Gpu]]:
    """Parse ``nvidia-smi -q -x``: (driver version, CUDA version, GPUs)."""
    root = ET.fromstring(text)
    driver = root.findtext("driver_version")
    cuda = root.findtext("cuda_version")
    gpus = []
    for position, gpu in enumerate(root.findall("gpu")):
        gpus.append(Gpu(
            index=int(gpu.findtext("minor_number") or position),
            name=(gpu.findtext("product_name") or "").strip(),
            memory_total_mib=_mib(gpu.findtext("fb_memory_usage/total") or "0"),
            memory_used_mib=_mib(gpu.findtext("fb_memory_usage/used") or "0"),
            driver_version=driver,
        ))
    return driver, cuda, gpus
