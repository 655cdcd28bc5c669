"""Every predicate of the closed language, evaluated directly: true, false and unknown."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from pydantic import TypeAdapter

from ketascreen.core.facts import Facts, build_facts
from ketascreen.core.kb import KnowledgeBase, Predicate, tag_predicates
from ketascreen.core.predicates import FALSE, TRUE, UNKNOWN, CompileError, compile_predicate
from ketascreen.core.validation import parse_intake
from ketascreen.core.vocab import Lexicon
from ketascreen.services import load_knowledge_base
from ketascreen.testing import BASELINE_DATE, merge_intake

ADAPTER: TypeAdapter[Any] = TypeAdapter(Predicate)


@pytest.fixture(scope="module")
def lexicon(kb: KnowledgeBase) -> Lexicon:
    return Lexicon(kb.vocabulary)


def facts_for(lexicon: Lexicon, fragment: dict[str, Any] | None = None,
              unset: list[str] | None = None) -> Facts:
    intake = parse_intake(merge_intake(fragment, unset), today=BASELINE_DATE)
    return build_facts(intake, lexicon, BASELINE_DATE,
                       instruments=load_knowledge_base().instruments)


def value(lexicon: Lexicon, pred: dict[str, Any], fragment: dict[str, Any] | None = None,
          unset: list[str] | None = None, params: dict[str, float] | None = None,
          route: str | None = None) -> tuple[int, tuple[Any, ...], tuple[str, ...]]:
    compiled = compile_predicate(ADAPTER.validate_python(tag_predicates(pred)), params or {})
    return compiled(facts_for(lexicon, fragment, unset), route)


CASES: list[tuple[str, dict[str, Any], dict[str, Any], list[str], int]] = [
    # condition: prefix, range, wildcard, status, exclude, controlled, dates
    ("prefix", {"condition": {"codes": ["F20"]}}, {"conditions": [{"code": "F20.9"}]}, [], TRUE),
    ("prefix miss", {"condition": {"codes": ["F20"]}}, {}, [], FALSE),
    ("range", {"condition": {"codes": ["I20-I25"]}}, {"conditions": [{"code": "I25.10"}]}, [],
     TRUE),
    ("range edge", {"condition": {"codes": ["I20-I25"]}}, {"conditions": [{"code": "I26.99"}]},
     [], FALSE),
    ("wildcard", {"condition": {"codes": ["F1?.?5"]}}, {"conditions": [{"code": "F19.959"}]}, [],
     TRUE),
    ("wildcard miss", {"condition": {"codes": ["F1?.?5"]}}, {"conditions": [{"code": "F19.20"}]},
     [], FALSE),
    ("exclude", {"condition": {"codes": ["F10-F19"], "exclude": ["F17"]}},
     {"conditions": [{"code": "F17.210"}]}, [], FALSE),
    ("status filter", {"condition": {"codes": ["F05"], "status": ["active"]}},
     {"conditions": [{"code": "F05", "status": "history"}]}, [], FALSE),
    ("controlled missing", {"condition": {"codes": ["I10"], "controlled": False}},
     {"conditions": [{"code": "I10"}]}, [], UNKNOWN),
    ("controlled answered", {"condition": {"codes": ["I10"], "controlled": False}},
     {"conditions": [{"code": "I10", "controlled": False}]}, [], TRUE),
    ("unanswered match", {"condition": {"codes": ["G47.33"], "controlled": False,
                                        "unanswered": "match"}},
     {"conditions": [{"code": "G47.33"}]}, [], TRUE),
    ("within days", {"condition": {"codes": ["I21"], "within_days": 42}},
     {"conditions": [{"code": "I21.9", "since": "2026-10-20"}]}, [], TRUE),
    ("outside days", {"condition": {"codes": ["I21"], "within_days": 42}},
     {"conditions": [{"code": "I21.9", "since": "2026-09-01"}]}, [], FALSE),
    ("undated match", {"condition": {"codes": ["I21"], "within_days": 42, "undated": "match"}},
     {"conditions": [{"code": "I21.9"}]}, [], TRUE),
    ("conditions not asked", {"condition": {"codes": ["F20"]}}, {}, ["conditions"], UNKNOWN),
    ("by name", {"condition": {"codes": ["I10"]}}, {"conditions": [{"name": "High BP"}]}, [],
     TRUE),
    # family
    ("family first", {"family": {"codes": ["F20-F29"], "degree": "first"}},
     {"family_history": [{"code": "F20.9", "relation": "sibling"}]}, [], TRUE),
    ("family second only", {"family": {"codes": ["F20-F29"], "degree": "first"}},
     {"family_history": [{"code": "F20.9", "relation": "cousin"}]}, [], FALSE),
    ("family not asked", {"family": {"codes": ["F20-F29"]}}, {}, ["family_history"], UNKNOWN),
    # medication
    ("class", {"medication": {"classes": ["benzodiazepine"]}},
     {"medications": [{"name": "Ativan"}]}, [], TRUE),
    ("stopped", {"medication": {"classes": ["benzodiazepine"]}},
     {"medications": [{"name": "lorazepam", "schedule": "stopped"}]}, [], FALSE),
    ("dose over", {"medication": {"classes": ["benzodiazepine"], "diazepam_mg_gt": 8}},
     {"medications": [{"name": "lorazepam", "daily_mg": 2}]}, [], TRUE),
    ("dose under", {"medication": {"classes": ["benzodiazepine"], "diazepam_mg_gt": 8}},
     {"medications": [{"name": "diazepam", "daily_mg": 5}]}, [], FALSE),
    ("dose unknown", {"medication": {"classes": ["benzodiazepine"], "diazepam_mg_gt": 8}},
     {"medications": [{"name": "lorazepam"}]}, [], UNKNOWN),
    ("two classes", {"medication_classes": {"classes": ["opioid", "benzodiazepine"]}},
     {"medications": [{"name": "oxycodone"}, {"name": "lorazepam"}]}, [], TRUE),
    ("one class twice", {"medication_classes": {"classes": ["opioid", "benzodiazepine"]}},
     {"medications": [{"name": "oxycodone"}, {"name": "morphine"}]}, [], FALSE),
    ("meds not asked", {"medication": {"classes": ["opioid"]}}, {}, ["medications"], UNKNOWN),
    # substance
    ("current use", {"substance": {"pattern": "current_use"}},
     {"substances": [{"substance": "cocaine", "status": "current", "disorder": False}]}, [], TRUE),
    ("recent last use", {"substance": {"pattern": "current_use"}},
     {"substances": [{"substance": "cocaine", "status": "past", "disorder": False,
                      "last_use": "2026-11-01"}]}, [], TRUE),
    ("disorder missing", {"substance": {"pattern": "current_disorder"}},
     {"substances": [{"substance": "alcohol", "status": "current"}]}, [], UNKNOWN),
    ("remitted", {"substance": {"pattern": "remitted_disorder"}},
     {"substances": [{"substance": "alcohol", "status": "past", "disorder": True,
                      "last_use": "2025-01"}]}, [], TRUE),
    ("remitted, last use missing", {"substance": {"pattern": "remitted_disorder"}},
     {"substances": [{"substance": "alcohol", "status": "past", "disorder": True}]}, [], UNKNOWN),
    ("support missing", {"substance": {"pattern": "remitted_disorder",
                                       "recovery_support": False}},
     {"substances": [{"substance": "alcohol", "status": "past", "disorder": True,
                      "last_use": "2025-01"}]}, [], UNKNOWN),
    ("code current disorder", {"substance": {"pattern": "current_disorder"}},
     {"conditions": [{"code": "F11.20"}]}, [], TRUE),
    ("code remission", {"substance": {"pattern": "remitted_disorder"}},
     {"conditions": [{"code": "F11.21"}]}, [], TRUE),
    ("never", {"substance": {"pattern": "ever_used"}},
     {"substances": [{"substance": "alcohol", "status": "never"}]}, [], FALSE),
    ("nicotine excluded by default", {"substance": {"pattern": "current_use"}},
     {"substances": [{"substance": "nicotine", "status": "current", "disorder": True}]}, [],
     FALSE),
    ("substances not asked", {"substance": {"pattern": "current_use"}}, {}, ["substances"],
     UNKNOWN),
    # vitals, answers, age, sex, indication, allergy, unresolved, instrument
    ("systolic", {"vital": {"field": "systolic", "gte": 140}},
     {"vitals": {"systolic": 140, "diastolic": 80}}, [], TRUE),
    ("systolic below", {"vital": {"field": "systolic", "gte": 140}},
     {"vitals": {"systolic": 139, "diastolic": 80}}, [], FALSE),
    ("band upper bound", {"vital": {"field": "diastolic", "gte": 90, "lt": 100}},
     {"vitals": {"systolic": 150, "diastolic": 100}}, [], FALSE),
    ("no vitals", {"vital": {"field": "systolic", "gte": 140}}, {}, ["vitals"], UNKNOWN),
    ("stale vitals", {"vital": {"field": "systolic", "gte": 140}},
     {"vitals": {"systolic": 170, "diastolic": 80, "taken_on": "2026-01-02"}}, [], UNKNOWN),
    ("answer equals", {"answer": {"field": "readiness.pressured", "equals": True}},
     {"readiness": {"pressured": True}}, [], TRUE),
    ("answer in", {"answer": {"field": "symptoms.suicidal", "in": ["active", "plan_or_intent"]}},
     {"symptoms": {"suicidal": "passive"}}, [], FALSE),
    ("answer missing", {"answer": {"field": "symptoms.mania_now", "equals": True}}, {},
     ["symptoms.mania_now"], UNKNOWN),
    ("pregnancy n/a for men", {"answer": {"field": "pregnancy.pregnant", "equals": "yes"}}, {},
     ["pregnancy"], FALSE),
    ("lab gt", {"answer": {"field": "labs.alt", "gt": 120}}, {"labs": {"alt": 150}}, [], TRUE),
    ("present", {"answer": {"field": "prior_ketamine.adverse_reaction", "present": True}},
     {"prior_ketamine": {"received": True, "adverse_reaction": "panic"}}, [], TRUE),
    ("age", {"age": {"lt": 18}}, {"age": 17}, [], TRUE),
    ("age missing", {"age": {"lt": 18}}, {}, ["age"], UNKNOWN),
    ("sex", {"sex": {"in": ["female"]}}, {"sex": "female", "age": 30}, [], TRUE),
    ("indication", {"indication": {"in": ["bipolar_depression"]}},
     {"indications": ["bipolar_depression"]}, [], TRUE),
    ("indication absent", {"indication": {"in": ["bipolar_depression"]}}, {}, ["indications"],
     FALSE),
    ("allergy", {"allergy": {"classes": ["ketamine"]}}, {"allergies": [{"substance": "Spravato"}]},
     [], TRUE),
    ("allergy not asked", {"allergy": {"classes": ["ketamine"]}}, {}, ["allergies"], UNKNOWN),
    ("unresolved", {"unresolved": {"list": "medications"}},
     {"medications": [{"name": "blorptazine"}]}, [], TRUE),
    ("instrument score", {"instrument": {"name": "phq9", "score_gte": 10}},
     {"instruments": {"phq9": [2, 2, 2, 2, 1, 1, 0, 0, 0]}}, [], TRUE),
    ("instrument item", {"instrument": {"name": "phq9", "item": 9, "item_gte": 1}},
     {"instruments": {"phq9": [0, 0, 0, 0, 0, 0, 0, 0, 1]}}, [], TRUE),
    ("instrument absent", {"instrument": {"name": "phq9", "score_gte": 10}}, {}, [], UNKNOWN),
    # combinators (Kleene)
    ("all false wins", {"all": [{"age": {"lt": 18}}, {"answer": {"field": "symptoms.mania_now",
                                                                  "equals": True}}]},
     {}, ["symptoms.mania_now"], FALSE),
    ("all unknown", {"all": [{"age": {"gte": 18}}, {"answer": {"field": "symptoms.mania_now",
                                                                "equals": True}}]},
     {}, ["symptoms.mania_now"], UNKNOWN),
    ("any true wins", {"any": [{"age": {"gte": 18}}, {"answer": {"field": "symptoms.mania_now",
                                                                  "equals": True}}]},
     {}, ["symptoms.mania_now"], TRUE),
    ("not unknown", {"not": {"answer": {"field": "symptoms.mania_now", "equals": True}}}, {},
     ["symptoms.mania_now"], UNKNOWN),
    ("not false", {"not": {"condition": {"codes": ["F20"]}}}, {}, [], TRUE),
]


@pytest.mark.parametrize(("pred", "fragment", "unset", "expected"),
                         [pytest.param(p, f, u, e, id=name) for name, p, f, u, e in CASES])
def test_predicate(lexicon: Lexicon, pred: dict[str, Any], fragment: dict[str, Any],
                   unset: list[str], expected: int) -> None:
    got, evidence, missing = value(lexicon, pred, fragment, unset)
    assert got == expected
    if got == TRUE:
        assert evidence, "a true predicate names its evidence"
    if got == UNKNOWN and "instrument" not in pred:
        assert missing, "an unknown predicate names the missing answer"


def test_setting_depends_on_route(lexicon: Lexicon) -> None:
    pred = {"setting": {"in": ["home"]}}
    assert value(lexicon, pred, route="oral")[0] == TRUE
    assert value(lexicon, pred, route="iv")[0] == FALSE
    assert value(lexicon, pred, {"setting": "clinic"}, route="oral")[0] == FALSE


def test_params_and_errors(lexicon: Lexicon) -> None:
    pred = {"vital": {"field": "systolic", "gte": "$limit"}}
    assert value(lexicon, pred, {"vitals": {"systolic": 150, "diastolic": 80}},
                 params={"limit": 150})[0] == TRUE
    assert value(lexicon, pred, {"vitals": {"systolic": 150, "diastolic": 80}},
                 params={"limit": 151})[0] == FALSE
    with pytest.raises(CompileError, match=r"\$limit"):
        value(lexicon, pred, params={})


def test_partial_dates_read_safely() -> None:
    from ketascreen.core.dates import PartialDate, days_before

    assert PartialDate.parse("2026-09").nearest_to(date(2026, 11, 16)) == date(2026, 9, 30)
    assert PartialDate.parse("2026").nearest_to(date(2026, 11, 16)) == date(2026, 11, 16)
    assert days_before(date(2026, 11, 16), "2026-11") == 0
    assert days_before(date(2026, 11, 16), None) is None
