"""Name a host's trouble from its evidence: healthy, one of the chart's symptoms (with the
evidence line that matched, the cause and the fix), or unknown with the journal's last lines.

Example::

    diagnosis = diagnose(evidence)      # evidence from operations.checks.gather
    print("\\n".join(diagnosis.lines("gpu-01")))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from operations.symptoms import BY_KEY, Symptom, match


@dataclass(frozen=True)
class Diagnosis:
    healthy: bool
    summary: str
    symptom: Symptom | None = None
    evidence_line: str = ""
    journal_tail: list[str] = field(default_factory=list)
    # Not failed: not ready yet (the wait ran out, or /health 503), and nothing in the log.
    not_ready: str = ""

    def lines(self, host_name: str) -> list[str]:
        if self.healthy:
            return [f"{host_name}: healthy ({self.summary})"]
        if self.not_ready:
            return [f"{host_name}: {self.summary}; {self.not_ready}"]
        if self.symptom:
            return [f"{host_name}: {self.summary}; chart symptom {self.symptom.symptom!r}: "
                    f"evidence {self.evidence_line!r}; cause: {self.symptom.cause}; "
                    f"fix: {self.symptom.fix}"]
        return [f"{host_name}: {self.summary}; no chart symptom matched; last journal lines:",
                *(f"{host_name}:   {line}" for line in self.journal_tail[-15:])]


def _state(evidence: dict[str, Any]) -> str:
    unit = evidence.get("unit") or {}
    if "error" in unit:
        return f"no systemd ({unit['error']})"
    if unit.get("Manager") == "supervisor":  # supervisor's own words: RUNNING, BACKOFF, FATAL
        text = f"supervisor program sglang {unit.get('SubState')} ({unit.get('Result')})"
    else:
        text = f"sglang.service {unit.get('ActiveState')}/{unit.get('SubState')}"
        if unit.get("Result") not in (None, "", "success"):
            text += f", result {unit['Result']} (status {unit.get('ExecMainStatus')})"
    if unit.get("NRestarts") not in (None, "", "0"):
        text += f", restarted {unit['NRestarts']} times"
    health = (evidence.get("health") or {}).get("status")
    return f"{text}, /health {health or 'no answer'}"


def diagnose(evidence: dict[str, Any]) -> Diagnosis:
    """Pure: tested on excerpts of real logs (tests/unit/test_diagnosis.py)."""
    summary = _state(evidence)
    tokens = (evidence.get("generate") or {}).get("tokens")
    if (evidence.get("health") or {}).get("status") == 200 and tokens:
        return Diagnosis(True, f"{summary}, /generate returned {tokens} tokens")
    journal = list(evidence.get("journal") or [])
    torch = evidence.get("torch") or {}
    # The driver first: without it nothing else can work (most telling problem last: match
    # reads the latest line first).
    sources = ["\n".join(reversed(evidence.get("driver_problems") or [])), "\n".join(journal),
               torch.get("kernel_error") or "", torch.get("error") or "",
               (evidence.get("wait") or {}).get("reason", "")]
    for source in sources:
        found = match(source)
        if found:
            return Diagnosis(False, summary, found[0], found[1], journal)
    if evidence.get("libnuma") is False:
        return Diagnosis(False, summary, BY_KEY["libnuma-missing"],
                         "ldconfig -p lists no libnuma.so.1", journal)
    wait = evidence.get("wait") or {}
    if wait.get("state") == "starting":
        return Diagnosis(False, summary, journal_tail=journal, not_ready=(
            f"{wait['reason']}, and its log names no failure: raise health_timeout_s (real "
            "SGLang opens its port only after its imports, the weights and a warm-up: 40 s to "
            "minutes, longer for a large model or a first start)"))
    if (evidence.get("health") or {}).get("status") == 503:
        return Diagnosis(False, summary, journal_tail=journal, not_ready=(
            "/health answers 503 and the log names no failure: still warming up, or stuck; "
            "see `journalctl -u sglang`"))
    return Diagnosis(False, summary, None, "", journal)
