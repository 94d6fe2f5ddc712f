"""Settings validation: bad input names the host and the key, for the whole fleet at once."""

from __future__ import annotations

import pytest

from operations.settings import Settings, SettingsError, fleet_settings, validate

BAD = [
    ("stack", "cu99-imaginary"),
    ("profile", "turbo"),
    ("model", ""),
    ("model", "Qwen/Qwen3; rm -rf /"),
    ("model", "$(reboot)"),
    ("model", "../../etc/passwd"),
    ("port", 0),
    ("port", 70000),
    ("port", "8000"),
    ("port", 80),
    ("port", True),
    ("tp_size", 0),
    ("tp_size", 2.5),
    ("extra_flags", "--enable-metrics"),
    ("extra_flags", ["--enable-metrics", "x`id`"]),
    ("extra_flags", ["--log-level", "info|tee /tmp/x"]),
    ("extra_flags", ["enable-metrics"]),
    ("mem_fraction_static", 0),
    ("mem_fraction_static", 1.5),
    ("mem_fraction_static", "0.6"),
    ("max_total_tokens", -1),
    ("install_dir", "opt/sglang"),
    ("install_dir", "/opt/../etc"),
    ("install_dir", "/"),
    ("model_cache_dir", "/var/cache/with space"),
    ("service_user", "Root User"),
    ("min_free_disk_gb", -5),
    ("health_timeout_s", "soon"),
    ("gpu_compute_capability", 12),
    ("pip_index_url", "ftp://mirror/simple"),
    ("pip_find_links", "http://wheels/"),
    ("bind_address", "0.0.0.0; id"),
    ("pip_cert", "certs/ca.pem"),
    # A trailing newline would end up in the unit file or on a command line.
    ("service_user", "sglang\n"),
    ("model", "Qwen/Qwen3-8B\n"),
    ("extra_flags", ["--enable-metrics\n"]),
    ("pip_index_url", "https://pypi.org/simple\n"),
    ("service_manager", "supervisord"),
]


@pytest.mark.parametrize(("key", "value"), BAD, ids=[f"{k}={v!r}" for k, v in BAD])
def test_bad_setting_names_host_and_key(key, value):
    with pytest.raises(SettingsError) as error:
        validate("gpu-07", {key: value})
    assert "gpu-07" in str(error.value)
    assert repr(key) in str(error.value)


def test_defaults_are_the_charts_minimal_stable_on_port_8000():
    settings = validate("gpu-01", {})
    assert (settings.profile, settings.port, settings.model) == (
        "minimal-stable", 8000, "Qwen/Qwen3-32B-AWQ")
    assert settings.min_free_disk_gb == 100
    assert settings.min_gpu_memory_mib <= 32607  # a real RTX 5090 passes the 32 GB class


def test_host_data_overrides_defaults():
    settings = validate("gpu-01", {"port": 8100, "tp_size": 2, "extra_flags": ["--enable-metrics"],
                                   "ssh_user": "root"})
    assert (settings.port, settings.tp_size, settings.extra_flags) == (8100, 2,
                                                                       ["--enable-metrics"])


def test_root_may_use_a_low_port():
    assert validate("gpu-01", {"port": 80, "service_user": "root"}).port == 80


def test_fleet_lists_every_bad_host_and_touches_none():
    with pytest.raises(SettingsError) as error:
        fleet_settings({"gpu-01": {}, "gpu-02": {"port": -1}, "gpu-03": {"profile": "x"}})
    text = str(error.value)
    assert "gpu-02: setting 'port'" in text and "gpu-03: setting 'profile'" in text
    assert "gpu-01" not in text
    assert "nothing was changed" in text


def test_empty_host_list_is_an_error():
    with pytest.raises(SettingsError, match="host list is empty"):
        fleet_settings({})


def test_unknown_type_for_a_key_is_reported_not_raised_raw():
    with pytest.raises(SettingsError, match="gpu-09"):
        fleet_settings({"gpu-09": {"custom_stacks": {"mine": "not a stack"}}})


def test_settings_object_lists_every_key_with_a_meaning():
    from dataclasses import fields
    assert all(f.metadata.get("meaning") for f in fields(Settings))


def test_readme_settings_table_is_the_generated_one():
    from scripts.settings_table import table
    from tests.conftest import ROOT
    assert table() in (ROOT / "README.md").read_text(), "run make settings-table"


def test_roll_batch_must_be_a_count_or_a_percentage_and_the_same_on_every_rolling_host():
    with pytest.raises(SettingsError, match=r"gpu-1: setting 'roll_batch' = '0%'"):
        validate("gpu-1", {"roll_batch": "0%"})
    with pytest.raises(SettingsError, match=r"gpu-1 has 2, gpu-2 has '50%'"):
        fleet_settings({"gpu-1": {"roll_batch": 2}, "gpu-2": {"roll_batch": "50%"}})
    # A gateway does not roll: its value is not compared with the workers'.
    fleet = fleet_settings({"gpu-1": {"roll_batch": 2}, "gw": {"roll_batch": "50%"}},
                           rolling={"gpu-1"})
    assert fleet["gpu-1"].roll_batch == 2


def test_a_mistyped_setting_stops_the_run_with_the_closest_name():
    with pytest.raises(SettingsError, match=r"gpu-02: unknown setting 'profil': did you mean "
                                            r"'profile'\?"):
        fleet_settings({"gpu-01": {}, "gpu-02": {"profil": "debugging"}})
    with pytest.raises(SettingsError, match=r"unknown setting '_sduo': did you mean '_sudo'"):
        validate("gpu-01", {"_sduo": True})
    with pytest.raises(SettingsError, match="'zzzz': not a setting of this toolkit"):
        validate("gpu-01", {"zzzz": 1})


def test_pyinfras_own_keys_and_private_helpers_are_not_settings_errors():
    validate("gpu-01", {"ssh_user": "ubuntu", "ssh_port": 2222, "_sudo": True,
                        "_sudo_password": "x", "docker_identifier": "c1", "_MODEL": {}})


@pytest.mark.parametrize("key, value, expected", [
    ("stack", ["cu13-stable"], "must be a string"), ("profile", 3, "must be a string"),
    ("custom_stacks", "abc", "must map a stack name"), ("port", "8000x", "must be an integer"),
    ("remediate", "maybe", "must be true or false"), ("extra_flags", "--x", "a list of strings"),
])
def test_a_setting_of_the_wrong_type_names_the_expected_type(key, value, expected):
    with pytest.raises(SettingsError, match=f"gpu-01: setting '{key}' = .*{expected}"):
        validate("gpu-01", {key: value})
