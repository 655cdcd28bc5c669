"""The engine's decision semantics, as the screening contract states them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from ketascreen.core.kb import KnowledgeBase, Protocol, RuleOverride
from ketascreen.core.model import Assessment
from ketascreen.services import Screener
from ketascreen.testing import BASELINE_DATE, merge_intake
from tests.conftest import rule_ids

Assess = Callable[..., Assessment]


def test_baseline_is_eligible_with_nothing_blocking(assess: Assess) -> None:
    a = assess()
    assert a.decision == "eligible"
    assert a.findings == [] or all(f.severity == "info" for f in a.findings)
    assert not [m for m in a.missing if m.blocking]
    assert a.as_of == BASELINE_DATE
    assert a.notes and "before every session" in a.notes[0]
    assert a.summary is not None and "clinician" in a.summary.patient


def test_missing_must_have_that_could_worsen_gives_incomplete(assess: Assess) -> None:
    a = assess(unset=["symptoms.mania_now"])
    assert a.decision == "incomplete"
    m = next(m for m in a.missing if m.field == "symptoms.mania_now")
    assert m.blocking and "psych.mania_current" in m.needed_by
    assert m.question


def test_missing_answers_never_improve_a_defer(assess: Assess) -> None:
    a = assess({"readiness": {"pressured": True}}, unset=["symptoms.mania_now"])
    assert a.decision == "defer"
    assert any(m.field == "symptoms.mania_now" and m.blocking for m in a.missing)


def test_confirm_at_first_visit_never_blocks(assess: Assess) -> None:
    a = assess(unset=["vitals.heart_rate", "vitals.taken_on"])
    assert a.decision == "eligible"
    fields = {m.field: m for m in a.missing}
    assert not fields["vitals.heart_rate"].blocking
    assert not fields["vitals.taken_on"].blocking


def test_stale_blood_pressure_is_not_a_reading(assess: Assess) -> None:
    a = assess({"vitals": {"systolic": 170, "diastolic": 85, "taken_on": "2026-05-01"}})
    assert "cardio.bp_stage2" not in rule_ids(a)
    vitals = next(m for m in a.missing if m.field == "vitals")
    assert not vitals.blocking
    assert a.decision == "eligible"


def test_missing_vitals_are_blocking(assess: Assess) -> None:
    a = assess(unset=["vitals"])
    assert a.decision == "incomplete"
    assert any(m.field == "vitals" and m.blocking for m in a.missing)


def test_suicide_questions_are_listed_first(assess: Assess) -> None:
    a = assess({"readiness": {"pressured": True}},
               unset=["symptoms.suicidal", "symptoms.mania_now", "family_history"])
    assert a.missing[0].field == "symptoms.suicidal"
    assert a.decision == "defer"


def test_pregnancy_is_must_have_for_women_of_childbearing_age(assess: Assess) -> None:
    a = assess({"sex": "female", "age": 30}, unset=["pregnancy"])
    assert a.decision == "incomplete"
    assert any(m.field == "pregnancy" and m.blocking for m in a.missing)


@pytest.mark.parametrize(("sex", "age"), [("male", 30), ("female", 70), ("female", 8)])
def test_pregnancy_does_not_apply(assess: Assess, sex: str, age: int) -> None:
    fragment = {"sex": sex, "age": age}
    a = assess(fragment, unset=["pregnancy"])
    assert not any(m.field.startswith("pregnancy") for m in a.missing)


def test_route_matrix_and_most_favourable_route(assess: Assess) -> None:
    a = assess({"route": None, "medications": [{"name": "theophylline"}]})
    assert a.routes["iv"] == "defer"
    assert a.routes["intranasal"] == "needs_evaluation"
    # oral is at home by default: the at-home precaution adds nothing worse than defer
    assert a.routes["oral"] == "defer"
    assert a.decision == "needs_evaluation"
    assert "esketamine nasal spray" not in a.summary.patient if a.summary else True
    assert a.summary is not None and "IV infusion" in a.summary.patient


def test_route_given_decides(assess: Assess) -> None:
    a = assess({"route": "iv", "medications": [{"name": "theophylline"}]})
    assert a.decision == "defer"
    a = assess({"route": "intranasal", "medications": [{"name": "theophylline"}]})
    assert a.decision == "needs_evaluation"


def test_urgent_survives_any_route_choice(assess: Assess) -> None:
    a = assess({"route": "intranasal",
                "vitals": {"systolic": 190, "diastolic": 100, "heart_rate": 80,
                           "taken_on": "2026-11-16"}})
    assert a.urgent
    assert a.findings[0].urgent
    assert "988" in a.findings[0].patient


def test_unrecognized_inputs_are_reported_and_evaluated(assess: Assess) -> None:
    a = assess({"conditions": [{"code": "F33.1"}, {"code": "X99.999"}, {"name": "zorblax"}],
                "medications": [{"name": "notadrugazine"}]})
    got = {(u.field, u.value) for u in a.unrecognized}
    assert ("conditions[1].code", "X99.999") in got
    assert ("conditions[2].name", "zorblax") in got
    assert ("medications[0].name", "notadrugazine") in got
    assert {"vocab.unresolved_condition", "vocab.unresolved_medication"} <= rule_ids(a)
    assert a.decision == "needs_evaluation"


def test_recognised_drug_no_rule_concerns_produces_nothing(assess: Assess) -> None:
    a = assess({"medications": [{"name": "atorvastatin"}]})
    assert a.decision == "eligible"
    assert a.unrecognized == []


def test_free_text_condition_names_resolve(assess: Assess) -> None:
    a = assess({"conditions": [{"name": "Brain aneurysm"}]})
    assert a.decision == "not_recommended"
    assert "cardio.aneurysm_avm" in rule_ids(a)


def test_codes_match_with_or_without_dot_and_any_case(assess: Assess) -> None:
    for code in ("F20.9", "f209", "F209"):
        assert assess({"conditions": [{"code": code, "status": "history"}]}).decision == (
            "not_recommended")


def test_partial_dates_take_the_safe_reading(assess: Assess) -> None:
    # An MI in "2026-10" could be 2026-10-31, within 42 days of 2026-11-16: defer.
    a = assess({"conditions": [{"code": "I21.9", "status": "active", "since": "2026-10"}]})
    assert "cardio.recent_major_event" in rule_ids(a)
    a = assess({"conditions": [{"code": "I21.9", "status": "active", "since": "2026-08"}]})
    assert "cardio.recent_major_event" not in rule_ids(a)
    assert a.decision == "needs_evaluation"


def test_substance_status_and_last_use_worse_reading(assess: Assess) -> None:
    a = assess({"substances": [{"substance": "cocaine", "status": "past", "disorder": False,
                                "last_use": "2026-11-06"}]})
    assert "subst.current_nonmedical_use" in rule_ids(a)
    assert a.decision == "defer"


def test_substance_codes_in_conditions_count(assess: Assess) -> None:
    a = assess({"conditions": [{"code": "F33.1"}, {"code": "F10.20"}], "substances": []})
    assert "subst.current_disorder" in rule_ids(a)
    assert a.decision == "defer"
    a = assess({"conditions": [{"code": "F33.1"}, {"code": "F10.21"}],
                "substances": [{"substance": "alcohol", "status": "past", "disorder": True,
                                "last_use": "2024-01", "recovery_support": True}]})
    assert "subst.remitted_with_support" in rule_ids(a)


def test_disagreeing_sources_give_the_worse_finding_and_say_so(assess: Assess) -> None:
    a = assess({"sex": "female", "age": 30, "conditions": [{"code": "Z33.1"}],
                "pregnancy": {"pregnant": "no", "breastfeeding": False, "planning": False}})
    assert a.decision == "defer"
    assert {"preg.pregnant", "consist.pregnancy_answer_vs_code"} <= rule_ids(a)


def test_findings_are_sorted_worst_first_then_by_rule(assess: Assess) -> None:
    a = assess({"age": 70, "conditions": [{"code": "F43.10"}, {"code": "I10",
                                                                  "controlled": False}]})
    order = ["exclude", "defer", "evaluation", "precaution", "info"]
    keys = [(order.index(f.severity), f.rule) for f in a.findings]
    assert [k[0] for k in keys] == sorted(k[0] for k in keys)


def test_every_finding_cites_sources_and_evidence(assess: Assess) -> None:
    a = assess({"age": 19, "conditions": [{"code": "F43.10"}, {"code": "G40.909"}],
                "medications": [{"name": "lorazepam", "schedule": "as_needed"}]})
    assert len(a.findings) >= 3
    for f in a.findings:
        assert f.sources and all(s.citation for s in f.sources)
        assert f.evidence, f.rule
        assert f.actions and f.patient and f.clinician


def test_explain_traces_every_rule(screener: Screener, kb: KnowledgeBase) -> None:
    a = screener.screen(merge_intake({"conditions": [{"code": "F43.10"}]}),
                        today=BASELINE_DATE, explain=True)
    assert a.trace is not None
    assert {t.rule for t in a.trace} == {r.id for r in kb.rules}
    assert {t.result for t in a.trace} >= {"fired", "not_fired"}


def test_same_input_same_output(screener: Screener) -> None:
    data = merge_intake({"age": 70, "conditions": [{"code": "F43.10"}]})
    one = screener.screen(data, today=BASELINE_DATE).model_dump_json()
    two = screener.screen(data, today=date(2030, 1, 1)).model_dump_json()
    assert one == two  # assessed_on is in the intake: the clock does not matter


def test_kb_version_and_hash_recorded(assess: Assess, kb: KnowledgeBase) -> None:
    a = assess()
    assert a.knowledge_base.sha256 == kb.sha256 and len(kb.sha256) == 64
    assert a.protocol.name == "ketascreen-default" and a.protocol.deviations == []


def test_protocol_changes_severity_and_records_deviation(kb: KnowledgeBase) -> None:
    strict = Protocol(name="strict-clinic", overrides={
        "psych.family_psychosis_first_degree": RuleOverride(severity="exclude",
                                                            reason="clinic policy")})
    data = merge_intake({"family_history": [{"code": "F20.9", "relation": "mother"}]})
    default = Screener(kb).screen(data, today=BASELINE_DATE)
    changed = Screener(kb, strict).screen(data, today=BASELINE_DATE)
    assert default.decision == "needs_evaluation"
    assert changed.decision == "not_recommended"
    assert changed.protocol.deviations == ["psych.family_psychosis_first_degree"]
    assert changed.protocol.name == "strict-clinic"


def test_protocol_confirm_at_first_visit_moves_vitals(kb: KnowledgeBase) -> None:
    selfscreen = Protocol(name="self-screening", confirm_at_first_visit=["vitals"])
    a = Screener(kb, selfscreen).screen(merge_intake(unset=["vitals"]), today=BASELINE_DATE)
    assert a.decision == "eligible"
    assert any(m.field == "vitals" and not m.blocking for m in a.missing)


def test_fast_built_findings_equal_validated_ones(assess: Assess) -> None:
    from ketascreen.core.model import Finding

    a = assess({"conditions": [{"code": "F43.10"}, {"code": "I10", "controlled": True}]})
    for f in a.findings:
        again = Finding.model_validate(f.model_dump())
        assert again == f
        assert again.model_dump_json() == f.model_dump_json()
