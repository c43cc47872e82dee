"""The alert rules that ship (deploy/prometheus/alerts.yaml): valid, tested with promtool against
synthetic series (alerts_test.yaml), every alert tested, and reading only metrics Moviola exports."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from moviola.metrics import Metrics

RULES = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"


def promtool(*args: str) -> str:
    done = subprocess.run(["promtool", *args], cwd=RULES, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def alerts() -> list[dict[str, str]]:
    return [
        rule
        for group in yaml.safe_load((RULES / "alerts.yaml").read_text())["groups"]
        for rule in group["rules"]
    ]


def test_the_rules_are_valid_and_their_unit_tests_pass() -> None:
    assert f"SUCCESS: {len(alerts())} rules found" in promtool("check", "rules", "alerts.yaml")
    assert "SUCCESS" in promtool("test", "rules", "alerts_test.yaml")


def test_every_alert_has_a_unit_test() -> None:
    tested = {
        case["alertname"]
        for test in yaml.safe_load((RULES / "alerts_test.yaml").read_text())["tests"]
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")  # a test that expects it to fire, not only to stay quiet
    }
    assert tested == {rule["alert"] for rule in alerts()}


def exported() -> set[str]:
    """The names of the series a gateway or worker exposes (a counter's ``_total``, a histogram's three)."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    return {
        family.name + suffix for family in Metrics().registry.collect() for suffix in suffixes[family.type]
    }


def test_the_rules_read_only_metrics_that_moviola_exports() -> None:
    read = {name for rule in alerts() for name in re.findall(r"\bmoviola_[a-z_]+", str(rule["expr"]))}
    assert read, "no Moviola metric in the rules"
    assert read <= exported(), read - exported()
