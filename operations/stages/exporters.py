"""The figures a monitoring host scrapes from every host of a monitored fleet: the distribution's
node exporter (node figures; port 9100), and on workers the GPU and server figures
(files/sglang_textfile.py: nvidia-smi, /health, the service manager's restarts) written every
15 s for its textfile collector. Under systemd they are services; on a host without systemd (a
rented container) supervisord runs them. Nothing is installed when the inventory has no
monitoring host.

Example::

    from operations.stages import exporters
    exporters.apply(settings, done)
"""

from __future__ import annotations

from pyinfra.api.operation import OperationMeta
from pyinfra.operations import apt, files, systemd

from operations import FILES_DIR, restarts, supervisor, survey
from operations.facts.service import UnitState
from operations.managers import (
    SUPERVISOR_PREFIX,
    of_host,
    program_conf,
    program_log,
    starts_log,
)
from operations.outcome import Done
from operations.roles import is_worker
from operations.scrape import TEXTFILE, TEXTFILE_DIR, scraped
from operations.settings import Settings

NODE_EXPORTER = "prometheus-node-exporter"
NODE_EXPORTER_UNIT = f"{NODE_EXPORTER}.service"
TEXTFILE_PROGRAM = "/usr/local/lib/sglang-fleet/sglang_textfile.py"
TEXTFILE_UNIT = "sglang-textfile.service"
TEXTFILE_EVERY_S = 15
# Under supervisord: the programs' names
NODE_PROGRAM, FIGURES_PROGRAM = "sglang-node-exporter", "sglang-textfile"


def _supervised(settings: Settings) -> bool:
    return is_worker() and of_host(settings.service_manager).name == "supervisor"


def reads(settings: Settings) -> list[survey.Read]:  # noqa: ARG001 (every stage's face)
    """What ``apply`` reads on a run that changes nothing (operations/survey.py): a worker's
    reads under either manager (which one it has is read with these, from PID 1)."""
    if not scraped():
        return []
    found = [*survey.apt_reads(), *survey.service_reads(NODE_EXPORTER_UNIT)]
    if is_worker():
        found += [*survey.put_reads(TEXTFILE_PROGRAM),
                  *survey.put_reads(f"/etc/systemd/system/{TEXTFILE_UNIT}"),
                  *survey.service_reads(TEXTFILE_UNIT)]
        for program in (NODE_PROGRAM, FIGURES_PROGRAM):
            found += [*survey.put_reads(program_conf(program)),
                      survey.Read(UnitState, {"unit": SUPERVISOR_PREFIX + program})]
    return found


def apply(settings: Settings, done: Done) -> None:  # noqa: ARG001 (every stage's face)
    if not scraped():
        return
    apt.packages(name="Install the node exporter", packages=[NODE_EXPORTER], update=True,
                 cache_time=24 * 3600, extra_install_args="--no-install-recommends")
    figures = files.put(name="The worker's figures for the textfile collector",
                        src=str(FILES_DIR / "sglang_textfile.py"), dest=TEXTFILE_PROGRAM,
                        mode="755") if is_worker() else None
    if _supervised(settings):
        supervised(settings, figures)
        return
    systemd.service(name="Node exporter enabled and running", service=NODE_EXPORTER_UNIT,
                    running=True, enabled=True)
    if figures is None:
        return
    unit = files.template(
        name=f"{TEXTFILE_UNIT}: GPU and server figures every {TEXTFILE_EVERY_S} s",
        src=str(FILES_DIR / "monitoring" / "sglang-textfile.service.j2"),
        dest=f"/etc/systemd/system/{TEXTFILE_UNIT}", settings=settings,
        program=TEXTFILE_PROGRAM, textfile=TEXTFILE, textfile_dir=TEXTFILE_DIR,
        every_s=TEXTFILE_EVERY_S)
    restarts.after(name=f"{TEXTFILE_UNIT} restarted after a change", service=TEXTFILE_UNIT,
                   changes=[unit, figures], daemon_reload=True)
    systemd.service(name=f"{TEXTFILE_UNIT} enabled and running", service=TEXTFILE_UNIT,
                    running=True, enabled=True)


def supervised(settings: Settings, figures: OperationMeta | None) -> None:
    """Both as supervisord programs (the container's own supervisord, which runs the server)."""
    runner = of_host(settings.service_manager).runner.removeprefix(SUPERVISOR_PREFIX)
    programs = {
        NODE_PROGRAM: ("the node exporter", "prometheus",
                       f"/usr/bin/{NODE_EXPORTER} --collector.textfile.directory={TEXTFILE_DIR}",
                       []),
        FIGURES_PROGRAM: ("the worker's GPU and server figures", "root",
                          f"/usr/bin/python3 {TEXTFILE_PROGRAM} {TEXTFILE} {settings.port} "
                          f"supervisor:{starts_log(runner)} {TEXTFILE_EVERY_S}", [figures]),
    }
    for program, (what, user, command, inputs) in programs.items():
        conf = files.template(
            name=f"supervisor program {program}: {what}",
            src=str(FILES_DIR / "monitoring" / "supervised-program.conf.j2"),
            dest=program_conf(program), what=what, program=program, command=command, run_as=user,
            log_file=program_log(program))
        supervisor.updated_after(name=f"supervisor program {program} restarted after a change",
                                 program=program, changes=[conf, *filter(None, inputs)])
        supervisor.program_running(name=f"supervisor program {program} running",
                                   program=program, judged_later=False)

