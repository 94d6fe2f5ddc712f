"""Fetch a stack's wheels once for the fleet and lock them with their hashes; run on the
wheelhouse host with its tool venv's python:  wheelhouse_fetch.py STACK_DIR SPEC_JSON

SPEC_JSON: {"sources": [pip source options], "steps": [[requirements], [step options]],
"installer": [requirements], "digest": "..."}. Each step is resolved as a real install would
resolve it (pip install --dry-run --report); a later step's choice of a package wins, as it does
in a venv. The chosen files are downloaded into STACK_DIR/files and STACK_DIR/requirements.lock
lists each as ``name==version --hash=sha256:...``: hosts install with --require-hashes, from here
only. The installer (uv, without dependencies) is locked alike in STACK_DIR/installer.lock;
STACK_DIR/files.json lists every file with its size and sha256 (workers fetch them resumably).
STACK_DIR/stack.sha256 (the spec's digest) is written last: a cut-off fetch leaves none.
"""

import hashlib
import json
import os
import subprocess
import sys
import urllib.parse


def pip(*args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    if result.returncode:
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
        sys.exit(f"pip {args[0]} failed ({result.returncode})")


def resolve(stack_dir: str, sources: list[str], options: list[str], requirements: list[str],
            chosen: dict[str, tuple[str, str]]) -> None:
    """What pip would install for these requirements, into ``chosen`` (name -> (version,
    file name))."""
    report = os.path.join(stack_dir, "report.json")
    pip("install", "--dry-run", "--ignore-installed", "--quiet", "--report", report,
        *sources, *options, *requirements)
    with open(report) as handle:
        for item in json.load(handle)["install"]:
            name = item["metadata"]["name"].lower().replace("_", "-")
            url = item["download_info"]["url"]
            file_name = urllib.parse.unquote(url.rsplit("/", 1)[-1].split("#")[0])
            chosen[name] = (item["metadata"]["version"], file_name)
    os.remove(report)


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def main(stack_dir: str, spec: dict) -> None:
    files = os.path.join(stack_dir, "files")
    os.makedirs(files, exist_ok=True)
    stack: dict[str, tuple[str, str]] = {}
    for requirements, options in spec["steps"]:
        resolve(stack_dir, spec["sources"], options, requirements, stack)
    installer: dict[str, tuple[str, str]] = {}
    if spec.get("installer"):
        resolve(stack_dir, spec["sources"], ["--no-deps"], spec["installer"], installer)
    chosen = {**stack, **installer}
    pins = [f"{name}=={version}" for name, (version, _) in sorted(chosen.items())]
    pip("download", "--no-deps", "--dest", files, *spec["sources"], "--pre", *pins)
    hashes = {name: sha256(os.path.join(files, file_name))
              for name, (_, file_name) in chosen.items()}
    texts = {lock: "".join(f"{name}=={version} --hash=sha256:{hashes[name]}\n"
                           for name, (version, _) in sorted(group.items()))
             for lock, group in (("requirements.lock", stack), ("installer.lock", installer))}
    # Every file with its size and hash: what a worker fetches, resumably (files/model_fetch.py)
    texts["files.json"] = json.dumps([
        {"path": file_name, "size": os.path.getsize(os.path.join(files, file_name)),
         "sha256": hashes[name]} for name, (_, file_name) in sorted(chosen.items())])
    for path, text in (*texts.items(), ("stack.sha256", spec["digest"])):
        with open(os.path.join(stack_dir, path + ".new"), "w") as handle:
            handle.write(text)
        os.replace(os.path.join(stack_dir, path + ".new"), os.path.join(stack_dir, path))
    print(f"{len(chosen)} files locked in {stack_dir}")


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]))
