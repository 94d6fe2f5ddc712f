"""The fleet's alerting rules (files/monitoring/sglang-alerts.rules.yml), checked by the
distribution's promtool: valid, each alert firing on recorded series where it should and
silent where it should not (tests/alerts/), and a rule that drifts fails those tests."""

from __future__ import annotations

import re

from tests.conftest import ROOT, promtool

RULES = ROOT / "files" / "monitoring" / "sglang-alerts.rules.yml"
TESTS = ROOT / "tests" / "alerts" / "sglang-alerts.test.yml"


def test_the_rules_are_valid_prometheus_rules():
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 9 rules found" in checked.stdout


def test_each_alert_fires_on_its_recorded_series_and_not_on_the_others():
    tested = promtool("test", "rules", str(TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    alerts = re.findall(r"- alert: (\w+)", RULES.read_text())
    firing = re.findall(r"alertname: (\w+)\n\s+exp_alerts:\n\s+- exp_labels", TESTS.read_text())
    assert sorted(set(firing)) == sorted(alerts)  # every alert has a case where it fires


def test_a_rule_that_drifts_fails_its_recorded_case(tmp_path):
    """The KV cache alert at 99 % instead of 90 %: the recorded 95 % no longer fires it."""
    drifted = tmp_path / "files" / "monitoring" / RULES.name
    drifted.parent.mkdir(parents=True)
    drifted.write_text(RULES.read_text().replace("sglang:token_usage > 0.9",
                                                 "sglang:token_usage > 0.99"))
    cases = tmp_path / "tests" / "alerts" / TESTS.name
    cases.parent.mkdir(parents=True)
    cases.write_text(TESTS.read_text())
    tested = promtool("test", "rules", str(cases))
    assert tested.returncode == 1
    assert "alertname: SGLangKVCacheNearFull" in tested.stdout + tested.stderr
