"""Stage 5, the service: render the unit and environment file from the profile's intents in the
flags the installed SGLang accepts, dry-parse the exact argv with that SGLang's own parser, and
only then write them (the dry-parse runs SGLang's own validation too).

Example::

    from operations.stages import service
    service.apply(settings, done)   # done.unit: the unit written
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.files import FileContents, Sha256File

from operations import remediation, secrets, survey
from operations.facts.gpu import NvidiaGpus
from operations.facts.venv import VenvExists
from operations.managers import MANAGERS, WRAPPER
from operations.outcome import Done
from operations.report import note
from operations.server_files import (
    API_KEY_PATH,
    ENV_PATH,
    UNIT_PATH,
    other_manager_retired,
    written,
)
from operations.settings import Settings
from operations.snapshot import model_config_path
from operations.venv import options_path


def reads(settings: Settings) -> list[survey.Read]:
    """What ``configured`` reads on a run that changes nothing (operations/survey.py)."""
    api_key = "SGLANG_API_KEY" in secrets.load(host.name, settings)
    return [survey.Read(VenvExists, {"venv": settings.venv_dir}),
            survey.Read(FileContents, {"path": remediation.state_path(settings)}),
            survey.Read(FileContents, {"path": options_path(settings)}), survey.Read(NvidiaGpus),
            survey.Read(FileContents, {"path": model_config_path(settings)}),
            *secrets.private_reads(ENV_PATH),
            *(secrets.private_reads(API_KEY_PATH) if api_key else []),
            *(read for path in (*(m.config_path for m in MANAGERS.values()), WRAPPER)
              for read in (survey.Read(Sha256File, {"path": path}), *survey.put_reads(path)))]
    # (either manager's definition: which one the host gets is read with these, from PID 1)


@operation(is_idempotent=True)
def configured(settings: Settings):
    """Render, dry-parse and write the unit and its environment file, with any fallback the
    remediation recorded on the host on top of the settings.

    + settings: the host's validated settings
    """
    if not host.get_fact(VenvExists, venv=settings.venv_dir):
        yield f"echo 'render {UNIT_PATH} once the venv exists'"
        return  # prepare phase of a first run; at execution the venv exists
    record = remediation.read_record(settings)
    if record.get("overrides"):
        note(host.name, f"runs on a fallback: {record['overrides']} "
                        f"({record['history'][-1]['remedy'] if record.get('history') else ''})")
    yield from written(remediation.effective(settings, record))




def apply(settings: Settings, done: Done) -> None:
    """The unit and its environment file; records the write."""
    other_manager_retired(name="Only one manager runs the server",
                          setting=settings.service_manager)
    done.unit = configured(name="sglang.service rendered, dry-parsed and written",
                           settings=settings)
