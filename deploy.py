"""Converge every host of the inventory to a healthy SGLang service.

    pyinfra inventory.py deploy.py

Only orders the stages; each stage is a module of operations/.
"""

from operations import health, preflight, python_env, run, service, system_packages

settings = run.host_settings("deploy")

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
