"""pip against uv, installing the real default stack (cu13-stable: torch, the nvidia-* libraries,
sglang-kernel, FlashInfer, SGLang and their dependencies) from local wheels, as a worker
installs from the wheelhouse: fresh venvs, one install alone and N at once, each tool the same
pins. Prints per install the wall time, the peak memory of its largest process and the venv's
disk use; then whether both tools installed the same distributions.

    sudo .venv/bin/python bench/stack_install.py [--parallel 4] [--keep]

The wheels are resolved from the package index once (pip download) into the lab's cache
(/var/lib/sglang-lab/cache/wheels/<stack>), kept between runs; uv comes from the index too.
uv runs with a cold cache of its own and --compile-bytecode (pip byte-compiles by default).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab.inventory import LAB_DIR  # noqa: E402
from operations.stacks import STACKS  # noqa: E402

STACK = STACKS["cu13-stable"]
CACHE = LAB_DIR / "cache"
WHEELS = CACHE / "wheels" / STACK.name
UV = CACHE / "tools" / "uv-venv" / "bin" / "uv"
PINS = [f"{name}=={version}" for name, version in STACK.packages.items()]


def wheels() -> Path:
    if not any(WHEELS.glob("torch-*.whl")):
        WHEELS.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:",
                        "-d", str(WHEELS), *PINS], check=True)
    return WHEELS


def uv() -> Path:
    if not UV.exists():
        subprocess.run([sys.executable, "-m", "venv", str(UV.parent.parent)], check=True)
        subprocess.run([str(UV.parent / "pip"), "install", "-q", "uv"], check=True)
    return UV


def commands(tool: str, venv: Path, scratch: Path) -> tuple[list[list[str]], dict[str, str]]:
    """The commands that make ``venv`` and install the stack with ``tool``, and their
    environment."""
    found = ["--no-index", "--find-links", str(WHEELS)]
    if tool == "pip":
        return ([["/usr/bin/python3", "-m", "venv",
                  str(venv)],
                 [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                  "--disable-pip-version-check", *found, *PINS]], {})
    return ([[str(UV), "venv", "-q", "--python", "/usr/bin/python3", str(venv)],
             [str(UV), "pip", "install", "-q", "--python", str(venv / "bin" / "python"),
              "--compile-bytecode", *found, *PINS]],
            {"UV_CACHE_DIR": str(scratch / f"uv-cache-{venv.name}")})


def start(tool: str, venv: Path, scratch: Path) -> subprocess.Popen:
    steps, env = commands(tool, venv, scratch)
    script = " && ".join(" ".join(f"'{w}'" for w in step) for step in steps)
    return subprocess.Popen(["sh", "-c", script], env={**os.environ, **env})


def disk_bytes(path: Path) -> int:
    out = subprocess.run(["du", "-s", "--block-size=1", str(path)], capture_output=True,
                         text=True, check=True).stdout
    return int(out.split()[0])


def freeze(venv: Path) -> set[str]:
    out = subprocess.run([str(UV), "pip", "freeze", "--python", str(venv / "bin" / "python")],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def run(tool: str, count: int, scratch: Path) -> list[dict]:
    venvs = [scratch / f"{tool}-{count}-{i}" for i in range(count)]
    begun = time.monotonic()
    running = [(start(tool, venv, scratch), venv) for venv in venvs]
    results = []
    for process, venv in running:
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            raise SystemExit(f"{tool} install into {venv} failed ({process.returncode})")
        results.append({"venv": venv, "wall_s": time.monotonic() - begun,
                        "peak_mib": usage.ru_maxrss / 1024, "disk_gb": disk_bytes(venv) / 1e9})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--keep", action="store_true", help="keep the venvs (to look at them)")
    args = parser.parse_args()
    wheels()
    uv()
    count = len(list(WHEELS.glob("*.whl")))
    size = sum(p.stat().st_size for p in WHEELS.glob("*.whl"))
    version = subprocess.run([str(UV), "--version"], capture_output=True, text=True).stdout
    print(f"stack {STACK.name}: {', '.join(PINS)}: {count} wheels, {size / 1e9:.2f} GB; "
          f"{os.cpu_count()} CPUs; python3 {sys.version.split()[0]}; {version.strip()}")
    scratch = Path(tempfile.mkdtemp(prefix="stack-install-", dir=CACHE))
    try:
        installed: dict[str, set[str]] = {}
        for count in (1, args.parallel):
            for tool in ("pip", "uv"):
                results = run(tool, count, scratch)
                installed.setdefault(tool, freeze(results[0]["venv"]))
                walls = [r["wall_s"] for r in results]
                print(f"{tool:>3} x{count}: wall {max(walls):6.1f} s (each {min(walls):.1f}-"
                      f"{max(walls):.1f} s), peak {max(r['peak_mib'] for r in results):6.0f} "
                      f"MiB, disk {results[0]['disk_gb']:.2f} GB per venv", flush=True)
                if not args.keep:
                    for result in results:
                        shutil.rmtree(result["venv"])
                    for cache in scratch.glob("uv-cache-*"):
                        shutil.rmtree(cache)
        same = installed["pip"] == installed["uv"]
        print(f"same distributions: {same}" + ("" if same else
              f" (pip only: {sorted(installed['pip'] - installed['uv'])}; uv only: "
              f"{sorted(installed['uv'] - installed['pip'])})"))
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
