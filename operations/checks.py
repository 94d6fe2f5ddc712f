"""Verification of a serving host, as pure functions of evidence gathered with the deploy's own
facts. ``pytest tests/verify`` gathers the evidence over testinfra; ``diagnose.py`` over pyinfra.

Example::

    evidence = gather(lambda fact, kwargs: run_fact(host, fact, kwargs), settings)
    for finding in verify(settings, evidence):
        print(finding.message("gpu-01"))
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from operations import drivers
from operations.facts.gpu import NvidiaDriver, NvidiaGpus
from operations.facts.host import FreeDisk, LibnumaLinked, Pid1, PortListener, ProcessInfo
from operations.facts.python import PythonJson
from operations.facts.service import HEALTH_CODE, METRICS_CODE, WAIT_CODE, JournalTail, UnitState
from operations.facts.venv import (
    SGLANG_DRY_PARSE_CODE,
    TORCH_KERNEL_CODE,
    Distributions,
    refusal_line,
)
from operations.hub import Pin
from operations.managers import MANAGERS, PROGRAM, SERVICE_UNIT, START_COMMAND, chosen
from operations.readiness import evaluate
from operations.render import dry_parse_arguments, offline_environment
from operations.settings import Settings
from operations.snapshot import MODEL_FETCH_CODE, worker_spec
from operations.symptoms import BY_KEY, Symptom, match

FactRunner = Callable[[type, dict[str, Any]], Any]


@dataclass(frozen=True)
class Finding:
    check: str
    ok: bool
    found: str
    cause: str = ""
    fix: str = ""
    symptom: Symptom | None = None
    evidence_line: str = ""

    def message(self, host_name: str) -> str:
        text = f"{host_name}: {self.check}: found {self.found}"
        if self.symptom:
            text += f"; chart symptom {self.symptom.symptom!r}"
            if self.evidence_line:
                text += f" (evidence: {self.evidence_line!r})"
        if self.cause:
            text += f"; likely cause: {self.cause}"
        if self.fix:
            text += f"; fix: {self.fix}"
        return text


def gather(get_fact: FactRunner, settings: Settings, pin: Pin | None = None,
           host_name: str = "") -> dict[str, Any]:
    """Everything the checks read from one host; ``pin``: the model commit it should serve."""
    stack = settings.stack_def()
    python = settings.python
    evidence: dict[str, Any] = {
        "gpus": get_fact(NvidiaGpus, {}),
        "driver": get_fact(NvidiaDriver, {}),
        "disks": {path: get_fact(FreeDisk, {"path": path})
                    for path in sorted({settings.install_dir, settings.model_cache_dir})},
        "port": get_fact(PortListener, {"port": settings.port}),
        "pid1": (pid1 := get_fact(Pid1, {})),
        "libnuma": get_fact(LibnumaLinked, {}),
        "venv": get_fact(Distributions, {"python": python}),
        "torch": get_fact(PythonJson, {"python": python, "code": TORCH_KERNEL_CODE,
                                       "args": (stack.torch_module, stack.kernel_module)}),
        "unit": get_fact(UnitState, {"unit": (runner := chosen(settings.service_manager,
                                                              pid1).runner)}),
        "journal": get_fact(JournalTail, {"unit": runner}),
    }
    evidence["driver_problems"] = [problem.text for problem in drivers.problems(
        settings, evidence["driver"] or {}, evidence["gpus"])]
    pid = int(evidence["unit"].get("MainPID") or 0)
    if "error" in evidence["unit"] and evidence["port"]:
        pid = evidence["port"][0]["pid"]  # no systemd: the server is what listens on its port
    evidence["process"] = get_fact(ProcessInfo, {"pid": pid}) if pid else None
    argv = (evidence["process"] or {}).get("argv", [])
    if argv[1:3] == ["-m", "sglang.launch_server"]:
        evidence["dry_parse"] = get_fact(PythonJson, {
            "python": python, "code": SGLANG_DRY_PARSE_CODE,
            **dry_parse_arguments(argv, offline_environment(settings))})
    if pin is not None:  # every file of the snapshot hashed again against the manifest
        evidence["pin"] = pin.commit
        evidence["model"] = get_fact(PythonJson, {"python": "python3", "code": MODEL_FETCH_CODE,
                                                  "args": ("check", json.dumps(worker_spec(
                                                      settings, pin, host_name,
                                                      {"hub": pin.endpoint})))})
    evidence["health"] = get_fact(PythonJson, {
        "python": "python3", "code": HEALTH_CODE,
        "args": (f"http://127.0.0.1:{settings.port}/health",)})
    evidence["metrics"] = get_fact(PythonJson, {"python": "python3", "code": METRICS_CODE,
                                                "args": ("figures", str(settings.port))})
    if evidence["health"].get("status") == 200:
        runner = f"pid:{pid}" if "error" in evidence["unit"] and pid else runner
        evidence["generate"] = get_fact(PythonJson, {"python": "python3", "code": WAIT_CODE,
                                                     "args": (str(settings.port), "10", runner)})
    return evidence


def normal_name(name: str) -> str:
    return name.lower().replace("_", "-")


def pins_missing(wanted: dict[str, str], installed: dict[str, str]) -> list[str]:
    """Pins that the installed distributions do not satisfy exactly."""
    return [f"{name}=={pin} (installed: {installed.get(normal_name(name), 'none')})"
            for name, pin in wanted.items() if installed.get(normal_name(name)) != pin]


def arch_covers(arch_list: list[str], capability: str) -> bool:
    """Whether torch's CUDA arch list can run on a GPU of ``capability`` ("12.0").

    A cubin for the exact architecture runs; PTX (compute_XY) for an equal or older
    architecture is JIT-compiled by the driver.
    """
    major, minor = capability.split(".")
    wanted = int(major) * 10 + int(minor)
    for arch in arch_list:
        kind, _, number = arch.partition("_")
        number = number.rstrip("af")
        if not number.isdigit():
            continue
        if kind == "sm" and int(number) == wanted:
            return True
        if kind == "compute" and int(number) <= wanted:
            return True
    return False


def _from_preflight(settings: Settings, ev: dict, names: set[str], check: str) -> Finding:
    # Verification judges; it changes nothing: every driver problem is a failure here.
    driver = drivers.plan(replace(settings, driver_install="never"), ev["driver"], ev["gpus"])
    failures = [f for f in evaluate(settings, ev["gpus"], ev["disks"], None, "systemd", driver)
                if f.check in names]
    if not failures:
        return Finding(check, True, "as needed")
    return Finding(check, False, "; ".join(f"{f.found} (needed {f.needed})" for f in failures),
                   fix="; ".join(sorted({f.todo for f in failures})))


def _journal_symptom(ev: dict) -> tuple[Symptom | None, str]:
    found = match("\n".join(ev.get("journal") or []))
    return found if found else (None, "")


def check_disk(settings: Settings, ev: dict) -> Finding:
    return _from_preflight(settings, ev, {"disk-space"}, "disk")


def check_gpus(settings: Settings, ev: dict) -> Finding:
    return _from_preflight(settings, ev, {"nvidia-driver", "gpu-devices", "gpu-count",
                                          "compute-capability", "gpu-memory"}, "gpus")


def check_driver(settings: Settings, ev: dict) -> Finding:
    return _from_preflight(settings, ev, {"nvidia-driver", "driver-version", "driver-flavour",
                                          "nouveau", "driver-reboot"}, "driver")


def check_libnuma(settings: Settings, ev: dict) -> Finding:
    if ev["libnuma"]:
        return Finding("libnuma", True, "libnuma.so.1 in the linker cache")
    symptom = BY_KEY["libnuma-missing"]
    return Finding("libnuma", False, "no libnuma.so.1 in `ldconfig -p`", symptom.cause,
                   symptom.fix, symptom)


def _venv_failure(check: str, error: str | None) -> Finding | None:
    if not error:
        return None
    found = match(error)
    if found:
        return Finding(check, False, found[1], found[0].cause, found[0].fix, found[0], found[1])
    last = error.strip().splitlines()[-1] if error.strip() else "the venv's python failed"
    cause = ("a package of the stack is not installed in the venv" if "No module named" in last
             else "the venv is missing or broken")
    return Finding(check, False, last, cause, "run the deploy: pyinfra inventory.py deploy.py")


def check_torch_arch(settings: Settings, ev: dict) -> Finding:
    failure = _venv_failure("torch-arch", ev["torch"].get("error"))
    if failure:
        return failure
    arch = ev["torch"]["arch_list"]
    missing = sorted({g["compute_cap"] for g in ev["gpus"]["gpus"]
                      if g["compute_cap"] and not arch_covers(arch, g["compute_cap"])})
    if not missing:
        return Finding("torch-arch", True, f"torch {ev['torch']['torch']} arch list {arch}")
    symptom = BY_KEY["no-kernel-image"]
    return Finding("torch-arch", False, f"torch {ev['torch']['torch']} arch list {arch} "
                   f"lacks compute capability {', '.join(missing)}", symptom.cause, symptom.fix,
                   symptom)


def check_kernel_abi(settings: Settings, ev: dict) -> Finding:
    failure = _venv_failure("kernel-abi", ev["torch"].get("error")
                            or ev["torch"].get("kernel_error"))
    return failure or Finding("kernel-abi", True,
                              f"{settings.stack_def().kernel_module} imports next to torch")


def check_pins(settings: Settings, ev: dict) -> Finding:
    if "error" in ev["venv"]:
        return Finding("pins", False, f"no venv at {settings.venv_dir}",
                       "the stack was never installed here", "run the deploy")
    missing = pins_missing(settings.stack_def().packages, ev["venv"])
    if not missing:
        return Finding("pins", True, f"stack {settings.stack} pins installed")
    return Finding("pins", False, ", ".join(missing), "the venv drifted from the stack",
                   "run the deploy: it reinstalls exactly the stack's pins")


def check_unit(settings: Settings, ev: dict) -> Finding:
    unit = ev["unit"]
    if unit.get("Manager") == "supervisor":
        return _check_program(unit, ev)
    if "error" in unit:
        return Finding("unit", False, f"no systemd here ({unit['error']}; PID 1 is "
                       f"{ev['pid1']!r})", "the host does not run systemd as PID 1",
                       "run on a host booted with systemd")
    state = (unit.get("UnitFileState"), unit.get("ActiveState"))
    if state == ("enabled", "active"):
        return Finding("unit", True, f"{SERVICE_UNIT} enabled and active")
    symptom, line = _journal_symptom(ev)
    return Finding("unit", False, f"{SERVICE_UNIT} {state[0] or 'missing'} and {state[1]} "
                   f"(result {unit.get('Result')}, status {unit.get('ExecMainStatus')})",
                   symptom.cause if symptom else "the server exits or was never deployed",
                   symptom.fix if symptom else "see `journalctl -u sglang`; run the deploy",
                   symptom, line)


def _check_program(program: dict, ev: dict) -> Finding:
    """The server as a supervisord program: running, or its state in supervisor's words."""
    state, said = program.get("SubState"), program.get("Result", "")
    if state == "supervisord-down":
        return Finding("unit", False, said, "the supervisor is not running (a container "
                       "restart whose entrypoint starts only sshd?)",
                       f"run the deploy (it starts supervisord), and make the container's "
                       f"start command {START_COMMAND}")
    if program.get("UnitFileState") == "enabled" and state in ("RUNNING", "STARTING"):
        # STARTING: started less than startsecs ago (health says whether it serves)
        return Finding("unit", True, f"program {PROGRAM} {state} under supervisord ({said})")
    symptom, line = _journal_symptom(ev)
    looping = {"BACKOFF": "restarting in a loop (BACKOFF: it exits within startsecs)",
               "FATAL": "given up (FATAL: it exited too quickly, startretries times)"}
    return Finding("unit", False, f"program {PROGRAM} {program.get('UnitFileState')} and "
                   f"{state}: {looping.get(state or '', said)}",
                   symptom.cause if symptom else "the server exits or was never deployed",
                   symptom.fix if symptom else f"see {MANAGERS['supervisor'].log}; run the deploy",
                   symptom, line)


def check_user(settings: Settings, ev: dict) -> Finding:
    process = ev.get("process")
    if not process:
        return Finding("user", False, "no running server process",
                       "the service is not running", "see the unit check")
    if process["user"] == settings.service_user:
        return Finding("user", True, f"runs as {process['user']}")
    return Finding("user", False, f"runs as {process['user']}, not {settings.service_user}",
                   "the unit was written by something else", "run the deploy")


def check_argv(settings: Settings, ev: dict) -> Finding:
    if "dry_parse" not in ev:
        return Finding("argv", False, "no running sglang.launch_server to check",
                       "the service is not running", "see the unit check")
    result = ev["dry_parse"]
    if "error" not in result:
        return Finding("argv", True, "the running argv parses with the installed SGLang")
    return Finding("argv", False, refusal_line(result["error"]),
                   "flags the installed SGLang does not accept, or refuses together",
                   "run the deploy: it renders the profile's intents for this SGLang")


def check_port(settings: Settings, ev: dict) -> Finding:
    holders = ev["port"]
    if holders and all(h["unit"] == SERVICE_UNIT or str(h["pid"]) == ev["unit"].get("MainPID")
                       for h in holders):
        return Finding("port", True, f"port {settings.port} held by the server "
                       f"({holders[0]['unit'] or 'supervisor program ' + PROGRAM})")
    if holders is None:
        return Finding("port", False, f"nothing listens on port {settings.port}",
                       "the server is not up", "see the unit and health checks")
    server = ev.get("process") or {}
    if "error" in ev["unit"] and server.get("argv", [])[1:3] == ["-m", "sglang.launch_server"]:
        return Finding("port", False, f"port {settings.port} held by the SGLang server (pid "
                       f"{holders[0]['pid']}), not by {SERVICE_UNIT}: no systemd here",
                       "the server was started by hand", "run it as the deploy's unit")
    who = ", ".join(f"pid {h['pid']} ({h['comm']}, {h['unit'] or 'no unit'})" for h in holders)
    return Finding("port", False, f"port {settings.port} held by {who or 'an unseen process'}",
                   "another process holds the port (a stale container?)",
                   "stop it: docker rm -f sglang, or choose another port")


def check_health(settings: Settings, ev: dict) -> Finding:
    status = ev["health"].get("status")
    if status == 200:
        return Finding("health", True, "/health answered 200")
    symptom, line = _journal_symptom(ev)
    not_up = "not ready: still warming up, or stuck" if status == 503 else "the server is not up"
    return Finding("health", False, f"/health answered {status or 'nothing'}"
                   f"{load_text(ev.get('metrics') or {})}",
                   symptom.cause if symptom else not_up,
                   symptom.fix if symptom else "see `journalctl -u sglang`", symptom, line)


def load_text(metrics: dict) -> str:
    """What a server's own metrics say of its load, to go next to a finding ('' without)."""
    if "running" not in metrics:
        return ""
    return (f" (its metrics: {metrics['running']} running, {metrics['queued']} queued, KV "
            f"cache {metrics['kv_use'] * 100:.0f}% used)")


def check_metrics(settings: Settings, ev: dict) -> Finding:
    found = ev.get("metrics") or {}
    if "running" in found:
        return Finding("metrics", True, f"/metrics answered with SGLang's figures"
                       f"{load_text(found)}")
    said = f"/metrics answered {found.get('status') or 'nothing'}"
    if found.get("status") == 200:
        said += " without SGLang's figures"
    return Finding("metrics", False, said, "the server runs without --enable-metrics, or is "
                   "not up", "run the deploy (every profile turns metrics on)")


def check_inference(settings: Settings, ev: dict) -> Finding:
    reply = ev.get("generate")
    if reply and reply.get("tokens"):
        return Finding("inference", True, f"/generate returned {reply['tokens']} tokens")
    found = (reply.get("reason") or reply.get("error")) if reply else "no answer (health failed)"
    return Finding("inference", False, f"/generate: {found}", "the server cannot generate",
                   "see the health check and `journalctl -u sglang`")


def check_gpu_memory_use(settings: Settings, ev: dict) -> Finding:
    fraction = settings.mem_fraction_static or settings.profile_def().mem_fraction_static
    allowed = {g["index"]: g["memory_total_mib"] * fraction + settings.gpu_memory_slack_mib
               for g in ev["gpus"]["gpus"]}
    over = [g for g in ev["gpus"]["gpus"] if (g["memory_used_mib"] or 0) > allowed[g["index"]]]
    shown = ", ".join(f"GPU {g['index']} {g['memory_used_mib']}/{g['memory_total_mib']} MiB"
                      for g in ev["gpus"]["gpus"])
    if not shown:
        return Finding("gpu-memory-use", False, "no GPU to read", "see the gpus check")
    if not over:
        return Finding("gpu-memory-use", True, shown)
    return Finding("gpu-memory-use", False, f"{shown}: above {fraction:g} of total + "
                   f"{settings.gpu_memory_slack_mib} MiB", "another process uses the GPU, or "
                   "the server uses more than its static fraction", "check `nvidia-smi`; lower "
                   "mem_fraction_static", BY_KEY["health-503"])


def check_model(settings: Settings, ev: dict) -> Finding:
    if "pin" not in ev:
        return Finding("model", True, "no pinned Hub model to check (a local directory, or "
                       "nothing pinned yet)")
    argv = (ev.get("process") or {}).get("argv", [])
    served = argv[argv.index("--revision") + 1] if "--revision" in argv[:-1] else None
    symptom = BY_KEY["model-not-staged"]
    found = ev["model"]
    if "error" in found:
        return Finding("model", False, f"the snapshot could not be read: {found['error']}",
                       symptom.cause, symptom.fix, symptom)
    if not found["ok"]:
        return Finding("model", False, "files that do not match the Hub's hashes for "
                       f"{settings.model}@{ev['pin']}: " + "; ".join(
                           f"{bad['path']} (expected {bad['expected']}, found {bad['found']})"
                           for bad in found["bad"]), symptom.cause, symptom.fix, symptom)
    if served != ev["pin"]:
        return Finding("model", False, f"the server runs revision {served}, the fleet's pin is "
                       f"{ev['pin']}", "the unit was not rewritten since the pin changed",
                       "run the deploy")
    return Finding("model", True, f"{settings.model}@{ev['pin']}: {found['files']} files match "
                   "the Hub's hashes, and the server runs that commit")


CHECKS: dict[str, Callable[[Settings, dict], Finding]] = {
    "disk": check_disk,
    "gpus": check_gpus,
    "driver": check_driver,
    "libnuma": check_libnuma,
    "torch-arch": check_torch_arch,
    "kernel-abi": check_kernel_abi,
    "pins": check_pins,
    "unit": check_unit,
    "user": check_user,
    "argv": check_argv,
    "port": check_port,
    "health": check_health,
    "metrics": check_metrics,
    "inference": check_inference,
    "gpu-memory-use": check_gpu_memory_use,
    "model": check_model,
}


def verify(settings: Settings, evidence: dict) -> list[Finding]:
    return [check(settings, evidence) for check in CHECKS.values()]


def restarts_grew(before: dict, after: dict) -> Finding:
    """A restart loop shows as NRestarts growing between two reads."""
    if "error" in before or "error" in after:
        return Finding("restarts", False, f"no systemd: {before.get('error')}",
                       "the host does not run systemd", "run on a host booted with systemd")
    first, last = int(before.get("NRestarts") or 0), int(after.get("NRestarts") or 0)
    if last == first:
        return Finding("restarts", True, f"NRestarts stayed {last}")
    return Finding("restarts", False, f"NRestarts grew from {first} to {last} during the run",
                   "the server crashes and its manager restarts it (systemd, or supervisord)",
                   f"see `{MANAGERS['systemd'].log}`, or {MANAGERS['supervisor'].log} under "
                   "supervisord "
                   "(diagnose.py names the symptom)")

