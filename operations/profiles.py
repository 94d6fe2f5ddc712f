"""Profiles: what a server should do, stated as intents, not as flags.

The quantization is not an intent: it is what the model's checkpoint is (the chart's
``--quantization awq`` comes from its AWQ model's config.json, operations/render.py).

Rendering (``operations.render``) turns intents into the flags that the installed SGLang accepts.
``minimal-stable`` is the chart's stability-first template; ``debugging`` is the chart's
debugging configuration. A faster profile is a new entry here.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    max_total_tokens: int = 1024
    mem_fraction_static: float = 0.65
    trust_remote_code: bool = True
    cuda_graph: bool = False
    custom_all_reduce: bool = False
    radix_cache: bool = False
    flashinfer: bool = False
    attention_backend: str | None = "torch_native"
    # /metrics on the server's port (SGLang's Prometheus figures): scraped by the monitoring
    # role, read by the rolling restart's drain; every profile keeps it on.
    metrics: bool = True
    environment: dict[str, str] = field(default_factory=dict)
    # systemd equivalents of the chart's container flags (ptrace, kept core dumps).
    allow_ptrace: bool = False
    keep_core_dumps: bool = False


_STABLE_ENV = {
    "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
    "CUDA_LAUNCH_BLOCKING": "1",
}

PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile(
            name="minimal-stable",
            description="The chart's minimal configuration: stability first on sm_120.",
            environment=dict(_STABLE_ENV),
        ),
        Profile(
            name="fast",
            description="Throughput first: CUDA graphs, radix cache and FlashInfer on. Segfaults "
            "on sm_120 with the chart-era kernel build; deploy falls back to minimal-stable.",
            cuda_graph=True,
            radix_cache=True,
            flashinfer=True,
            # Said outright: left to SGLang, Hopper gets FlashAttention 3 (another library).
            attention_backend="flashinfer",
            environment={"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"},
        ),
        Profile(
            name="debugging",
            description="minimal-stable plus the chart's debugging environment, ptrace and "
            "core dumps.",
            environment={
                **_STABLE_ENV,
                "TORCH_SHOW_CPP_STACKTRACES": "1",
                "TORCHINDUCTOR_COMPILE_THREADS": "1",
            },
            allow_ptrace=True,
            keep_core_dumps=True,
        ),
    )
}

DEFAULT_PROFILE = "minimal-stable"
