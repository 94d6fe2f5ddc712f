"""What the fleet's figures come from: the SGLang stand-in's /metrics (SGLang's names and
types, values that follow the requests it answers, a format promtool accepts), the worker's
textfile figures (GPU from nvidia-smi, the server's health and restarts), and the drain a
rolling restart waits on (files/server_metrics.py)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import urllib.request
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import ROOT, in_background, promtool, wait_for

SERVER_METRICS = ROOT / "files" / "server_metrics.py"
TEXTFILE = ROOT / "files" / "sglang_textfile.py"
NAMES = ("num_running_reqs", "num_queue_reqs", "num_used_tokens", "token_usage",
         "gen_throughput", "cache_hit_rate", "prompt_tokens_total", "generation_tokens_total",
         "num_requests_total", "time_to_first_token_seconds", "e2e_request_latency_seconds")


def samples(text: str) -> dict[str, float]:
    """name -> value, summed over label sets (Prometheus' text format)."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = line.split("{", 1)[0].split(" ", 1)[0]
            found[name] = found.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return found


@pytest.fixture()
def server(standin):
    """The stand-in's HTTP surface with metrics on, one request at a time (the rest queue)."""
    args = argparse.Namespace(model_path="/tmp/tiny", served_model_name=None, api_key=None,
                              enable_metrics=True, port=0)
    state = standin.State(slots=1, max_tokens=4096)
    state.ready = True
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), standin.make_handler(args, state, {}))
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1], state
    httpd.shutdown()
    httpd.server_close()


def generate(port: int, tokens: int) -> dict:
    body = json.dumps({"text": "Hello there", "sampling_params": {"max_new_tokens": tokens}})
    request = urllib.request.Request(f"http://127.0.0.1:{port}/generate", data=body.encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as reply:
        return json.loads(reply.read())


def metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return reply.read().decode()


def test_the_standins_metrics_follow_the_requests_it_answers(server):
    port, _ = server
    idle = samples(metrics(port))
    assert {f"sglang:{n}" for n in NAMES if not n.endswith("_seconds")} <= set(idle)
    assert idle["sglang:num_running_reqs"] == idle["sglang:generation_tokens_total"] == 0
    first, _ = in_background(generate, port, 400)  # 2 s of tokens
    second, _ = in_background(generate, port, 100)  # waits: one request at a time
    busy = wait_for(lambda: (s := samples(metrics(port)))["sglang:num_queue_reqs"] == 1 and s,
                    30, 0.05)
    assert busy, "never one request running and one queued"
    assert busy["sglang:num_running_reqs"] == 1 and busy["sglang:num_used_tokens"] > 0
    first.join()
    second.join()
    done = samples(metrics(port))
    assert (done["sglang:num_running_reqs"], done["sglang:num_queue_reqs"]) == (0, 0)
    assert done["sglang:generation_tokens_total"] == 500
    assert done["sglang:num_requests_total"] == 2
    assert done["sglang:time_to_first_token_seconds_count"] == 2
    assert done["sglang:gen_throughput"] > 0 and done["sglang:num_used_tokens"] == 0


def test_the_standins_metrics_are_well_formed_prometheus_text(server):
    port, _ = server
    generate(port, 20)
    checked = promtool("check", "metrics", stdin=metrics(port))
    # Parsed (1: a format error); its only lint is SGLang's own: colons in the names
    assert checked.returncode in (0, 3), checked.stdout + checked.stderr
    assert all(line.endswith("metric names should not contain ':'")
               for line in checked.stderr.splitlines()), checked.stderr


def drain(port: int, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SERVER_METRICS), "drain", str(port), str(timeout),
                           "0.1"],
                          capture_output=True, text=True, timeout=120)


def test_a_drain_waits_for_the_running_request_to_finish(server):
    port, _ = server
    request, answer = in_background(generate, port, 600)  # 3 s
    assert wait_for(lambda: samples(metrics(port))["sglang:num_running_reqs"] == 1, 30, 0.05)
    drained = drain(port, 60)
    assert drained.returncode == 0, drained.stderr
    assert "draining: 1 requests running or queued" in drained.stdout
    assert drained.stdout.splitlines()[-1].startswith("drained: no request left after")
    request.join(timeout=1)  # it finished before the drain said so
    assert not request.is_alive() and answer[0]["meta_info"]["completion_tokens"] == 600


def test_a_drain_stops_waiting_at_its_bound_and_says_what_is_left(server):
    port, _ = server
    request, _ = in_background(generate, port, 2000)  # 10 s
    assert wait_for(lambda: samples(metrics(port))["sglang:num_running_reqs"] == 1, 30, 0.05)
    drained = drain(port, 1)
    assert drained.returncode == 0
    assert "1 requests still running after 1 s (drain_timeout_s)" in drained.stdout
    assert request.is_alive()
    request.join()


def test_a_server_that_does_not_answer_has_nothing_to_drain(tmp_path):
    import socket
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    drained = drain(port, 30)
    assert drained.returncode == 0 and "nothing to wait for" in drained.stdout


# nvidia-smi --query-gpu=<the writer's fields> --format=csv,noheader,nounits on a busy RTX 5090
# (the figures of a real card under load; power.draw as a card without the sensor reports it
# in the second row).
BUSY_5090 = ("0, GPU-5e4e3c2a-0000-0000-0000-000000000000, NVIDIA GeForce RTX 5090, 21504, "
             "32607, 87, 51, 402.31\n"
             "1, GPU-5e4e3c2a-0000-0000-0000-000000000001, NVIDIA GeForce RTX 5090, 21504, "
             "32607, 85, 49, [N/A]\n")


def textfile(tmp_path: Path, smi: str | None, runner: str, port: int = 1) -> dict[str, float]:
    """One run of the worker's textfile writer with this nvidia-smi output on its PATH (None:
    nvidia-smi fails as it does on a driver/library mismatch)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "nvidia-smi"
    if smi is None:
        fake.write_text("#!/bin/sh\necho 'Failed to initialize NVML: Driver/library version "
                        "mismatch'\nexit 18\n")
    else:
        (bin_dir / "answer.csv").write_text(smi)
        fake.write_text(f"#!/bin/sh\ncat {bin_dir / 'answer.csv'}\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    out = tmp_path / "sglang.prom"
    done = subprocess.run([sys.executable, str(TEXTFILE), str(out), str(port), runner],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    checked = promtool("check", "metrics", stdin=text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    return samples(text)


def test_the_textfile_says_the_gpus_figures_from_nvidia_smi(tmp_path, server):
    port, _ = server
    starts = tmp_path / "sglang.starts"
    starts.write_text("start\nstart\nstart\n")  # started, then restarted twice
    found = textfile(tmp_path, BUSY_5090, f"supervisor:{starts}", port)
    assert found["sglang_fleet_gpu_smi_up"] == 1
    assert found["sglang_fleet_gpu_memory_total_bytes"] == 2 * 32607 * 2**20
    assert found["sglang_fleet_gpu_memory_used_bytes"] == 2 * 21504 * 2**20
    assert found["sglang_fleet_gpu_utilization_ratio"] == pytest.approx(1.72)
    assert found["sglang_fleet_gpu_power_watts"] == 402.31  # the [N/A] row left out
    assert found["sglang_fleet_server_healthy"] == 1
    assert found["sglang_fleet_server_restarts"] == 2


def test_the_textfile_says_when_nvidia_smi_fails_and_the_server_is_down(tmp_path):
    found = textfile(tmp_path, None, f"supervisor:{tmp_path / 'none'}")
    assert found["sglang_fleet_gpu_smi_up"] == 0
    assert "sglang_fleet_gpu_memory_used_bytes" not in found
    assert found["sglang_fleet_server_healthy"] == 0


def _described(text: str) -> dict[str, tuple[str, str, frozenset[str]]]:
    """name -> (type, help, label names) of each metric family."""
    kinds = dict(line.split(" ", 3)[2:4] for line in text.splitlines()
                 if line.startswith("# TYPE "))
    helps = {line.split(" ", 3)[2]: line.split(" ", 3)[3] for line in text.splitlines()
             if line.startswith("# HELP ")}
    labels: dict[str, frozenset[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" in line:
            name = line.split("{", 1)[0].removesuffix("_bucket").removesuffix("_sum") \
                .removesuffix("_count")
            keys = frozenset(pair.split("=", 1)[0]
                             for pair in line.split("{", 1)[1].split("}", 1)[0].split(","))
            labels[name] = labels.get(name, frozenset()) | keys
    return {name: (kinds[name], helps.get(name, ""), labels.get(name, frozenset()))
            for name in kinds}


def test_the_standin_serves_real_sglangs_names_types_help_and_labels(server):
    """Held to a real SGLang 0.5.16 server's /metrics (tests/fixtures/sglang-real)."""
    port, _ = server
    generate(port, 4)
    real = _described((ROOT / "tests" / "fixtures" / "sglang-real" /
                       "metrics-0.5.16.txt").read_text())
    ours = _described(metrics(port))
    assert set(ours) <= set(real), sorted(set(ours) - set(real))
    for name, described in ours.items():
        assert described == real[name], (name, described, real[name])
    assert {f"sglang:{n}" for n in NAMES} <= set(ours)
