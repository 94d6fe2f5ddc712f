"""Converge every host of the inventory to a healthy SGLang service.

    pyinfra inventory.py deploy.py

Only orders the stages; each stage is a module of operations/.
"""

from pyinfra import host, inventory

from operations import health, preflight, python_env, secrets, service, system_packages
from operations.connection import guard_lost_hosts
from operations.report import fleet_report
from operations.settings import fleet_settings

# Validates every host first: one bad setting anywhere stops the run before any host is touched.
fleet = fleet_settings({h.name: h.data.dict() for h in inventory})
for name, host_settings in fleet.items():
    secrets.load(name, host_settings)  # unreadable secrets stop the run before any host
settings = fleet[host.name]
guard_lost_hosts()
fleet_report("deploy")

preflight.checklist(name="Preflight: the chart's before-build checklist", settings=settings)
system_packages.install(settings)
venv = python_env.stack_installed(name="Python venv holds the stack's exact pins",
                                  settings=settings)
python_env.stack_checked(name="Kernel package imports next to torch; arch list covers the GPUs",
                         settings=settings, venv=venv)
unit = service.configured(name="sglang.service rendered, dry-parsed and written",
                          settings=settings)
restart = health.restarted(name="Restart sglang.service after a change or when unhealthy",
                           settings=settings, changes=[venv, unit])
health.enabled_and_running()
health.serving(name="Healthy: /health 200 and a generate returns tokens", settings=settings,
               restart=restart)
