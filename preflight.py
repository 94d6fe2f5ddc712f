"""Check every host against the chart's before-build checklist; changes nothing.

    pyinfra inventory.py preflight.py
    pyinfra @local preflight.py          # on the GPU host itself
"""

from operations import gateway, preflight, run

settings = run.host_settings("preflight")

if not gateway.is_gateway():  # a gateway has no GPU: the checklist is the workers'
    preflight.checklist(name="Preflight: the chart's before-build checklist", settings=settings)
