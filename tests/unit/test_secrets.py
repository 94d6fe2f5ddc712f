"""Secrets come from the control machine, are validated without being shown, and reach the
server only through a credential file, never its argv."""

from __future__ import annotations

import json

import pytest

from operations import secrets
from operations.render import server_command
from operations.server_files import UNIT_PATH, render_files
from operations.settings import SettingsError, validate
from tests.conftest import ROOT
from tests.unit.flag_table import CHART_MODEL_CONFIG, PINNED, dry_parse, options


def test_environment_wins_over_the_secrets_file(tmp_path, monkeypatch):
    file = tmp_path / "fleet-secrets"
    file.write_text("HF_TOKEN=hf_from_file\nSGLANG_API_KEY=key_from_file\nOTHER=x\n")
    monkeypatch.setenv("SGLANG_API_KEY", "key_from_env")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    found = secrets.load("gpu-01", validate("gpu-01", {"secrets_file": str(file)}))
    assert found == {"HF_TOKEN": "hf_from_file", "SGLANG_API_KEY": "key_from_env"}


def test_unreadable_secrets_file_names_host_and_key(tmp_path, monkeypatch):
    with pytest.raises(SettingsError, match="gpu-02: setting 'secrets_file': cannot read"):
        secrets.load("gpu-02", validate("gpu-02", {"secrets_file": str(tmp_path / "none")}))


def test_secrets_file_inside_the_repository_is_refused():
    inside = str(ROOT / "secrets.env")
    with pytest.raises(SettingsError, match="must be outside the repository"):
        secrets.load("gpu-03", validate("gpu-03", {"secrets_file": inside}))


def test_a_bad_secret_is_named_but_not_shown(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret\nvalue")
    with pytest.raises(SettingsError) as error:
        secrets.load("gpu-04", validate("gpu-04", {}))
    assert "HF_TOKEN" in str(error.value) and "hf_secret" not in str(error.value)


def test_api_key_goes_through_a_credential_not_argv():
    settings = validate("gpu-05", {})
    command = server_command(settings, 1, options(), PINNED, CHART_MODEL_CONFIG, api_key=True)
    assert "--api-key" not in command.argv
    assert command.argv[-4:] == ["--config", "%d/sglang-config.yaml", "--log-level", "warning"]
    parsed = dry_parse(command.argv[3:])
    assert parsed.config == "%d/sglang-config.yaml" and parsed.log_level == "warning"
    unit = render_files(settings, command, PINNED)[UNIT_PATH]
    assert "LoadCredential=sglang-config.yaml:/etc/sglang/api-key.json" in unit
    assert "--config %d/sglang-config.yaml" in unit  # the specifier, not escaped


def test_no_credential_without_an_api_key():
    settings = validate("gpu-06", {})
    command = server_command(settings, 1, options(), PINNED, CHART_MODEL_CONFIG)
    assert "LoadCredential" not in render_files(settings, command, PINNED)[UNIT_PATH]


def test_a_secret_of_any_printable_characters_is_kept_verbatim(monkeypatch):
    odd = "sk-'quoted' $HOME; `cmd` \\back\\slash \"double\" ünï"
    monkeypatch.setenv("SGLANG_API_KEY", odd)
    assert secrets.load("gpu-06", validate("gpu-06", {}))["SGLANG_API_KEY"] == odd
    assert json.loads(secrets.api_key_config(odd)) == {"api-key": odd}
