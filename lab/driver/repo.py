"""The lab's stand-in for NVIDIA's CUDA apt repository (Debian 12 layout), built at ``lab up``
and served from the control side; see ``__init__.py`` for what it simulates.

Example::

    from lab.driver import repo
    repo.build(LAB_DIR / "nvidia-repo", LAB_DIR / "driver-gpg")
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DISTRO_PATH = "debian12/x86_64"  # NVIDIA's path for Debian 12, under the repository's root
# Each branch's version: the version the lab's nvidia-smi captures report.
BRANCHES = {565: "565.57.01", 570: "570.153.02", 580: "580.95.05"}
MODULE_FILE = "/usr/lib/lab-driver/nvidia-module.json"  # the module DKMS built (kernel_boot.py)
NVML_FILE = "/usr/share/lab-driver/nvml-version"  # the userspace's version (nvidia_smi.py)
HEADERS_DIR = "/usr/src/linux-headers-{kernel}"
FLAVOURS = {  # flavour: (metapackage, kernel-module package, the other flavour's module package)
    "open": ("nvidia-open", "nvidia-kernel-open-dkms", "nvidia-kernel-dkms"),
    "proprietary": ("cuda-drivers", "nvidia-kernel-dkms", "nvidia-kernel-open-dkms"),
}

# DKMS builds the module for the running kernel in the package's postinst, and says so (but
# does not fail) when that kernel's headers are missing: the module is then simply not there.
_MODULE_POSTINST = """#!/bin/sh
set -e
[ "$1" = configure ] || exit 0
kernel=$(uname -r)
if [ ! -d /usr/src/linux-headers-$kernel ]; then
  echo "Error! Your kernel headers for kernel $kernel cannot be found at" \\
    "/lib/modules/$kernel/build or /lib/modules/$kernel/source." >&2
  echo "Please install the linux-headers-$kernel package or use the --kernelsourcedir" \\
    "option to tell DKMS where it's located." >&2
  exit 0
fi
mkdir -p $(dirname {module_file})
printf '%s\\n' '{module}' > {module_file}
"""
_MODULE_POSTRM = """#!/bin/sh
set -e
grep -qs '"{flavour}"' {module_file} && rm -f {module_file}
exit 0
"""
_PERSISTENCED_UNIT = """[Unit]
Description=NVIDIA Persistence Daemon
Wants=syslog.target

[Service]
Type=simple
ExecStart=/usr/bin/nvidia-persistenced --verbose
ExecStopPost=/bin/rm -rf /var/run/nvidia-persistenced

[Install]
WantedBy=multi-user.target
"""


def _deb(out: Path, control: dict[str, str], files: dict[str, str | Path],
         scripts: dict[str, str] | None = None) -> Path:
    """One .deb: control fields, files (path on the host: text, or a file to copy, made
    executable when it is a script) and maintainer scripts."""
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        (root / "DEBIAN").mkdir()
        fields = {"Package": control["Package"], "Version": control["Version"],
                  "Architecture": control.get("Architecture", "amd64"),
                  "Maintainer": "sglang lab <lab@localhost>", **control}
        fields.setdefault("Description", f"{fields['Package']} (lab stand-in)")
        (root / "DEBIAN/control").write_text("".join(f"{k}: {v}\n" for k, v in fields.items()))
        for name, text in (scripts or {}).items():
            (root / "DEBIAN" / name).write_text(text)
            (root / "DEBIAN" / name).chmod(0o755)
        for path, content in files.items():
            target = root / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                shutil.copy(content, target)
                target.chmod(0o755)
            else:
                target.write_text(content)
        deb = out / f"{fields['Package']}_{fields['Version']}_{fields['Architecture']}.deb"
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root),
                        str(deb)], check=True, capture_output=True)
    return deb


def packages(out: Path, keyring: bytes, repo_url: str, kernel: str) -> list[Path]:
    """Every stand-in package, into ``out``."""
    keyring_file = out.parent / "cuda-archive-keyring.gpg"
    keyring_file.write_bytes(keyring)
    debs = [
        _deb(out, {"Package": "cuda-keyring", "Version": "1.1-1", "Architecture": "all"},
             {"/usr/share/keyrings/cuda-archive-keyring.gpg": keyring_file,
              "/etc/apt/sources.list.d/cuda-debian12-x86_64.list":
                  f"deb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg] {repo_url} /\n"}),
        _deb(out, {"Package": f"linux-headers-{kernel}", "Version": "1-lab"},
             {f"{HEADERS_DIR.format(kernel=kernel)}/Makefile": "# headers (lab stand-in)\n"}),
    ]
    keyring_file.unlink()
    for branch, version in BRANCHES.items():
        deb_version = f"{version}-1"
        pinned = ("nvidia-open cuda-drivers nvidia-kernel-open-dkms nvidia-kernel-dkms "
                  "nvidia-smi nvidia-persistenced")
        debs.append(_deb(out, {
            "Package": f"nvidia-driver-pinning-{branch}", "Version": deb_version,
            "Architecture": "all", "Provides": "nvidia-driver-pinning",
            "Conflicts": "nvidia-driver-pinning"},
            {f"/etc/apt/preferences.d/nvidia-driver-pinning-{branch}":
             f"Package: {pinned}\nPin: version {branch}.*\nPin-Priority: 1000\n"}))
        debs.append(_deb(out, {"Package": "nvidia-smi", "Version": deb_version},
                         {"/usr/bin/nvidia-smi": HERE.parent / "gpus" / "nvidia_smi.py",
                          NVML_FILE: f"{version}\n"}))
        debs.append(_deb(out, {"Package": "nvidia-persistenced", "Version": deb_version},
                         {"/usr/bin/nvidia-persistenced": HERE / "nvidia_persistenced.py",
                          "/lib/systemd/system/nvidia-persistenced.service":
                              _PERSISTENCED_UNIT}))
        for flavour, (meta, module, other) in FLAVOURS.items():
            module_json = json.dumps({"flavour": flavour, "version": version})
            debs.append(_deb(out, {
                "Package": module, "Version": deb_version, "Conflicts": other,
                "Replaces": other, "Provides": f"nvidia-kernel-dkms-any (= {deb_version})"}, {},
                {"postinst": _MODULE_POSTINST.format(module=module_json,
                                                     module_file=MODULE_FILE),
                 "postrm": _MODULE_POSTRM.format(flavour=flavour, module_file=MODULE_FILE)}))
            debs.append(_deb(out, {
                "Package": meta, "Version": deb_version,
                "Depends": f"{module} (= {deb_version}), nvidia-smi (= {deb_version}), "
                           f"nvidia-persistenced (= {deb_version})"}, {}))
    return debs


def _control(deb: Path) -> str:
    return subprocess.run(["dpkg-deb", "--field", str(deb)], check=True, capture_output=True,
                          text=True).stdout.strip()


def _gpg(home: Path, *args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(["gpg", "--homedir", str(home), "--batch", "--quiet", *args],
                          input=data, check=True, capture_output=True).stdout


def signing_key(home: Path) -> bytes:
    """The repository's key (made once, kept under the lab dir): its public keyring."""
    if not (home / "made").exists():
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(mode=0o700, parents=True)
        _gpg(home, "--passphrase", "", "--quick-gen-key",
             "sglang lab NVIDIA repository stand-in", "ed25519", "sign", "never")
        (home / "made").write_text("")
    return _gpg(home, "--export")


def build(dest: Path, gpg_home: Path, repo_url: str) -> None:
    """The repository under ``dest``/debian12/x86_64: packages, Packages, Release, InRelease,
    and the keyring package also where NVIDIA's instructions fetch it from."""
    shutil.rmtree(dest, ignore_errors=True)
    root = dest / DISTRO_PATH
    root.mkdir(parents=True)
    try:
        keyring = signing_key(gpg_home)
        debs = packages(root, keyring, repo_url, os.uname().release)
        stanzas = []
        for deb in debs:
            data = deb.read_bytes()
            stanzas.append(f"{_control(deb)}\nFilename: ./{deb.name}\nSize: {len(data)}\n"
                           f"SHA256: {hashlib.sha256(data).hexdigest()}\n")
        index = "\n".join(stanzas).encode()
        (root / "Packages").write_bytes(index)
        release = (f"Origin: sglang lab\nLabel: NVIDIA CUDA repository (lab stand-in)\n"
                   f"Date: {email.utils.formatdate(usegmt=True)}\nSHA256:\n"
                   f" {hashlib.sha256(index).hexdigest()} {len(index)} Packages\n")
        (root / "Release").write_text(release)
        (root / "InRelease").write_bytes(
            _gpg(gpg_home, "--yes", "--clearsign", "--output", "-", data=release.encode()))
    finally:  # gpg started an agent for this home: the lab stops what it started
        subprocess.run(["gpgconf", "--homedir", str(gpg_home), "--kill", "gpg-agent"],
                       capture_output=True)


def preinstalled(repo: Path, flavour: str, branch: int) -> list[Path]:
    """The .deb files of a host set up earlier with ``flavour`` at ``branch`` from NVIDIA's
    repository (``repo``: what ``build`` made): its keyring, pinning, driver and headers."""
    version = f"{BRANCHES[branch]}-1"
    meta, module, _ = FLAVOURS[flavour]
    wanted = ["cuda-keyring_1.1-1", f"nvidia-driver-pinning-{branch}_{version}",
              *(f"{name}_{version}" for name in (meta, module, "nvidia-smi",
                                                 "nvidia-persistenced")),
              f"linux-headers-{os.uname().release}_1-lab"]
    return [next((repo / DISTRO_PATH).glob(f"{name}_*.deb")) for name in wanted]
