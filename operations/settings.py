"""Every deploy setting, its default and meaning, validated once for the whole fleet.

Settings come from pyinfra's inventory and group data (host data wins over group data, as in
pyinfra). ``fleet_settings`` validates every host before any host is touched: one bad value on one
host stops the whole run with an error naming the host and the key. Each setting's rule is
declared with it in ``Settings``; the few rules that read more than one setting follow the class.

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
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

from operations.profiles import DEFAULT_PROFILE, PROFILES, Profile
from operations.stacks import CUDA_MIN_DRIVER, DEFAULT_STACK, STACKS, Stack

# A model is a Hugging Face repo id or an absolute path; a flag is a single argv word.
# Whole values only: a trailing newline would reach a unit file or a command line.
_MODEL_RE = re.compile(r"(/[A-Za-z0-9._/-]+|[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9._-]+)?)")
_FLAG_WORD_RE = re.compile(r"[A-Za-z0-9._:/=,+@-]+")
_USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_URL_RE = re.compile(r"(https?|file)://[A-Za-z0-9._~:/?#@!&'()*+,;=%-]+")
_FLAG_CHARS = "letters, digits and . _ : / = , + @ -"


DRIVER_MODES = ("never", "missing", "upgrade")
MANAGER_CHOICES = ("auto", "systemd", "supervisor")  # operations/managers.py


class Part(NamedTuple):
    """What is wrong with one part of a setting's value: the error shows the part."""
    value: Any
    why: str


# A rule says what is wrong with a setting's value, or None. A setting left unset (None: its
# default is None) is not checked.
Why = str | Part | None
Rule = Callable[[Any], Why]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def kind(type_: type, why: str) -> Rule:
    return lambda value: None if isinstance(value, type_) else why


def integer(low: int, high: int | None = None, why: str | None = None) -> Rule:
    """An integer from low to high (no bools)."""
    why = why or (f"must be an integer from {low} to {high}" if high is not None
                  else f"must be an integer >= {low}")
    top = high if high is not None else float("inf")
    return lambda value: None if _is_int(value) and low <= value <= top else why


def number_in(low: float, high: float) -> Rule:
    """A number in (low, high]."""
    why = f"must be a number in ({low}, {high}]"
    return lambda value: None if (isinstance(value, (int, float)) and not isinstance(value, bool)
                                  and low < value <= high) else why


def matches(pattern: str | re.Pattern[str], why: str) -> Rule:
    """A string the whole of which matches the pattern."""
    fullmatch = re.compile(pattern).fullmatch
    return lambda value: None if isinstance(value, str) and fullmatch(value) else why


def one_of(choices: Collection[str], why: str | None = None) -> Rule:
    why = why or f"must be one of {', '.join(choices)}"
    return lambda value: None if value in choices else why


def all_of(*rules: Rule) -> Rule:
    """The first rule's objection, or the next one's."""
    def rule(value: Any) -> Why:
        for each in rules:
            if (why := each(value)) is not None:
                return why
        return None
    return rule


a_name = kind(str, "must be a string (a name)")  # looked up by name: a name first
non_negative = integer(0, why="must be a non-negative integer")
port_number = integer(1, 65535)
high_port = integer(1024, 65535)
known_profile = all_of(a_name, one_of(PROFILES, f"unknown profile; known: {sorted(PROFILES)}"))
url = matches(_URL_RE, "must be an http(s) or file URL")


def absolute_path(value: Any) -> Why:
    if not isinstance(value, str):
        return "must be a string"
    if not value.startswith("/"):
        return "must be an absolute path"
    if ".." in value.split("/"):
        return "must not contain '..'"
    if not re.fullmatch(r"[A-Za-z0-9._/-]+", value):
        return "may only contain letters, digits and . _ / -"
    return None


def not_a_system_dir(value: str) -> Why:
    return "must not be a system directory" if value.rstrip("/") in ("", "/usr", "/etc") else None


def url_list(value: Any) -> Why:
    if isinstance(value, list) and all(isinstance(v, str) and _URL_RE.fullmatch(v)
                                       for v in value):
        return None
    return "must be a list of http(s) or file URLs"


def model_name(value: Any) -> Why:
    if not isinstance(value, str) or not value:
        return "must be a non-empty string"
    if not _MODEL_RE.fullmatch(value) or ".." in value:
        return ("must be a Hugging Face id like org/name or an absolute path, without shell "
                "metacharacters")
    return None


def flag_words(value: Any) -> Why:
    """Argv words, the first a --flag."""
    if not isinstance(value, list) or not all(isinstance(word, str) for word in value):
        return "must be a list of strings"
    for word in value:
        if not _FLAG_WORD_RE.fullmatch(word):
            return Part(word, f"each word may only contain {_FLAG_CHARS}")
    if value and not value[0].startswith("--"):
        return "must start with a --flag"
    return None


def patterns(value: Any) -> Why:
    """Shell patterns on paths in a repository: printable, one line each."""
    if not isinstance(value, list) or not all(isinstance(word, str) and word for word in value):
        return "must be a list of non-empty strings"
    for word in value:
        if not word.isprintable():
            return Part(word, "each pattern must be printable, on one line")
    return None


def environment_map(value: Any) -> Why:
    if isinstance(value, dict) and all(
            isinstance(k, str) and re.fullmatch(r"[A-Z_][A-Z0-9_]*", k) and isinstance(v, str)
            and _FLAG_WORD_RE.fullmatch(v) for k, v in value.items()):
        return None
    return f"must map NAME to a value of {_FLAG_CHARS}"


def stack_map(value: Any) -> Why:
    if not isinstance(value, dict):
        return "must map a stack name to an operations.stacks.Stack"
    if not all(isinstance(stack, Stack) for stack in value.values()):
        return "values must be operations.stacks.Stack"
    return None


def count_or_percentage(value: Any) -> Why:
    if (_is_int(value) and value >= 1) or (
            isinstance(value, str) and re.fullmatch(r"([1-9][0-9]?|100)%", value)):
        return None
    return "must be a host count (1 or more) or a percentage like 25%"


def _setting(default: Any, meaning: str, restarts: bool = False, rule: Rule | None = None) -> Any:
    """``restarts``: a change to it restarts the server, so it rolls through the fleet.
    ``rule``: what a value must be (rules that read other settings: ``_across``)."""
    metadata = {"meaning": meaning, "restarts": restarts, "rule": rule}
    if isinstance(default, (list, dict, tuple)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


class SettingsError(ValueError):
    """A bad setting: names the host and the key."""


@dataclass(frozen=True)
class Settings:
    stack: str = _setting(DEFAULT_STACK, "Stack of pinned packages (see Stacks).", restarts=True,
                          rule=a_name)
    profile: str = _setting(DEFAULT_PROFILE, "Profile of server intents (see Profiles).",
                            restarts=True, rule=known_profile)
    model: str = _setting("Qwen/Qwen3-32B-AWQ", "Hugging Face model id or absolute path.",
                          restarts=True, rule=model_name)
    model_revision: str | None = _setting(
        None, "The model's commit (a full sha); default: its main, pinned once for the fleet "
        "and recorded in the lock file (see Models).", restarts=True,
        rule=matches(r"[0-9a-f]{40}", "must be a full commit sha (40 hex digits)"))
    hf_endpoint: str = _setting("https://huggingface.co", "The Hugging Face Hub, or a mirror "
                                "of it, that model snapshots are fetched from.",
                                rule=matches(r"https?://[A-Za-z0-9._~:/@%-]+",
                                             "must be an http(s) URL"))
    model_files_add: list = _setting([], "Shell patterns of model files to stage although "
                                     "the server would not load them (operations/"
                                     "model_files.py).", rule=patterns)
    model_files_skip: list = _setting([], "Shell patterns of model files never to stage.",
                                      rule=patterns)
    model_stall_timeout_s: int = _setting(120, "A model transfer that sends nothing for this "
                                          "long fails (no hanging run).", rule=integer(1))
    bind_address: str = _setting("0.0.0.0", "Address the server listens on (--host).",
                                 restarts=True, rule=matches(r"[0-9.]+|[0-9a-fA-F:]+",
                                                             "must be an IP address"))
    port: int = _setting(8000, "Port the server listens on.", restarts=True, rule=port_number)
    tp_size: int | None = _setting(None, "Tensor parallel size; default: the host's GPU count.",
                                   restarts=True, rule=integer(1, 64))
    extra_flags: list = _setting([], "Extra SGLang flags appended to the profile's, one word each.",
                                 restarts=True, rule=flag_words)
    mem_fraction_static: float | None = _setting(None, "Override the profile's memory fraction.",
                                                 restarts=True, rule=number_in(0, 1))
    max_total_tokens: int | None = _setting(None, "Override the profile's max total tokens.",
                                            restarts=True, rule=integer(16))
    install_dir: str = _setting("/opt/sglang", "Where the venv and the deploy's records live.",
                                restarts=True, rule=all_of(absolute_path, not_a_system_dir))
    venv_path: str | None = _setting(None, "The venv; default: <install_dir>/venv.", restarts=True,
                                     rule=absolute_path)
    model_cache_dir: str = _setting("/var/cache/sglang", "Hugging Face cache (HF_HOME).",
                                    restarts=True, rule=absolute_path)
    service_user: str = _setting("sglang", "System user the service runs as.", restarts=True,
                                 rule=matches(_USER_RE, "must be a valid user name"))
    min_free_disk_gb: int = _setting(100, "Free disk needed where the venv and cache live, "
                                     "at least (the chart's checklist).", rule=non_negative)
    disk_margin_gb: int = _setting(10, "Free disk kept beyond the stack and the model about to "
                                   "be installed and staged (caches, logs).", rule=non_negative)
    min_gpu_memory_mib: int = _setting(32000, "GPU memory class: 32 GB (an RTX 5090: 32607 MiB).",
                                       rule=non_negative)
    gpu_compute_capability: str = _setting("12.0", "Compute capability every GPU must have.",
                                           rule=matches(r"\d+\.\d+", "must look like 12.0"))
    drain_timeout_s: int = _setting(300, "Rolling restarts: how long a worker that left the "
                                    "routers is given to finish its running requests (from its "
                                    "metrics) before its server stops; also the server's stop "
                                    "timeout, in which SGLang drains on SIGTERM.",
                                    restarts=True, rule=non_negative)
    health_timeout_s: int = _setting(900, "How long to wait for /health to answer 200.",
                                     rule=non_negative)
    gpu_memory_slack_mib: int = _setting(3072, "GPU memory in use allowed above the profile's "
                                         "static fraction (verification).", rule=non_negative)
    environment: dict = _setting({}, "Extra environment variables for the server.", restarts=True,
                                 rule=environment_map)
    remediate: bool = _setting(True, "Apply the chart's fix when health fails after a change "
                               "(diagnose.py: only with --data remediate=true).",
                               rule=kind(bool, "must be true or false"))
    installer: str = _setting("uv", "What installs the stack into the venv: uv (the default, "
                              "2.2x faster, docs/benchmarks.md run 8) or pip; the same pins.",
                              rule=one_of(("uv", "pip")))
    pip_index_url: str | None = _setting(None, "Replaces the stack's pip index URL.", rule=url)
    pip_extra_index_urls: list | None = _setting(None, "Replaces the stack's extra index URLs.",
                                                 rule=url_list)
    pip_find_links: list | None = _setting(None, "Replaces the stack's find-links (wheelhouse).",
                                           rule=url_list)
    pip_proxy: str | None = _setting(None, "HTTP proxy for pip on the host.", rule=url)
    pip_cert: str | None = _setting(None, "CA bundle on the host for pip (absolute path).",
                                    rule=absolute_path)
    secrets_file: str | None = _setting(None, "Control-machine file with HF_TOKEN=, "
                                        "SGLANG_API_KEY= and ROUTER_CONTROL_KEY= lines "
                                        "(outside the repo); the environment's win.",
                                        rule=absolute_path)
    custom_stacks: dict = _setting({}, "Extra stacks by name (Stack objects), e.g. a mirror's.",
                                   rule=stack_map)
    router_port: int = _setting(30000, "Gateways: port the sglang-router listens on.",
                                rule=high_port)
    router_version: str = _setting("0.3.2", "Gateways: the sglang-router version from PyPI.",
                                   rule=matches(r"[0-9][0-9A-Za-z.+!-]*",
                                                "must be a version like 0.3.2"))
    router_dir: str = _setting("/opt/sglang-router", "Gateways: where the router's venv lives.",
                               rule=absolute_path)
    router_metrics_port: int = _setting(29000, "Gateways: port the router's Prometheus metrics "
                                        "are served on.", rule=high_port)
    prometheus_port: int = _setting(9090, "Monitoring hosts: port Prometheus serves its UI and "
                                    "API on.", rule=high_port)
    scrape_interval_s: int = _setting(15, "Monitoring hosts: how often Prometheus scrapes "
                                      "every target (and evaluates the alerts).",
                                      rule=integer(5, 300))
    prometheus_retention_days: int = _setting(15, "Monitoring hosts: how long Prometheus keeps "
                                              "what it scraped.", rule=integer(1, 3650))
    wheelhouse_dir: str = _setting("/srv/sglang-wheelhouse", "Wheelhouses: where the fetched "
                                   "stacks are kept.", rule=absolute_path)
    wheelhouse_port: int = _setting(8091, "Wheelhouses: port the stacks are served on.",
                                    rule=high_port)
    apt_upstream_proxy: str | None = _setting(None, "Wheelhouses: HTTP proxy apt-cacher-ng "
                                              "fetches through.", rule=url)
    driver_install: str = _setting("missing", "How far the driver stage may go: never (check "
                                   "only), missing (install when no driver is loaded), upgrade "
                                   "(also replace an old branch or a proprietary module on "
                                   "Blackwell). Installing reboots the host.",
                                   rule=one_of(DRIVER_MODES))
    driver_branch: int | None = _setting(None, "The NVIDIA driver branch to install; default: "
                                         "the minimum of the stack's CUDA.")  # rule: _across
    driver_repo_url: str | None = _setting(None, "NVIDIA's CUDA repository for the host's "
                                           "distribution, or a mirror of it; default: NVIDIA's.",
                                           rule=url)
    driver_keyring_url: str | None = _setting(None, "The cuda-keyring .deb; default: the one at "
                                              "driver_repo_url.", rule=url)
    run_lock_wait_s: int = _setting(600, "How long a deploy waits for another live run to "
                                    "release this host (its run lock) before leaving the host "
                                    "alone; 0: not at all.", rule=non_negative)
    reboot_timeout_s: int = _setting(600, "How long a rebooted host may take to answer again.",
                                     rule=integer(10))
    service_manager: str = _setting("auto", "What runs the server: systemd, supervisor "
                                    "(supervisord: a container without systemd), or auto "
                                    "(systemd where it is PID 1, else supervisor).",
                                    restarts=True, rule=one_of(MANAGER_CHOICES))
    roll_batch: int | str = _setting("25%", "Hosts restarted at a time by a change, a count or "
                                     "a percentage of the fleet; the same on every host.",
                                     rule=count_or_percentage)

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


def _across(s: Settings) -> Iterator[tuple[str, bool, str, Any]]:
    """The rules that read more than one setting, in order, as (key, ok, why, value shown). They
    run after every setting's own rule: each value here has its type."""
    stacks = {**STACKS, **s.custom_stacks}
    yield "stack", s.stack in stacks, f"unknown stack; known: {sorted(stacks)}", s.stack
    cuda = s.stack_def().cuda
    yield "stack", cuda in CUDA_MIN_DRIVER, f"CUDA {cuda} has no driver minimum", s.stack
    yield ("port", s.service_user == "root" or s.port >= 1024,
           f"ports below 1024 need root; service_user is {s.service_user!r}", s.port)
    least = s.stack_def().min_driver
    yield ("driver_branch", s.driver_branch is None or (_is_int(s.driver_branch)
                                                        and s.driver_branch >= least),
           f"must be a driver branch (an integer) no lower than {least}, the minimum of "
           f"stack {s.stack}'s CUDA {cuda}", s.driver_branch)


SETTING_NAMES = tuple(f.name for f in fields(Settings))
RESTART_SETTINGS = tuple(f.name for f in fields(Settings) if f.metadata["restarts"])
_RULES = tuple((f.name, f.metadata["rule"]) for f in fields(Settings) if f.metadata["rule"])


def _error(host: str, key: str, value: Any, why: str) -> SettingsError:
    return SettingsError(f"{host}: setting {key!r} = {value!r}: {why}")


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
    for key, rule in _RULES:
        value = getattr(settings, key)
        if value is not None and (why := rule(value)) is not None:
            if isinstance(why, Part):  # the error shows the part that is wrong
                value, why = why
            raise _error(host, key, value, why)
    for key, ok, why, value in _across(settings):
        if not ok:
            raise _error(host, key, value, why)
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
