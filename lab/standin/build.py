"""Build the stand-in wheels into a wheelhouse laid out as a simple index (PEP 503):
``OUT/simple/<name>/<wheel>``, and the cause builds into ``OUT/causes/``.

    python3 -m lab.standin.build OUT
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import zipfile
from pathlib import Path

from lab.stacks import CAUSE_WHEELS, WHEELS

HERE = Path(__file__).resolve().parent
FLAGS = HERE.parent.parent / "files" / "sglang-flags"


def _hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(out: Path, dist: str, version: str, package: str, build: dict) -> Path:
    files: dict[str, bytes] = {}
    for path in sorted((HERE / package).rglob("*.py")):
        files[f"{package}/{path.relative_to(HERE / package)}"] = path.read_bytes()
    files[f"{package}/_build.json"] = json.dumps(build, indent=1).encode()
    if package == "sglang":
        files["sglang/srt/flags.json"] = (FLAGS / f"{build['version']}.json").read_bytes()
    info = f"{dist.replace('-', '_')}-{version}.dist-info"
    files[f"{info}/METADATA"] = (f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n"
                                 f"Summary: Lab stand-in for {package} (never for real hosts)\n"
                                 ).encode()
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: lab\nRoot-Is-Purelib: true\n" \
                             b"Tag: py3-none-any\n"
    record = "".join(f"{name},{_hash(data)},{len(data)}\n" for name, data in files.items())
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / f"{dist.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            info_entry = zipfile.ZipInfo(name, date_time=(2025, 9, 16, 0, 0, 0))
            info_entry.external_attr = 0o644 << 16
            archive.writestr(info_entry, data)
    return wheel


def build_all(out: Path) -> list[Path]:
    built = [build_wheel(out / "simple" / dist, dist, version, package, build)
             for dist, version, package, build in WHEELS]
    built += [build_wheel(out / "causes", dist, version, package, build)
              for dist, version, package, build in CAUSE_WHEELS]
    return built


if __name__ == "__main__":
    for wheel in build_all(Path(sys.argv[1])):
        print(wheel)
