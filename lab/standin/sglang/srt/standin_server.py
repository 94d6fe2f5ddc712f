"""The SGLang stand-in server: SGLang's flags, startup checks, log lines and HTTP surface,
with inference simulated. Failures come from their causes (host state and flags), never from a
switch:

- libnuma missing, a kernel built for another torch: importing sgl_kernel fails (see there);
- a GPU outside the kernel's or torch's arch list: `no kernel image is available`;
- CUDA graphs or FlashInfer on sm_120 with a kernel build that cannot: a real segfault;
- a memory fraction that leaves no room for activations: CUDA out of memory, the process dies;
- weights plus the KV cache not fitting the static pool: "Not enough memory", the process dies;
- offline (HF_HUB_OFFLINE=1), a model snapshot missing from HF_HOME or cut off: transformers',
  SGLang's and safetensors' own errors;
- --quantization asked of a checkpoint without it (or with another): SGLang's errors.

Its HTTP answers and its start (nothing listening until the model is loaded, then /health 503
during the warm-up, then 200) follow real SGLang 0.5.16 (tests/fixtures/sglang-real). Tokens
come at a steady pace (TOKEN_SECONDS each), at most max_running_requests at once, the rest
queued; --enable-metrics serves SGLang's /metrics names and types (metrics.py here) with values
that follow those requests. SIGTERM drains as SGLang does: health 503, new requests refused,
the running ones finished, then the process exits.
"""

from __future__ import annotations

import argparse
import ctypes
import faulthandler
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sglang.srt import metrics
from sglang.srt.server_args import ServerArgs, snapshot

LOAD_SECONDS = float(os.environ.get("SGLANG_STANDIN_LOAD_SECONDS", "4"))
TOKEN_SECONDS = 0.005  # one decode step (a 5090 serving a 32B AWQ model is slower: the lab's
MAX_NEW_TOKENS = 32768  # tests wait on conditions, and a long request is a long one here too)
DRAIN_POLL_SECONDS = 1.0  # real SGLang's watchdog looks every 5 s
WARMUP_SECONDS = 1.0
ACTIVATION_RESERVE_MIB = 2048
# Model facts for the memory model: parameters (billions), KV bytes per token.
MODELS = {"qwen3-32b": (32.8, 262144), "qwen3-8b": (8.2, 147456), "qwen2.5-0.5b": (0.5, 12288)}
USAGE_FILE = "/run/sglang/lab-gpu-usage.json"


LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
LOG_LEVEL = [20]


def log(message: str, tp: int | None = None, level: str = "info") -> None:
    if LEVELS[level] < LOG_LEVEL[0]:
        return
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    where = f" TP{tp}" if tp is not None else ""
    print(f"[{stamp}{where}] {message}", flush=True)


def check_weights(model_path: str, revision: str | None) -> None:
    """Each safetensors file's header read, as loading does; SGLang's and safetensors' errors."""
    folder = snapshot(model_path, revision) or model_path
    names = sorted(n for n in os.listdir(folder) if n.endswith(".safetensors"))
    if not names:
        raise RuntimeError(f"Cannot find any model weights with `{model_path}`")
    for name in names:
        with open(os.path.join(folder, name), "rb") as handle:
            head = handle.read(8)
            size = int.from_bytes(head, "little") if len(head) == 8 else -1
            header = handle.read(size) if size > 0 else b""
        if size < 0 or len(header) < size:
            raise RuntimeError("safetensors_rust.SafetensorError: Error while deserializing "
                               "header: MetadataIncompleteBuffer")
        try:
            json.loads(header)
        except ValueError:
            raise RuntimeError("safetensors_rust.SafetensorError: Error while deserializing "
                               "header: InvalidHeaderDeserialization") from None


def model_memory(model_path: str, quantization: str | None) -> tuple[int, int]:
    """(weights MiB, KV cache bytes per token) for a model id."""
    name = model_path.rstrip("/").split("/")[-1].lower()
    key = next((k for k in MODELS if name.startswith(k)), None)
    if key:
        params, kv_per_token = MODELS[key]
    else:
        found = re.search(r"(\d+(?:\.\d+)?)b", name)
        params, kv_per_token = (float(found.group(1)) if found else 7.0), 131072
    quantized = quantization in ("awq", "awq_marlin", "gptq", "gptq_marlin") or "awq" in name
    bytes_per_param = 0.56 if quantized else 2.0
    return int(params * 1e9 * bytes_per_param / 2**20), kv_per_token


class State:
    """What the server is doing, as its metrics say it (guarded by ``lock``)."""

    def __init__(self, slots: int, max_tokens: int) -> None:
        self.lock = threading.Condition()
        self.ready = False
        self.draining = False
        self.slots, self.max_tokens = slots, max_tokens
        self.running: dict[str, int] = {}  # request id -> tokens it holds in the KV cache
        self.queued = 0
        self.requests = self.prompt_tokens = self.tokens = 0
        self.ttft: list[float] = []
        self.latency: list[float] = []
        self.recent: list[tuple[float, int]] = []  # (when, tokens) of the last seconds

    def generate(self, prompt_tokens: int, count: int) -> float:
        """One request: queued until a slot is free, then ``count`` tokens at TOKEN_SECONDS
        each; returns its time to first token."""
        ident, arrived = uuid.uuid4().hex, time.monotonic()
        with self.lock:
            self.queued += 1
            self.lock.wait_for(lambda: len(self.running) < self.slots)
            self.queued -= 1
            self.running[ident] = prompt_tokens
            self.prompt_tokens += prompt_tokens
        first = None
        try:
            for _ in range(count):
                time.sleep(TOKEN_SECONDS)
                with self.lock:
                    self.running[ident] += 1
                    self.tokens += 1
                    self.recent.append((time.monotonic(), 1))
                    if first is None:
                        first = time.monotonic() - arrived
            return first or 0.0
        finally:
            with self.lock:
                del self.running[ident]
                self.requests += 1
                self.ttft.append(first or 0.0)
                self.latency.append(time.monotonic() - arrived)
                self.lock.notify_all()


# Real SGLang 0.5.16's answers, key for key (tests/fixtures/sglang-real/answers.json; the
# stand-in's are compared with them in tests/unit/test_real_sglang.py).
def model_info(args: argparse.Namespace, config: dict) -> dict:
    return {"model_path": args.model_path, "tokenizer_path": args.model_path,
            "is_generation": True, "preferred_sampling_params": None,
            "weight_version": "default", "has_image_understanding": False,
            "has_audio_understanding": False, "model_type": config.get("model_type"),
            "architectures": config.get("architectures")}


def usage(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "total_tokens": prompt + completion,
            "completion_tokens": completion, "prompt_tokens_details": None,
            "reasoning_tokens": 0}


def make_handler(args: argparse.Namespace, state: State, config: dict):
    class Handler(BaseHTTPRequestHandler):
        server_version = "uvicorn"
        sys_version = ""

        def log_message(self, fmt: str, *values) -> None:
            log(f'INFO:     {self.client_address[0]}:{self.client_address[1]} - "{self.command} '
                f'{self.path} HTTP/1.1" {values[1] if len(values) > 1 else ""}')

        def reply(self, status: int, body: object, kind: str | None = "application/json"
                  ) -> None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            if kind:
                self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def authorised(self) -> bool:
            if not args.api_key or self.path.startswith(("/health", "/metrics")):
                return True
            if self.headers.get("Authorization") == f"Bearer {args.api_key}":
                return True
            self.reply(401, {"error": "Unauthorized"})
            return False

        def do_GET(self) -> None:  # noqa: N802
            if not self.authorised():
                return
            path = self.path.split("?")[0]
            if path in ("/health", "/health_generate", "/ready"):
                if state.draining:
                    log("Health check request received during shutdown. Returning 503.")
                if state.ready:
                    self.reply(200, "", None)  # real: an empty 200, no content type
                else:
                    self.reply(503, {"error": "Server is not ready"})
            elif path in ("/get_model_info", "/model_info"):
                self.reply(200, model_info(args, config))
            elif path in ("/get_server_info", "/server_info"):
                self.reply(200, {k: v for k, v in vars(args).items()
                                 if isinstance(v, (str, int, float, bool)) and k != "api_key"})
            elif path == "/v1/models":
                self.reply(200, {"object": "list", "data": [
                    {"id": args.served_model_name or args.model_path, "object": "model",
                     "created": int(time.time()), "owned_by": "sglang",
                     "root": args.model_path, "parent": None,
                     "max_model_len": config.get("max_position_embeddings")}]})
            elif path == "/metrics" and args.enable_metrics:
                self.reply(200, metrics.exposition(state, args.served_model_name
                                                   or args.model_path),
                           "text/plain; version=0.0.4; charset=utf-8")
            else:
                self.reply(404, {"detail": "Not Found"})

        def do_POST(self) -> None:  # noqa: N802
            if not self.authorised():
                return
            length = int(self.headers.get("Content-Length") or 0)
            try:
                request = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self.reply(400, {"error": "invalid JSON"})
                return
            if not state.ready:  # starting, or draining after SIGTERM
                self.reply(503, {"error": "Server is not ready"})
                return
            path = self.path.split("?")[0]
            ident = uuid.uuid4().hex
            if path == "/generate":
                params = request.get("sampling_params") or {}
                prompt = str(request.get("text", ""))
                text, count = self.tokens(params.get("max_new_tokens"), len(prompt.encode()))
                self.reply(200, {"text": text, "output_ids": list(range(101, 101 + count)),
                                 "meta_info": {
                    "id": ident, "finish_reason": {"type": "length", "length": count},
                    "prompt_tokens": len(prompt.encode()), "weight_version": "default",
                    "num_retractions": 0, "reasoning_tokens": 0, "completion_tokens": count,
                    "cached_tokens": 0, "cached_tokens_details": None, "dp_rank": None,
                    "e2e_latency": 0.01, "response_sent_to_client_ts": time.time()}})
            elif path in ("/v1/chat/completions", "/v1/completions"):
                prompt = json.dumps(request.get("messages") or request.get("prompt") or "")
                text, count = self.tokens(request.get("max_tokens"), len(prompt))
                choice = {"index": 0, "message": {"role": "assistant", "content": text,
                                                  "reasoning_content": None,
                                                  "tool_calls": None}} \
                    if "chat" in path else {"index": 0, "text": text}
                choice.update(logprobs=None, finish_reason="length", matched_stop=None)
                self.reply(200, {"id": ident, "object":
                                 "chat.completion" if "chat" in path else "text_completion",
                                 "created": int(time.time()),
                                 "model": request.get("model", args.model_path),
                                 "choices": [choice], "usage": usage(len(prompt), count),
                                 "metadata": {"weight_version": "default"}})
            else:
                self.reply(404, {"detail": "Not Found"})

        def tokens(self, max_new: int | None, prompt_tokens: int) -> tuple[str, int]:
            count = max(1, min(int(max_new or 16), MAX_NEW_TOKENS))
            state.generate(prompt_tokens, count)
            words = ["Paris", "is", "the", "capital", "and", "largest", "city", "of", "France."]
            return " " + " ".join(words[i % len(words)] for i in range(count)), count

    return Handler


class Detokenizer(subprocess.Popen):
    stopping = False


def start_detokenizer() -> Detokenizer:
    """SGLang's detokenizer, a process of its own. A SIGTERM sent to the whole process group
    (not to the server alone) kills it too, and the server then exits at once, draining nothing
    (tests/fixtures/sglang-real/sigterm-process-group.log). It ends with the server."""
    child = Detokenizer([sys.executable, "-c", "import os, time\nparent = os.getppid()\n"
                         "while os.getppid() == parent: time.sleep(0.5)"])

    def watch() -> None:
        code = child.wait()
        if not child.stopping:
            log(f"Subprocess detokenizer (pid={child.pid}) crashed with exit code {code}. "
                "Triggering SIGQUIT for cleanup...")
            log("SIGQUIT received. signum=None, frame=None. It usually means one child failed.")
            log(f"kill_process_tree called: parent_pid={os.getpid()}, include_parent=True, "
                f"pid={os.getpid()}")
            os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True).start()
    return child


def scheduler_failed(error: str) -> None:
    """How real SGLang ends when its scheduler fails: the traceback, then the parent's words,
    then the whole process tree exits."""
    log(f"Scheduler hit an exception: Traceback (most recent call last):\n{error}\n")
    log("Received sigquit from a child process. It usually means the child failed.")
    raise SystemExit(1)


def merge_config(argv: list[str]) -> list[str]:
    """SGLang's --config: a YAML file's keys become flags; the command line wins."""
    if "--config" not in argv:
        return argv
    at = argv.index("--config")
    extension = os.path.splitext(argv[at + 1])[1]
    if extension not in (".yaml", ".yml"):  # SGLang 0.5.16 and 0.5.23's own check and words
        raise ValueError(f"Config file must be YAML format, got: {extension}")
    with open(argv[at + 1]) as handle:
        config = json.load(handle)  # JSON is YAML; the stand-in has no YAML parser
    merged: list[str] = []
    for key, value in config.items():
        if value is True:
            merged.append(f"--{key}")
        elif value not in (False, None):
            merged += [f"--{key}", str(value)]
    return merged + argv[:at] + argv[at + 2:]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sglang.launch_server")
    ServerArgs.add_cli_args(parser)
    args = parser.parse_args(merge_config(argv))
    LOG_LEVEL[0] = LEVELS.get(str(args.log_level).lower(), 20)
    # SGLang's own resolution and validation first (the model's config, offline), then its
    # arguments at INFO, the API key included, as 0.5.23 logs them.
    config = ServerArgs.from_cli_args(args).model_config
    shown = (f"{k}={v!r}" for k, v in vars(args).items() if v not in (None, False))
    log(f"server_args=ServerArgs({', '.join(shown)})")

    import sgl_kernel  # noqa: F401 - fails here for libnuma and ABI causes, as the real one does
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("No CUDA GPUs are available")
    capability = torch.cuda.get_device_capability(0)
    arch = f"sm_{capability[0]}{capability[1]}"
    tp = args.tp_size
    if tp > torch.cuda.device_count():
        raise RuntimeError(f"tp_size {tp} > available GPUs {torch.cuda.device_count()}")
    log(f"Init torch distributed begin. {torch.cuda.get_device_name(0)} capability {arch}", 0)
    if arch not in torch.cuda.get_arch_list():
        raise RuntimeError("CUDA error: no kernel image is available for execution on the "
                           "device")
    sgl_kernel.check_device(capability)

    flashinfer = (args.attention_backend in (None, "flashinfer")
                  or args.sampling_backend in (None, "flashinfer"))
    if capability == (12, 0) and not sgl_kernel.blackwell_graphs_ok() and (
            not args.disable_cuda_graph or flashinfer):
        log("Capture cuda graph begin. This can take up to several minutes." if
            not args.disable_cuda_graph else "Init FlashInfer attention backend.", 0)
        faulthandler.enable()
        ctypes.string_at(0)  # a real SIGSEGV, as this kernel build gives on sm_120

    total_mib = torch.cuda.mem_get_info(0)[0] // 2**20
    weights_mib, kv_per_token = model_memory(args.model_path, args.quantization)
    weights_mib //= tp
    fraction = args.mem_fraction_static if args.mem_fraction_static is not None else 0.88
    static_mib = int(total_mib * fraction)
    max_tokens = args.max_total_tokens or 65536
    kv_mib = max_tokens * kv_per_token // tp // 2**20
    # Real SGLang listens only once the model is loaded: until then nothing answers on the
    # port (40 s and more for real; the imports and the load are this sleep).
    time.sleep(LOAD_SECONDS)
    log(f"Load weight begin. avail mem={total_mib / 1024:.2f} GB", 0)
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        check_weights(args.model_path, args.revision)
    declared = (config.get("quantization_config") or {}).get("quant_method")
    if args.quantization in ("awq", "awq_marlin", "gptq", "gptq_marlin") and not declared:
        scheduler_failed(f"ValueError: Cannot find the config file for {args.quantization}")
    if static_mib + ACTIVATION_RESERVE_MIB > total_mib:
        time.sleep(1)
        raise torch.OutOfMemoryError(
            f"CUDA out of memory. Tried to allocate {ACTIVATION_RESERVE_MIB / 1024:.2f} GiB. "
            f"GPU 0 has a total capacity of {total_mib / 1024:.2f} GiB of which "
            f"{(total_mib - static_mib) / 1024:.2f} GiB is free. "
            f"(--mem-fraction-static {fraction} leaves no room for activations)")
    quant = f", quant={declared}, bits={config['quantization_config'].get('bits')}" \
        if declared else ""
    log(f"Load weight end. elapsed=0.15 s, type={(config.get('architectures') or ['?'])[0]}"
        f"{quant}, avail mem={(total_mib - weights_mib) / 1024:.2f} GB, "
        f"mem usage={weights_mib / 1024:.2f} GB.", 0)
    if weights_mib + kv_mib > static_mib:
        scheduler_failed(
            "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static. "
            f"(weights {weights_mib} MiB + KV cache for {max_tokens} tokens {kv_mib} MiB > "
            f"static pool {static_mib} MiB)")
    log(f"KV Cache is allocated. dtype: torch.float16, #tokens: {max_tokens}, "
        f"K size: {kv_mib / 2048:.2f} GB, V size: {kv_mib / 2048:.2f} GB", 0)

    state = State(args.max_running_requests or 64, max_tokens)
    try:
        os.makedirs(os.path.dirname(USAGE_FILE), exist_ok=True)
        with open(USAGE_FILE, "w") as usage_file:
            json.dump({"pid": os.getpid(), "mib_per_gpu": min(static_mib, weights_mib + kv_mib)
                       + 512}, usage_file)
    except OSError:
        pass

    def warm_up() -> None:
        # Real SGLang answers /health 503 while its first (warm-up) request runs.
        time.sleep(WARMUP_SECONDS)
        state.ready = not state.draining
        log("The server is fired up and ready to roll!")

    server = ThreadingHTTPServer((args.host, args.port), make_handler(args, state, config))
    server.daemon_threads = True
    detokenizer = start_detokenizer()

    def drain() -> None:
        # SGLang's sigterm watchdog: no new work, the running requests finished, then exit
        # (no timeout of its own: the service manager's stop timeout bounds it).
        while True:
            with state.lock:
                left = len(state.running) + state.queued
            if not left:
                break
            with state.lock:
                rids = sorted(state.running)
            log(f"Gracefully exiting... Remaining number of requests {left}. "
                f"Remaining requests remaining_rids={rids}.")
            time.sleep(DRAIN_POLL_SECONDS)
        log("Gracefully exiting... Remaining number of requests 0. Remaining requests "
            "remaining_rids=[].")
        detokenizer.stopping = True
        detokenizer.terminate()
        server.shutdown()

    def on_sigterm(signum: int, frame: object) -> None:  # noqa: ARG001
        if not state.draining:
            state.draining, state.ready = True, False
            log("SIGTERM received. signum=None frame=None. Draining requests and shutting "
                "down...")
            threading.Thread(target=drain, daemon=True).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    log(f"INFO:     Uvicorn running on http://{args.host}:{args.port} (Press CTRL+C to quit)")
    threading.Thread(target=warm_up, daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0
