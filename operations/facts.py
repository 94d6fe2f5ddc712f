"""Facts the stages read from a host. Each is read-only and exits 0, so a missing tool or a
failing import is data for the stage to judge, not a pyinfra error.

Example::

    from pyinfra import host
    from operations.facts import NvidiaGpus
    gpus = host.get_fact(NvidiaGpus)   # {"driver": "570.153.02", "cuda": "12.8", "gpus": [...]}
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import asdict
from typing import Any

from pyinfra.api import FactBase

from operations import FILES_DIR, nvidia

_END = "__exit__="


def _with_status(command: str) -> str:
    """Run ``command`` and append its exit status as a last line (the fact itself succeeds)."""
    return f"( {command} ) 2>&1; echo {_END}$?"


def _split_status(output: list[str]) -> tuple[list[str], int]:
    """(the output, the exit status); output that did not end its last line has the status
    marker at the end of that line."""
    if output:
        before, found, status = output[-1].rpartition(_END)
        if found and status.isdigit():
            return output[:-1] + ([before] if before else []), int(status)
    return output, 1


class NvidiaGpus(FactBase):
    """GPUs, driver and CUDA version as nvidia-smi reports them.

    Returns ``{"driver": str|None, "cuda": str|None, "gpus": [{index, name, memory_total_mib,
    memory_used_mib, driver_version, compute_cap}, ...], "error": str|None}``;
    ``error`` holds nvidia-smi's own words when it is missing or cannot reach the driver.
    """

    def command(self) -> str:
        fields = ",".join(nvidia.QUERY_FIELDS)
        return _with_status(
            "command -v nvidia-smi >/dev/null || "
            "{ echo 'nvidia-smi: command not found'; exit 127; }"
            f"; nvidia-smi --query-gpu={fields} --format=csv,noheader,nounits || exit $?"
            "; echo ---; nvidia-smi | head -n 4"
        )

    @staticmethod
    def default() -> Any:  # what a host that cannot be read gives
        return {"driver": None, "cuda": None, "gpus": [], "error": "nvidia-smi could not be read"}

    def process(self, output: list[str]) -> dict[str, Any]:
        lines, status = _split_status(output)
        if status != 0:
            return {"driver": None, "cuda": None, "gpus": [], "error": " ".join(lines).strip()}
        split = lines.index("---") if "---" in lines else len(lines)
        gpus = nvidia.parse_query_csv("\n".join(lines[:split]))
        driver, cuda, _ = nvidia.parse_plain("\n".join(lines[split + 1:]))
        # Plain dicts: facts must be JSON data (`pyinfra HOST fact ...` prints them).
        return {"driver": driver or (gpus[0].driver_version if gpus else None), "cuda": cuda,
                "gpus": [asdict(gpu) for gpu in gpus], "error": None}


_DRIVER_SCRIPT = r"""
. /etc/os-release 2>/dev/null; echo "os=$ID-$VERSION_ID"
echo "boot_id=$(cat /proc/sys/kernel/random/boot_id)"
echo "loaded=$(head -n 1 /proc/driver/nvidia/version 2>/dev/null)"
[ -d /sys/module/nouveau ] && echo "nouveau=1"
echo "repo_list=$(cat /etc/apt/sources.list.d/cuda-*-x86_64.list 2>/dev/null | head -n 1)"
echo "persistenced=$(systemctl is-enabled nvidia-persistenced 2>/dev/null)/$(systemctl \
is-active nvidia-persistenced 2>/dev/null)"
dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Version}\n' 2>/dev/null | sed -n -E \
  's/^ii +((nvidia|libnvidia|linux-modules-nvidia|cuda-drivers|cuda-keyring)\S*) /package=\1 /p'
exit 0
"""


class NvidiaDriver(FactBase):
    """The NVIDIA driver as the kernel and apt see it, in one round trip.

    Returns ``{"os": "debian-12", "boot_id": str, "loaded": /proc/driver/nvidia/version's first
    line or "", "nouveau": bool, "repo_list": NVIDIA's apt source line or "", "persistenced":
    "enabled/active", "packages": {name: version}}`` (installed driver packages only).
    """

    def command(self) -> str:
        return _DRIVER_SCRIPT

    @staticmethod
    def default() -> dict[str, Any]:  # what a host that cannot be read gives
        return {"os": "", "boot_id": "", "loaded": "", "nouveau": False, "repo_list": "",
                "persistenced": "", "packages": {}}

    def process(self, output: list[str]) -> dict[str, Any]:
        found = self.default()
        for line in output:
            key, _, value = line.partition("=")
            if key == "package":
                name, _, version = value.partition(" ")
                found["packages"][name] = version.strip()
            elif key == "nouveau":
                found["nouveau"] = True
            elif key in found:
                found[key] = value.strip()
        return found


class FreeDiskGb(FactBase):
    """Free space in GB (10^9 bytes) on the filesystem that holds ``path`` or its nearest
    existing parent (the path may not exist yet on a bare host)."""

    def command(self, path: str) -> str:
        return (f"p={shlex.quote(path)}; while [ ! -e \"$p\" ]; do p=$(dirname \"$p\"); done; "
                "df -Pk \"$p\" | tail -n 1")

    def process(self, output: list[str]) -> float | None:
        try:
            return int(output[-1].split()[3]) * 1024 / 1e9
        except (IndexError, ValueError):
            return None


# Finds who listens on a TCP port without ss or netstat (a real GPU host had neither):
# /proc/net/tcp{,6} for the socket inode in LISTEN (0A), then /proc/*/fd for its owner.
_PORT_SCRIPT = r"""
port_hex=$(printf '%04X' "$1")
inodes=$(cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk -v p=":$port_hex" \
  '$4 == "0A" && substr($2, length($2) - 4) == p { print $10 }')
[ -n "$inodes" ] || exit 0
# One find per socket, not a readlink per open file: a GPU host has thousands.
for inode in $inodes; do
  find /proc/[0-9]*/fd -maxdepth 1 -lname "socket:\[$inode\]" 2>/dev/null
done | while read -r fd; do
  pid=${fd#/proc/}; pid=${pid%%/*}
  unit=$(grep -o '[^/]*\.service' /proc/$pid/cgroup 2>/dev/null | head -n 1)
  echo "$pid $(cat /proc/$pid/comm 2>/dev/null) ${unit:--}"
done | sort -u
echo listening
"""


class PortListener(FactBase):
    """Who listens on a TCP port: ``None`` when nobody does, else a list of
    ``{"pid": int, "comm": str, "unit": str|None}`` (empty when the owner is not visible)."""

    def command(self, port: int) -> str:
        return f"sh -c {shlex.quote(_PORT_SCRIPT)} port {int(port)}"

    def process(self, output: list[str]) -> list[dict[str, Any]] | None:
        if "listening" not in output:
            return None
        holders = []
        for line in output:
            parts = line.split()
            if len(parts) == 3 and parts[0].isdigit():
                unit = None if parts[2] == "-" else parts[2]
                holders.append({"pid": int(parts[0]), "comm": parts[1], "unit": unit})
        return holders

    @staticmethod
    def default() -> None:
        return None


class Login(FactBase):
    """Who the SSH login is and what sudo lets it do; read with ``_sudo=False``, before any
    command that needs root.

    Returns ``{"user": str, "uid": int, "sudo": "ok" | "password" | "missing" | "denied",
    "said": str}``: ``said`` is sudo's own words when it refused.
    """

    def command(self) -> str:
        return ("id -un; id -u; if ! command -v sudo >/dev/null; then echo missing; "
                "elif said=$(sudo -n true 2>&1); then echo ok; "
                "else echo refused; printf '%s\\n' \"$said\" | head -n 3; fi")

    @staticmethod
    def default() -> Any:
        return {"user": "?", "uid": -1, "sudo": "missing", "said": "nothing readable came back"}

    def process(self, output: list[str]) -> dict[str, Any]:
        if len(output) < 3 or not output[1].strip().isdigit():
            return self.default()
        said = " ".join(line.strip() for line in output[3:])
        sudo = output[2].strip()
        if sudo == "refused":
            # sudo's words, and sudo-rs's (Ubuntu 25.10 and later)
            asks = ("password is required", "interactive authentication is required")
            sudo = "password" if any(words in said for words in asks) else "denied"
        return {"user": output[0].strip(), "uid": int(output[1]), "sudo": sudo, "said": said}


class Pid1(FactBase):
    """The name of PID 1 (``systemd`` on a systemd host)."""

    def command(self) -> str:
        return "cat /proc/1/comm 2>/dev/null || echo unknown"

    @staticmethod
    def default() -> Any:  # what a host that cannot be read gives
        return "unknown"

    def process(self, output: list[str]) -> str:
        return output[0].strip() if output else "unknown"


class _YesNo(FactBase):
    """A test run on the host: its command prints "yes" or "no"."""

    @staticmethod
    def default() -> Any:  # what a host that cannot be read gives
        return False

    def process(self, output: list[str]) -> bool:
        return output == ["yes"]


class VenvExists(_YesNo):
    """Whether ``venv`` has a Python interpreter (a symlink in a venv, so not files.File)."""

    def command(self, venv: str) -> str:
        return f"[ -x {shlex.quote(venv + '/bin/python')} ] && echo yes || echo no"


class UserExists(_YesNo):
    """Whether a user account exists (one getent; pyinfra's Users fact reads every account's
    groups and last login, seconds on a busy host)."""

    def command(self, user: str) -> str:
        return f"getent passwd {shlex.quote(user)} >/dev/null && echo yes || echo no"


class Distributions(FactBase):
    """The distributions a Python environment (a venv) holds, ``{name: version}`` with names
    lower-case and ``-`` for ``_``, read from its site-packages' ``*.dist-info`` directory
    names (``{name}-{version}``, the wheel format's): no interpreter start, which a no-op pays
    on every host, and no scan of every package's metadata. ``{"error": ...}`` when there is
    no such Python.

    Example::

        host.get_fact(Distributions, python="/opt/sglang/venv/bin/python")["sglang"]
    """

    def command(self, python: str) -> str:
        root = shlex.quote(python.rsplit("/bin/", 1)[0])
        return _with_status(f"test -x {shlex.quote(python)} || {{ echo 'no python at {python}'; "
                            f"exit 3; }}; for d in {root}/lib/python3*/site-packages/*.dist-info; "
                            'do [ -d "$d" ] && echo "${d##*/}"; done; true')

    @staticmethod
    def default() -> dict[str, Any]:  # what a host that cannot be read gives
        return {"error": "the host could not be read"}

    def process(self, output: list[str]) -> dict[str, Any]:
        lines, status = _split_status(output)
        if status:
            return {"error": "\n".join(lines), "status": status}
        found = {}
        for line in lines:
            name, _, version = line.removesuffix(".dist-info").rpartition("-")
            if name:
                found[name.lower().replace("_", "-")] = version
        return found


class PythonJson(FactBase):
    """Run a Python snippet with ``python`` (a venv's, or the system's ``python3``) and return
    what it printed as JSON, or ``{"error": ...}`` with its output when that fails."""

    def command(self, python: str, code: str, args: tuple[str, ...] = (),
                env: tuple[str, ...] = ()) -> str:
        """``env``: ``KEY=value`` words for the snippet's environment."""
        argv = " ".join(shlex.quote(a) for a in args)
        prefix = f"env {' '.join(shlex.quote(word) for word in env)} " if env else ""
        return _with_status(f"command -v {shlex.quote(python)} >/dev/null || "
                            f"{{ echo 'no python at {python}'; exit 3; }}; "
                            f"{prefix}{shlex.quote(python)} -c {shlex.quote(code)} {argv}")

    @staticmethod
    def default() -> Any:  # what a host that cannot be read gives
        return {"error": "the host could not be read"}

    def process(self, output: list[str]) -> dict[str, Any]:
        lines, status = _split_status(output)
        if status == 0 and lines:
            try:
                return json.loads(lines[-1])
            except ValueError:
                pass
        return {"error": "\n".join(lines), "status": status}


# Several PythonJson snippets of the system's python3 in one interpreter (a no-op's survey pays
# one interpreter start per host, not one per snippet): each runs as ``python3 -c CODE ARGS``
# would, as __main__ with its own globals and sys.argv, its output and exit status captured,
# and prints what ``PythonJson().command`` prints (its output, then its exit status), between
# the markers the caller asks for: "<mark><index>" before, "<mark><index> 0" after.
PYTHON_BATCH_CODE = """
import contextlib, io, json, sys, traceback
mark, end, snippets = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
for index, code, args in snippets:
    out, status = io.StringIO(), 0
    sys.argv = ["-c", *args]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            exec(compile(code, "<string>", "exec", dont_inherit=True), {"__name__": "__main__"})
        except SystemExit as stop:
            if isinstance(stop.code, int) or stop.code is None:
                status = stop.code or 0
            else:
                print(stop.code, file=sys.stderr)
                status = 1
        except BaseException:
            traceback.print_exc()
            status = 1
    text = out.getvalue()
    if text and not text.endswith("\\n"):
        text += "\\n"
    sys.stdout.write(f"{mark}{index}\\n{text}{end}{status}\\n{mark}{index} 0\\n")
    sys.stdout.flush()
"""


def python_batch_command(mark: str, snippets: list[tuple[int, str, tuple[str, ...]]]) -> str:
    """One ``python3`` running ``snippets`` (index, code, args) as PYTHON_BATCH_CODE says."""
    return shlex.join(["python3", "-c", PYTHON_BATCH_CODE, mark, _END,
                       json.dumps([[i, code, list(args)] for i, code, args in snippets])])


# Snippets run by PythonJson; each prints one JSON line.
# Imports torch then the kernel package, as SGLang does: an ABI mismatch shows in
# "kernel_error" (the import's own words), torch's build facts either way.
TORCH_KERNEL_CODE = """
import json, sys, importlib, traceback
torch = importlib.import_module(sys.argv[1])
try:
    importlib.import_module(sys.argv[2])
    kernel_error = None
except Exception:
    kernel_error = traceback.format_exc()
print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda,
                  "arch_list": torch.cuda.get_arch_list(), "kernel_error": kernel_error}))
"""

# The installed SGLang's own parser: its version and every option it accepts.
SGLANG_OPTIONS_CODE = """
import argparse, json, sglang
from sglang.srt.server_args import ServerArgs
parser = argparse.ArgumentParser()
ServerArgs.add_cli_args(parser)
print(json.dumps({"version": sglang.__version__,
                  "options": sorted(o for a in parser._actions for o in a.option_strings)}))
"""

# Dry-parse an argv with the installed SGLang's parser (argparse exits 2 with its message),
# then run SGLang's own validation of the parsed arguments: ServerArgs.__post_init__ resolves
# and checks them (it reads the model's config.json, and the GPU's memory where there is one)
# and check_server_args() is what launch_server calls next. An argv real SGLang refuses at
# startup, after 40 s of imports, is refused here in seconds. Run with the unit's environment
# (HF_HUB_OFFLINE, HF_HOME) so the model resolves as the server would resolve it.
SGLANG_DRY_PARSE_CODE = """
import argparse, json, sys
from sglang.srt.server_args import ServerArgs
parser = argparse.ArgumentParser(prog="sglang.launch_server")
ServerArgs.add_cli_args(parser)
server_args = ServerArgs.from_cli_args(parser.parse_args(sys.argv[1:]))
server_args.check_server_args()
print(json.dumps({"ok": True}))
"""


def refusal_line(error: str) -> str:
    """What a failed dry-parse said, in one line: argparse's ``error:`` line, or the exception
    SGLang's validation raised (the last ``SomethingError: ...`` of the traceback)."""
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()]
    said = [line for line in lines if "error:" in line
            or re.match(r"^[\w.]*(Error|Exception)\b.*:", line)]
    return said[-1] if said else " | ".join(lines[-3:])


class LibnumaLinked(FactBase):
    """Whether the dynamic linker finds libnuma.so.1 (``ldconfig -p``)."""

    def command(self) -> str:
        return ("(ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null) "
                "| grep -c 'libnuma.so.1 ' || true")

    @staticmethod
    def default() -> Any:  # what a host that cannot be read gives
        return False

    def process(self, output: list[str]) -> bool:
        return bool(output) and output[-1].strip().isdigit() and int(output[-1]) > 0


class UnitState(FactBase):
    """A systemd unit's state: ``{"ActiveState": ..., "NRestarts": ..., ...}``, or
    ``{"error": ...}`` where systemctl is missing (no systemd)."""

    PROPERTIES = ("ActiveState", "SubState", "UnitFileState", "NRestarts", "MainPID", "User",
                  "Result", "ExecMainStatus", "ExecMainCode")

    def command(self, unit: str) -> str:
        props = ",".join(self.PROPERTIES)
        return _with_status(f"systemctl show -p {props} {shlex.quote(unit)}")

    @staticmethod
    def default() -> Any:  # what a host that cannot be read gives
        return {"error": "the host could not be read"}

    def process(self, output: list[str]) -> dict[str, str]:
        lines, status = _split_status(output)
        if status != 0:
            return {"error": " ".join(lines).strip() or f"systemctl exited {status}"}
        return dict(line.split("=", 1) for line in lines if "=" in line)


class ProcessInfo(FactBase):
    """A process's user and argv: ``{"user": str, "argv": [...]}``, or None if it is gone."""

    def command(self, pid: int) -> str:
        pid = int(pid)
        return (f"[ -d /proc/{pid} ] && [ {pid} -gt 0 ] && {{ stat -c %U /proc/{pid}; "
                f"tr '\\0' '\\n' < /proc/{pid}/cmdline; }} || true")

    @staticmethod
    def default() -> Any:  # what a host that cannot be read gives
        return None

    def process(self, output: list[str]) -> dict[str, Any] | None:
        return {"user": output[0], "argv": output[1:]} if output else None


JOURNAL_LINES = 60  # the journal's last lines a diagnosis reads


class JournalTail(FactBase):
    """The unit's last journal lines: its last runs, not only the current one, since a crashed
    run is restarted within seconds and its error is what matters (the diagnosis takes the
    latest line that matches a symptom)."""

    def command(self, unit: str, lines: int = JOURNAL_LINES) -> str:
        return (f"journalctl -u {shlex.quote(unit)} --no-pager -o cat -n {int(lines)} "
                "2>/dev/null; true")

    def process(self, output: list[str]) -> list[str]:
        return output

    @staticmethod
    def default() -> list[str]:
        return []


# /health status code (0 when nothing answers) and, given a second argument, that file's
# contents (null when missing); run with the system python3.
HEALTH_CODE = """
import json, sys, urllib.request, urllib.error
try:
    status = urllib.request.urlopen(sys.argv[1], timeout=5).status
except urllib.error.HTTPError as e:
    status = e.code
except OSError:
    status = 0
found = {"status": status}
if len(sys.argv) > 2:
    try:
        found["record"] = open(sys.argv[2]).read()
    except OSError:
        found["record"] = None
print(json.dumps(found))
"""

# A router's view of the fleet and one request through it: {"workers": {url: healthy},
# "generate": {"status": int, "tokens": int}}; run with the system python3 and the router URL.
ROUTER_CODE = """
import json, sys, urllib.request, urllib.error
router = sys.argv[1]
found = {}
try:
    with urllib.request.urlopen(router + "/workers", timeout=10) as reply:
        found["workers"] = {w["url"]: w["is_healthy"] for w in json.load(reply)["workers"]}
    request = urllib.request.Request(router + "/generate", method="POST",
        data=json.dumps({"text": "The capital of France is",
                         "sampling_params": {"max_new_tokens": 4}}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as reply:
        body = json.load(reply)
        found["generate"] = {"status": reply.status,
                             "tokens": body.get("meta_info", {}).get("completion_tokens", 0)}
except urllib.error.HTTPError as e:
    found["generate"] = {"status": e.code, "tokens": 0}
except OSError as e:
    found["error"] = f"router {router} does not answer: {e}"
print(json.dumps(found))
"""

# Wait (bounded) for /health 200, then one small generate: files/health_wait.py, run with the
# system python3 and (port, timeout seconds, unit); it reads the API key on the host itself.
WAIT_CODE = (FILES_DIR / "health_wait.py").read_text()
