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
API_KEY_CREDENTIAL = "sglang-config.json"
API_KEY_FLAGS = ["--config", f"%d/{API_KEY_CREDENTIAL}", "--log-level", "warning"]


def server_command(settings: Settings, gpu_count: int, accepted: Collection[str],
                   sglang_version: str, api_key: bool = False) -> ServerCommand:
    """The exact argv and environment of the service (without secrets)."""
    profile = settings.profile_def()
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
    if profile.quantization:
        argv += ["--quantization", profile.quantization]
    argv += ["--max-total-tokens", str(max_tokens), "--mem-fraction-static", f"{mem_fraction:g}"]
    for intent in _intents(profile):
        argv += express(intent, accepted, sglang_version)
    if profile.attention_backend:
        argv += ["--attention-backend", profile.attention_backend]
    argv += list(settings.extra_flags)
    if api_key:
        argv += API_KEY_FLAGS
    # The snapshot was staged and verified before the start (operations/weights.py): the server
    # never downloads, so its health wait measures startup only.
    environment = {"HF_HOME": settings.model_cache_dir, "HF_HUB_OFFLINE": "1",
                   **profile.environment, **settings.environment}
    return ServerCommand(argv=argv, environment=environment)
