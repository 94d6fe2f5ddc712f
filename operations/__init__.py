"""What the deploy's stages (operations/stages/) share, for turning RTX 5090 hosts into SGLang
servers: facts and parsers (facts, nvidia), checks and diagnosis (checks, diagnosis, symptoms,
remediation), data tables (stacks, profiles, settings), rendering (render), the fleet's roles,
models and rollout (roles, hub, rollout, preview, restarts), secrets and reporting."""

from pathlib import Path

# Templates and the scripts run on hosts.
FILES_DIR = Path(__file__).resolve().parent.parent / "files"
