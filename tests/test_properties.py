"""Hypothesis properties: total, monotone, unknown never eligible, order-free, deterministic."""

from __future__ import annotations

import copy
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ketascreen.core.model import DECISION_RANK, Assessment
from ketascreen.services import Screener, load_knowledge_base
from ketascreen.testing import BASELINE_DATE, merge_intake

SCREENER = Screener(load_knowledge_base())
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

CODES = ["F33.1", "F32.A", "F20.9", "F25.0", "F23", "F31.9", "F31.11", "F31.81", "F34.0",
         "F43.10", "F44.81", "F60.3", "F60.7", "F05", "G30.9", "F10.20", "F10.21", "F11.20",
         "F12.10", "F14.21", "F17.210", "I10", "I16.0", "I21.9", "I25.10", "I48.91", "I63.9",
         "I71.20", "I67.1", "Q28.2", "I61.9", "I60.9", "G40.909", "R56.9", "S06.0X0A",
         "H40.11X0", "H40.211", "H40.001", "K92.2", "O09.90", "Z33.1", "K74.60", "K76.0",
         "N18.4", "N18.6", "N30.10", "E05.00", "E05.01", "E03.9", "G47.33", "J44.9",
         "R44.0", "Z91.49", "E11.9", "J45.909", "M79.7"]
STATUS = ["active", "remission", "history"]
DRUGS = ["sertraline", "Lexapro", "lorazepam", "alprazolam", "oxycodone", "methadone",
         "buprenorphine", "naltrexone", "quetiapine", "aripiprazole", "lithium", "lamotrigine",
         "valproate", "theophylline", "levothyroxine", "pseudoephedrine", "memantine",
         "phenelzine", "amphetamine", "gabapentin", "zolpidem", "clarithromycin", "rifampin",
         "lisinopril", "warfarin", "donepezil", "methimazole", "atorvastatin", "esketamine",
         "notadrugazine"]
SUBSTANCES = ["alcohol", "opioids", "stimulants", "cocaine", "methamphetamine", "cannabis",
              "sedatives", "ketamine", "hallucinogens", "nicotine", "other"]
DATES = ["2020", "2024-06", "2025-12-01", "2026-08", "2026-10-20", "2026-11-12"]
WORSE: dict[str, list[Any]] = {
    "symptoms.psychosis_now": [False, True],
    "symptoms.mania_now": [False, True],
    "symptoms.hallucinations_past": [False, True],
    "symptoms.dissociation": ["none", "occasional", "frequent"],
    "symptoms.suicidal": ["none", "passive", "active", "plan_or_intent"],
    "symptoms.suicide_attempt": ["none", "lifetime", "past_3_months"],
    "readiness.own_choice": [True, False],
    "readiness.pressured": [False, True],
    "readiness.expects_quick_fix": [False, True],
    "readiness.support_person": [True, False],
    "readiness.integration_support": [True, False],
    "readiness.open_to_therapy": [True, False],
    "readiness.can_attend_series": [True, False],
    "readiness.ride_home": [True, False],
    "readiness.session_monitor": [True, False],
    "readiness.safe_storage": [True, False],
}


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    c: dict[str, Any] = {"code": draw(st.sampled_from(CODES)),
                         "status": draw(st.sampled_from(STATUS))}
    if draw(st.booleans()):
        c["controlled"] = draw(st.booleans())
    if draw(st.booleans()):
        c["since"] = draw(st.sampled_from(DATES))
    return c


@st.composite
def medications(draw: st.DrawFn) -> dict[str, Any]:
    m: dict[str, Any] = {"name": draw(st.sampled_from(DRUGS)),
                         "schedule": draw(st.sampled_from(["daily", "as_needed", "stopped"]))}
    if draw(st.booleans()):
        m["daily_mg"] = draw(st.sampled_from([0.5, 2, 6, 40]))
    return m


@st.composite
def substances(draw: st.DrawFn) -> dict[str, Any]:
    s: dict[str, Any] = {"substance": draw(st.sampled_from(SUBSTANCES)),
                         "status": draw(st.sampled_from(["current", "past", "never"]))}
    if s["status"] != "never" or draw(st.booleans()):
        s["disorder"] = draw(st.booleans())
    if s.get("disorder") or draw(st.booleans()):
        s["last_use"] = draw(st.sampled_from(DATES))
        s["recovery_support"] = draw(st.booleans())
    return s


@st.composite
def intakes(draw: st.DrawFn) -> dict[str, Any]:
    sex = draw(st.sampled_from(["female", "male", "intersex", "unknown"]))
    fragment: dict[str, Any] = {
        "age": draw(st.integers(min_value=12, max_value=90)),
        "sex": sex,
        "route": draw(st.sampled_from([None, "iv", "im", "intranasal", "oral"])),
        "conditions": draw(st.lists(conditions(), max_size=4)),
        "medications": draw(st.lists(medications(), max_size=4)),
        "substances": draw(st.lists(substances(), max_size=3)),
        "family_history": draw(st.lists(st.fixed_dictionaries({
            "code": st.sampled_from(["F20.9", "F31.9", "F32.9", "F25.0"]),
            "relation": st.sampled_from(["mother", "sibling", "cousin", "other"])}),
            max_size=2)),
    }
    if draw(st.booleans()):
        fragment["setting"] = draw(st.sampled_from(["clinic", "home"]))
    systolic = draw(st.integers(min_value=95, max_value=200))
    fragment["vitals"] = {"systolic": systolic,
                          "diastolic": draw(st.integers(min_value=55, max_value=min(systolic - 1,
                                                                                     125))),
                          "heart_rate": draw(st.integers(min_value=50, max_value=130)),
                          "taken_on": "2026-11-10"}
    answers: dict[str, dict[str, Any]] = {"symptoms": {}, "readiness": {}}
    for path, values in WORSE.items():
        group, key = path.split(".")
        answers[group][key] = draw(st.sampled_from(values))
    fragment.update(answers)
    if sex != "male":
        fragment["pregnancy"] = {"pregnant": draw(st.sampled_from(["no", "yes", "unknown"])),
                                 "breastfeeding": draw(st.booleans()),
                                 "planning": draw(st.booleans())}
    unset = draw(st.lists(st.sampled_from([*WORSE, "vitals", "family_history", "allergies",
                                           "pregnancy"]), max_size=2, unique=True))
    return merge_intake(fragment, unset)


def _screen(data: dict[str, Any]) -> Assessment:
    return SCREENER.screen(data, today=BASELINE_DATE)


def _not_better(before: Assessment, after: Assessment) -> bool:
    b, a = DECISION_RANK[before.decision], DECISION_RANK[after.decision]
    if before.decision == "incomplete":
        # The contract: incomplete means a missing answer *could* make it worse than the known
        # findings; new findings that reach that level turn it into a firm needs_evaluation.
        return a >= DECISION_RANK["needs_evaluation"]
    return a >= b


@SETTINGS
@given(intakes())
def test_any_valid_intake_is_assessed(data: dict[str, Any]) -> None:
    a = _screen(data)
    assert a.decision in DECISION_RANK
    assert set(a.routes) == {"iv", "im", "intranasal", "oral"}
    if a.urgent:
        assert any(f.urgent for f in a.findings)


@SETTINGS
@given(intakes(), st.data())
def test_adding_a_risk_never_helps(data: dict[str, Any], more: st.DataObject) -> None:
    before = _screen(data)
    worse = copy.deepcopy(data)
    kind = more.draw(st.sampled_from(["condition", "medication", "substance", "symptom", "bp"]))
    if kind == "condition":
        worse["conditions"] = [*worse.get("conditions", []), more.draw(conditions())]
    elif kind == "medication":
        worse["medications"] = [*worse.get("medications", []), more.draw(medications())]
    elif kind == "substance":
        worse["substances"] = [*worse.get("substances", []), more.draw(substances())]
    elif kind == "symptom":
        path = more.draw(st.sampled_from(sorted(WORSE)))
        group, key = path.split(".")
        worse.setdefault(group, {})[key] = WORSE[path][-1]
    elif "vitals" in worse:
        v = worse["vitals"]
        v["systolic"] = min(300, v["systolic"] + more.draw(st.integers(1, 60)))
    after = _screen(worse)
    assert _not_better(before, after), (kind, before.decision, after.decision)
    assert after.urgent or not before.urgent


@SETTINGS
@given(intakes(), st.sampled_from(["symptoms.psychosis_now", "symptoms.mania_now",
                                   "symptoms.suicidal", "symptoms.suicide_attempt",
                                   "symptoms.dissociation", "readiness.pressured",
                                   "readiness.own_choice", "readiness.ride_home",
                                   "family_history", "allergies", "vitals", "conditions",
                                   "medications", "substances"]))
def test_missing_required_answer_is_never_eligible(data: dict[str, Any], path: str) -> None:
    fragment = copy.deepcopy(data)
    group, _, key = path.partition(".")
    if key:
        fragment.get(group, {}).pop(key, None)
    else:
        fragment.pop(group, None)
    a = _screen(fragment)
    assert a.decision != "eligible"
    if a.decision == "incomplete":
        assert any(m.blocking for m in a.missing)


_INDEX = re.compile(r"\[\d+\]")


def _shape(a: Assessment) -> tuple[Any, ...]:
    return (a.decision, a.urgent, a.routes, sorted(f.rule for f in a.findings),
            sorted({_INDEX.sub("[]", m.field) for m in a.missing}),
            sorted(u.value for u in a.unrecognized))


@SETTINGS
@given(intakes(), st.randoms(use_true_random=False))
def test_list_order_does_not_matter(data: dict[str, Any], rnd: Any) -> None:
    shuffled = copy.deepcopy(data)
    for key in ("conditions", "medications", "substances", "family_history"):
        if isinstance(shuffled.get(key), list):
            rnd.shuffle(shuffled[key])
    assert _shape(_screen(data)) == _shape(_screen(shuffled))


@SETTINGS
@given(intakes())
def test_same_input_same_output(data: dict[str, Any]) -> None:
    assert _screen(data).model_dump_json() == _screen(copy.deepcopy(data)).model_dump_json()


@SETTINGS
@given(intakes())
def test_rule_skipping_changes_nothing(data: dict[str, Any]) -> None:
    """The gating index (a speed-up) against evaluating every rule (explain mode)."""
    fast = _screen(data)
    full = SCREENER.screen(data, today=BASELINE_DATE, explain=True)
    assert fast.model_dump_json() == full.model_copy(update={"trace": None}).model_dump_json()
