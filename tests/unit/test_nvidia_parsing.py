"""nvidia-smi parsing on outputs captured from real hosts (H100 host, RTX 5090 public report)
and on the lab's simulated formats."""

from __future__ import annotations

import pytest

from operations import nvidia
from tests.conftest import CAPTURES, FIXTURES

H100 = FIXTURES / "gpu-hosts" / "h100-ubuntu2404"


def test_query_csv_with_header_and_units_from_real_h100():
    header, row, _ = (H100 / "query-gpu.csv").read_text().splitlines()
    [gpu] = nvidia.parse_query_csv(f"{header}\n{row}\n")
    assert gpu == nvidia.Gpu(index=0, name="NVIDIA H100 80GB HBM3", memory_total_mib=81559,
                             memory_used_mib=0, driver_version="580.159.04", compute_cap="9.0")


def test_query_csv_noheader_nounits_uses_the_queried_fields():
    *_, bare = (H100 / "query-gpu.csv").read_text().splitlines()
    [gpu] = nvidia.parse_query_csv(bare, fields=("name", "memory.total", "driver_version",
                                                 "compute_cap"))
    assert (gpu.name, gpu.memory_total_mib, gpu.compute_cap) == ("NVIDIA H100 80GB HBM3",
                                                                 81559, "9.0")


def test_plain_table_from_real_h100():
    driver, cuda, [gpu] = nvidia.parse_plain((H100 / "nvidia-smi.txt").read_text())
    assert (driver, cuda) == ("580.159.04", "13.0")
    assert (gpu.name, gpu.memory_total_mib, gpu.memory_used_mib) == (
        "NVIDIA H100 80GB HBM3", 81559, 0)


def test_plain_rows_from_public_rtx5090_report():
    driver, cuda, [gpu] = nvidia.parse_plain((FIXTURES / "gpu-hosts" /
                                              "rtx5090-public.txt").read_text())
    assert (driver, cuda) == ("570.153.02", "12.8")
    assert gpu.name == "NVIDIA GeForce RTX 5090"
    assert (gpu.memory_total_mib, gpu.memory_used_mib) == (32607, 765)


def test_xml_from_real_h100():
    driver, cuda, [gpu] = nvidia.parse_xml((H100 / "nvidia-smi-q.xml").read_text())
    assert (driver, cuda, gpu.memory_total_mib, gpu.name) == (
        "580.159.04", "13.0", 81559, "NVIDIA H100 80GB HBM3")


@pytest.mark.parametrize("capture", sorted(p.name for p in CAPTURES.iterdir() if p.is_dir()))
def test_every_lab_capture_agrees_across_its_three_formats(capture):
    folder = CAPTURES / capture
    [from_csv] = nvidia.parse_query_csv((folder / "query-gpu.csv").read_text())
    driver, cuda, [from_plain] = nvidia.parse_plain((folder / "nvidia-smi.txt").read_text())
    xml_driver, xml_cuda, [from_xml] = nvidia.parse_xml((folder / "nvidia-smi-q.xml").read_text())
    assert driver == xml_driver == from_csv.driver_version
    assert cuda == xml_cuda
    assert from_csv.memory_total_mib == from_plain.memory_total_mib == from_xml.memory_total_mib
    assert from_csv.name == from_plain.name == from_xml.name


@pytest.mark.parametrize("host", ["h100-ubuntu2404", "h100-device"])
def test_real_host_outputs_agree_across_formats(host):
    folder = FIXTURES / "gpu-hosts" / host
    header, row = (folder / "query-gpu.csv").read_text().splitlines()[:2]
    [from_csv] = nvidia.parse_query_csv(f"{header}\n{row}\n")
    driver, cuda, [from_plain] = nvidia.parse_plain((folder / "nvidia-smi.txt").read_text())
    xml_driver, xml_cuda, [from_xml] = nvidia.parse_xml((folder / "nvidia-smi-q.xml").read_text())
    assert (driver, cuda) == (xml_driver, xml_cuda) == ("580.159.04", "13.0")
    assert from_csv.compute_cap == "9.0"
    assert from_csv.memory_total_mib == from_plain.memory_total_mib == from_xml.memory_total_mib


def test_gpu_fact_is_json_data_for_pyinfras_fact_command():
    """Found on the real H100 host: `pyinfra @local fact ...NvidiaGpus` could not print
    dataclasses; the fact now returns plain dicts."""
    import json

    from operations.facts.gpu import NvidiaGpus
    header, row = (H100 / "query-gpu.csv").read_text().splitlines()[:2]
    bare = f"0, {row.split(', ')[1]}, 81559, 0, 580.159.04, 9.0"
    plain = (H100 / "nvidia-smi.txt").read_text().splitlines()[:4]
    fact = NvidiaGpus().process([bare, "---", *plain, "__exit__=0"])
    assert json.loads(json.dumps(fact))["gpus"][0]["compute_cap"] == "9.0"
    assert (fact["driver"], fact["cuda"]) == ("580.159.04", "13.0")
