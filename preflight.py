"""Check every host against the chart's before-build checklist; changes nothing.

    pyinfra inventory.py preflight.py
    pyinfra @local preflight.py          # on the GPU host itself
"""

from operations import pipeline, roles, run
from operations.outcome import Done, refused_without_systemd

settings = run.host_settings("preflight")

if run.allowed():
    if roles.is_worker():
        for stage in pipeline.PREFLIGHT:
            stage.apply(settings, Done())
    # gateways, wheelhouses: no GPU; their services need systemd
    for role, has_it in (("gateway", roles.is_gateway()), ("wheelhouse", roles.is_wheelhouse())):
        if has_it and refused_without_systemd(role):
            break
