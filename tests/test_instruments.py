"""Validated questionnaires: scoring at every band boundary, the definitions as data, the checks
that keep them in step with the contract, and the rules their results drive (issue 3).

Expected scores, bands and positive screens are written out by hand from reference Part 2
section 6, never derived from the YAML definitions under test.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ketascreen.core.kb import Instrument, KnowledgeBase, Rule
from ketascreen.core.model import DECISION_RANK, Assessment, Instruments
from ketascreen.core.scoring import check_instruments, score_instruments
from ketascreen.errors import KnowledgeBaseError
from ketascreen.knowledge.loader import PACKAGE_DIR
from ketascreen.services import Screener, load_knowledge_base
from ketascreen.testing import BASELINE_DATE, merge_intake

Assess = Callable[..., Assessment]
INSTRUMENT_FILES = PACKAGE_DIR / "instruments"


def points(total: int, n: int, top: int) -> list[int]:
    """n item answers of at most ``top`` each that add up to ``total`` (front-loaded)."""
    assert 0 <= total <= n * top
    out = []
    for _ in range(n):
        take = min(top, total)
        out.append(take)
        total -= take
    return out


def score(kb: KnowledgeBase, answers: dict[str, Any], sex: str = "unknown") -> dict[str, Any]:
    parsed = Instruments.model_validate(answers)
    return {k: v.score for k, v in score_instruments(parsed, sex, kb.instruments).items()}


def cssrs(*yes: str) -> dict[str, bool]:
    keys = ("wish_dead", "active_thoughts", "method", "intent", "plan", "behavior_3mo")
    return {k: k in yes for k in keys}


def mdq(yes: int, clustered: bool = True, impairment: str = "moderate") -> dict[str, Any]:
    return {"items": [True] * yes + [False] * (13 - yes), "clustered": clustered,
            "impairment": impairment}


def fired(a: Assessment) -> dict[str, str]:
    return {f.rule: f.severity for f in a.findings}


# ------------------------------------------------------------------------------------------
# Scoring: worked examples at the boundary of every band


SUM_CASES = [
    # (instrument, items, top, total, band, positive)
    ("phq9", 9, 3, 0, "minimal", False), ("phq9", 9, 3, 4, "minimal", False),
    ("phq9", 9, 3, 5, "mild", False), ("phq9", 9, 3, 9, "mild", False),
    ("phq9", 9, 3, 10, "moderate", True), ("phq9", 9, 3, 14, "moderate", True),
    ("phq9", 9, 3, 15, "moderately severe", True), ("phq9", 9, 3, 19, "moderately severe", True),
    ("phq9", 9, 3, 20, "severe", True), ("phq9", 9, 3, 27, "severe", True),
    ("gad7", 7, 3, 0, "minimal", False), ("gad7", 7, 3, 4, "minimal", False),
    ("gad7", 7, 3, 5, "mild", False), ("gad7", 7, 3, 9, "mild", False),
    ("gad7", 7, 3, 10, "moderate", True), ("gad7", 7, 3, 14, "moderate", True),
    ("gad7", 7, 3, 15, "severe", True), ("gad7", 7, 3, 21, "severe", True),
    ("pcl5", 20, 4, 0, "below cut-off", False), ("pcl5", 20, 4, 32, "below cut-off", False),
    ("pcl5", 20, 4, 33, "probable PTSD", True), ("pcl5", 20, 4, 80, "probable PTSD", True),
]


@pytest.mark.parametrize(("name", "n", "top", "total", "band", "positive"), SUM_CASES,
                         ids=[f"{c[0]}-{c[3]}" for c in SUM_CASES])
def test_summed_scales_at_every_boundary(kb: KnowledgeBase, name: str, n: int, top: int,
                                         total: int, band: str, positive: bool) -> None:
    s = score(kb, {name: points(total, n, top)})[name]
    assert (s.score, s.band, s.positive) == (total, band, positive)


@pytest.mark.parametrize(("total", "sex", "positive"), [
    (3, "male", False), (4, "male", True), (12, "male", True),
    (2, "female", False), (3, "female", True),
    (2, "intersex", False), (3, "intersex", True),
    (2, "unknown", False), (3, "unknown", True), (0, "female", False),
])
def test_audit_c_cut_off_depends_on_sex(kb: KnowledgeBase, total: int, sex: str,
                                        positive: bool) -> None:
    s = score(kb, {"audit_c": points(total, 3, 4)}, sex)["audit_c"]
    assert s.score == total
    assert s.positive is positive
    assert s.band == ("positive" if positive else "negative")
    assert s.detail is not None
    assert ("4 or more" if sex == "male" else "3 or more") in s.detail


N, Y = False, True
DAST_CASES = [
    # item 3 ("able to stop") is reverse-scored: "no" scores 1, "yes" scores 0
    ([N, N, Y, N, N, N, N, N, N, N], 0, "none", False),
    ([N, N, N, N, N, N, N, N, N, N], 1, "low", False),
    ([Y, N, N, N, N, N, N, N, N, N], 2, "low", False),
    ([Y, Y, N, N, N, N, N, N, N, N], 3, "moderate", True),
    ([Y, Y, Y, Y, Y, Y, N, N, N, N], 5, "moderate", True),
    ([Y, Y, N, Y, Y, Y, N, N, N, N], 6, "substantial", True),
    ([Y, Y, N, Y, Y, Y, Y, Y, N, N], 8, "substantial", True),
    ([Y, Y, Y, Y, Y, Y, Y, Y, Y, Y], 9, "severe", True),
    ([Y, Y, N, Y, Y, Y, Y, Y, Y, Y], 10, "severe", True),
]


@pytest.mark.parametrize(("answers", "total", "band", "positive"), DAST_CASES,
                         ids=[str(c[1]) for c in DAST_CASES])
def test_dast10_reverse_scores_item_3(kb: KnowledgeBase, answers: list[bool], total: int,
                                      band: str, positive: bool) -> None:
    s = score(kb, {"dast10": answers})["dast10"]
    assert (s.score, s.band, s.positive) == (total, band, positive)


@pytest.mark.parametrize(("answers", "total", "positive"), [
    (mdq(6, True, "serious"), 6, False),
    (mdq(7, True, "moderate"), 7, True),
    (mdq(7, True, "serious"), 7, True),
    (mdq(7, False, "serious"), 7, False),
    (mdq(7, True, "minor"), 7, False),
    (mdq(7, True, "none"), 7, False),
    (mdq(13, True, "serious"), 13, True),
    (mdq(0, False, "none"), 0, False),
])
def test_mdq_three_part_rule(kb: KnowledgeBase, answers: dict[str, Any], total: int,
                             positive: bool) -> None:
    s = score(kb, {"mdq": answers})["mdq"]
    assert (s.score, s.positive) == (total, positive)
    assert s.band == ("positive" if positive else "negative")


@pytest.mark.parametrize(("yes", "band", "positive"), [
    ((), "none", False),
    (("wish_dead",), "low", True),
    (("active_thoughts",), "low", True),
    (("wish_dead", "active_thoughts"), "low", True),
    (("wish_dead", "active_thoughts", "method"), "moderate", True),
    (("method",), "moderate", True),
    (("intent",), "high", True),
    (("plan",), "high", True),
    (("behavior_3mo",), "high", True),
    (("wish_dead", "active_thoughts", "method", "intent", "plan", "behavior_3mo"), "high", True),
])
def test_cssrs_risk_levels(kb: KnowledgeBase, yes: tuple[str, ...], band: str,
                           positive: bool) -> None:
    s = score(kb, {"cssrs_screen": cssrs(*yes)})["cssrs_screen"]
    assert s.score is None  # the screener has no total
    assert (s.band, s.positive) == (band, positive)


def test_phq9_detail_always_shows_item_9(kb: KnowledgeBase) -> None:
    assert "item 9" in (score(kb, {"phq9": [0] * 9})["phq9"].detail or "")
    assert "= 2" in (score(kb, {"phq9": [0] * 8 + [2]})["phq9"].detail or "")


def test_scores_in_the_assessment_carry_version_and_citation(assess: Assess) -> None:
    a = assess({"instruments": {"phq9": [1] * 8 + [0], "gad7": [0] * 7}})
    assert list(a.scores) == ["phq9", "gad7"]
    phq = a.scores["phq9"]
    assert (phq.instrument, phq.score, phq.band, phq.positive) == ("PHQ-9", 8, "mild", False)
    assert phq.version and "PHQ-9" in phq.version
    assert phq.citation and "Kroenke" in phq.citation
    dumped = a.model_dump(mode="json")["scores"]["gad7"]
    assert {"score", "band", "positive", "version", "citation"} <= set(dumped)


def test_scores_are_never_taken_from_the_caller(screener: Screener) -> None:
    from ketascreen.errors import IntakeError

    with pytest.raises(IntakeError, match="instruments"):
        screener.screen(merge_intake({"instruments": {"phq9": {"score": 27}}}),
                        today=BASELINE_DATE)


# ------------------------------------------------------------------------------------------
# The definitions as data


def test_every_contract_instrument_is_defined(kb: KnowledgeBase) -> None:
    assert set(kb.instruments) == set(Instruments.model_fields)
    for key, d in kb.instruments.items():
        assert d.id == key
        assert (INSTRUMENT_FILES / f"{key}.yaml").exists()
        assert all(sid in kb.sources for sid in d.sources)
        assert d.citation and d.version and d.licence.terms and d.licence.why


def test_item_texts_are_shipped_only_where_the_licence_allows(kb: KnowledgeBase) -> None:
    shipped = {k for k, d in kb.instruments.items() if d.licence.ship_item_texts}
    assert shipped == {"phq9", "gad7", "pcl5"}
    for d in kb.instruments.values():
        for item in d.items:
            assert item.topic
            assert (item.text is not None) is d.licence.ship_item_texts, (d.id, item.number)
        if not d.licence.ship_item_texts:
            assert d.instructions is None
            assert all(f.text is None for f in d.fields)
            labels = [o.label for sc in d.scales.values() if sc.kind == "points"
                      for o in sc.options]
            assert not any(labels), d.id


def _raw(name: str) -> dict[str, Any]:
    data = yaml.safe_load((INSTRUMENT_FILES / f"{name}.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize(("name", "change", "message"), [
    ("dast10", lambda d: d["items"][0].update(text="Have you used drugs?"),
     "does not allow shipping"),
    ("phq9", lambda d: d["scoring"]["bands"].pop(1), "without gaps"),
    ("phq9", lambda d: d["scoring"]["bands"][0].update(max=5), "without gaps"),
    ("audit_c", lambda d: d["scoring"]["positive"]["cutoffs"].reverse(), "apply to everyone"),
    ("gad7", lambda d: d["items"].pop(2), "numbered"),
    ("cssrs_screen", lambda d: d["scoring"]["bands"].pop(), "last band"),
    ("mdq", lambda d: d["scoring"]["positive"]["requires"].update(mood=["high"]),
     "not one of the fields"),
])
def test_invalid_definitions_are_refused(name: str, change: Callable[[dict[str, Any]], Any],
                                         message: str) -> None:
    data = _raw(name)
    Instrument.model_validate(copy.deepcopy(data))  # the shipped file is valid
    change(data)
    with pytest.raises(ValueError, match=message):
        Instrument.model_validate(data)


def _rule_with(kb: KnowledgeBase, when: dict[str, Any]) -> Rule:
    base = kb.rule("instr.pcl5_probable_ptsd").model_dump(by_alias=True, exclude={"params"})
    base.update(id="instr.test_rule", when=when)
    return Rule.model_validate(base)


@pytest.mark.parametrize(("when", "code"), [
    ({"instrument": {"name": "phq10"}}, "KB133"),
    ({"instrument": {"name": "phq9", "item": 10, "item_gte": 1}}, "KB134"),
    ({"instrument": {"name": "cssrs_screen", "band": ["severe"]}}, "KB135"),
    ({"instrument": {"name": "cssrs_screen", "score_gte": 1}}, "KB136"),
    ({"instrument": {"name": "gad7", "positive": True,
                     "required_when": {"instrument": "phq9", "item": 9, "item_gte": 1}}},
     "KB137"),
])
def test_rules_must_match_the_definitions(kb: KnowledgeBase, when: dict[str, Any],
                                          code: str) -> None:
    broken = kb.model_copy(update={"rules": [*kb.rules, _rule_with(kb, when)]})
    codes = {d.code for d in check_instruments(broken)}
    assert code in codes
    assert not check_instruments(kb)


def test_definitions_must_match_the_intake_contract(kb: KnowledgeBase) -> None:
    phq = kb.instruments["phq9"]
    short = phq.model_copy(update={"items": phq.items[:8]})
    wide = phq.model_copy(update={"scales": {"frequency": phq.scales["frequency"].model_copy(
        update={"max": 2, "options": []})}})
    for bad in (short, wide):
        broken = kb.model_copy(update={"instruments": {**kb.instruments, "phq9": bad}})
        assert "KB132" in {d.code for d in check_instruments(broken)}
    missing = kb.model_copy(update={"instruments": {
        k: v for k, v in kb.instruments.items() if k != "mdq"}})
    assert "KB131" in {d.code for d in check_instruments(missing)}


def test_answers_without_a_definition_are_an_error_not_dropped(kb: KnowledgeBase) -> None:
    parsed = Instruments.model_validate({"gad7": [1] * 7})
    with pytest.raises(KnowledgeBaseError, match=r"instruments\.gad7"):
        score_instruments(parsed, "female", {})


# ------------------------------------------------------------------------------------------
# Rules: every item of the issue


def test_phq9_item9_without_cssrs_makes_suicide_screening_missing(assess: Assess) -> None:
    a = assess({"instruments": {"phq9": [1, 1, 1, 0, 0, 0, 0, 0, 2]}})
    assert a.decision == "incomplete"
    first = a.missing[0]
    assert first.field == "instruments.cssrs_screen"
    assert first.blocking
    assert "psych.suicide_high_risk" in first.needed_by
    assert "C-SSRS" in first.question
    assert fired(a)["instr.phq9_item9_positive"] == "precaution"


def test_missing_cssrs_is_listed_after_the_direct_suicide_questions(assess: Assess) -> None:
    a = assess({"instruments": {"phq9": [0] * 8 + [1]}}, unset=["symptoms.suicidal"])
    fields = [m.field for m in a.missing]
    assert fields[:2] == ["symptoms.suicidal", "instruments.cssrs_screen"]


def test_missing_cssrs_never_improves_a_worse_decision(assess: Assess) -> None:
    a = assess({"vitals": {"systolic": 186, "diastolic": 100},
                "instruments": {"phq9": [0] * 8 + [1]}})
    assert a.decision == "defer"
    assert a.urgent
    assert any(m.field == "instruments.cssrs_screen" and m.blocking for m in a.missing)


@pytest.mark.parametrize("fragment", [
    {"instruments": {"phq9": [3] * 8 + [0]}},
    {"instruments": {"phq9": [0] * 8 + [1], "cssrs_screen": cssrs()}},
    {"instruments": {"gad7": [3] * 7}},
    {},
])
def test_cssrs_is_only_required_after_a_positive_item_9(assess: Assess,
                                                        fragment: dict[str, Any]) -> None:
    a = assess(fragment)
    assert a.decision != "incomplete"
    assert "instruments.cssrs_screen" not in {m.field for m in a.missing}


def test_explain_shows_the_required_questionnaire_as_must_have(assess: Assess) -> None:
    a = assess({"instruments": {"phq9": [0] * 8 + [1]}}, explain=True)
    trace = [t for t in a.trace or () if t.rule == "psych.suicide_high_risk"]
    assert trace and trace[0].result == "unknown"
    assert "instruments.cssrs_screen (must-have)" in trace[0].why


def test_cssrs_high_risk_is_urgent_with_the_plan_or_intent_severity(assess: Assess,
                                                                    kb: KnowledgeBase) -> None:
    plan = assess({"symptoms": {"suicidal": "plan_or_intent"}})
    for yes in ("intent", "plan", "behavior_3mo"):
        a = assess({"instruments": {"cssrs_screen": cssrs("wish_dead", yes)}})
        assert a.urgent
        assert a.decision == plan.decision == "defer"
        assert fired(a)["psych.suicide_high_risk"] == kb.rule("psych.suicide_high_risk").severity
        patient = next(f.patient for f in a.findings if f.rule == "psych.suicide_high_risk")
        assert "988" in patient


def test_cssrs_moderate_risk_needs_evaluation(assess: Assess) -> None:
    a = assess({"instruments": {"cssrs_screen": cssrs("wish_dead", "active_thoughts", "method")}})
    assert a.decision == "needs_evaluation"
    assert not a.urgent
    assert fired(a)["psych.suicide_moderate_risk"] == "evaluation"
    assert "psych.suicide_high_risk" not in fired(a)


def test_cssrs_low_risk_is_a_precaution_and_shows_the_direct_answer(assess: Assess) -> None:
    a = assess({"instruments": {"cssrs_screen": cssrs("wish_dead")}})
    assert a.decision == "eligible_with_precautions"
    finding = next(f for f in a.findings if f.rule == "instr.cssrs_low_risk")
    assert {e.field for e in finding.evidence} == {"instruments.cssrs_screen",
                                                   "symptoms.suicidal"}


def test_mdq_positive_without_bipolar_diagnosis_needs_evaluation(assess: Assess) -> None:
    a = assess({"instruments": {"mdq": mdq(8, True, "serious")}})
    assert a.decision == "needs_evaluation"
    finding = next(f for f in a.findings if f.rule == "instr.mdq_positive_no_bipolar_diagnosis")
    assert finding.category == "bipolar"
    fields = {e.field for e in finding.evidence}
    assert {"instruments.mdq", "conditions", "indications"} <= fields
    negative = assess({"instruments": {"mdq": mdq(8, True, "minor")}})
    assert "instr.mdq_positive_no_bipolar_diagnosis" not in fired(negative)


@pytest.mark.parametrize("fragment", [
    {"conditions": [{"code": "F33.1"}, {"code": "F31.81"}]},
    {"conditions": [{"code": "F33.1"}, {"code": "F34.0", "status": "history"}]},
    {"indications": ["bipolar_depression"]},
])
def test_mdq_positive_with_bipolar_listed_is_the_bipolar_rule(assess: Assess,
                                                              fragment: dict[str, Any]) -> None:
    a = assess({**fragment, "instruments": {"mdq": mdq(9)}})
    assert "instr.mdq_positive_no_bipolar_diagnosis" not in fired(a)
    assert a.decision == "needs_evaluation"  # psych.bipolar_disorder: never better


def test_audit_c_positive_without_alcohol_reported_disagrees(assess: Assess) -> None:
    a = assess({"sex": "female", "instruments": {"audit_c": [1, 1, 1]}})
    assert a.decision == "needs_evaluation"
    finding = next(f for f in a.findings if f.rule == "instr.audit_c_positive_no_alcohol_reported")
    assert finding.category == "consistency"
    assert finding.severity == "evaluation"
    evidence = {e.field: e for e in finding.evidence}
    assert set(evidence) == {"instruments.audit_c", "substances"}
    assert evidence["substances"].value == "none reported"
    # the same answers from a man are below his cut-off
    assert "instr.audit_c_positive_no_alcohol_reported" not in fired(
        assess({"sex": "male", "instruments": {"audit_c": [1, 1, 1]}}))


def test_audit_c_positive_with_alcohol_reported_still_needs_evaluation(assess: Assess) -> None:
    a = assess({"instruments": {"audit_c": [2, 1, 1]},
                "substances": [{"substance": "alcohol", "status": "current", "disorder": False}]})
    rules = fired(a)
    assert rules["instr.audit_c_positive"] == "evaluation"
    assert "instr.audit_c_positive_no_alcohol_reported" not in rules
    assert a.decision == "needs_evaluation"


def test_dast10_of_3_without_drug_use_reported_disagrees(assess: Assess) -> None:
    a = assess({"instruments": {"dast10": [Y, Y, N, N, N, N, N, N, N, N]}})
    rules = fired(a)
    assert rules["instr.dast10_no_drug_use_reported"] == "evaluation"
    assert a.decision == "needs_evaluation"
    below = assess({"instruments": {"dast10": [Y, N, N, N, N, N, N, N, N, N]}})
    assert "instr.dast10_no_drug_use_reported" not in fired(below)
    alcohol_only = assess({"instruments": {"dast10": [Y, Y, N, N, N, N, N, N, N, N]},
                           "substances": [{"substance": "alcohol", "status": "current",
                                           "disorder": False}]})
    assert "instr.dast10_no_drug_use_reported" in fired(alcohol_only)


def test_dast10_of_6_has_the_current_use_disorder_severity(assess: Assess,
                                                           kb: KnowledgeBase) -> None:
    six = [Y, Y, N, Y, Y, Y, N, N, N, N]
    a = assess({"instruments": {"dast10": six},
                "substances": [{"substance": "cannabis", "status": "current", "disorder": False}]})
    assert fired(a)["instr.dast10_substantial"] == kb.rule("subst.current_disorder").severity
    assert a.decision == "defer"
    five = [Y, Y, Y, Y, Y, Y, N, N, N, N]
    b = assess({"instruments": {"dast10": five},
                "substances": [{"substance": "cannabis", "status": "current", "disorder": False}]})
    assert "instr.dast10_substantial" not in fired(b)
    assert fired(b)["instr.dast10_moderate"] == "evaluation"


def test_pcl5_at_the_cut_off_is_the_trauma_precaution(assess: Assess, kb: KnowledgeBase) -> None:
    ptsd = kb.rule("psych.ptsd_trauma")
    a = assess({"instruments": {"pcl5": points(33, 20, 4)}})
    finding = next(f for f in a.findings if f.rule == "instr.pcl5_probable_ptsd")
    assert (finding.severity, finding.category) == (ptsd.severity, ptsd.category)
    assert a.decision == "eligible_with_precautions"
    assert "instr.pcl5_probable_ptsd" not in fired(assess({"instruments": {
        "pcl5": points(32, 20, 4)}}))


def test_phq9_and_gad7_are_recorded_as_baselines(assess: Assess) -> None:
    a = assess({"instruments": {"phq9": points(12, 9, 3), "gad7": points(6, 7, 3)}})
    baseline = {f.rule: f for f in a.findings if f.rule.endswith("_baseline")}
    assert set(baseline) == {"instr.phq9_baseline", "instr.gad7_baseline"}
    assert all(f.severity == "info" for f in baseline.values())
    assert baseline["instr.phq9_baseline"].evidence[0].meaning == "PHQ-9: moderate, positive screen"
    assert baseline["instr.gad7_baseline"].evidence[0].meaning == "GAD-7: mild, negative screen"
    assert a.decision == "eligible"


@pytest.mark.parametrize(("total", "indications", "expected"), [
    (4, ["treatment_resistant_depression"], True),
    (4, ["depression", "anxiety"], True),
    (5, ["depression"], False),
    (0, ["ptsd"], False),
])
def test_phq9_below_5_when_depression_is_the_indication(assess: Assess, total: int,
                                                        indications: list[str],
                                                        expected: bool) -> None:
    a = assess({"indications": indications, "instruments": {"phq9": points(total, 9, 3)}})
    assert ("instr.phq9_minimal_with_depression" in fired(a)) is expected
    assert a.decision == "eligible"  # informational only


def test_questionnaire_contradicting_the_suicide_answer_shows_both(assess: Assess) -> None:
    a = assess({"instruments": {"phq9": [0] * 8 + [2], "cssrs_screen": cssrs()}})
    finding = next(f for f in a.findings if f.rule == "instr.phq9_item9_positive")
    evidence = {e.field: e.value for e in finding.evidence}
    assert evidence == {"instruments.phq9[8]": "2", "symptoms.suicidal": "none"}


def test_shared_examples_without_questionnaires_are_unchanged(screener: Screener) -> None:
    """Questionnaires are supplementary: an intake without them gets no instrument finding."""
    a = screener.screen(merge_intake(), today=BASELINE_DATE)
    assert a.decision == "eligible"
    assert not any(f.rule.startswith("instr.") for f in a.findings)
    assert a.scores == {}


# ------------------------------------------------------------------------------------------
# Monotone with questionnaires present


PROPERTY_SCREENER = Screener(load_knowledge_base())  # hypothesis tests take no fixtures
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ITEMS3 = st.lists(st.integers(0, 3), min_size=9, max_size=9)


@st.composite
def questionnaires(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        out["phq9"] = draw(ITEMS3)
    if draw(st.booleans()):
        out["audit_c"] = draw(st.lists(st.integers(0, 4), min_size=3, max_size=3))
    if draw(st.booleans()):
        out["dast10"] = draw(st.lists(st.booleans(), min_size=10, max_size=10))
    if draw(st.booleans()):
        out["pcl5"] = draw(st.lists(st.integers(0, 4), min_size=20, max_size=20))
    if draw(st.booleans()):
        out["mdq"] = {"items": draw(st.lists(st.booleans(), min_size=13, max_size=13)),
                      "clustered": draw(st.booleans()),
                      "impairment": draw(st.sampled_from(["none", "minor", "moderate",
                                                          "serious"]))}
    if draw(st.booleans()):
        out["cssrs_screen"] = {k: draw(st.booleans()) for k in cssrs()}
    return out


DISCLOSURES: list[tuple[str, Any]] = [
    ("substances", {"substance": "alcohol", "status": "current", "disorder": False}),
    ("substances", {"substance": "alcohol", "status": "past", "disorder": False}),
    ("substances", {"substance": "cannabis", "status": "past", "disorder": False}),
    ("substances", {"substance": "opioids", "status": "current", "disorder": False}),
    ("conditions", {"code": "F31.81"}),
    ("conditions", {"code": "F34.0", "status": "history"}),
    ("conditions", {"code": "F43.10"}),
    ("suicidal", "passive"), ("suicidal", "active"),
]


def _not_better(before: Assessment, after: Assessment) -> bool:
    b, a = DECISION_RANK[before.decision], DECISION_RANK[after.decision]
    if before.decision == "incomplete":
        return a >= DECISION_RANK["needs_evaluation"]
    return a >= b


@SETTINGS
@given(questionnaires(), st.sampled_from(DISCLOSURES), st.sampled_from(["male", "female"]))
def test_disclosing_what_a_questionnaire_suggests_never_helps(
        answers: dict[str, Any], disclosure: tuple[str, Any], sex: str) -> None:
    screener = PROPERTY_SCREENER
    data = merge_intake({"sex": sex, "instruments": answers})
    before = screener.screen(data, today=BASELINE_DATE)
    worse = copy.deepcopy(data)
    key, value = disclosure
    if key == "suicidal":
        worse["symptoms"]["suicidal"] = value
    else:
        worse[key] = [*worse.get(key, []), value]
    after = screener.screen(worse, today=BASELINE_DATE)
    assert _not_better(before, after), (disclosure, before.decision, after.decision)
    assert after.urgent or not before.urgent


def test_the_instruments_doc_matches_the_definitions(kb: KnowledgeBase) -> None:
    """docs/instruments.md is written by hand: this keeps it in step with the data."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "instruments.md").read_text(
        encoding="utf-8")
    rows = {line.split("|")[1].strip(): line for line in doc.splitlines()
            if line.startswith("| ") and line.count("|") == 8}
    for d in kb.instruments.values():
        row = rows[d.name]
        assert row.rstrip(" |").endswith("yes" if d.licence.ship_item_texts else "no"), d.name
        for band in d.scoring.bands:
            assert band.label in row, (d.name, band.label)
        for cutoff in d.scoring.positive.cutoffs:
            assert f"{cutoff.score_gte} or more" in row, (d.name, cutoff.score_gte)
        assert f"### {d.name}" in doc
        assert d.citation.split(",")[0].split()[0] in doc  # first author's surname
    for rule in kb.rules:
        if rule.id.startswith("instr."):
            assert f"`{rule.id}`" in doc, rule.id
