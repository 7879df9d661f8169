"""The Prometheus alert rules: valid for promtool, unit-tested by promtool (each alert fires
on its input series and stays quiet on healthy ones), complete (for, severity, summary,
description, a runbook entry that exists), and the tests would notice a broken rule."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.artifacts import (
    ALERT_TESTS,
    ALERTS,
    RUNBOOK,
    alert_rules,
    load_yaml,
    promtool,
)

# The issue's list, by the alert that covers each item.
REQUIRED = {
    "indexer down": "AmocaIndexerDown",
    "slot lag growing": "AmocaIndexerSlotLagGrowing",
    "ingest stalled while the chain moves": "AmocaIndexerIngestStalled",
    "RPC error rate high": "AmocaIndexerRpcErrorRateHigh",
    "websocket reconnect storm": "AmocaIndexerWebsocketReconnectStorm",
    "dead letters growing": "AmocaIndexerDeadLettersGrowing",
    "pending transactions not finalizing": "AmocaIndexerPendingNotFinalizing",
    "rankings stale": "AmocaIndexerRankingsStale",
}


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60, check=False)


def github_anchors(markdown: str) -> set[str]:
    """Anchors GitHub gives the headings of a Markdown file."""
    anchors = set()
    for line in markdown.splitlines():
        heading = re.match(r"#{1,6}\s+(.*)", line)
        if heading:
            text = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def test_promtool_accepts_the_rules() -> None:
    result = run(promtool(), "check", "rules", ALERTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    assert ALERT_TESTS, "no promtool unit tests under deploy/prometheus/tests"
    result = run(promtool(), "test", "rules", *ALERT_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_issue_alerts_exist_and_each_is_complete() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    missing = {need: name for need, name in REQUIRED.items() if name not in rules}
    assert not missing, f"alerts missing: {missing}"
    anchors = github_anchors(RUNBOOK.read_text(encoding="utf-8"))
    for name, rule in rules.items():
        assert re.fullmatch(r"\d+[smh]", str(rule.get("for", ""))), f"{name}: needs a `for:` duration"
        assert rule.get("labels", {}).get("severity") in {"critical", "warning"}, name
        annotations = rule.get("annotations", {})
        assert annotations.get("summary"), name
        assert annotations.get("description"), name
        runbook = annotations.get("runbook_url", "")
        assert runbook.startswith("deploy/README.md#"), f"{name}: runbook_url {runbook!r}"
        anchor = runbook.split("#", 1)[1]
        assert anchor in anchors, f"{name}: deploy/README.md has no heading for #{anchor}"


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in ALERT_TESTS:
        for case in load_yaml(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fires == set(), f"never shown firing: {names - fires}"
    assert names - quiet == set(), f"never shown quiet: {names - quiet}"


def _with_expr(rules_doc: dict[str, Any], alert: str, expr: str) -> dict[str, Any]:
    return {"groups": [{**group, "rules": [
        {**rule, "expr": expr} if rule.get("alert") == alert else rule for rule in group["rules"]]}
        for group in rules_doc["groups"]]}


def test_unit_tests_catch_an_alert_that_never_fires_or_always_fires(tmp_path: Path) -> None:
    """Replace one rule at a time by `vector(0) > 1` (never fires) and by `vector(1)` (always
    fires): the unit tests must fail for every such copy, so they really pin down when each
    alert fires and when it does not. One promtool run checks every copy."""
    original = load_yaml(ALERTS)
    copies: dict[Path, str] = {}
    for alert in sorted(rule["alert"] for rule in alert_rules()):
        for label, expr in (("never", "vector(0) > 1"), ("always", "vector(1)")):
            folder = tmp_path / f"{alert}-{label}"
            (folder / "tests").mkdir(parents=True)
            (folder / "alerts.yml").write_text(yaml.safe_dump(_with_expr(original, alert, expr)))
            for test in ALERT_TESTS:
                target = folder / "tests" / test.name
                target.write_text(yaml.safe_dump(_cases_of(load_yaml(test), alert)))
                copies[target] = f"{alert} replaced by {expr!r}"
    # One stream, so each FAILED follows the file it belongs to.
    result = subprocess.run([promtool(), "test", "rules", *map(str, copies)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=120, check=False)
    assert result.returncode != 0
    outcome = _outcome_per_file(result.stdout)
    still_passing = [what for path, what in copies.items() if outcome.get(str(path)) != "FAILED"]
    assert not still_passing, f"the unit tests still pass with: {still_passing}\n{result.stdout[-3000:]}"


def _cases_of(tests_doc: dict[str, Any], alert: str) -> dict[str, Any]:
    """The unit tests that check ``alert`` (the others cannot notice it changed)."""
    cases = []
    for case in tests_doc["tests"]:
        checks = [c for c in case.get("alert_rule_test", []) if c["alertname"] == alert]
        if checks:
            cases.append({**case, "alert_rule_test": checks})
    return {**tests_doc, "tests": cases}


def _outcome_per_file(output: str) -> dict[str, str]:
    """promtool prints `Unit Testing:  FILE` then `  SUCCESS` or `  FAILED:` for each file."""
    outcome: dict[str, str] = {}
    current = None
    for line in output.splitlines():
        if line.startswith("Unit Testing:"):
            current = line.split(":", 1)[1].strip()
        elif current is not None and line.strip().rstrip(":") in {"SUCCESS", "FAILED"}:
            outcome.setdefault(current, line.strip().rstrip(":"))
    return outcome
