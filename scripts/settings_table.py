"""The README's settings table, from the Settings object (the one place settings live).

    python scripts/settings_table.py [--write]   # print it, or rewrite it in README.md
"""

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


def write_readme(readme: Path) -> None:
    """Replace the table between the README's settings markers."""
    text = readme.read_text()
    head, rest = text.split("<!-- settings:begin -->\n", 1)
    _, tail = rest.split("\n<!-- settings:end -->", 1)
    readme.write_text(f"{head}<!-- settings:begin -->\n{table()}\n<!-- settings:end -->{tail}")


if __name__ == "__main__":
    if "--write" in sys.argv:
        write_readme(Path(__file__).resolve().parent.parent / "README.md")
    else:
        print(table())
