"""The server's files on a worker: the unit and its environment file rendered from the
profile's intents in the flags the installed SGLang accepts, the exact argv dry-parsed with
that SGLang's own parser and validation, and only then written. Used by the service stage, and
by the remedies that rewrite the unit with a fallback (operations/remediation.py).

Example::

    yield from written(settings)   # inside an operation
"""

from __future__ import annotations

import hashlib
import json
import shlex
from io import StringIO
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pyinfra import host
from pyinfra.api import StringCommand, operation
from pyinfra.api.state import StateStage
from pyinfra.facts.files import FileContents, Sha256File
from pyinfra.operations import files

from operations import FILES_DIR, preview, secrets
from operations.facts.gpu import NvidiaGpus
from operations.facts.python import PythonJson
from operations.facts.venv import SGLANG_DRY_PARSE_CODE, SGLANG_OPTIONS_CODE, refusal_line
from operations.managers import (
    MANAGERS,
    SUPERVISOR_PREFIX,
    WRAPPER,
    Manager,
    of_host,
    program_log,
)
from operations.outcome import fail
from operations.render import (
    API_KEY_CREDENTIAL,
    API_KEY_FLAGS,
    RenderError,
    ServerCommand,
    dry_parse_arguments,
    server_command,
)
from operations.settings import Settings
from operations.snapshot import model_config_path
from operations.venv import options_path

UNIT_PATH = MANAGERS["systemd"].config_path



ENV_PATH = "/etc/sglang/sglang.env"



API_KEY_PATH = "/etc/sglang/api-key.json"
# Under supervisord: where the wrapper puts the API key's config for the service user alone
# (systemd's credentials directory, %d, in the unit).
CREDENTIALS_DIR = "/run/sglang/credentials"
MIN_STOP_WAIT_S = 30


def stop_wait_s(settings: Settings) -> int:
    """The server's stop timeout: the time SGLang's drain (SIGTERM) gets before SIGKILL."""
    return max(MIN_STOP_WAIT_S, settings.drain_timeout_s)



_templates = Environment(loader=FileSystemLoader(FILES_DIR), undefined=StrictUndefined,
                         trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)



def systemd_word(word: str) -> str:
    """Quote one argv word for ExecStart (systemd.service(5): specifiers and variables)."""
    if word.startswith("%d/") and word[3:].replace(".", "").replace("-", "").isalnum():
        return word  # the credentials directory specifier, on purpose
    escaped = word.replace("%", "%%").replace("$", "$$")
    if escaped and all(c.isalnum() or c in "._/:=,+@-" for c in escaped):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'



def env_value(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'



def supervisor_word(word: str) -> str:
    """Quote one argv word for a supervisor program's ``command=`` (shell-like words, and %
    expands supervisor's own variables)."""
    return shlex.quote(word).replace("%", "%%")


def render_files(settings: Settings, command: ServerCommand, sglang_version: str,
                 manager: Manager = MANAGERS["systemd"]) -> dict[str, str]:
    """The server's definition under its manager (a unit, or a supervisor program) and its
    environment file, without secrets (pure: golden-tested)."""
    context: dict[str, Any] = {
        "settings": settings, "profile": settings.profile_def(), "stack": settings.stack_def(),
        "sglang_version": sglang_version, "env_file": ENV_PATH,
        "environment": {k: env_value(v) for k, v in command.environment.items()},
        "stop_wait_s": stop_wait_s(settings),
    }
    if manager.name == "supervisor":  # the API key's config: where the wrapper copies it
        argv = [CREDENTIALS_DIR + word[2:] if word.startswith("%d/") else word
                for word in command.argv]
        program = manager.runner.removeprefix(SUPERVISOR_PREFIX)
        context |= {"program": program, "log_file": program_log(program),
                    "command": " ".join(supervisor_word(w) for w in [
                        WRAPPER, settings.service_user, ENV_PATH, CREDENTIALS_DIR, "--", *argv])}
        template = "sglang-supervisor.conf.j2"
    else:
        context |= {"api_key_credential": f"{API_KEY_CREDENTIAL}:{API_KEY_PATH}"
                    if API_KEY_FLAGS[1] in command.argv else None,
                    "exec_start": " ".join(systemd_word(w) for w in command.argv)}
        template = "sglang.service.j2"
    return {manager.config_path: _templates.get_template(template).render(context),
            ENV_PATH: _templates.get_template("sglang.env.j2").render(context)}


def rejection(host_name: str, result: dict, sglang_version: str) -> str:
    return (f"{host_name}: SGLang {sglang_version} refuses the server argv, the service was "
            f"left as it was: {refusal_line(result.get('error', ''))}")



def read_model_config(settings: Settings) -> dict[str, Any] | None:
    """The served model's config.json (what it is, its quantization included); None while a
    run's prepare phase looks before stage 3 has staged the snapshot."""
    path = model_config_path(settings)
    lines = host.get_fact(FileContents, path=path)
    if not lines:
        if host.state.current_stage != StateStage.Execute:
            return None
        return {"error": f"the model's config.json is not at {path}: the model is not staged"}
    try:
        config = json.loads("\n".join(lines))
    except ValueError:
        config = None
    if not isinstance(config, dict):
        return {"error": f"the model's config.json at {path} is not a JSON object"}
    return config



def written(settings: Settings):
    """The commands that render, dry-parse and write the unit for ``settings``."""
    cached = host.get_fact(FileContents, path=options_path(settings))
    try:
        parser = json.loads("\n".join(cached)) if cached else {"error": "no options cache"}
    except ValueError:
        parser = {"error": "unreadable options cache"}
    if "error" in parser:
        parser = host.get_fact(PythonJson, python=settings.python, code=SGLANG_OPTIONS_CODE)
    if "error" in parser:
        yield fail([f"{host.name}: cannot read the installed SGLang's flags: "
                    + " | ".join(parser["error"].strip().splitlines()[-3:])])
        return
    gpu_count = len(host.get_fact(NvidiaGpus)["gpus"])
    model_config = read_model_config(settings)
    if model_config is None:
        return
    if "error" in model_config:
        yield fail([f"{host.name}: {model_config['error']}"])
        return
    secret = secrets.load(host.name, settings)
    try:
        command = server_command(settings, gpu_count, parser["options"], parser["version"],
                                 model_config, api_key="SGLANG_API_KEY" in secret)
    except RenderError as error:
        yield fail([f"{host.name}: {error}"])
        return
    manager = of_host(settings.service_manager)
    definition = manager.config_path
    rendered = render_files(settings, command, parser["version"], manager)
    unchanged = host.get_fact(Sha256File, path=definition) == hashlib.sha256(
        rendered[definition].encode()).hexdigest()
    # The unit names the SGLang version: the same unit is the same argv for the same parser,
    # already accepted when it was written.
    if not unchanged:
        parsed = host.get_fact(PythonJson, python=settings.python, code=SGLANG_DRY_PARSE_CODE,
                               **dry_parse_arguments(command.argv, command.environment))
        if "error" in parsed:
            yield fail([rejection(host.name, parsed, parser["version"])])
            return
    preview.show_diff(definition, rendered[definition])
    preview.show_diff(ENV_PATH, rendered[ENV_PATH])
    # No HF_TOKEN here: the server runs offline; only a host that fetches has the token
    # (operations/stages/weights.py).
    yield from secrets.put_private(ENV_PATH, rendered[ENV_PATH])
    if "SGLANG_API_KEY" in secret:
        yield from secrets.put_private(API_KEY_PATH,
                                       secrets.api_key_config(secret["SGLANG_API_KEY"]))
    if manager.name == "supervisor":
        yield from files.put._inner(src=str(FILES_DIR / "sglang-supervised.sh"), dest=WRAPPER,
                                    mode="755")
    yield from files.put._inner(src=StringIO(rendered[definition]), dest=definition, mode="644")


@operation(is_idempotent=True)
def other_manager_retired(setting: str):
    """One server per host: after ``service_manager`` changed, the other manager's definition
    of it is stopped and removed, so it neither holds the port nor comes back at a boot.

    + setting: the host's ``service_manager``
    """
    manager = of_host(setting)
    for other in MANAGERS.values():
        if other.name != manager.name and host.get_fact(Sha256File, path=other.config_path):
            yield StringCommand(other.retire)
