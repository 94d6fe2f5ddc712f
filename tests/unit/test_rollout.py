"""Rolling batches: who rolls, in which batch, and when the roll stops."""

from __future__ import annotations

from operations.rollout import batch_size
from operations.runstate import Plan


def plan(serving: dict[str, bool], changes: dict[str, bool], size: int) -> Plan:
    return Plan(order=list(serving), serving=serving, changes=changes, size=size)


def test_batch_size_takes_a_count_or_a_percentage_of_the_fleet_and_is_at_least_one():
    assert batch_size(3, 20) == 3
    assert batch_size("25%", 20) == 5
    assert batch_size("25%", 3) == 1  # never zero hosts at a time
    assert batch_size("100%", 8) == 8


def test_a_first_deploy_goes_at_once_nothing_is_serving_yet():
    names = [f"gpu-{i}" for i in range(5)]
    first = plan({n: False for n in names}, {n: True for n in names}, size=1)
    assert first.batches() == [names]


def test_only_serving_hosts_that_change_roll_in_inventory_order():
    serving = {"a": True, "b": True, "c": False, "d": True, "e": True}
    changes = {"a": True, "b": False, "c": True, "d": True, "e": True}
    rolled = plan(serving, changes, size=2)
    # b has nothing to change and c has no capacity to lose: both go at once, in batch 0.
    assert rolled.batches() == [["b", "c"], ["a", "d"], ["e"]]
    assert [rolled.batch_of(n) for n in "abcde"] == [1, 0, 0, 1, 2]
    assert rolled.batch_of("not-planned") is None


def test_a_failed_rolling_batch_stops_later_batches_but_batch_zero_failures_do_not():
    serving = {"a": True, "b": True, "c": True, "new": False}
    rolled = plan(serving, {n: True for n in serving}, size=1)
    assert rolled.batches() == [["new"], ["a"], ["b"], ["c"]]
    assert rolled.stopped_before(2, failed={"new"}) == []
    assert rolled.stopped_before(2, failed={"a"}) == ["a"]
    assert rolled.stopped_before(3, failed={"a"}) == ["a"]
    assert rolled.stopped_before(1, failed={"a"}) == []
