"""Diagnose every host of the inventory read-only: healthy, or the chart's symptom with its
evidence, cause and fix. Exits non-zero if any host is unhealthy.

    pyinfra inventory.py diagnose.py
    pyinfra inventory.py diagnose.py --data remediate=true    # and apply the chart's fixes
"""

from dataclasses import replace

from pyinfra import host

from operations import pipeline, roles, run
from operations.outcome import Done

settings = run.host_settings("diagnose")

# Read-only unless asked for explicitly (deploy.py remediates by default, diagnose does not).
asked = str(host.data.get("remediate", "false")).lower() == "true"
if run.allowed() and roles.is_worker():  # the chart's symptoms are the workers'
    for stage in pipeline.DIAGNOSE:
        stage.apply(replace(settings, remediate=asked), Done())
