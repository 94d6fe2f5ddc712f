"""The stand-in's /metrics: real SGLang's names, types and labels (its production metrics page;
the fixture recorded from a real server, when there is one, holds these to it), in Prometheus'
text format, with values taken from what the stand-in is doing."""

from __future__ import annotations

import time
from typing import Any

LABELS = 'model_name="{model}",engine_type="unified",tp_rank="0",pp_rank="0"'
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                5.0, 7.5, 10.0, 15.0, 20.0, 25.0, 30.0)
LATENCY_BUCKETS = (0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 20.0, 40.0, 60.0,
                   80.0, 100.0, 200.0, 400.0, 800.0)
GAP_BUCKETS = (0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.06,
               0.08, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0)
THROUGHPUT_WINDOW_S = 10.0


def _number(value: float) -> str:
    return repr(float(value))


def _metric(lines: list[str], name: str, kind: str, text: str, labels: str,
            value: float) -> None:
    lines += [f"# HELP sglang:{name} {text}", f"# TYPE sglang:{name} {kind}",
              f"sglang:{name}{{{labels}}} {_number(value)}"]


def _histogram(lines: list[str], name: str, text: str, labels: str, buckets: tuple[float, ...],
               observed: list[float]) -> None:
    lines += [f"# HELP sglang:{name} {text}", f"# TYPE sglang:{name} histogram"]
    lines.append(f"sglang:{name}_sum{{{labels}}} {_number(sum(observed))}")
    for bound in buckets:
        count = sum(1 for seen in observed if seen <= bound)
        lines.append(f'sglang:{name}_bucket{{le="{bound}",{labels}}} {_number(count)}')
    lines.append(f'sglang:{name}_bucket{{le="+Inf",{labels}}} {_number(len(observed))}')
    lines.append(f"sglang:{name}_count{{{labels}}} {_number(len(observed))}")


def exposition(state: Any, model: str) -> str:
    """Everything the stand-in's state says, as SGLang names it."""
    labels = LABELS.format(model=model)
    with state.lock:
        now = time.monotonic()
        state.recent[:] = [(at, n) for at, n in state.recent if now - at <= THROUGHPUT_WINDOW_S]
        used = sum(state.running.values())
        running, queued = len(state.running), state.queued
        throughput = sum(n for _, n in state.recent) / THROUGHPUT_WINDOW_S
        counters = (state.prompt_tokens, state.tokens, state.requests)
        ttft, latency, gaps = list(state.ttft), list(state.latency), list(state.token_gaps)
    lines: list[str] = []
    _metric(lines, "num_running_reqs", "gauge", "The number of running requests.", labels,
            running)
    _metric(lines, "num_queue_reqs", "gauge", "The number of requests in the waiting queue.",
            labels, queued)
    _metric(lines, "num_used_tokens", "gauge", "The number of used tokens.", labels, used)
    _metric(lines, "token_usage", "gauge", "The token usage.", labels,
            used / state.max_tokens if state.max_tokens else 0.0)
    _metric(lines, "gen_throughput", "gauge", "The generation throughput (token/s).", labels,
            throughput)
    _metric(lines, "cache_hit_rate", "gauge", "The prefix cache hit rate.", labels, 0.0)
    _metric(lines, "max_total_num_tokens", "gauge", "Maximum total number of tokens in the KV "
            "cache pool.", labels, state.max_tokens)
    _metric(lines, "prompt_tokens_total", "counter", "Number of prefill tokens processed.",
            labels, counters[0])
    _metric(lines, "generation_tokens_total", "counter", "Number of generation tokens "
            "processed.", labels, counters[1])
    _metric(lines, "num_requests_total", "counter", "Number of requests processed.", labels,
            counters[2])
    _histogram(lines, "time_to_first_token_seconds", "Histogram of time to first token in "
               "seconds.", labels, TTFT_BUCKETS, ttft)
    _histogram(lines, "e2e_request_latency_seconds", "Histogram of End-to-end request latency "
               "in seconds", labels, LATENCY_BUCKETS, latency)
    _histogram(lines, "inter_token_latency_seconds", "Histogram of inter-token latency in "
               "seconds.", labels, GAP_BUCKETS, gaps)
    return "\n".join(lines) + "\n"
