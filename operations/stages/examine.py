"""diagnose.py's one stage: gather a host's evidence read-only, name what is wrong, and on
request apply the chart's fix (operations/remediation.py).

Example::

    from operations.stages import examine
    examine.apply(settings, Done())   # read-only unless settings.remediate
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation

from operations import remediation, survey
from operations.checks import gather
from operations.diagnosis import diagnose
from operations.outcome import Done, fail
from operations.report import note
from operations.roles import monitoring, settings_of
from operations.scrape import prometheus_url, recent
from operations.settings import Settings


@operation(is_idempotent=True)
def diagnosed(settings: Settings, remediate: bool = False):
    """Healthy, or the chart's symptom with its evidence, cause and fix; a recorded fallback is
    shown either way. Changes nothing unless ``remediate``.

    + settings: the host's validated settings
    + remediate: apply the chart's fix, bounded, then check health again
    """
    record = remediation.read_record(settings)
    evidence = gather(lambda fact, kwargs: host.get_fact(fact, **kwargs),
                      remediation.effective(settings, record))
    diagnosis = diagnose(evidence)
    note(host.name, diagnosis.lines(host.name)[0].split(": ", 1)[1])
    if record.get("overrides"):
        note(host.name, f"runs on a fallback: {record['overrides']}")
    for event in record.get("history", []):
        note(host.name, f"remediated {event['at']}: {event['remedy']} (after "
                        f"{event['symptom']!r}: {event['evidence']!r})")
    if diagnosis.healthy:
        return
    for watcher in monitoring()[:1]:  # what the fleet's Prometheus saw before this
        said = recent(prometheus_url(watcher, settings_of(watcher)), host.name)
        if said:
            note(host.name, said)
    if not remediate:
        yield fail(diagnosis.lines(host.name))
        return
    yield from remediation.steps(settings, diagnosis)


def reads(settings: Settings) -> list[survey.Read]:
    """A diagnosis reads as it goes (read-only, no survey)."""
    return []


def apply(settings: Settings, done: Done) -> None:
    """Changes nothing unless the settings say ``remediate`` (diagnose.py: only when asked)."""
    diagnosed(name="Diagnose sglang.service", settings=settings, remediate=settings.remediate)
