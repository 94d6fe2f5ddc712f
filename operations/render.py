"""Turn a profile's intents and a host's settings into the server's argv and environment.

An intent ("FlashInfer off") can be said in more than one way across SGLang versions: the chart's
``--disable-flashinfer`` is gone by 0.5.23, where the torch_native attention backend and the
pytorch sampling backend say the same. Each intent lists its ways in order of preference; the
first whose every flag the installed SGLang accepts (exact names: argparse would otherwise take a
prefix, as it does with ``--disable-flashinfer``) is used.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from operations.profiles import Profile
from operations.settings import Settings

# intent -> ways to say it, most preferred first; [] means "nothing to say".
INTENT_FLAGS: dict[str, list[list[str]]] = {
    "cuda_graph_off": [["--disable-cuda-graph"]],
    "custom_all_reduce_off": [["--disable-custom-all-reduce"]],
    "radix_cache_off": [["--disable-radix-cache"]],
    "flashinfer_off": [["--disable-flashinfer"], ["--sampling-backend", "pytorch"]],
    "flashinfer_on": [["--sampling-backend", "flashinfer"], []],
    "trust_remote_code": [["--trust-remote-code"]],
    "metrics_on": [["--enable-metrics"]],
}


class RenderError(ValueError):
    pass


@dataclass(frozen=True)
class ServerCommand:
    argv: list[str]
    environment: dict[str, str]


def _intents(profile: Profile) -> list[str]:
    wanted = {
        "cuda_graph_off": not profile.cuda_graph,
        "custom_all_reduce_off": not profile.custom_all_reduce,
        "radix_cache_off": not profile.radix_cache,
        "flashinfer_off": not profile.flashinfer,
        "flashinfer_on": profile.flashinfer,
        "trust_remote_code": profile.trust_remote_code,
        "metrics_on": profile.metrics,
    }
    return [intent for intent, on in wanted.items() if on]


def express(intent: str, accepted: Collection[str], sglang_version: str) -> list[str]:
    for way in INTENT_FLAGS[intent]:
        if all(word in accepted for word in way if word.startswith("--")):
            return way
    raise RenderError(f"SGLang {sglang_version} accepts none of the ways to say {intent!r}: "
                      f"{INTENT_FLAGS[intent]}")


# The API key reaches SGLang in a --config file that systemd hands the service as a credential
# (%d is the service's credentials directory): never in argv. SGLang 0.5.23 logs its server
# arguments, the key included, at INFO level: with a key the log level is warning.
# SGLang reads --config only from a file named .yaml or .yml ("Config file must be YAML format,
# got: .json"); the content is JSON, which is YAML.
API_KEY_CREDENTIAL = "sglang-config.yaml"
API_KEY_FLAGS = ["--config", f"%d/{API_KEY_CREDENTIAL}", "--log-level", "warning"]


# Quantizations whose weights must be in the checkpoint: asked of a model that is not quantized,
# real SGLang fails only when it loads the weights, 40 s or more after the start, with
# "ValueError: Cannot find the config file for awq" (fixtures/sglang/real-0.5.16-h200).
CHECKPOINT_QUANTIZATIONS = frozenset({"awq", "awq_marlin", "gptq", "gptq_marlin", "marlin"})


def model_quantization(model_config: dict[str, Any]) -> str | None:
    """The quantization a model's config.json declares, or None for a model that is not
    quantized."""
    declared = model_config.get("quantization_config") or {}
    method = declared.get("quant_method") if isinstance(declared, dict) else None
    return str(method).lower() if method else None


def quantization_flags(settings: Settings, model_config: dict[str, Any]) -> list[str]:
    """The chart passes ``--quantization awq`` because its model is an AWQ checkpoint: the flag
    is derived from what the model declares, and a checkpoint quantization asked (extra_flags)
    of a model that declares none is refused here rather than by the server at load."""
    declared = model_quantization(model_config)
    asked = next((settings.extra_flags[i + 1] for i, word in enumerate(settings.extra_flags[:-1])
                  if word == "--quantization"), None)
    if asked is None:
        return ["--quantization", declared] if declared else []
    if asked.lower() in CHECKPOINT_QUANTIZATIONS and declared is None:
        raise RenderError(f"extra_flags asks for --quantization {asked}, but the model "
                          f"{settings.model} is not quantized (its config.json has no "
                          "quantization_config): SGLang would fail loading its weights "
                          f"(\"Cannot find the config file for {asked}\"); drop the flag or "
                          "serve a checkpoint quantized that way")
    return []  # said by extra_flags; SGLang checks it against the model's config


def server_command(settings: Settings, gpu_count: int, accepted: Collection[str],
                   sglang_version: str, model_config: dict[str, Any],
                   api_key: bool = False) -> ServerCommand:
    """The exact argv and environment of the service (without secrets); ``model_config``: the
    served model's config.json."""
    profile = settings.profile_def()
    if settings.tp_size and settings.tp_size > gpu_count:
        # Nothing in SGLang checks it before its scheduler ranks start and fail.
        raise RenderError(f"tp_size is {settings.tp_size} but the host has {gpu_count} GPU(s): "
                          "one rank per GPU; lower tp_size or leave it unset")
    mem_fraction = settings.mem_fraction_static or profile.mem_fraction_static
    max_tokens = settings.max_total_tokens or profile.max_total_tokens
    argv = [
        f"{settings.venv_dir}/bin/python", "-m", "sglang.launch_server",
        "--model-path", settings.model,
        "--host", settings.bind_address,
        "--port", str(settings.port),
        "--tp-size", str(settings.tp_size or max(gpu_count, 1)),
    ]
    if settings.from_hub and settings.model_revision:
        if "--revision" not in accepted:
            raise RenderError(f"SGLang {sglang_version} has no --revision flag: it cannot be "
                              "told which commit of the model to serve")
        argv += ["--revision", settings.model_revision]
    argv += quantization_flags(settings, model_config)
    argv += ["--max-total-tokens", str(max_tokens), "--mem-fraction-static", f"{mem_fraction:g}"]
    for intent in _intents(profile):
        argv += express(intent, accepted, sglang_version)
    if profile.attention_backend:
        argv += ["--attention-backend", profile.attention_backend]
    argv += list(settings.extra_flags)
    if api_key:
        argv += API_KEY_FLAGS
    environment = {**offline_environment(settings), **profile.environment, **settings.environment}
    return ServerCommand(argv=argv, environment=environment)


def offline_environment(settings: Settings) -> dict[str, str]:
    """The snapshot was staged and verified before the start (operations/stages/weights.py):
    the server never downloads, so its health wait measures startup only."""
    return {"HF_HOME": settings.model_cache_dir, "HF_HUB_OFFLINE": "1"}


def dry_parse_arguments(argv: list[str], environment: dict[str, str]) -> dict[str, tuple]:
    """The PythonJson arguments that dry-parse and validate ``argv`` as the server would see
    it: with its environment (the model resolves offline), without the API key's --config
    (the credential exists only inside the running service)."""
    words = list(argv[3:])
    if API_KEY_FLAGS[0] in words:
        at = words.index(API_KEY_FLAGS[0])
        del words[at:at + 2]
    return {"args": tuple(words), "env": tuple(f"{k}={v}" for k, v in environment.items())}
