"""Reading an intake: ``parse_intake`` rejects what breaks the contract, every problem at once.

Each problem carries a path (``conditions[2].status``) and a plain message a person can act on.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from ketascreen.core.model import Intake
from ketascreen.core.validation import parse_intake
from ketascreen.errors import IntakeError, Problem
from ketascreen.testing import merge_intake

TODAY = date(2026, 11, 16)

# Wording that belongs to pydantic, not to a message written for people.
MACHINE_WORDS = ("Input should be", "Value error", "pydantic", "type=", "input_value", "[type")


def problems(data: Any, today: date = TODAY) -> list[Problem]:
    """The problems parse_intake reports for ``data`` (fails the test if it is accepted)."""
    with pytest.raises(IntakeError) as info:
        parse_intake(data, today=today)
    assert info.value.problems, "an IntakeError must carry at least one problem"
    return info.value.problems


def fields(data: Any, today: date = TODAY) -> list[str]:
    return [p.field for p in problems(data, today)]


def one_problem(data: Any, field: str) -> Problem:
    """The single problem reported for ``field``."""
    found = [p for p in problems(data) if p.field == field]
    assert len(found) == 1, (field, problems(data))
    return found[0]


def assert_human(message: str) -> None:
    for word in MACHINE_WORDS:
        assert word not in message, message
    assert message, repr(message)
    assert message.strip() == message, repr(message)


def test_baseline_is_valid() -> None:
    intake = parse_intake(merge_intake(), today=TODAY)
    assert isinstance(intake, Intake)
    assert intake.age == 45


# ------------------------------------------------------------------------------------------
# Unknown keys


def test_unknown_top_level_key_is_rejected_naming_it_and_suggesting_pregnancy() -> None:
    data = merge_intake({"sex": "female"})
    del data["pregnancy"]
    data["pregant"] = {"pregnant": "no", "breastfeeding": False, "planning": False}
    problem = one_problem(data, "pregant")
    assert "unknown" in problem.message
    assert "pregnancy" in problem.message
    assert_human(problem.message)
    # The message as a whole (what the CLI prints) names the key too.
    with pytest.raises(IntakeError) as info:
        parse_intake(data, today=TODAY)
    assert "pregant" in str(info.value)


@pytest.mark.parametrize(
    ("fragment", "field", "suggestion"),
    [
        ({"vitals": {"pulse": 70}}, "vitals.pulse", None),
        ({"symptoms": {"suicidal_ideation": "none"}}, "symptoms.suicidal_ideation", "suicidal"),
        ({"conditions": [{"code": "F33.1", "stauts": "active"}]}, "conditions[0].stauts", "status"),
        ({"medications": [{"name": "sertraline", "dose_mg": 50}]}, "medications[0].dose_mg", None),
        ({"readiness": {"own_choise": True}}, "readiness.own_choise", "own_choice"),
        ({"substances": [{"substance": "alcohol", "status": "never", "amount": 3}]},
         "substances[0].amount", None),
        ({"instruments": {"phq_9": [0] * 9}}, "instruments.phq_9", "phq9"),
        ({"family_history": [{"code": "F20.9", "relation": "mother", "age": 50}]},
         "family_history[0].age", None),
    ],
)
def test_unknown_nested_key_is_rejected_with_its_path(
    fragment: dict[str, Any], field: str, suggestion: str | None
) -> None:
    problem = one_problem(merge_intake(fragment), field)
    assert "unknown" in problem.message
    if suggestion is not None:
        assert f"'{suggestion}'" in problem.message
    assert_human(problem.message)


def test_extensions_carry_anything() -> None:
    ext: dict[str, Any] = {
        "clinic": {"site": "north", "codes": [1, 2.5, None, True]},
        "anything_at_all": "yes",
        "pregant": "this is not a typo here: extensions are open",
    }
    intake = parse_intake(merge_intake({"extensions": ext}), today=TODAY)
    assert intake.extensions == ext


def test_extensions_must_be_an_object() -> None:
    problem = one_problem(merge_intake({"extensions": [1, 2]}), "extensions")
    assert_human(problem.message)


def test_an_intake_must_be_an_object() -> None:
    found = problems([merge_intake()])
    assert "object" in found[0].message


# ------------------------------------------------------------------------------------------
# Every problem at once


def test_every_problem_is_reported_at_once_with_paths() -> None:
    data = merge_intake(
        {
            "age": 300,
            "sex": "woman",
            "conditions": [
                {"code": "F33.1"},
                {"name": "high blood pressure", "controlled": True},
                {"code": "F41.1", "status": "current"},
            ],
            "vitals": {"heart_rate": 400},
            "substances": [{"substance": "crack", "status": "never"}],
            "pregant": True,
        }
    )
    found = fields(data)
    for expected in ("age", "sex", "conditions[2].status", "vitals.heart_rate",
                     "substances[0].substance", "pregant"):
        assert expected in found, (expected, found)
    assert len(found) == len(set(found)) == 6


def test_a_late_date_is_reported_together_with_other_problems() -> None:
    """A date after assessed_on is one problem among others, not hidden behind them."""
    data = merge_intake({"sex": "woman", "conditions": [{"code": "F33.1", "since": "2027-01"}]})
    found = problems(data)
    assert "sex" in [p.field for p in found]
    assert any("conditions[0].since" in str(p) for p in found), found


# ------------------------------------------------------------------------------------------
# Ranges


@pytest.mark.parametrize(
    ("fragment", "field", "words"),
    [
        ({"age": 300}, "age", ("120", "300")),
        ({"age": -1}, "age", ("0", "-1")),
        ({"vitals": {"heart_rate": 400}}, "vitals.heart_rate", ("250", "400")),
        ({"vitals": {"heart_rate": 10}}, "vitals.heart_rate", ("20", "10")),
        ({"vitals": {"systolic": 400, "diastolic": 80}}, "vitals.systolic", ("300", "400")),
        ({"vitals": {"systolic": 120, "diastolic": 10}}, "vitals.diastolic", ("20", "10")),
        ({"instruments": {"phq9": [0, 0, 0, 0, 5, 0, 0, 0, 0]}}, "instruments.phq9[4]", ("3", "5")),
        ({"instruments": {"gad7": [0, 0, 0, 0, 0, 0, -1]}}, "instruments.gad7[6]", ("0", "-1")),
        ({"instruments": {"audit_c": [5, 0, 0]}}, "instruments.audit_c[0]", ("4", "5")),
        ({"instruments": {"pcl5": [0] * 19 + [5]}}, "instruments.pcl5[19]", ("4", "5")),
        ({"medications": [{"name": "sertraline", "daily_mg": -5}]}, "medications[0].daily_mg",
         ("0",)),
        ({"labs": {"alt": -3}}, "labs.alt", ("0",)),
    ],
)
def test_values_out_of_range_are_errors(
    fragment: dict[str, Any], field: str, words: tuple[str, ...]
) -> None:
    problem = one_problem(merge_intake(fragment), field)
    for word in words:
        assert word in problem.message, problem
    assert_human(problem.message)


@pytest.mark.parametrize(("systolic", "diastolic"), [(120, 120), (120, 130), (90, 160)])
def test_diastolic_at_or_above_systolic_is_an_error(systolic: int, diastolic: int) -> None:
    data = merge_intake({"vitals": {"systolic": systolic, "diastolic": diastolic}})
    found = [p for p in problems(data) if p.field.startswith("vitals")]
    assert len(found) == 1, found
    assert "diastolic" in found[0].message
    assert "systolic" in found[0].message
    assert str(diastolic) in found[0].message
    assert_human(found[0].message)


@pytest.mark.parametrize(
    ("instrument", "length", "expected"),
    [
        ("phq9", 8, 9),
        ("phq9", 10, 9),
        ("gad7", 6, 7),
        ("audit_c", 4, 3),
        ("dast10", 9, 10),
        ("pcl5", 19, 20),
        ("pcl5", 21, 20),
    ],
)
def test_questionnaire_with_the_wrong_number_of_items_is_an_error(
    instrument: str, length: int, expected: int
) -> None:
    items: list[Any] = [False] * length if instrument == "dast10" else [0] * length
    problem = one_problem(merge_intake({"instruments": {instrument: items}}),
                          f"instruments.{instrument}")
    assert str(expected) in problem.message
    assert_human(problem.message)
    # A fixed-length questionnaire says how many items it has, in plain words.
    assert f"exactly {expected} items" in problem.message, problem.message
    assert "after validation" not in problem.message


@pytest.mark.parametrize(
    ("instrument", "items"),
    [
        ("phq9", [3] * 9),
        ("gad7", [0] * 7),
        ("audit_c", [4, 4, 4]),
        ("dast10", [True] * 10),
        ("pcl5", [4] * 20),
    ],
)
def test_questionnaires_in_range_are_accepted(instrument: str, items: list[Any]) -> None:
    parse_intake(merge_intake({"instruments": {instrument: items}}), today=TODAY)


# ------------------------------------------------------------------------------------------
# Enumerations


@pytest.mark.parametrize(
    ("fragment", "field", "allowed"),
    [
        ({"sex": "woman"}, "sex", ("female", "male", "intersex", "unknown")),
        ({"route": "rectal"}, "route", ("iv", "im", "intranasal", "oral")),
        ({"route": "IV"}, "route", ("iv",)),
        ({"setting": "hospital"}, "setting", ("clinic", "home")),
        ({"indications": ["insomnia"]}, "indications[0]", ("depression", "ptsd")),
        ({"conditions": [{"code": "F33.1", "status": "current"}]}, "conditions[0].status",
         ("active", "remission", "history")),
        ({"substances": [{"substance": "crack", "status": "never"}]}, "substances[0].substance",
         ("alcohol", "cocaine", "other")),
        ({"substances": [{"substance": "alcohol", "status": "sometimes"}]},
         "substances[0].status", ("current", "past", "never")),
        ({"family_history": [{"code": "F20.9", "relation": "uncle"}]},
         "family_history[0].relation", ("aunt_uncle", "mother", "other")),
        ({"medications": [{"name": "sertraline", "schedule": "weekly"}]},
         "medications[0].schedule", ("daily", "as_needed", "stopped")),
        ({"symptoms": {"suicidal": "yes"}}, "symptoms.suicidal",
         ("none", "passive", "active", "plan_or_intent")),
        ({"symptoms": {"dissociation": "often"}}, "symptoms.dissociation",
         ("none", "occasional", "frequent")),
        ({"pregnancy": {"pregnant": "maybe"}}, "pregnancy.pregnant", ("yes", "no", "unknown")),
        ({"labs": {"child_pugh": "D"}}, "labs.child_pugh", ("A", "B", "C")),
    ],
)
def test_enumerations_are_enforced(
    fragment: dict[str, Any], field: str, allowed: tuple[str, ...]
) -> None:
    problem = one_problem(merge_intake(fragment), field)
    for value in allowed:
        assert value in problem.message, problem
    assert_human(problem.message)


@pytest.mark.parametrize(
    ("fragment", "field"),
    [
        ({"conditions": [{"status": "active"}]}, "conditions[0]"),
        ({"conditions": [{"code": "F33.1"}, {"since": "2020", "status": "history"}]},
         "conditions[1]"),
        ({"family_history": [{"relation": "mother"}]}, "family_history[0]"),
    ],
)
def test_condition_needs_a_code_or_a_name(fragment: dict[str, Any], field: str) -> None:
    problem = one_problem(merge_intake(fragment), field)
    assert "code" in problem.message
    assert "name" in problem.message
    assert_human(problem.message)


@pytest.mark.parametrize("condition", [{"code": "F20.9"}, {"name": "seizures"},
                                       {"code": "f209", "name": "schizophrenia"}])
def test_condition_with_code_or_name_is_accepted(condition: dict[str, Any]) -> None:
    parse_intake(merge_intake({"conditions": [condition]}), today=TODAY)


@pytest.mark.parametrize(
    ("fragment", "field"),
    [
        ({"age": True}, "age"),
        ({"age": False}, "age"),
        ({"labs": {"alt": True}}, "labs.alt"),
        ({"instruments": {"phq9": [True] * 9}}, "instruments.phq9"),
    ],
)
def test_a_boolean_is_not_a_number(fragment: dict[str, Any], field: str) -> None:
    """``"age": false`` must not silently become age 0, nor PHQ-9 answers ``true`` a score of 9."""
    found = [p for p in problems(merge_intake(fragment)) if p.field.startswith(field)]
    assert found
    for problem in found:
        assert_human(problem.message)


# ------------------------------------------------------------------------------------------
# Dates

LATE_DATES = [
    ({"conditions": [{"code": "F33.1", "since": "2027-01"}]}, "conditions[0].since", "2027-01"),
    ({"conditions": [{"code": "F33.1", "since": "2026-11-17"}]}, "conditions[0].since",
     "2026-11-17"),
    ({"conditions": [{"code": "F33.1", "status": "history", "since": "2020",
                      "until": "2026-12"}]}, "conditions[0].until", "2026-12"),
    ({"substances": [{"substance": "alcohol", "status": "past", "disorder": False,
                      "last_use": "2026-11-17"}]}, "substances[0].last_use", "2026-11-17"),
    ({"substances": [{"substance": "cannabis", "status": "past", "disorder": False,
                      "last_use": "2027"}]}, "substances[0].last_use", "2027"),
    ({"vitals": {"taken_on": "2026-12-01"}}, "vitals.taken_on", "2026-12-01"),
    ({"medications": [{"name": "sertraline", "schedule": "stopped",
                       "stopped_on": "2026-12"}]}, "medications[0].stopped_on", "2026-12"),
]


@pytest.mark.parametrize(("fragment", "field", "value"), LATE_DATES)
def test_a_date_after_assessed_on_is_an_error(
    fragment: dict[str, Any], field: str, value: str
) -> None:
    found = problems(merge_intake(fragment))
    text = "; ".join(str(p) for p in found)
    assert field in text, text
    assert value in text, text
    assert "2026-11-16" in text
    for p in found:
        assert_human(p.message)


@pytest.mark.parametrize(("fragment", "field", "value"), LATE_DATES)
def test_a_late_date_problem_is_filed_under_the_date_field(
    fragment: dict[str, Any], field: str, value: str
) -> None:
    """The problem's field is the date's own path (what the CLI's jsonl ``error.field`` shows)."""
    assert field in fields(merge_intake(fragment))


@pytest.mark.parametrize(
    "fragment",
    [
        {"conditions": [{"code": "F33.1", "since": "2026-11"}]},
        {"conditions": [{"code": "F33.1", "since": "2026"}]},
        {"conditions": [{"code": "F33.1", "since": "2026-11-16"}]},
        {"conditions": [{"code": "F33.1", "status": "history", "since": "2026-01",
                         "until": "2026-11"}]},
        {"substances": [{"substance": "alcohol", "status": "current", "disorder": False,
                         "last_use": "2026-11"}]},
        {"vitals": {"taken_on": "2026-11"}},
        {"vitals": {"taken_on": "2026-11-16"}},
        {"medications": [{"name": "sertraline", "schedule": "stopped", "stopped_on": "2026-11"}]},
    ],
)
def test_a_partial_date_in_the_month_of_assessed_on_is_not_an_error(
    fragment: dict[str, Any],
) -> None:
    parse_intake(merge_intake(fragment), today=TODAY)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("2026-13", ("month",)),
        ("2026-00", ("month",)),
        ("2026-02-30", ("day", "28")),
        ("2024-02-30", ("day", "29")),
        ("2026-04-31", ("day", "30")),
        ("26-01-01", ("YYYY",)),
        ("2026/01/01", ("YYYY",)),
        ("2026-1", ("YYYY",)),
        ("last year", ("YYYY",)),
        ("", ("YYYY",)),
    ],
)
def test_malformed_partial_dates_are_errors(value: str, words: tuple[str, ...]) -> None:
    data = merge_intake({"conditions": [{"code": "F33.1", "since": value}]})
    problem = one_problem(data, "conditions[0].since")
    for word in words:
        assert word in problem.message, problem
    assert_human(problem.message)


@pytest.mark.parametrize("field", ["substances[0].last_use", "vitals.taken_on"])
def test_malformed_dates_are_errors_in_every_dated_field(field: str) -> None:
    if field.startswith("substances"):
        fragment: dict[str, Any] = {"substances": [{"substance": "alcohol", "status": "past",
                                                    "disorder": False, "last_use": "2026-13"}]}
    else:
        fragment = {"vitals": {"taken_on": "2026-02-30"}}
    problem = one_problem(merge_intake(fragment), field)
    assert_human(problem.message)


@pytest.mark.parametrize("value", ["2026-11", "2026", "2026-11-16T10:00:00", "16/11/2026",
                                   "2026-13-01", "2026-02-30", "20261116"])
def test_assessed_on_must_be_a_full_date(value: str) -> None:
    problem = one_problem(merge_intake({"assessed_on": value}), "assessed_on")
    assert "YYYY-MM-DD" in problem.message
    assert_human(problem.message)


def test_assessed_on_is_echoed() -> None:
    intake = parse_intake(merge_intake({"assessed_on": "2026-10-01",
                                        "vitals": {"taken_on": "2026-09-30"}}), today=TODAY)
    assert intake.assessed_on == date(2026, 10, 1)


def test_dates_count_back_from_assessed_on_not_from_today() -> None:
    # after `today` but not after the intake's own assessed_on: fine
    parse_intake(merge_intake({"assessed_on": "2026-12-20", "vitals": {"taken_on": "2026-12-01"}}),
                 today=TODAY)
    # before `today` but after assessed_on: an error
    data = merge_intake({"assessed_on": "2026-10-01", "vitals": {"taken_on": "2026-11-01"}})
    assert "vitals.taken_on" in "; ".join(str(p) for p in problems(data))


def test_default_assessed_on_comes_from_today() -> None:
    data = merge_intake({"vitals": {"taken_on": "2026-11-10"}})
    del data["assessed_on"]
    # valid as of 2026-11-16 ...
    parse_intake(data, today=TODAY)
    # ... but the same reading lies in the future when today is 2026-11-01
    found = problems(data, today=date(2026, 11, 1))
    text = "; ".join(str(p) for p in found)
    assert "vitals.taken_on" in text
    assert "2026-11-01" in text


def test_default_assessed_on_is_used_by_the_screening() -> None:
    from ketascreen.services import Screener

    data = merge_intake()
    del data["assessed_on"]
    screener = Screener()
    intake = parse_intake(data, today=TODAY)
    assert screener.screen(intake, today=TODAY).as_of == TODAY
    later = date(2026, 12, 24)
    assert screener.screen(parse_intake(data, today=later), today=later).as_of == later


# ------------------------------------------------------------------------------------------
# Messages for people

BAD_FRAGMENTS: list[dict[str, Any]] = [
    {"age": "forty"},
    {"age": 45.5},
    {"sex": 3},
    {"conditions": "none"},
    {"conditions": [3]},
    {"medications": [{"dose": "10 mg"}]},
    {"symptoms": {"psychosis_now": "perhaps"}},
    {"readiness": "yes"},
    {"vitals": {"systolic": "high", "diastolic": 80}},
    {"instruments": {"mdq": {"items": [True] * 13, "clustered": True, "impairment": "huge"}}},
    {"instruments": {"cssrs_screen": {"wish_dead": True}}},
    {"prior_ketamine": {"misuse": False}},
    {"id": 12},
    {"medications": [{"name": "sertraline", "rxnorm": "abc"}]},
]


@pytest.mark.parametrize("fragment", BAD_FRAGMENTS)
def test_messages_are_written_for_people(fragment: dict[str, Any]) -> None:
    for problem in problems(merge_intake(fragment)):
        assert problem.field, problem
        assert_human(problem.message)


def test_intake_error_describes_every_problem_with_its_source() -> None:
    data = merge_intake({"age": 300, "sex": "woman"})
    with pytest.raises(IntakeError) as info:
        parse_intake(data, today=TODAY, source="intake.json")
    text = info.value.describe()
    assert text.startswith("intake.json: ")
    assert "age: " in text
    assert "sex: " in text
