"""Clinic protocol files: loading, validation, the safety floor, and their effect on decisions."""

from __future__ import annotations

from pathlib import Path

import pytest

from ketascreen.core.kb import KnowledgeBase
from ketascreen.errors import ProtocolError
from ketascreen.knowledge.loader import load_protocol, protocol_from_data
from ketascreen.services import Screener
from ketascreen.testing import BASELINE_DATE, merge_intake

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "protocols" / "strict-clinic.yaml"


def test_example_protocol_loads_and_changes_decisions(kb: KnowledgeBase) -> None:
    protocol = load_protocol(EXAMPLE, kb)
    assert protocol.name == "strict-clinic"
    assert len(protocol.sha256) == 64
    screener = Screener(kb, protocol)
    a = screener.screen(merge_intake({"vitals": {"systolic": 152, "diastolic": 80}}),
                        today=BASELINE_DATE)
    assert a.decision == "defer"
    assert a.protocol.deviations == ["cardio.bp_stage2", "neuro.febrile_seizures_childhood",
                                     "psych.family_psychosis_first_degree"]
    default = Screener(kb).screen(merge_intake({"vitals": {"systolic": 152, "diastolic": 80}}),
                                  today=BASELINE_DATE)
    assert default.decision == "needs_evaluation"


def _problems(raw: dict[str, object], kb: KnowledgeBase) -> list[str]:
    with pytest.raises(ProtocolError) as err:
        protocol_from_data(raw, kb)
    return [str(p) for p in err.value.problems]


def test_lowering_a_label_contraindication_needs_an_override(kb: KnowledgeBase) -> None:
    problems = _problems({"name": "x", "overrides": {"cardio.aneurysm_avm": {
        "severity": "evaluation", "reason": "surgeon on site"}}}, kb)
    assert any("safety floor" in p and "cardio.aneurysm_avm" in p for p in problems)
    ok = protocol_from_data({"name": "x", "overrides": {"cardio.aneurysm_avm": {
        "severity": "evaluation", "reason": "surgeon on site", "override_safety_floor": True}}},
        kb)
    a = Screener(kb, ok).screen(merge_intake({"conditions": [{"code": "I71.20"}]}),
                                today=BASELINE_DATE)
    assert a.decision == "needs_evaluation"
    assert a.protocol.deviations == ["cardio.aneurysm_avm"]


@pytest.mark.parametrize("rule_id", ["preg.pregnant", "preg.breastfeeding"])
def test_pregnancy_cannot_drop_below_defer_silently(kb: KnowledgeBase, rule_id: str) -> None:
    problems = _problems({"name": "x", "overrides": {rule_id: {"severity": "precaution",
                                                               "reason": "r"}}}, kb)
    assert any("safety floor" in p for p in problems)


def test_switching_off_urgent_needs_an_override(kb: KnowledgeBase) -> None:
    problems = _problems({"name": "x", "overrides": {"cardio.bp_severe": {"urgent": False,
                                                                          "reason": "r"}}}, kb)
    assert any("urgent" in p for p in problems)
    problems = _problems({"name": "x", "overrides": {"cardio.bp_severe": {"enabled": False,
                                                                          "reason": "r"}}}, kb)
    assert any("urgent" in p for p in problems)


def test_every_problem_is_reported_at_once(kb: KnowledgeBase) -> None:
    problems = _problems({"name": "x", "overrides": {
        "no.such_rule": {"severity": "info", "reason": "r"},
        "cardio.bp_stage2": {"params": {"sistolic": 150}, "reason": "typo"},
        "psych.dementia": {"severity": "info"}},
        "confirm_at_first_visit": ["symptoms.suicidal", "allergies", "not.an.answer"]}, kb)
    text = "\n".join(problems)
    assert "no.such_rule" in text
    assert "sistolic" in text
    assert "psych.dementia.reason" in text
    assert "symptoms.suicidal is always a must-have" in text
    assert "allergies is always a must-have" in text
    assert "not.an.answer" in text


def test_schema_errors_name_the_field(kb: KnowledgeBase) -> None:
    problems = _problems({"name": "x", "overrides": {"psych.dementia": {
        "severity": "catastrophic", "reason": "r"}}, "colour": "blue"}, kb)
    text = "\n".join(problems)
    assert "overrides.psych.dementia.severity" in text
    assert "colour" in text


def test_added_rules_are_validated_and_applied(kb: KnowledgeBase) -> None:
    rule = {
        "id": "clinic.no_prior_ketamine", "category": "readiness", "severity": "evaluation",
        "title": "Any earlier ketamine", "when": {"answer": {"field": "prior_ketamine.received",
                                                             "equals": True}},
        "clinician": "Clinic policy: review any earlier ketamine exposure.",
        "patient": "You have had ketamine before; the team will talk this through with you.",
        "actions": ["Review the earlier course."], "sources": ["KETASCREEN"],
        "examples": [{"intake": {"prior_ketamine": {"received": True}}, "expect": "fires"},
                     {"intake": {}, "expect": "not_fired"}],
    }
    protocol = protocol_from_data({"name": "x", "add_rules": [rule]}, kb)
    a = Screener(kb, protocol).screen(merge_intake({"prior_ketamine": {"received": True}}),
                                      today=BASELINE_DATE)
    assert "clinic.no_prior_ketamine" in {f.rule for f in a.findings}
    assert a.protocol.deviations == ["clinic.no_prior_ketamine"]
    dup = _problems({"name": "x", "add_rules": [{**rule, "id": "psych.dementia"}]}, kb)
    assert any("already exists" in p for p in dup)
