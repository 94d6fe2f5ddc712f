"""Check every host against the chart's before-build checklist; changes nothing.

    pyinfra inventory.py preflight.py
    pyinfra @local preflight.py          # on the GPU host itself
"""

from operations import roles, run
from operations.stages import preflight

settings = run.host_settings("preflight")

if run.allowed() and roles.is_worker():  # gateways, wheelhouses: no GPU
    preflight.checklist(name="Preflight: the chart's before-build checklist", settings=settings)
