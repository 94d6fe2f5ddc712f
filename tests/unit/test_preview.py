"""The plan a preview prints: read from the operations' detected changes and the rollout plan
the real run follows."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pyinfra.api.operation import OperationMeta

from operations import preview, runstate


@pytest.fixture
def fleet(monkeypatch):
    names = ["gpu-01", "gpu-02", "gpu-03", "gpu-04"]
    monkeypatch.setattr(preview, "state",
                        SimpleNamespace(inventory=[SimpleNamespace(name=n) for n in names]))
    monkeypatch.setattr(preview, "WATCHED", {})
    monkeypatch.setattr(preview, "REFUSED", {})
    plan = runstate.Plan(planned=True, order=names, size=1,
                        serving={"gpu-01": True, "gpu-02": True, "gpu-03": False,
                                 "gpu-04": True},
                        changes={"gpu-01": True, "gpu-02": True, "gpu-03": True,
                                 "gpu-04": False})
    monkeypatch.setattr(runstate.current(), "plan", plan)
    return names


def watched(name: str, stack: bool, unit: bool, restart: bool) -> None:
    preview.WATCHED[name] = {"stack": OperationMeta("s", stack), "unit": OperationMeta("u", unit),
                             "restart": OperationMeta("r", restart)}


def test_the_plan_names_stack_unit_and_restarts_in_their_rolling_batches(fleet):
    watched("gpu-01", stack=False, unit=True, restart=True)
    watched("gpu-02", stack=True, unit=True, restart=True)
    watched("gpu-03", stack=True, unit=True, restart=True)  # a new host: nothing to roll
    watched("gpu-04", stack=False, unit=False, restart=False)
    assert preview.lines() == [
        "install or change the stack: gpu-02, gpu-03",
        "write a new unit: gpu-01, gpu-02, gpu-03",
        "(re)start at once, nothing to roll (not serving yet): gpu-03",
        "restart in rolling batch 1 (each batch healthy before the next): gpu-01",
        "restart in rolling batch 2 (each batch healthy before the next): gpu-02",
    ]


def test_a_host_failing_preflight_is_named_with_its_lines_and_in_no_other_line(fleet):
    watched("gpu-01", stack=False, unit=True, restart=True)
    preview.REFUSED["gpu-02"] = ["gpu-02: preflight: disk: found 3 GB free"]
    found = preview.lines()
    assert "fail preflight, changing nothing: gpu-02" in found
    assert "  gpu-02: preflight: disk: found 3 GB free" in found
    assert not [line for line in found if "gpu-02" in line and "preflight" not in line]
    assert not [line for line in found if "rolling batch 2" in line]  # nothing left in it


def test_a_no_op_plans_no_restart(fleet, monkeypatch):
    monkeypatch.setattr(runstate.current(), "plan", runstate.Plan(planned=True, order=fleet, size=1,
                                                      serving=dict.fromkeys(fleet, True),
                                                      changes=dict.fromkeys(fleet, False)))
    for name in fleet:
        watched(name, stack=False, unit=False, restart=False)
    assert preview.lines() == ["install or change the stack: none", "write a new unit: none",
                               "restart: none"]
