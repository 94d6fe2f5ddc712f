"""Print the README's settings table from the Settings object (the one place they live)."""

from __future__ import annotations

import sys
from dataclasses import MISSING, fields
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from operations.settings import Settings  # noqa: E402


def table() -> str:
    rows = ["| setting | default | meaning |", "|---|---|---|"]
    for field in fields(Settings):
        default = field.default if field.default is not MISSING else field.default_factory()
        rows.append(f"| `{field.name}` | `{default!r}` | {field.metadata['meaning']} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
