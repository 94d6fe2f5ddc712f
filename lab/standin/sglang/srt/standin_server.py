"""The SGLang stand-in server: SGLang's flags, startup checks, log lines and HTTP surface,
with inference simulated. Failures come from their causes (host state and flags), never from a
switch:

- libnuma missing, a kernel built for another torch: importing sgl_kernel fails (see there);
- a GPU outside the kernel's or torch's arch list: `no kernel image is available`;
- CUDA graphs or FlashInfer on sm_120 with a kernel build that cannot: a real segfault;
- a memory fraction that leaves no room for activations: CUDA out of memory, the process dies;
- weights plus the KV cache not fitting the static pool: /health stays 503;
- offline (HF_HUB_OFFLINE=1), a model snapshot missing from HF_HOME or cut off: transformers',
  SGLang's and safetensors' own errors.
"""

from __future__ import annotations

import argparse
import ctypes
import faulthandler
import json
import os
import re
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sglang.srt.server_args import ServerArgs

LOAD_SECONDS = float(os.environ.get("SGLANG_STANDIN_LOAD_SECONDS", "4"))
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


def snapshot(model_path: str, revision: str | None) -> str | None:
    """Where the model is: a directory, or its snapshot in the Hugging Face cache (HF_HOME),
    as transformers resolves it offline (a commit directly, a branch through refs/)."""
    if model_path.startswith("/"):
        return model_path
    repo = os.path.join(os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")),
                        "hub", "models--" + model_path.replace("/", "--"))
    commit = revision or "main"
    if not re.fullmatch(r"[0-9a-f]{40}", commit):
        try:
            with open(os.path.join(repo, "refs", commit)) as ref:
                commit = ref.read().strip()
        except OSError:
            return None
    return os.path.join(repo, "snapshots", commit)


def load_config(model_path: str, revision: str | None) -> dict:
    """config.json, as transformers loads it offline, with its errors."""
    folder = snapshot(model_path, revision)
    path = os.path.join(folder, "config.json") if folder else None
    if path is None or not os.path.isfile(path):
        # transformers 5.24's words (tests/unit/test_diagnosis.py, REAL_LOGS).
        raise OSError(
            "We couldn't connect to 'https://huggingface.co' to load the files, and couldn't "
            "find them in the cached files.\nCheck your internet connection or see how to run "
            "the library in offline mode at "
            "'https://huggingface.co/docs/transformers/installation#offline-mode'.")
    try:
        with open(path) as handle:
            return json.load(handle)
    except ValueError:
        raise OSError(f"It looks like the config file at '{path}' is not a valid JSON file."
                      ) from None


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
    ready = False
    failed: str | None = None
    requests = 0
    tokens = 0


def make_handler(args: argparse.Namespace, state: State):
    class Handler(BaseHTTPRequestHandler):
        server_version = "uvicorn"
        sys_version = ""

        def log_message(self, fmt: str, *values) -> None:
            log(f'INFO:     {self.client_address[0]}:{self.client_address[1]} - "{self.command} '
                f'{self.path} HTTP/1.1" {values[1] if len(values) > 1 else ""}')

        def reply(self, status: int, body: object, kind: str = "application/json") -> None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
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
                self.reply(200 if state.ready else 503, "" if state.ready else
                           {"error": "Server is not ready"})
            elif path == "/get_model_info":
                self.reply(200, {"model_path": args.model_path, "tokenizer_path":
                                 args.model_path, "is_generation": True})
            elif path == "/get_server_info":
                self.reply(200, {k: v for k, v in vars(args).items()
                                 if isinstance(v, (str, int, float, bool)) and k != "api_key"})
            elif path == "/v1/models":
                self.reply(200, {"object": "list", "data": [
                    {"id": args.served_model_name or args.model_path, "object": "model",
                     "owned_by": "sglang", "root": args.model_path}]})
            elif path == "/metrics" and args.enable_metrics:
                self.reply(200, "# TYPE sglang:num_requests_total counter\n"
                           f'sglang:num_requests_total{{model_name="{args.model_path}"}} '
                           f"{state.requests}\n# TYPE sglang:generation_tokens_total counter\n"
                           f'sglang:generation_tokens_total{{model_name="{args.model_path}"}} '
                           f"{state.tokens}\n", "text/plain; version=0.0.4")
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
            if not state.ready:
                self.reply(503, {"error": "Server is not ready"})
                return
            path = self.path.split("?")[0]
            if path == "/generate":
                params = request.get("sampling_params") or {}
                text, count = self.tokens(request.get("text", ""), params.get("max_new_tokens"))
                self.reply(200, {"text": text, "meta_info": {
                    "prompt_tokens": len(str(request.get("text", "")).split()),
                    "completion_tokens": count, "finish_reason": {"type": "length"}}})
            elif path in ("/v1/chat/completions", "/v1/completions"):
                prompt = json.dumps(request.get("messages") or request.get("prompt") or "")
                text, count = self.tokens(prompt, request.get("max_tokens"))
                choice = ({"index": 0, "message": {"role": "assistant", "content": text},
                           "finish_reason": "length"} if "chat" in path else
                          {"index": 0, "text": text, "finish_reason": "length"})
                self.reply(200, {"id": f"standin-{state.requests}", "object":
                                 "chat.completion" if "chat" in path else "text_completion",
                                 "model": request.get("model", args.model_path),
                                 "choices": [choice], "usage": {"completion_tokens": count}})
            else:
                self.reply(404, {"detail": "Not Found"})

        def tokens(self, prompt: str, max_new: int | None) -> tuple[str, int]:
            count = max(1, min(int(max_new or 16), 64))
            words = ["Paris", "is", "the", "capital", "and", "largest", "city", "of", "France."]
            state.requests += 1
            state.tokens += count
            return " " + " ".join(words[i % len(words)] for i in range(count)), count

    return Handler


def merge_config(argv: list[str]) -> list[str]:
    """SGLang's --config: a YAML file's keys become flags; the command line wins."""
    if "--config" not in argv:
        return argv
    at = argv.index("--config")
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
    # As SGLang 0.5.23 does, at INFO: every argument, the API key included.
    shown = (f"{k}={v!r}" for k, v in vars(args).items() if v not in (None, False))
    log(f"server_args=ServerArgs({', '.join(shown)})")

    import sgl_kernel  # noqa: F401 - fails here for libnuma and ABI causes, as the real one does
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("No CUDA GPUs are available")
    # Offline (as the toolkit runs it), the model must be staged: config first, as SGLang's
    # tokenizer manager loads it before any GPU work; weights at "Load weight begin".
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    if offline:
        load_config(args.model_path, args.revision)
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
    log(f"Load weight begin. avail mem={total_mib / 1024:.2f} GB", 0)
    if offline:
        check_weights(args.model_path, args.revision)
    if static_mib + ACTIVATION_RESERVE_MIB > total_mib:
        time.sleep(1)
        raise torch.OutOfMemoryError(
            f"CUDA out of memory. Tried to allocate {ACTIVATION_RESERVE_MIB / 1024:.2f} GiB. "
            f"GPU 0 has a total capacity of {total_mib / 1024:.2f} GiB of which "
            f"{(total_mib - static_mib) / 1024:.2f} GiB is free. "
            f"(--mem-fraction-static {fraction} leaves no room for activations)")

    state = State()
    try:
        os.makedirs(os.path.dirname(USAGE_FILE), exist_ok=True)
        with open(USAGE_FILE, "w") as usage:
            json.dump({"pid": os.getpid(), "mib_per_gpu": min(static_mib, weights_mib + kv_mib)
                       + 512}, usage)
    except OSError:
        pass

    def load() -> None:
        time.sleep(LOAD_SECONDS)
        if weights_mib + kv_mib > static_mib:
            state.failed = "memory"
            log(f"Load weight end. avail mem={(total_mib - weights_mib) / 1024:.2f} GB", 0)
            log("RuntimeError: Not enough memory. Please try to increase --mem-fraction-static. "
                f"(weights {weights_mib} MiB + KV cache for {max_tokens} tokens {kv_mib} MiB > "
                f"static pool {static_mib} MiB)", 0, level="error")
            return
        log(f"Load weight end. type=Qwen3ForCausalLM, dtype=torch.bfloat16, avail mem="
            f"{(total_mib - weights_mib) / 1024:.2f} GB, mem usage={weights_mib / 1024:.2f} GB.", 0)
        log(f"KV Cache is allocated. #tokens: {max_tokens}, K size: {kv_mib / 2048:.2f} GB, "
            f"V size: {kv_mib / 2048:.2f} GB", 0)
        state.ready = True
        log("The server is fired up and ready to roll!")

    server = ThreadingHTTPServer((args.host, args.port), make_handler(args, state))
    log(f"INFO:     Uvicorn running on http://{args.host}:{args.port} (Press CTRL+C to quit)")
    threading.Thread(target=load, daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0
