"""This run's view of the fleet, owned by one object: every host's validated settings, the
model pins, what the Hub refused, and the rollout plan. operations/run.py fills it once per run,
before any host changes (the deploy file loads once per host, in greenlets: the first load
fills it, the others find it filled); everything else asks for it with ``current()``.

Example::

    pin = runstate.current().pins.get(host.name)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from operations.hub import HubError, Pin
from operations.settings import Settings


@dataclass
class Plan:
    """Filled by ``plan_fleet`` when the deploy is loaded, before any host changes."""

    planned: bool = False
    order: list[str] = field(default_factory=list)  # the inventory's
    serving: dict[str, bool] = field(default_factory=dict)
    changes: dict[str, bool] = field(default_factory=dict)
    size: int = 1
    untouched: set[str] = field(default_factory=set)

    def batches(self) -> list[list[str]]:
        order = [name for name in self.order if name in self.serving]
        rolling = [n for n in order if self.serving[n] and self.changes[n]]
        first = [n for n in order if n not in rolling]
        return [first] + [rolling[i:i + self.size] for i in range(0, len(rolling), self.size)]

    def batch_of(self, name: str) -> int | None:
        return next((number for number, members in enumerate(self.batches())
                     if name in members), None)

    def stopped_before(self, number: int, failed: set[str]) -> list[str]:
        """Hosts of earlier rolling batches that failed: any stops the roll."""
        return [n for batch in self.batches()[1:number] for n in batch if n in failed]


@dataclass
class RunState:
    settings: dict[str, Settings] = field(default_factory=dict)  # host -> validated, unpinned
    pinned: bool = False  # the pins below were read (from the lock file, or the Hub)
    pins: dict[str, Pin] = field(default_factory=dict)  # host -> its model's pin
    refused: dict[str, HubError] = field(default_factory=dict)  # host -> what the Hub said
    plan: Plan = field(default_factory=Plan)
    locked: bool = False  # the run lock was settled (operations/runlock.py)
    left_alone: dict[str, str] = field(default_factory=dict)  # host -> whose run holds it


_CURRENT = RunState()


def current() -> RunState:
    return _CURRENT
