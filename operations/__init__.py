"""Deploy stages, facts and data for turning RTX 5090 hosts into SGLang servers."""

from pathlib import Path

# Templates and the scripts run on hosts.
FILES_DIR = Path(__file__).resolve().parent.parent / "files"
