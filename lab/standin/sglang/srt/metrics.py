"""The stand-in's /metrics: real SGLang's names, types, help texts and labels (held to a real
0.5.16 server's, tests/fixtures/sglang-real/metrics-0.5.16.txt), in Prometheus' text format,
with values taken from what the stand-in is doing. The scheduler's gauges carry its ranks; the
tokenizer's counters and histograms do not."""

from __future__ import annotations

import time
from typing import Any

TOKENIZER = 'engine_type="unified",model_name="{model}"'
SCHEDULER = TOKENIZER + ',moe_ep_rank="0",pp_rank="0",tp_rank="0"'
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                5.0, 7.5, 10.0, 15.0, 20.0, 25.0, 30.0)
LATENCY_BUCKETS = (0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 20.0, 40.0, 60.0,
                   80.0, 100.0, 200.0, 400.0, 800.0)
THROUGHPUT_WINDOW_S = 10.0


def _number(value: float) -> str:
    return repr(float(value))


def _metric(lines: list[str], name: str, kind: str, text: str, labels: str,
            value: float) -> None:
    lines += [f"# HELP sglang:{name} {text}", f"# TYPE sglang:{name} {kind}",
              f"sglang:{name}{{{labels}}} {_number(value)}"]


def _with_le(labels: str, bound: str) -> str:
    """The bucket's bound among the labels, in name order as SGLang writes them."""
    pairs = [*labels.split(","), f'le="{bound}"']
    return ",".join(sorted(pairs))


def _histogram(lines: list[str], name: str, text: str, labels: str, buckets: tuple[float, ...],
               observed: list[float]) -> None:
    lines += [f"# HELP sglang:{name} {text}", f"# TYPE sglang:{name} histogram"]
    lines.append(f"sglang:{name}_sum{{{labels}}} {_number(sum(observed))}")
    for bound in buckets:
        count = sum(1 for seen in observed if seen <= bound)
        lines.append(f'sglang:{name}_bucket{{{_with_le(labels, str(bound))}}} {_number(count)}')
    lines.append(f'sglang:{name}_bucket{{{_with_le(labels, "+Inf")}}} {_number(len(observed))}')
    lines.append(f"sglang:{name}_count{{{labels}}} {_number(len(observed))}")


def exposition(state: Any, model: str) -> str:
    """Everything the stand-in's state says, as SGLang names it."""
    scheduler, tokenizer = SCHEDULER.format(model=model), TOKENIZER.format(model=model)
    with state.lock:
        now = time.monotonic()
        state.recent[:] = [(at, n) for at, n in state.recent if now - at <= THROUGHPUT_WINDOW_S]
        used = sum(state.running.values())
        running, queued = len(state.running), state.queued
        throughput = sum(n for _, n in state.recent) / THROUGHPUT_WINDOW_S
        counters = (state.prompt_tokens, state.tokens, state.requests)
        ttft, latency = list(state.ttft), list(state.latency)
    lines: list[str] = []
    _metric(lines, "prompt_tokens_total", "counter", "Number of prefill tokens processed.",
            tokenizer, counters[0])
    _metric(lines, "generation_tokens_total", "counter", "Number of generation tokens "
            "processed.", tokenizer, counters[1])
    _metric(lines, "num_requests_total", "counter", "Number of requests processed.", tokenizer,
            counters[2])
    _histogram(lines, "time_to_first_token_seconds", "Histogram of time to first token in "
               "seconds.", tokenizer, TTFT_BUCKETS, ttft)
    _histogram(lines, "e2e_request_latency_seconds", "Histogram of End-to-end request latency "
               "in seconds", tokenizer, LATENCY_BUCKETS, latency)
    _metric(lines, "max_total_num_tokens", "gauge", "Maximum total number of tokens in the KV "
            "cache pool.", scheduler, state.max_tokens)
    _metric(lines, "num_running_reqs", "gauge", "The number of running requests.", scheduler,
            running)
    _metric(lines, "num_queue_reqs", "gauge", "The number of requests in the waiting queue.",
            scheduler, queued)
    _metric(lines, "gen_throughput", "gauge", "The generation throughput (token/s).",
            scheduler, throughput)
    _metric(lines, "cache_hit_rate", "gauge", "The prefix cache hit rate.", scheduler, 0.0)
    _metric(lines, "token_usage", "gauge", "The token usage.", scheduler,
            round(used / state.max_tokens, 2) if state.max_tokens else 0.0)
    _metric(lines, "num_used_tokens", "gauge", "The number of used tokens.", scheduler, used)
    return "\n".join(lines) + "\n"
