"""The programs the facts run on hosts (files/*.py, read into the facts' *_CODE constants), run
as the hosts run them: the fact's own command through ``sh -c`` (``python -c CODE ARGS``), the
system python3 for the HTTP probes, the venv's python with the lab's stand-in torch, kernel
package and SGLang for the venv's, against loopback stand-ins of the server and the router.

files/health_wait.py (WAIT_CODE) is run in tests/unit/test_real_sglang.py, and the survey's
batch against single runs in tests/unit/test_operations.py."""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import socket
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lab.stacks import CAUSE_WHEELS, WHEELS
from lab.standin.build import build_wheel
from operations.facts.python import PythonJson, python_batch_command
from operations.facts.service import HEALTH_CODE, ROUTER_CODE
from operations.facts.status import END
from operations.facts.venv import (
    SGLANG_DRY_PARSE_CODE,
    SGLANG_OPTIONS_CODE,
    TORCH_KERNEL_CODE,
    refusal_line,
)
from operations.router import MEMBER_CODE
from operations.server_files import env_value
from tests.conftest import ROOT


def run(code: str, *args: str, python: str = "python3", env: tuple[str, ...] = ()) -> dict:
    """What PythonJson gives for ``code`` on this machine: its command, run by a real shell."""
    fact = PythonJson()
    done = subprocess.run(["sh", "-c", fact.command(python=python, code=code, args=args, env=env)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr  # the fact itself always succeeds
    return fact.process(done.stdout.splitlines())


class Stub:
    """A loopback HTTP server answering from ``routes``: {(method, path): (status, body)}; what
    it was asked (method, path, headers, body) is in ``asked``."""

    def __init__(self, routes: dict[tuple[str, str], tuple[int, dict | None]]):
        self.routes, self.asked = routes, []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                stub.asked.append((self.command, self.path, dict(self.headers),
                                   self.rfile.read(length)))
                status, body = stub.routes.get((self.command, self.path), (404, None))
                raw = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = answer  # noqa: N815 (http.server's names)

            def log_message(self, *args) -> None:
                pass

        # Bound and listening once constructed: nothing to wait for before the first request.
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def stub() -> Iterator[type[Stub]]:
    started: list[Stub] = []

    def start(routes: dict) -> Stub:
        started.append(Stub(routes))
        return started[-1]

    yield start
    for one in started:
        one.close()


@pytest.fixture()
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nothing else takes it) but not
    listening, for as long as the test runs."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


# HEALTH_CODE: /health's status, and a record file's contents.

def test_health_probe_gives_the_status_health_answered(stub):
    server = stub({("GET", "/health"): (200, None), ("GET", "/starting"): (503, None)})
    assert run(HEALTH_CODE, server.url + "/health") == {"status": 200}
    assert run(HEALTH_CODE, server.url + "/starting") == {"status": 503}
    assert [(method, path) for method, path, _, _ in server.asked] == [
        ("GET", "/health"), ("GET", "/starting")]


def test_health_probe_gives_0_when_nothing_answers(closed_port):
    assert run(HEALTH_CODE, f"http://127.0.0.1:{closed_port}/health") == {"status": 0}


def test_health_probe_reads_the_record_file_when_given_one(stub, closed_port, tmp_path):
    server = stub({("GET", "/health"): (200, None)})
    (tmp_path / "record").write_text("digest abc\nsecond line")
    assert run(HEALTH_CODE, server.url + "/health", str(tmp_path / "record")) == {
        "status": 200, "record": "digest abc\nsecond line"}
    assert run(HEALTH_CODE, f"http://127.0.0.1:{closed_port}/health",
               str(tmp_path / "absent")) == {"status": 0, "record": None}


# ROUTER_CODE: the router's workers and one generate through it.

WORKERS = {"workers": [{"url": "http://10.0.0.1:30000", "is_healthy": True},
                       {"url": "http://10.0.0.2:30000", "is_healthy": False}]}


@pytest.fixture
def key_file(tmp_path: Path) -> str:
    (tmp_path / "control-key").write_text("fleet-key\n")
    return str(tmp_path / "control-key")


def test_router_view_gives_the_workers_and_one_generate(stub, key_file):
    router = stub({("GET", "/workers"): (200, WORKERS),
                   ("POST", "/generate"): (200, {"text": " Paris.",
                                                 "meta_info": {"completion_tokens": 4}})})
    assert run(ROUTER_CODE, router.url, key_file) == {
        "workers": {"http://10.0.0.1:30000": True, "http://10.0.0.2:30000": False},
        "generate": {"status": 200, "tokens": 4}}
    (_, _, listing_headers, _), (method, path, headers, body) = router.asked
    assert listing_headers["Authorization"] == "Bearer fleet-key"  # the control plane's key
    assert "Authorization" not in headers  # a request to be served needs none
    assert (method, path, headers["Content-Type"]) == ("POST", "/generate", "application/json")
    assert json.loads(body) == {"text": "The capital of France is",
                                "sampling_params": {"max_new_tokens": 4}}


def test_router_view_gives_a_refused_generate_its_status(stub, key_file):
    router = stub({("GET", "/workers"): (200, WORKERS),
                   ("POST", "/generate"): (503, {"error": "no healthy worker"})})
    assert run(ROUTER_CODE, router.url, key_file)["generate"] == {"status": 503, "tokens": 0}
    router.routes[("POST", "/generate")] = (200, {"text": ""})  # no meta_info: no tokens
    assert run(ROUTER_CODE, router.url, key_file)["generate"] == {"status": 200, "tokens": 0}


def test_router_view_says_the_router_refused_its_control_key(stub, key_file):
    router = stub({("GET", "/workers"): (401, {"error": "unauthorized"})})
    found = run(ROUTER_CODE, router.url, key_file)
    assert found == {"error": f"router {router.url} refused GET /workers: HTTP 401 (its "
                              "control key)"}


def test_router_view_says_when_the_key_is_missing(stub, tmp_path):
    router = stub({("GET", "/workers"): (200, WORKERS)})
    found = run(ROUTER_CODE, router.url, str(tmp_path / "absent"))
    assert found["error"].startswith(f"no router control key at {tmp_path / 'absent'}")
    assert router.asked == []


def test_router_view_says_when_the_router_does_not_answer(closed_port, key_file):
    router = f"http://127.0.0.1:{closed_port}"
    found = run(ROUTER_CODE, router, key_file)
    assert list(found) == ["error"]
    assert found["error"].startswith(f"router {router} does not answer: ")


# MEMBER_CODE: a worker's membership through the router's worker API, with the control key.

def test_router_member_reads_its_state_with_the_control_key(stub, key_file):
    router = stub({("GET", "/workers"): (200, WORKERS)})
    assert run(MEMBER_CODE, "state", router.url, "http://10.0.0.2:30000", key_file) == {
        "member": True, "healthy": False}
    assert router.asked[0][2]["Authorization"] == "Bearer fleet-key"


def test_router_member_refused_by_the_router_fails_and_says_which_key(stub, key_file):
    router = stub({("GET", "/workers"): (401, {"error": "unauthorized"})})
    found = run(MEMBER_CODE, "leave", router.url, "http://10.0.0.2:30000", key_file)
    assert found["status"] == 1  # not "left": the router may still send it requests
    assert "refused its worker API: HTTP 401" in found["error"]
    assert "ROUTER_CONTROL_KEY" in found["error"]


def test_router_member_without_its_key_file_fails_before_asking(stub, tmp_path):
    router = stub({("GET", "/workers"): (200, WORKERS)})
    found = run(MEMBER_CODE, "join", router.url, "http://10.0.0.2:30000",
                str(tmp_path / "absent"))
    assert found["status"] == 1 and "no router control key at" in found["error"]
    assert router.asked == []


# PYTHON_BATCH_CODE: several snippets in one python3, each marked with its exit status.

def test_the_batch_marks_each_snippets_output_and_exit_status(stub):
    server = stub({("GET", "/health"): (200, None)})
    snippets = [(0, HEALTH_CODE, (server.url + "/health",)),
                (4, "import sys; print('partial', end=''); sys.exit(3)", ()),
                (7, "print('found' in globals(), __name__)", ())]
    done = subprocess.run(["sh", "-c", python_batch_command("MARK", snippets)],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == [
        "MARK0", '{"status": 200}', f"{END}0", "MARK0 0",
        "MARK4", "partial", f"{END}3", "MARK4 0",
        "MARK7", "False __main__", f"{END}0", "MARK7 0"]  # its own globals, as __main__
    # Each section is what PythonJson's own command prints for that snippet alone.
    assert PythonJson().process(done.stdout.splitlines()[1:3]) == run(
        HEALTH_CODE, server.url + "/health")


# The venv's programs, with the venv's python and the lab's stand-in packages installed from
# the wheels the lab builds (each reads its build facts from the wheel).

@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict[str, Path]:
    """Stand-in site directories: "venv" (torch 2.14.1, its kernel package, SGLang) and
    "other-torch" (a kernel package built for torch 2.13, ahead of the venv's on the path)."""
    root = tmp_path_factory.mktemp("standin")
    builds = {"venv": [w for w in WHEELS if w[1] in ("2.14.1", "0.4.10", "0.5.23")],
              "other-torch": [w for w in CAUSE_WHEELS if w[1] == "0.4.10+torch2.13"]}
    dirs = {}
    for name, wheels in builds.items():
        assert len(wheels) == {"venv": 3, "other-torch": 1}[name]
        dirs[name] = root / name
        for dist, version, package, build in wheels:
            with zipfile.ZipFile(build_wheel(root / "wheels", dist, version, package,
                                             build)) as wheel:
                wheel.extractall(dirs[name])
    return dirs


@pytest.fixture(scope="module")
def libnuma() -> None:
    """The kernel stand-in loads libnuma.so.1, as the real kernel package does."""
    try:
        ctypes.CDLL("libnuma.so.1")
    except OSError:
        pytest.skip("libnuma.so.1 is not installed here (the kernel stand-in loads it)")


def venv_run(code: str, *args: str, path: list[Path], env: tuple[str, ...] = ()) -> dict:
    pythonpath = ":".join(str(p) for p in path)
    return run(code, *args, python=sys.executable, env=(f"PYTHONPATH={pythonpath}", *env))


def test_torch_kernel_probe_gives_torchs_build_and_a_clean_kernel_import(site, libnuma):
    assert venv_run(TORCH_KERNEL_CODE, "torch", "sgl_kernel", path=[site["venv"]]) == {
        "torch": "2.14.1+cu130", "cuda": "13.0",
        "arch_list": ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"],
        "kernel_error": None}


def test_torch_kernel_probe_gives_the_kernel_imports_own_words(site, libnuma):
    """A kernel package built for another torch: the loader's undefined symbol, torch's build
    facts still read; a kernel package that is not there: the import's error."""
    found = venv_run(TORCH_KERNEL_CODE, "torch", "sgl_kernel",
                     path=[site["other-torch"], site["venv"]])
    assert found["torch"] == "2.14.1+cu130"
    assert found["kernel_error"].startswith("Traceback (most recent call last):")
    assert found["kernel_error"].splitlines()[-1] == (
        f"ImportError: {site['other-torch'] / 'sgl_kernel' / 'common_ops.abi3.so'}: undefined "
        "symbol: _ZN3c1017RegisterOperatorsD1Ev")
    missing = venv_run(TORCH_KERNEL_CODE, "torch", "no_such_kernel", path=[site["venv"]])
    assert missing["kernel_error"].splitlines()[-1] == (
        "ModuleNotFoundError: No module named 'no_such_kernel'")


def test_torch_kernel_probe_without_torch_fails_with_the_imports_error(tmp_path):
    found = venv_run(TORCH_KERNEL_CODE, "no_such_torch", "sgl_kernel", path=[tmp_path])
    assert found["status"] == 1
    assert found["error"].splitlines()[-1] == "ModuleNotFoundError: No module named 'no_such_torch'"


def test_sglang_options_gives_the_version_and_every_option_its_parser_accepts(site):
    table = json.loads((site["venv"] / "sglang" / "srt" / "flags.json").read_text())
    found = venv_run(SGLANG_OPTIONS_CODE, path=[site["venv"]])
    assert found["version"] == "0.5.23"
    # argparse's own -h/--help, then every option of the flag table the wheel carries, sorted
    assert found["options"] == sorted(
        {"-h", "--help"} | {o for a in table["actions"] for o in a["options"]})


@pytest.fixture()
def awq_model(tmp_path) -> Path:
    model = tmp_path / "awq"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(
        {"quantization_config": {"quant_method": "awq", "bits": 4}}))
    return model


OFFLINE = ("HF_HUB_OFFLINE=1",)


def test_sglang_dry_parse_accepts_an_argv_the_server_would_start_with(site, awq_model):
    assert venv_run(SGLANG_DRY_PARSE_CODE, "--model-path", str(awq_model), "--quantization",
                    "awq_marlin", "--tp-size", "1", path=[site["venv"]], env=OFFLINE) == {
        "ok": True}


def test_sglang_dry_parse_refuses_what_argparse_refuses_with_its_exit_status(site, awq_model):
    found = venv_run(SGLANG_DRY_PARSE_CODE, "--model-path", str(awq_model), "--no-such-flag",
                     path=[site["venv"]], env=OFFLINE)
    assert found["status"] == 2
    assert refusal_line(found["error"]) == (
        "sglang.launch_server: error: unrecognized arguments: --no-such-flag")


@pytest.mark.parametrize(("argv", "said"), [
    (("--quantization", "gptq"),
     "ValueError: Quantization method specified in the model config (awq) does not match the "
     "quantization method specified in the `quantization` argument (gptq)."),
    (("--tp-size", "3", "--nnodes", "2"),
     "AssertionError: tp_size must be divisible by number of nodes")])
def test_sglang_dry_parse_refuses_what_sglangs_validation_refuses(site, awq_model, argv, said):
    """ServerArgs' own resolution (the model's config read offline) and check_server_args()."""
    found = venv_run(SGLANG_DRY_PARSE_CODE, "--model-path", str(awq_model), *argv,
                     path=[site["venv"]], env=OFFLINE)
    assert found["status"] == 1
    assert refusal_line(found["error"]) == said


SUPERVISED = ROOT / "files" / "sglang-supervised.sh"


@pytest.mark.skipif(os.geteuid() != 0, reason="becomes another user: needs root (CI runs as root)")
def test_the_supervised_wrapper_reads_the_env_file_notes_the_start_and_drops_to_the_user(
        tmp_path):
    """What supervisord runs on a host without systemd: the root-only environment file's values
    reach the server verbatim (quotes, $ and backslashes as the renderer escapes them), the
    start is counted, and the server runs as the service user, not as root."""
    env_file = tmp_path / "sglang.env"
    value = 'a "quoted" $HOME \\ value'
    env_file.write_text(f"# Environment\nHF_HOME={env_value(str(tmp_path))}\n"
                        f"ODD={env_value(value)}\n")
    env_file.chmod(0o600)
    tmp_path.chmod(0o755)
    probe = ("import json, os; print(json.dumps({'uid': os.getuid(), 'odd': os.environ['ODD'], "
             "'home': os.environ['HOME'], 'no_new_privs': open('/proc/self/status').read()"
             ".split('NoNewPrivs:')[1].split()[0]}))")
    result = subprocess.run(
        ["sh", str(SUPERVISED), "nobody", str(env_file), str(tmp_path / "credentials"), "--",
         sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
        env={**os.environ, "SUPERVISOR_PROCESS_NAME": "probe", "SGLANG_LOG_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["uid"] == pwd.getpwnam("nobody").pw_uid
    assert found["odd"] == value
    assert found["home"] == str(tmp_path)  # the service user's writable directory
    assert found["no_new_privs"] == "1"
    assert (tmp_path / "probe.starts").read_text().count(" start\n") == 1
    assert value not in " ".join(result.args)  # nothing of the environment in the argv


# WATCH_CODE: a long step's progress, from the disk it fills.

def watch_argv(path: Path, command: str, every: float, total: int = 0) -> list[str]:
    from operations.watch import WATCH_CODE
    return [sys.executable, "-c", WATCH_CODE, "stack x installing", str(path), str(total),
            str(every), "--", "sh", "-c", command]


def test_a_long_step_says_how_far_it_is_and_ends_with_what_it_filled(tmp_path):
    """The step fills half its total, then runs on until the test has seen the watcher say
    so (no race with the watcher's clock)."""
    filled = f"mkdir -p {tmp_path}/venv && head -c 3000000 /dev/zero > {tmp_path}/venv/f"
    os.mkfifo(tmp_path / "seen")  # the step blocks reading it until the test writes
    step = subprocess.Popen(watch_argv(tmp_path / "venv", f"{filled} && cat {tmp_path}/seen",
                                       0.3, total=6_000_000), stdout=subprocess.PIPE, text=True)
    try:
        lines = [step.stdout.readline().rstrip("\n")]
        while "(50%)" not in lines[-1] and lines[-1]:
            lines.append(step.stdout.readline().rstrip("\n"))
        if "(50%)" in lines[-1]:  # (else the step ended: nothing reads the FIFO)
            (tmp_path / "seen").write_text("")
        rest, _ = step.communicate(timeout=60)
    finally:
        step.kill()
    assert step.returncode == 0
    assert lines[0].startswith("stack x installing: 0.00 of 0.01 GB (") and "MB/s" in lines[0]
    assert "(50%)" in lines[-1] and " left" in lines[-1], lines
    assert rest.splitlines()[-1].startswith("stack x installing: 0.00 GB in ")  # 3 MB, in GB


def test_a_short_step_says_nothing_and_a_failing_one_keeps_its_status(tmp_path):
    quiet = subprocess.run(watch_argv(tmp_path, "true", every=30), capture_output=True,
                           text=True, timeout=60)
    assert (quiet.returncode, quiet.stdout) == (0, "")
    failed = subprocess.run(watch_argv(tmp_path, "echo no; exit 3", every=30),
                            capture_output=True, text=True, timeout=60)
    assert (failed.returncode, failed.stdout) == (3, "no\n")
