"""Secrets from the control machine: the Hugging Face token, the SGLang API key and the routers'
control key (what adds and removes workers: the fleet has it, no one else).

They come from the control machine's environment (HF_TOKEN, SGLANG_API_KEY, ROUTER_CONTROL_KEY)
or from a secrets
file outside the repository named by the ``secrets_file`` setting (KEY=VALUE lines). They reach a
host only as root-owned 0600 files written without printing their contents: never pyinfra's
output (not even with --diff), the unit file, a process's argv or the journal.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from io import StringIO
from pathlib import Path
from typing import Any

from pyinfra import host
from pyinfra.api import FileUploadCommand, StringCommand
from pyinfra.facts.files import Sha256File
from pyinfra.operations import files

from operations import survey
from operations.settings import Settings, SettingsError

NAMES = ("HF_TOKEN", "SGLANG_API_KEY", "ROUTER_CONTROL_KEY")
SERVER_NAMES = ("HF_TOKEN", "SGLANG_API_KEY")  # what the server itself runs with
REPO = Path(__file__).resolve().parent.parent


def load(host_name: str, settings: Settings) -> dict[str, str]:
    """The secrets for a host; errors name the host and the key, never the value."""
    found: dict[str, str] = {}
    if settings.secrets_file:
        path = Path(settings.secrets_file)
        if REPO in path.resolve().parents:
            raise SettingsError(f"{host_name}: setting 'secrets_file': must be outside the "
                                "repository")
        try:
            lines = path.read_text().splitlines()
        except OSError as error:
            raise SettingsError(f"{host_name}: setting 'secrets_file': cannot read "
                                f"{path}: {error.strerror}") from None
        for line in lines:
            key, sep, value = line.partition("=")
            if sep and key.strip() in NAMES:
                found[key.strip()] = value.strip()
    for name in NAMES:
        if os.environ.get(name):
            found[name] = os.environ[name]
    for name, value in found.items():
        if not value or not value.isprintable():
            raise SettingsError(f"{host_name}: secret {name}: must be printable characters on "
                                "one line (value not shown)")
    return found


def put_private(path: str, content: str):
    """Write ``content`` to ``path`` as root, 0600, in a root-only (0700) directory, only when
    it differs; prints no content."""
    yield from files.directory._inner(path=str(Path(path).parent), mode="700")
    wanted = hashlib.sha256(content.encode()).hexdigest()
    if host.get_fact(Sha256File, path=path) == wanted:
        return
    temp = f"{path}.upload"  # beside it, in a root-only directory
    staged = None
    arguments: dict[str, Any] = dict(host.current_op_global_arguments or {})
    if any(arguments.get(key) for key in ("_sudo", "_su_user", "_doas", "_dzdo")):
        # Over sudo (su, doas, dzdo), pyinfra uploads as the login user to a file of its temp
        # directory, then copies it as root: that file is made empty and 0600 first, so no one
        # else can read it.
        staged = host.get_temp_filename(f"{path}:{wanted}")
        yield StringCommand(f"(umask 077 && rm -f {shlex.quote(staged)} && "
                            f": > {shlex.quote(staged)})", _sudo=False)
    yield FileUploadCommand(StringIO(content), temp, remote_temp_filename=staged)
    yield StringCommand(f"chown root:root {shlex.quote(temp)} && chmod 600 {shlex.quote(temp)} "
                        f"&& mv {shlex.quote(temp)} {shlex.quote(path)}")


def private_reads(path: str) -> list[survey.Read]:
    """What ``put_private`` reads (operations/survey.py)."""
    return [*survey.directory_reads(str(Path(path).parent)),
            survey.Read(Sha256File, {"path": path})]


def api_key_config(key: str) -> str:
    """SGLang reads --config (YAML; JSON is YAML): the key stays out of argv. A JSON encoder
    writes it, so any printable character is kept verbatim."""
    return json.dumps({"api-key": key}) + "\n"

