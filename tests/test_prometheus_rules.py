"""The alert rules (deploy/prometheus/memcontract-rules.yaml): promtool checks them and runs their
unit tests (series that fire each alert and series that must not); every alert has a runbook
paragraph in docs/operations.md."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from .prometheus_support import REPO, RULES, tools

RULE_TESTS = RULES.with_name("memcontract-rules.test.yaml")
OPERATIONS = REPO / "docs" / "operations.md"
RUNBOOK_BASE = "https://github.com/memcontract/memcontract/blob/main/docs/operations.md#"
#: The alerts the operations kit promises (issue 26), by what they watch.
ALERTS = {
    "MemcontractLevel3Sustained",
    "MemcontractNonCoreShedding",
    "MemcontractLevel3StuckOnRetainedMemory",
    "MemcontractRecycleRequested",
    "MemcontractProbeFailing",
    "MemcontractMemoryNearCgroupLimit",
}


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tools().promtool, *args],
        cwd=RULES.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_promtool_checks_the_rules() -> None:
    done = promtool("check", "rules", RULES.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 9 rules found" in done.stdout


def test_promtool_rule_tests_pass() -> None:
    done = promtool("test", "rules", RULE_TESTS.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_rule_tests_can_fail(tmp_path: Path) -> None:
    """The same tests against rules whose thresholds moved: promtool reports the difference."""
    broken = RULES.read_text().replace("> 0.9", "> 0.99").replace(") >= 3", ") >= 4")
    (tmp_path / RULES.name).write_text(broken)
    (tmp_path / RULE_TESTS.name).write_text(RULE_TESTS.read_text())
    done = subprocess.run(
        [tools().promtool, "test", "rules", RULE_TESTS.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    for alert in ("MemcontractMemoryNearCgroupLimit", "MemcontractLevel3Sustained"):
        assert f"alertname: {alert}" in done.stdout + done.stderr


def test_every_alert_is_tested_firing_and_quiet() -> None:
    assert {rule["alert"] for rule in alerts()} == ALERTS
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    checks = [check for case in cases for check in case.get("alert_rule_test", ())]
    for alert in ALERTS:
        outcomes = [bool(c["exp_alerts"]) for c in checks if c["alertname"] == alert]
        assert True in outcomes, f"{alert}: no series that fire it"
        assert False in outcomes, f"{alert}: no series that must not fire it"


def test_every_alert_has_a_runbook_paragraph_and_labels() -> None:
    headings = {
        _anchor(line.lstrip("#").strip())
        for line in OPERATIONS.read_text().splitlines()
        if line.startswith("#")
    }
    for rule in alerts():
        url = rule["annotations"]["runbook_url"]
        assert url.startswith(RUNBOOK_BASE), url
        assert url.removeprefix(RUNBOOK_BASE) in headings, f"{rule['alert']}: {url}"
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def _anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
