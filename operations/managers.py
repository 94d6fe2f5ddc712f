"""The service managers a worker's server runs under, and the names it has under them.

Example::

    from operations.managers import SERVICE_UNIT
    host.get_fact(UnitState, unit=SERVICE_UNIT)
"""

from __future__ import annotations

SERVICE_UNIT = "sglang.service"
