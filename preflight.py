"""Check every host against the chart's before-build checklist; changes nothing.

    pyinfra inventory.py preflight.py
    pyinfra @local preflight.py          # on the GPU host itself
"""

from operations import pipeline, roles, run
from operations.outcome import Done

settings = run.host_settings("preflight")

if run.allowed() and roles.is_worker():  # gateways, wheelhouses: no GPU
    for stage in pipeline.PREFLIGHT:
        stage.apply(settings, Done())
