"""Whole-patient scenarios in tests/cases/*.yaml: expected decision, rules, urgency, missing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from ketascreen.services import Screener
from ketascreen.testing import BASELINE_DATE, merge_intake

CASES = Path(__file__).parent / "cases"


def _scenarios() -> list[Any]:
    out = []
    for path in sorted(CASES.glob("*.yaml")):
        for i, case in enumerate(yaml.safe_load(path.read_text()) or []):
            out.append(pytest.param(case, id=f"{path.stem}:{case.get('name', i)}"))
    return out


SCENARIOS = _scenarios()


def test_there_are_at_least_60_scenarios() -> None:
    assert len(SCENARIOS) >= 60


@pytest.mark.parametrize("case", SCENARIOS)
def test_scenario(case: dict[str, Any], screener: Screener) -> None:
    data = case["intake"] if case.get("full") else merge_intake(case.get("intake"),
                                                                case.get("unset"))
    a = screener.screen(data, today=BASELINE_DATE)
    expect = case["expect"]
    fired = {f.rule for f in a.findings}
    assert a.decision == expect["decision"], (a.decision, sorted(fired),
                                              [m.field for m in a.missing])
    for rid in expect.get("rules", []):
        assert rid in fired, (rid, sorted(fired))
    for rid in expect.get("absent_rules", []):
        assert rid not in fired, (rid, sorted(fired))
    if "urgent" in expect:
        assert a.urgent is expect["urgent"]
    missing = {m.field for m in a.missing}
    for name in expect.get("missing", []):
        assert name in missing, (name, sorted(missing))
    for route, decision in (expect.get("routes") or {}).items():
        assert a.routes[route] == decision, (route, a.routes)


EXAMPLES = CASES / "examples"
EXPECTED: dict[str, dict[str, Any]] = json.loads((EXAMPLES / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shared_example(name: str, screener: Screener) -> None:
    data = json.loads((EXAMPLES / f"{name}.json").read_text())
    a = screener.screen(data, today=BASELINE_DATE)
    expect = EXPECTED[name]
    assert a.decision == expect["decision"], ([(f.rule, f.severity) for f in a.findings],
                                              [m.field for m in a.missing])
    if "urgent" in expect:
        assert a.urgent is expect["urgent"]
    missing = {m.field for m in a.missing}
    for field in expect.get("missing_includes", []):
        assert field in missing
    for route, decision in (expect.get("routes") or {}).items():
        assert a.routes[route] == decision
