"""On a GPU host without systemd: start the exact argv and environment file the deploy renders
for that host, as sglang.service would (minus systemd: as root, no sandbox), wait with the
deploy's own health wait, and record what the real server answered and logged.

    python3 scripts/gpu_host/serve_real.py --out DIR install WHEEL...
    python3 scripts/gpu_host/serve_real.py --out DIR serve LABEL [--data key=value]... [--keep]
    python3 scripts/gpu_host/serve_real.py --out DIR validate LABEL [--data key=value]...
    python3 scripts/gpu_host/serve_real.py --out DIR kernel-check LABEL --pythonpath DIR
    python3 scripts/gpu_host/serve_real.py --out DIR stop

``--data`` are deploy settings (operations/settings.py) on top of this host's: the venv is the
host's own (``/opt/torch/.venv``, where its torch is), the server listens on 127.0.0.1:8000.
Each LABEL leaves LABEL.json (what happened, with timings), LABEL.log (the server's output),
LABEL.service and LABEL.env (what the deploy would write) under DIR. docs/serving-on-real-gpu.md
says how it was run and what it found.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from operations.checks import check_kernel_abi  # noqa: E402
from operations.diagnosis import diagnose  # noqa: E402
from operations.facts.gpu import NvidiaGpus  # noqa: E402
from operations.facts.python import PythonJson  # noqa: E402
from operations.facts.service import JOURNAL_LINES  # noqa: E402
from operations.facts.venv import (  # noqa: E402
    SGLANG_DRY_PARSE_CODE,
    SGLANG_OPTIONS_CODE,
    TORCH_KERNEL_CODE,
)
from operations.remediation import wait_evidence  # noqa: E402
from operations.render import RenderError, dry_parse_arguments, server_command  # noqa: E402
from operations.server_files import ENV_PATH, UNIT_PATH, render_files  # noqa: E402
from operations.settings import Settings, validate  # noqa: E402
from operations.snapshot import model_config_path  # noqa: E402

HOST = "gpu-host"
# The host's own venv holds its torch; SERVE_REAL_VENV points elsewhere (a stand-in's, to try
# this script without a GPU).
HOST_DATA = {"venv_path": os.environ.get("SERVE_REAL_VENV", "/opt/torch/.venv"),
             "bind_address": "127.0.0.1", "port": 8000,
             "install_dir": "/tmp/sglang", "model_cache_dir": "/tmp/sglang-hf",
             "service_user": "root"}
PID_FILE = Path("/tmp/serve-real.pid")


def settings_for(pairs: list[str]) -> Settings:
    data: dict[str, Any] = dict(HOST_DATA)
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            data[key] = json.loads(value)
        except ValueError:
            data[key] = value
    return validate(HOST, data)


def fact(cls: type, **arguments: Any) -> tuple[Any, float]:
    """One of the deploy's facts, run here as pyinfra runs it on a host: the same command, the
    same parser; (its value, seconds)."""
    started = time.monotonic()
    try:
        done = subprocess.run(["sh", "-c", cls().command(**arguments)], capture_output=True,
                              text=True, timeout=240)
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        value = cls().process(lines)
    except subprocess.TimeoutExpired as expired:
        value = {"error": f"no answer in 240 s: {expired.stdout!r:.2000}"}
    return value, round(time.monotonic() - started, 1)


def env_file_values(text: str) -> dict[str, str]:
    """systemd's EnvironmentFile= reading of the lines operations/server_files.py writes."""
    values = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        if value.startswith('"') and value.endswith('"'):
            value = value[1:-1].replace('\\"', '"').replace("\\$", "$").replace("\\\\", "\\")
        values[key.strip()] = value
    return values


def call(path: str, body: dict | None = None, timeout: float = 60) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:8000{path}", data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, headers, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, headers, raw = error.code, error.headers, error.read()
    except OSError as error:
        return {"status": None, "error": str(error)}
    return {"status": status, "content_type": headers.get("Content-Type"),
            "body": raw.decode(errors="replace")[:3000]}


def render(out: Path, label: str, settings: Settings, record: dict[str, Any],
           config_from: str | None) -> tuple[list[str], dict[str, str]] | None:
    """The deploy's render for this host; None when the deploy would refuse it."""
    options, record["options_s"] = fact(PythonJson, python=settings.python,
                                        code=SGLANG_OPTIONS_CODE)
    if "error" in options:
        record["refused"] = f"cannot read the installed SGLang's flags: {options['error']}"
        return None
    record["sglang"] = options["version"]
    config_path = config_from or model_config_path(settings)
    try:
        model_config = json.loads(Path(config_path).read_text())
    except (OSError, ValueError) as error:
        record["refused"] = f"the model's config.json is not readable at {config_path}: {error}"
        return None
    try:
        command = server_command(settings, len(fact(NvidiaGpus)[0]["gpus"]), options["options"],
                                 options["version"], model_config)
    except RenderError as error:
        record["refused"] = f"{HOST}: {error}"
        return None
    files = render_files(settings, command, options["version"])
    (out / f"{label}.service").write_text(files[UNIT_PATH])
    (out / f"{label}.env").write_text(files[ENV_PATH])
    environment = env_file_values(files[ENV_PATH])
    record["argv"], record["environment"] = command.argv, environment
    return command.argv, environment


def validated(settings: Settings, argv: list[str], environment: dict[str, str],
              record: dict[str, Any], extra_env: dict[str, str]) -> bool:
    """The deploy's dry-parse, with the unit's environment: argparse and then SGLang's own
    validation of the parsed arguments."""
    result, record["dry_parse_s"] = fact(PythonJson, python=settings.python,
                                         code=SGLANG_DRY_PARSE_CODE,
                                         **dry_parse_arguments(argv, {**environment, **extra_env}))
    record["dry_parse"] = result
    return "error" not in result


class Poller(threading.Thread):
    """/health once every half second, recorded, until 200 or the process exits."""

    def __init__(self, process: subprocess.Popen):
        super().__init__(daemon=True)
        self.process, self.codes, self.stop = process, [], threading.Event()
        self.started = time.monotonic()

    def run(self) -> None:
        while not self.stop.is_set():
            code = call("/health", timeout=5).get("status")
            self.codes.append((round(time.monotonic() - self.started, 1), code))
            if code == 200 or self.process.poll() is not None:
                return
            self.stop.wait(0.5)

    def timeline(self) -> str:
        """Runs of the same answer: "38x000 1x503 1x200"."""
        runs: list[list] = []
        for _, code in self.codes:
            word = f"{code or 0:03d}"
            if runs and runs[-1][1] == word:
                runs[-1][0] += 1
            else:
                runs.append([1, word])
        return " ".join(f"{n}x{word}" for n, word in runs)


def health_wait(timeout: float, pid: int) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(ROOT / "files" / "health_wait.py"), "8000",
                           str(timeout), f"pid:{pid}"], capture_output=True, text=True)
    took = round(time.monotonic() - started, 1)
    try:
        return json.loads(done.stdout.strip().splitlines()[-1]), took
    except (ValueError, IndexError):
        return {"error": done.stdout + done.stderr}, took


def stop_server() -> None:
    if not PID_FILE.exists():
        return
    pid = int(PID_FILE.read_text())
    PID_FILE.unlink()
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(60):
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def serve(out: Path, label: str, settings: Settings, args: argparse.Namespace) -> dict:
    record: dict[str, Any] = {"label": label, "settings": {k: v for k, v in vars(
        settings).items() if k in {p.split("=")[0] for p in args.data}}}
    rendered = render(out, label, settings, record, args.config_from)
    if rendered is None:
        return record
    argv, environment = rendered
    extra_env = {"PYTHONPATH": args.pythonpath} if args.pythonpath else {}
    if not validated(settings, argv, environment, record, extra_env) and not args.start_anyway:
        record["refused"] = "the dry-parse refused the argv; the unit would not be written"
        return record
    if args.validate_only:
        return record
    stop_server()
    log = (out / f"{label}.log").open("w")
    started = time.monotonic()
    process = subprocess.Popen(argv, env={**os.environ, **environment, **extra_env},
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    PID_FILE.write_text(str(process.pid))
    poller = Poller(process)
    poller.start()
    if args.short_wait:  # what the deploy reports when health_timeout_s is too short
        record["short_wait"], _ = health_wait(args.short_wait, process.pid)
        record["short_wait_diagnosis"] = diagnose(evidence(out, label, record["short_wait"])
                                                  ).lines(HOST)
    record["wait"], _ = health_wait(args.timeout, process.pid)
    record["start_to_wait_done_s"] = round(time.monotonic() - started, 1)
    poller.join(timeout=10)
    poller.stop.set()
    record["health_timeline"] = poller.timeline()
    record["first_200_s"] = next((t for t, code in poller.codes if code == 200), None)
    record["exit_status"] = process.poll()
    if record["wait"].get("healthy"):
        record["gpu_memory"] = ", ".join(
            f"{gpu['memory_used_mib']} MiB, {gpu['memory_total_mib']} MiB"
            for gpu in fact(NvidiaGpus)[0]["gpus"])
        record["answers"] = {
            "POST /generate": call("/generate", {"text": "The capital of France is",
                                                 "sampling_params": {"max_new_tokens": 8,
                                                                     "temperature": 0}}),
            "POST /v1/chat/completions": call("/v1/chat/completions", {
                "model": settings.model, "max_tokens": 8, "temperature": 0,
                "messages": [{"role": "user", "content": "Say hello"}]}),
            "POST /v1/completions": call("/v1/completions", {
                "model": settings.model, "prompt": "Hello", "max_tokens": 4}),
            **{f"GET {path}": call(path) for path in (
                "/health", "/health_generate", "/get_model_info", "/v1/models", "/metrics",
                "/get_server_info", "/model_info", "/server_info")},
        }
    record["diagnosis"] = diagnose(evidence(out, label, record["wait"])).lines(HOST)
    if not args.keep:
        stop_server()
    return record


def evidence(out: Path, label: str, wait: dict[str, Any]) -> dict[str, Any]:
    """What the deploy's health stage gives diagnose (operations/remediation.py: health_now),
    with as many lines of the server's log as it reads of the journal."""
    log = (out / f"{label}.log").read_text(errors="replace").splitlines()
    return wait_evidence(wait, unit={"error": "no systemd"},
                         journal=log[-JOURNAL_LINES:])


def kernel_check(settings: Settings, pythonpath: str | None) -> dict:
    """The deploy's import of the kernel package next to torch, and its finding."""
    stack = settings.stack_def()
    torch, took = fact(PythonJson, python=settings.python, code=TORCH_KERNEL_CODE,
                       args=(stack.torch_module, stack.kernel_module),
                       env=(f"PYTHONPATH={pythonpath}",) if pythonpath else ())
    finding = check_kernel_abi(settings, {"torch": torch})
    return {"torch": torch, "seconds": took, "finding": finding.message(HOST),
            "diagnosis": diagnose({"torch": torch, "unit": {"error": "no systemd"}}
                                  ).lines(HOST)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    sub = parser.add_subparsers(dest="command", required=True)
    install = sub.add_parser("install")
    install.add_argument("wheels", nargs="+")
    for name in ("serve", "validate", "kernel-check"):
        one = sub.add_parser(name)
        one.add_argument("label")
        one.add_argument("--data", action="append", default=[])
        one.add_argument("--keep", action="store_true", help="leave the server running")
        one.add_argument("--timeout", type=float, default=600)
        one.add_argument("--short-wait", type=float, default=0)
        one.add_argument("--pythonpath", help="put first on PYTHONPATH (another kernel)")
        one.add_argument("--config-from", help="read the model's config.json from here")
        one.add_argument("--start-anyway", action="store_true",
                         help="start even if the dry-parse refuses (to record the real error)")
    sub.add_parser("stop")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.command == "stop":
        stop_server()
        return 0
    if args.command == "install":
        started = time.monotonic()
        done = subprocess.run([f"{HOST_DATA['venv_path']}/bin/python", "-m", "pip", "install", "-q",
                               "--no-index", "--no-deps", "--no-compile",
                               "--disable-pip-version-check", *args.wheels])
        print(json.dumps({"install_s": round(time.monotonic() - started, 1),
                          "status": done.returncode}))
        return done.returncode
    settings = settings_for(args.data)
    args.validate_only = args.command == "validate"
    if args.command == "kernel-check":
        record = kernel_check(settings, args.pythonpath)
    else:
        record = serve(args.out, args.label, settings, args)
    (args.out / f"{args.label}.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: record.get(k) for k in (
        "label", "refused", "dry_parse_s", "health_timeline", "first_200_s",
        "start_to_wait_done_s", "gpu_memory", "diagnosis", "finding", "short_wait_diagnosis")
        if record.get(k) is not None}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
