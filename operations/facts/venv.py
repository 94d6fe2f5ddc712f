"""The venv: whether it has a Python, the distributions it holds, and what its torch, kernel
package and SGLang say of themselves (programs for PythonJson, run with the venv's python).

Example::

    host.get_fact(PythonJson, python="/opt/sglang/venv/bin/python", code=TORCH_KERNEL_CODE,
                  args=("torch", "sgl_kernel"))
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from pyinfra.api import FactBase

from operations import FILES_DIR
from operations.facts.status import YesNo, split_status, with_status


class VenvExists(YesNo):
    """Whether ``venv`` has a Python interpreter (a symlink in a venv, so not files.File)."""

    def command(self, venv: str) -> str:
        return f"[ -x {shlex.quote(venv + '/bin/python')} ] && echo yes || echo no"


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
        return with_status(f"test -x {shlex.quote(python)} || {{ echo 'no python at {python}'; "
                           f"exit 3; }}; for d in {root}/lib/python3*/site-packages/*.dist-info; "
                           'do [ -d "$d" ] && echo "${d##*/}"; done; true')

    @staticmethod
    def default() -> dict[str, Any]:  # what a host that cannot be read gives
        return {"error": "the host could not be read"}

    def process(self, output: list[str]) -> dict[str, Any]:
        lines, status = split_status(output)
        if status:
            return {"error": "\n".join(lines), "status": status}
        found = {}
        for line in lines:
            name, _, version = line.removesuffix(".dist-info").rpartition("-")
            if name:
                found[name.lower().replace("_", "-")] = version
        return found


# Programs for PythonJson, run with the venv's python; each prints one JSON line (its file's
# docstring says what, and its argv).
# torch, then the kernel package, imported as SGLang does: an ABI mismatch shows in
# "kernel_error" (the import's own words), torch's build facts either way.
TORCH_KERNEL_CODE = (FILES_DIR / "torch_kernel_probe.py").read_text()
# The installed SGLang's own parser: its version and every option it accepts.
SGLANG_OPTIONS_CODE = (FILES_DIR / "sglang_options.py").read_text()
# The server's argv parsed and validated by the installed SGLang, in seconds rather than after
# its 40 s of imports; run with the unit's environment (HF_HUB_OFFLINE, HF_HOME).
SGLANG_DRY_PARSE_CODE = (FILES_DIR / "sglang_dry_parse.py").read_text()


def refusal_line(error: str) -> str:
    """What a failed dry-parse said, in one line: argparse's ``error:`` line, or the exception
    SGLang's validation raised (the last ``SomethingError: ...`` of the traceback)."""
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()]
    said = [line for line in lines if "error:" in line
            or re.match(r"^[\w.]*(Error|Exception)\b.*:", line)]
    return said[-1] if said else " | ".join(lines[-3:])
