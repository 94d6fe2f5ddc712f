"""Stage 2, system packages and the chart's "before run" checklist.

Example::

    from operations.stages import system_packages
    system_packages.apply(settings, done)
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.server import Which
from pyinfra.operations import apt, files

from operations import supervisor, survey
from operations.apt_cache import APT_PROXY_FILE, apt_through_cache
from operations.facts.host import UserExists
from operations.managers import LOG_DIR, SUPERVISOR_PREFIX, of_host
from operations.outcome import Done
from operations.roles import apt_proxy
from operations.settings import Settings
from operations.users import system_user

# libnuma: the chart's fix for `libnuma.so.1: cannot open shared object file`. The venv brings
# its own pip (python3-venv); without recommends, no compiler toolchain comes along.
PACKAGES = ["libnuma1", "libnuma-dev", "python3-venv", "ca-certificates"]
STALE_CONTAINER = "sglang"


@operation(is_idempotent=True)
def stale_container_removed(name: str = STALE_CONTAINER):
    """Stop and remove a leftover ``sglang`` docker container: it holds port 8000.

    + name: the container's name
    """
    if not host.get_fact(Which, command="docker"):
        return
    from pyinfra.facts.docker import DockerContainer

    if host.get_fact(DockerContainer, object_id=name):
        yield f"docker rm -f {name}"


def reads(settings: Settings) -> list[survey.Read]:
    """What this stage's operations read on a run that changes nothing (operations/survey.py)."""
    proxy_file = survey.put_reads(APT_PROXY_FILE) if apt_proxy() else []
    return [*proxy_file, *survey.apt_reads(), survey.Read(Which, {"command": "docker"}),
            survey.Read(UserExists, {"user": settings.service_user}),
            *survey.directory_reads(settings.install_dir, settings.model_cache_dir),
            # a container's supervisor (read on every host: which manager is read with these)
            survey.Read(Which, {"command": "supervisord"}), *survey.directory_reads(LOG_DIR)]


def apply(settings: Settings, done: Done) -> None:
    apt_through_cache()
    apt.packages(name="Install libnuma and Python venv tooling", packages=PACKAGES,
                 update=True, cache_time=24 * 3600, extra_install_args="--no-install-recommends")
    stale_container_removed(name="Remove a stale sglang container")
    manager = of_host(settings.service_manager)
    if manager.name == "supervisor":
        supervisor.installed(name="supervisor installed (no systemd here)")
        supervisor.daemon_running(name="supervisord running",
                                  program=manager.runner.removeprefix(SUPERVISOR_PREFIX))
    system_user(name=f"System user {settings.service_user}", user=settings.service_user,
                home=settings.install_dir)
    files.directory(name="Install directory", path=settings.install_dir, mode="755")
    files.directory(name="Model cache directory", path=settings.model_cache_dir,
                    user=settings.service_user, group=settings.service_user, mode="750")
