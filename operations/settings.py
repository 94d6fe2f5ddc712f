"""Every deploy setting, its default and meaning, validated once for the whole fleet.

Settings come from pyinfra's inventory and group data (host data wins over group data, as in
pyinfra). ``fleet_settings`` validates every host before any host is touched: one bad value on one
host stops the whole run with an error naming the host and the key.

Example::

    # group_data/all.py
    model = "Qwen/Qwen3-32B-AWQ"
    profile = "minimal-stable"
    min_free_disk_gb = 200
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass, field, fields
from typing import Any

from operations.profiles import DEFAULT_PROFILE, PROFILES, Profile
from operations.stacks import CUDA_MIN_DRIVER, DEFAULT_STACK, STACKS, Stack

# A model is a Hugging Face repo id or an absolute path; a flag is a single argv word.
_MODEL_RE = re.compile(r"^(/[A-Za-z0-9._/-]+|[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9._-]+)?)$")
_FLAG_WORD_RE = re.compile(r"^[A-Za-z0-9._:/=,+@-]+$")
_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_URL_RE = re.compile(r"^(https?|file)://[A-Za-z0-9._~:/?#@!&'()*+,;=%-]+$")


DRIVER_MODES = ("never", "missing", "upgrade")
MANAGER_CHOICES = ("auto", "systemd", "supervisor")  # operations/managers.py


def _setting(default: Any, meaning: str, restarts: bool = False) -> Any:
    """``restarts``: a change to it restarts the server, so it rolls through the fleet."""
    metadata = {"meaning": meaning, "restarts": restarts}
    if isinstance(default, (list, dict, tuple)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


class SettingsError(ValueError):
    """A bad setting: names the host and the key."""


@dataclass(frozen=True)
class Settings:
    stack: str = _setting(DEFAULT_STACK, "Stack of pinned packages (see Stacks).", restarts=True)
    profile: str = _setting(DEFAULT_PROFILE, "Profile of server intents (see Profiles).",
                            restarts=True)
    model: str = _setting("Qwen/Qwen3-32B-AWQ", "Hugging Face model id or absolute path.",
                          restarts=True)
    model_revision: str | None = _setting(
        None, "The model's commit (a full sha); default: its main, pinned once for the fleet "
        "and recorded in the lock file (see Models).", restarts=True)
    hf_endpoint: str = _setting("https://huggingface.co", "The Hugging Face Hub, or a mirror "
                                "of it, that model snapshots are fetched from.")
    model_stall_timeout_s: int = _setting(120, "A model transfer that sends nothing for this "
                                          "long fails (no hanging run).")
    bind_address: str = _setting("0.0.0.0", "Address the server listens on (--host).",
                                 restarts=True)
    port: int = _setting(8000, "Port the server listens on.", restarts=True)
    tp_size: int | None = _setting(None, "Tensor parallel size; default: the host's GPU count.",
                                   restarts=True)
    extra_flags: list = _setting([], "Extra SGLang flags appended to the profile's, one word each.",
                                 restarts=True)
    mem_fraction_static: float | None = _setting(None, "Override the profile's memory fraction.",
                                                 restarts=True)
    max_total_tokens: int | None = _setting(None, "Override the profile's max total tokens.",
                                            restarts=True)
    install_dir: str = _setting("/opt/sglang", "Where the venv and the deploy's records live.",
                                restarts=True)
    venv_path: str | None = _setting(None, "The venv; default: <install_dir>/venv.", restarts=True)
    model_cache_dir: str = _setting("/var/cache/sglang", "Hugging Face cache (HF_HOME).",
                                    restarts=True)
    service_user: str = _setting("sglang", "System user the service runs as.", restarts=True)
    min_free_disk_gb: int = _setting(100, "Free disk needed where the venv and cache live.")
    min_gpu_memory_mib: int = _setting(32000, "GPU memory class: 32 GB (an RTX 5090: 32607 MiB).")
    gpu_compute_capability: str = _setting("12.0", "Compute capability every GPU must have.")
    health_timeout_s: int = _setting(900, "How long to wait for /health to answer 200.")
    gpu_memory_slack_mib: int = _setting(3072, "GPU memory in use allowed above the profile's "
                                         "static fraction (verification).")
    environment: dict = _setting({}, "Extra environment variables for the server.", restarts=True)
    remediate: bool = _setting(True, "Apply the chart's fix when health fails after a change "
                               "(diagnose.py: only with --data remediate=true).")
    pip_index_url: str | None = _setting(None, "Replaces the stack's pip index URL.")
    pip_extra_index_urls: list | None = _setting(None, "Replaces the stack's extra index URLs.")
    pip_find_links: list | None = _setting(None, "Replaces the stack's find-links (wheelhouse).")
    pip_proxy: str | None = _setting(None, "HTTP proxy for pip on the host.")
    pip_cert: str | None = _setting(None, "CA bundle on the host for pip (absolute path).")
    secrets_file: str | None = _setting(None, "Control-machine file with HF_TOKEN= and "
                                        "SGLANG_API_KEY= lines (outside the repo); the "
                                        "environment's HF_TOKEN / SGLANG_API_KEY win.")
    custom_stacks: dict = _setting({}, "Extra stacks by name (Stack objects), e.g. a mirror's.")
    router_port: int = _setting(30000, "Gateways: port the sglang-router listens on.")
    router_version: str = _setting("0.3.2", "Gateways: the sglang-router version from PyPI.")
    router_dir: str = _setting("/opt/sglang-router", "Gateways: where the router's venv lives.")
    wheelhouse_dir: str = _setting("/srv/sglang-wheelhouse", "Wheelhouses: where the fetched "
                                   "stacks are kept.")
    wheelhouse_port: int = _setting(8091, "Wheelhouses: port the stacks are served on.")
    apt_upstream_proxy: str | None = _setting(None, "Wheelhouses: HTTP proxy apt-cacher-ng "
                                              "fetches through.")
    driver_install: str = _setting("missing", "How far the driver stage may go: never (check "
                                   "only), missing (install when no driver is loaded), upgrade "
                                   "(also replace an old branch or a proprietary module on "
                                   "Blackwell). Installing reboots the host.")
    driver_branch: int | None = _setting(None, "The NVIDIA driver branch to install; default: "
                                         "the minimum of the stack's CUDA.")
    driver_repo_url: str | None = _setting(None, "NVIDIA's CUDA repository for the host's "
                                           "distribution, or a mirror of it; default: NVIDIA's.")
    driver_keyring_url: str | None = _setting(None, "The cuda-keyring .deb; default: the one at "
                                              "driver_repo_url.")
    reboot_timeout_s: int = _setting(600, "How long a rebooted host may take to answer again.")
    service_manager: str = _setting("auto", "What runs the server: systemd, supervisor "
                                    "(supervisord: a container without systemd), or auto "
                                    "(systemd where it is PID 1, else supervisor).",
                                    restarts=True)
    roll_batch: int | str = _setting("25%", "Hosts restarted at a time by a change, a count or "
                                     "a percentage of the fleet; the same on every host.")

    @property
    def from_hub(self) -> bool:
        """A Hub model id (fetched and pinned), not a local directory."""
        return not self.model.startswith("/")

    @property
    def venv_dir(self) -> str:
        return self.venv_path or f"{self.install_dir}/venv"

    @property
    def python(self) -> str:
        return f"{self.venv_dir}/bin/python"

    def stack_def(self) -> Stack:
        return {**STACKS, **self.custom_stacks}[self.stack]

    def profile_def(self) -> Profile:
        return PROFILES[self.profile]


SETTING_NAMES = tuple(f.name for f in fields(Settings))
RESTART_SETTINGS = tuple(f.name for f in fields(Settings) if f.metadata["restarts"])


def _check(host: str, key: str, ok: bool, why: str, value: Any) -> None:
    if not ok:
        raise SettingsError(f"{host}: setting {key!r} = {value!r}: {why}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _abs_path(host: str, key: str, value: Any) -> None:
    _check(host, key, isinstance(value, str), "must be a string", value)
    parts = value.split("/")
    _check(host, key, value.startswith("/"), "must be an absolute path", value)
    _check(host, key, ".." not in parts, "must not contain '..'", value)
    _check(host, key, bool(re.fullmatch(r"[A-Za-z0-9._/-]+", value)),
           "may only contain letters, digits and . _ / -", value)


@functools.cache  # pyinfra's connectors come from entry points: a scan of every package
def pyinfra_keys() -> frozenset[str]:
    """The data keys pyinfra itself reads: its connectors' (``ssh_user``, ...) and its global
    arguments (``_sudo``, ...)."""
    from pyinfra.api.arguments import all_global_arguments
    from pyinfra.api.connectors import get_all_connectors

    keys = {name for name, _ in all_global_arguments() if name.startswith("_")}
    for connector in get_all_connectors().values():
        keys.update(getattr(connector, "data_meta", {}))
    return frozenset(keys)


def check_known_keys(host: str, data: dict[str, Any]) -> None:
    """A mistyped key is an error, not a setting silently left at its default. Keys starting
    with ``_`` that are not near a pyinfra argument are a group data file's own helpers."""
    known = set(SETTING_NAMES) | pyinfra_keys()
    for key in sorted(data):
        if key in known:
            continue
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
        if key.startswith("_") and not close:
            continue
        raise SettingsError(f"{host}: unknown setting {key!r}" + (
            f": did you mean {close[0]!r}?" if close else
            ": not a setting of this toolkit (README: Settings) nor a pyinfra connection or "
            "privilege key"))


def validate(host: str, data: dict[str, Any]) -> Settings:
    """Build one host's settings from its data, or raise SettingsError naming host and key."""
    check_known_keys(host, data)
    values = {k: data[k] for k in SETTING_NAMES if k in data and data[k] is not None}
    if str(values.get("remediate")).lower() in ("true", "false"):  # pyinfra --data gives text
        values["remediate"] = str(values["remediate"]).lower() == "true"
    settings = Settings(**values)
    for key in ("stack", "profile"):  # looked up by name below: a name first
        _check(host, key, isinstance(getattr(settings, key), str), "must be a string (a name)",
               getattr(settings, key))
    _check(host, "custom_stacks", isinstance(settings.custom_stacks, dict),
           "must map a stack name to an operations.stacks.Stack", settings.custom_stacks)
    stacks = {**STACKS, **settings.custom_stacks}
    _check(host, "custom_stacks", all(isinstance(s, Stack) for s in stacks.values()),
           "values must be operations.stacks.Stack", settings.custom_stacks)
    _check(host, "stack", settings.stack in stacks, f"unknown stack; known: {sorted(stacks)}",
           settings.stack)
    _check(host, "stack", settings.stack_def().cuda in CUDA_MIN_DRIVER,
           f"CUDA {settings.stack_def().cuda} has no driver minimum", settings.stack)
    _check(host, "profile", settings.profile in PROFILES,
           f"unknown profile; known: {sorted(PROFILES)}", settings.profile)
    _check(host, "model", isinstance(settings.model, str) and bool(settings.model),
           "must be a non-empty string", settings.model)
    _check(host, "model", bool(_MODEL_RE.match(settings.model)) and ".." not in settings.model,
           "must be a Hugging Face id like org/name or an absolute path, without shell "
           "metacharacters", settings.model)
    _check(host, "bind_address", isinstance(settings.bind_address, str)
           and bool(re.fullmatch(r"[0-9.]+|[0-9a-fA-F:]+", settings.bind_address)),
           "must be an IP address", settings.bind_address)
    _check(host, "port", _is_int(settings.port) and 1 <= settings.port <= 65535,
           "must be an integer from 1 to 65535", settings.port)
    _check(host, "port", settings.service_user == "root" or settings.port >= 1024,
           f"ports below 1024 need root; service_user is {settings.service_user!r}",
           settings.port)
    _check(host, "tp_size", settings.tp_size is None or (_is_int(settings.tp_size)
           and 1 <= settings.tp_size <= 64), "must be an integer from 1 to 64", settings.tp_size)
    _check(host, "extra_flags", isinstance(settings.extra_flags, list)
           and all(isinstance(f, str) for f in settings.extra_flags),
           "must be a list of strings", settings.extra_flags)
    for word in settings.extra_flags:
        _check(host, "extra_flags", bool(_FLAG_WORD_RE.match(word)),
               "each word may only contain letters, digits and . _ : / = , + @ -", word)
    if settings.extra_flags:
        _check(host, "extra_flags", settings.extra_flags[0].startswith("--"),
               "must start with a --flag", settings.extra_flags)
    _check(host, "mem_fraction_static", settings.mem_fraction_static is None or (
        isinstance(settings.mem_fraction_static, (int, float))
        and not isinstance(settings.mem_fraction_static, bool)
        and 0 < settings.mem_fraction_static <= 1), "must be a number in (0, 1]",
        settings.mem_fraction_static)
    _check(host, "max_total_tokens", settings.max_total_tokens is None or (
        _is_int(settings.max_total_tokens) and settings.max_total_tokens >= 16),
        "must be an integer >= 16", settings.max_total_tokens)
    for key in ("router_port", "wheelhouse_port"):
        value = getattr(settings, key)
        _check(host, key, _is_int(value) and 1024 <= value <= 65535,
               "must be an integer from 1024 to 65535", value)
    _check(host, "router_version", isinstance(settings.router_version, str)
           and bool(re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", settings.router_version)),
           "must be a version like 0.3.2", settings.router_version)
    for key in ("install_dir", "model_cache_dir", "router_dir", "wheelhouse_dir"):
        _abs_path(host, key, getattr(settings, key))
    _check(host, "install_dir", settings.install_dir.rstrip("/") not in ("", "/usr", "/etc"),
           "must not be a system directory", settings.install_dir)
    _check(host, "service_user", isinstance(settings.service_user, str)
           and bool(_USER_RE.match(settings.service_user)),
           "must be a valid user name", settings.service_user)
    _check(host, "model_revision", settings.model_revision is None or (
        isinstance(settings.model_revision, str)
        and bool(re.fullmatch(r"[0-9a-f]{40}", settings.model_revision))),
        "must be a full commit sha (40 hex digits)", settings.model_revision)
    _check(host, "hf_endpoint", isinstance(settings.hf_endpoint, str)
           and bool(re.fullmatch(r"https?://[A-Za-z0-9._~:/@%-]+", settings.hf_endpoint)),
           "must be an http(s) URL", settings.hf_endpoint)
    _check(host, "model_stall_timeout_s", _is_int(settings.model_stall_timeout_s)
           and settings.model_stall_timeout_s >= 1, "must be an integer >= 1",
           settings.model_stall_timeout_s)
    for key in ("min_free_disk_gb", "min_gpu_memory_mib", "health_timeout_s",
                "gpu_memory_slack_mib"):
        value = getattr(settings, key)
        _check(host, key, _is_int(value) and value >= 0, "must be a non-negative integer", value)
    _check(host, "gpu_compute_capability", isinstance(settings.gpu_compute_capability, str)
           and bool(re.fullmatch(r"\d+\.\d+", settings.gpu_compute_capability)),
           "must look like 12.0", settings.gpu_compute_capability)
    _check(host, "service_manager", settings.service_manager in MANAGER_CHOICES,
           f"must be one of {', '.join(MANAGER_CHOICES)}", settings.service_manager)
    _check(host, "driver_install", settings.driver_install in DRIVER_MODES,
           f"must be one of {', '.join(DRIVER_MODES)}", settings.driver_install)
    _check(host, "driver_branch", settings.driver_branch is None or (
        _is_int(settings.driver_branch) and settings.driver_branch
        >= settings.stack_def().min_driver), "must be a driver branch (an integer) no lower "
        f"than {settings.stack_def().min_driver}, the minimum of stack {settings.stack}'s "
        f"CUDA {settings.stack_def().cuda}", settings.driver_branch)
    _check(host, "reboot_timeout_s", _is_int(settings.reboot_timeout_s)
           and settings.reboot_timeout_s >= 10, "must be an integer >= 10",
           settings.reboot_timeout_s)
    for key in ("pip_index_url", "pip_proxy", "apt_upstream_proxy", "driver_repo_url",
                "driver_keyring_url"):
        value = getattr(settings, key)
        _check(host, key, value is None or (isinstance(value, str) and bool(_URL_RE.match(value))),
               "must be an http(s) or file URL", value)
    for key in ("pip_extra_index_urls", "pip_find_links"):
        value = getattr(settings, key)
        _check(host, key, value is None or (isinstance(value, list) and all(
            isinstance(v, str) and _URL_RE.match(v) for v in value)),
            "must be a list of http(s) or file URLs", value)
    _check(host, "environment", isinstance(settings.environment, dict) and all(
        isinstance(k, str) and re.fullmatch(r"[A-Z_][A-Z0-9_]*", k) and isinstance(v, str)
        and _FLAG_WORD_RE.match(v) for k, v in settings.environment.items()),
        "must map NAME to a value of letters, digits and . _ : / = , + @ -",
        settings.environment)
    _check(host, "remediate", isinstance(settings.remediate, bool), "must be true or false",
           settings.remediate)
    _check(host, "roll_batch", (isinstance(settings.roll_batch, int) and _is_int(
        settings.roll_batch) and settings.roll_batch >= 1) or (
        isinstance(settings.roll_batch, str)
        and bool(re.fullmatch(r"([1-9][0-9]?|100)%", settings.roll_batch))),
        "must be a host count (1 or more) or a percentage like 25%", settings.roll_batch)
    if settings.venv_path is not None:
        _abs_path(host, "venv_path", settings.venv_path)
    if settings.secrets_file is not None:
        _abs_path(host, "secrets_file", settings.secrets_file)
    if settings.pip_cert is not None:
        _abs_path(host, "pip_cert", settings.pip_cert)
    return settings


def fleet_settings(hosts: dict[str, dict[str, Any]],
                   rolling: set[str] | None = None) -> dict[str, Settings]:
    """Validate every host; raise one SettingsError listing every bad host and key.
    ``rolling``: the hosts that roll together (default: all), which must share ``roll_batch``."""
    if not hosts:
        raise SettingsError("inventory: the host list is empty")
    result: dict[str, Settings] = {}
    errors: list[str] = []
    for name, data in hosts.items():
        try:
            result[name] = validate(name, data)
        except SettingsError as error:
            errors.append(str(error))
        except TypeError as error:  # e.g. a value of a type the dataclass cannot take
            errors.append(f"{name}: {error}")
    rolls = {name: s.roll_batch for name, s in result.items()
             if rolling is None or name in rolling}
    if len(set(map(str, rolls.values()))) > 1:
        errors.append("setting 'roll_batch' must be the same on every host: " + ", ".join(
            f"{name} has {value!r}" for name, value in rolls.items()))
    if errors:
        raise SettingsError("invalid settings, nothing was changed on any host:\n  "
                            + "\n  ".join(errors))
    return result
