"""The questionnaire definition (knowledge/questionnaire.yaml) and how answers become an intake."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ketascreen.core.validation import parse_intake
from ketascreen.core.vocab import Lexicon, normalize_code
from ketascreen.errors import KnowledgeBaseError
from ketascreen.knowledge.questionnaire import (
    Questionnaire,
    coerce_answer,
    load_questionnaire,
    questionnaire_from_data,
)
from ketascreen.reports.render import render
from ketascreen.services import Screener, load_knowledge_base
from ketascreen.web.context import self_screening_protocol
from ketascreen.web.settings import DEFAULT_INSTRUMENTS
from tests.web.answers import ALL_INSTRUMENTS, healthy_answers

TODAY = date(2026, 11, 16)


@pytest.fixture(scope="module")
def q() -> Questionnaire:
    return load_questionnaire()


def test_loads_with_unique_ids_and_a_version(q: Questionnaire) -> None:
    ids = [i.id for i in q.items()]
    assert len(ids) == len(set(ids)) > 100
    assert q.version and len(q.sha256) == 64
    assert {p.instrument for p in q.pages if p.instrument} == set(q.instruments)


def test_instruments_are_the_knowledge_bases_and_licensed_to_ship(q: Questionnaire) -> None:
    kb = load_knowledge_base()
    assert q.instrument_ids() == ["phq9", "gad7", "pcl5"]
    assert set(q.instrument_ids()) == set(DEFAULT_INSTRUMENTS) == ALL_INSTRUMENTS
    for name, info in q.instruments.items():
        definition = kb.instruments[name]
        assert definition.licence.ship_item_texts and info.ship_item_texts
        assert (info.name, info.holder) == (definition.name, definition.licence.holder)
        assert info.citation == " ".join(definition.citation.split())
    shipped = {k for k, d in kb.instruments.items() if d.licence.ship_item_texts}
    assert set(q.instrument_ids()) == shipped  # every one we may ship is asked


def test_no_item_of_an_unshippable_instrument(q: Questionnaire) -> None:
    """C-SSRS, AUDIT-C, DAST-10 and MDQ: neither a page, an answer nor their wording."""
    kb = load_knowledge_base()
    unshippable = {k for k, d in kb.instruments.items() if not d.licence.ship_item_texts}
    assert unshippable == {"cssrs_screen", "audit_c", "dast10", "mdq"}
    for item in q.items():
        path = item.maps_to.path if item.maps_to and item.maps_to.path else ""
        assert not any(path.startswith(f"instruments.{n}") for n in unshippable), item.id
    texts = " ".join(i.text.lower() for i in q.items())
    for words in ("thoughts of killing yourself", "go to sleep and not wake up",
                  "drink containing alcohol", "six or more drinks"):
        assert words not in texts
    # the person's own safety questions stay, in ketascreen's words, always asked
    for item_id, path in (("suicidal", "symptoms.suicidal"),
                          ("suicide_attempt", "symptoms.suicide_attempt")):
        item = q.item(item_id)
        assert item.required and item.maps_to is not None and item.maps_to.path == path
        assert q.page_of(item_id).instrument is None and not q.page_of(item_id).enable_when


def test_every_condition_code_is_a_real_icd10cm_code(q: Questionnaire) -> None:
    lex = Lexicon(load_knowledge_base().vocabulary)
    for item in q.items():
        for o in item.options:
            code = (o.entry or {}).get("code")
            if code:
                assert lex.is_valid_code(normalize_code(code)), f"{item.id}: {code}"


def test_loinc_codes_only_where_declared(q: Questionnaire) -> None:
    coded = {i.id: i.code.code for i in q.items() if i.code}
    assert coded["age"] == "30525-0"
    assert coded["bp_systolic"] == "8480-6" and coded["bp_diastolic"] == "8462-4"
    assert coded["phq9_9"] == "44260-8"
    assert all(i.code is None or i.code.system == "http://loinc.org" for i in q.items())


def test_healthy_answers_give_a_valid_complete_intake(q: Questionnaire) -> None:
    answers = healthy_answers()
    for page in q.pages_for(answers, instruments=ALL_INSTRUMENTS):
        assert q.unanswered(page, answers) == [], page.id
    data = q.to_intake(answers, instruments=ALL_INSTRUMENTS)
    intake = parse_intake({**data, "assessed_on": TODAY.isoformat()}, today=TODAY)
    screener = Screener(protocol=self_screening_protocol(None))
    a = screener.screen(intake, today=TODAY)
    assert a.decision == "eligible", [(f.rule, f.severity) for f in a.findings] + [
        m.field for m in a.missing if m.blocking]
    assert intake.instruments is not None and intake.instruments.phq9 == [1] * 8 + [0]
    assert {s.substance for s in intake.substances or []} >= {"alcohol", "nicotine"}


def test_without_a_blood_pressure_the_clinic_protocol_says_incomplete(q: Questionnaire) -> None:
    """The self-screening protocol moves blood pressure to "confirm at the first visit"; the
    clinic's own protocol does not."""
    data = q.to_intake(healthy_answers(), instruments=ALL_INSTRUMENTS)
    intake = parse_intake(data, today=TODAY)
    clinic = Screener().screen(intake, today=TODAY)
    assert clinic.decision == "incomplete"
    assert [m.field for m in clinic.missing if m.blocking] == ["vitals"]
    mine = Screener(protocol=self_screening_protocol(None)).screen(intake, today=TODAY)
    assert any(m.field == "vitals" and not m.blocking for m in mine.missing)


def test_a_known_reading_still_counts_in_self_screening(q: Questionnaire) -> None:
    answers = healthy_answers(knows_bp=True, bp_systolic=185, bp_diastolic=100,
                              bp_taken_on="2026-11-10")
    intake = parse_intake(q.to_intake(answers), today=TODAY)
    a = Screener(protocol=self_screening_protocol(None)).screen(intake, today=TODAY)
    assert a.urgent and a.decision == "defer"
    assert intake.vitals is not None and intake.vitals.systolic == 185


def test_pregnancy_only_where_relevant(q: Questionnaire) -> None:
    def pages(**answers: Any) -> list[str]:
        return [p.id for p in q.pages_for(answers, instruments=frozenset())]

    assert "pregnancy" in pages(sex="female", age=30)
    assert "pregnancy" in pages(sex="unknown", age=30)
    assert "pregnancy" not in pages(sex="male", age=30)
    assert "pregnancy" not in pages(sex="female", age=70)
    assert "pregnancy" not in pages(sex="female")  # not yet known: asked once age is given
    data = q.to_intake(healthy_answers(sex="male", pregnant="yes"))
    assert "pregnancy" not in data  # an answer left over from a page that no longer applies


def test_follow_ups_only_after_yes(q: Questionnaire) -> None:
    heart = q.page("heart")
    base = healthy_answers()
    assert "bp_controlled" not in {i.id for i in q.visible_items(heart, base)}
    with_bp = {**base, "heart_conditions": ["high_bp"]}
    assert "bp_controlled" in {i.id for i in q.unanswered(heart, with_bp)}
    data = q.to_intake({**with_bp, "bp_controlled": False})
    assert {"code": "I10", "controlled": False} in data["conditions"]


def test_instruments_only_when_the_clinic_asks(q: Questionnaire) -> None:
    answers = healthy_answers()
    assert "phq9" not in [p.id for p in q.pages_for(answers, instruments=frozenset())]
    assert "instruments" not in q.to_intake(answers, instruments=frozenset())
    ptsd = {**answers, "reasons": ["ptsd"]}
    assert "pcl5" in [p.id for p in q.pages_for(ptsd, instruments=ALL_INSTRUMENTS)]
    assert "pcl5" not in [p.id for p in q.pages_for(answers, instruments=ALL_INSTRUMENTS)]


def test_item9_above_0_leaves_the_cssrs_to_the_clinic(q: Questionnaire) -> None:
    """Self-screening cannot ask the C-SSRS screener: with PHQ-9 item 9 above 0 it is a must-have
    answer the clinic completes, and the letter says so in plain words."""
    answers = healthy_answers(phq9_9=1, suicidal="passive")
    data = q.to_intake(answers, instruments=ALL_INSTRUMENTS)
    assert set(data["instruments"]) == {"phq9", "gad7"}
    intake = parse_intake({**data, "assessed_on": TODAY.isoformat()}, today=TODAY)
    a = Screener(protocol=self_screening_protocol(None)).screen(intake, today=TODAY)
    assert a.decision == "incomplete" and not a.urgent
    assert [m.field for m in a.missing if m.blocking] == ["instruments.cssrs_screen"]
    letter = render(a, "text", "patient", "")
    asked = letter.split("QUESTIONS STILL TO ANSWER", 1)[1].split("WHAT HAPPENS NEXT", 1)[0]
    assert "Your clinic still needs to ask you about" in asked
    assert "safety questions" in " ".join(asked.split())
    assert "C-SSRS" not in letter and "instruments" not in letter
    without = healthy_answers()  # item 9 at 0: nothing more to ask
    a = Screener(protocol=self_screening_protocol(None)).screen(
        parse_intake(q.to_intake(without, instruments=ALL_INSTRUMENTS), today=TODAY), today=TODAY)
    assert "instruments.cssrs_screen" not in [m.field for m in a.missing]


def test_a_skipped_follow_up_can_imply_its_answer() -> None:
    definition = _definition([
        {"id": "thoughts", "type": "boolean", "text": "T?", "required": True,
         "maps_to": {"path": "readiness.own_choice"}},
        {"id": "plan", "type": "boolean", "text": "P?", "required": True,
         "enable_when": [{"item": "thoughts", "operator": "=", "answer": True}],
         "maps_to": {"path": "readiness.pressured", "when_disabled": False}}])
    q = questionnaire_from_data(definition)
    assert q.to_intake({"thoughts": False}) == {"readiness": {"own_choice": False,
                                                              "pressured": False}}
    assert q.to_intake({"thoughts": True}) == {"readiness": {"own_choice": True}}  # missing
    assert q.to_intake({}) == {}  # not implied while its condition is unanswered


def test_crisis_alerts(q: Questionnaire) -> None:
    assert q.active_alerts(healthy_answers()) == []
    assert [a.id for a in q.active_alerts(healthy_answers(suicidal="plan_or_intent"))] == [
        "suicide_crisis"]
    assert [a.id for a in q.active_alerts(healthy_answers(suicide_attempt="past_3_months"))] == [
        "suicide_crisis"]
    assert [a.id for a in q.active_alerts(healthy_answers(bp_red_flags=True))] == [
        "medical_emergency"]
    assert q.active_alerts(healthy_answers(suicidal="passive")) == []


def test_lines_become_entries(q: Questionnaire) -> None:
    data = q.to_intake(healthy_answers(
        takes_medicines=True, medicine_list="Sertraline 100 mg\n\n lorazepam 1 mg as needed \n",
        has_allergies=True, allergy_list="penicillin - rash\nketamine",
        other_diagnoses="migraine\nG47.33"))
    assert data["medications"] == [
        {"name": "Sertraline", "dose": "100 mg"},
        {"name": "lorazepam", "dose": "1 mg as needed", "schedule": "as_needed"}]
    assert data["allergies"] == [{"substance": "penicillin", "reaction": "rash"},
                                 {"substance": "ketamine"}]
    assert {"name": "migraine"} in data["conditions"] and {"code": "G47.33"} in data["conditions"]
    none = q.to_intake(healthy_answers())
    assert none["medications"] == [] and none["allergies"] == []


def test_unanswered_stays_absent(q: Questionnaire) -> None:
    answers = healthy_answers()
    del answers["suicidal"], answers["diagnoses"]
    data = q.to_intake(answers)
    assert "suicidal" not in data["symptoms"]
    # the other lists that fill conditions still answer it; the suicide question stays missing
    a = Screener().screen(parse_intake(data, today=TODAY), today=TODAY)
    assert a.missing[0].field == "symptoms.suicidal"


@pytest.mark.parametrize(("item_id", "given", "expected", "error"), [
    ("age", "41", 41, None),
    ("age", "4", None, "at least 10"),
    ("age", "forty", None, "whole number"),
    ("breastfeeding", "yes", True, None),
    ("breastfeeding", "maybe", None, "yes or no"),
    ("sex", "FEMALE", "female", None),
    ("sex", "other", None, "choose one"),
    ("diagnoses", ["depression", "none"], None, "cannot be combined"),
    ("diagnoses", ["ptsd", "depression"], ["ptsd", "depression"], None),
    ("bp_taken_on", "2026-13-01", None, "month"),
    ("sub_alcohol_last", "2026-02", "2026-02", None),
    ("ketamine_reaction", "x" * 501, None, "under 500"),
])
def test_coerce_answer(q: Questionnaire, item_id: str, given: Any, expected: Any,
                       error: str | None) -> None:
    value, problem = coerce_answer(q.item(item_id), given)
    if error is None:
        assert problem is None and value == expected
    else:
        assert value is None and problem is not None and error in problem


def _definition(items: list[dict[str, Any]], **page: Any) -> dict[str, Any]:
    return {"id": "t", "version": "1", "title": "t", "description": "d",
            "pages": [{"id": "p", "title": "P", **page, "items": items}]}


_CSSRS_ITEM = {"id": "wish", "type": "boolean", "text": "Have you wished you were dead?",
               "maps_to": {"path": "instruments.cssrs_screen.wish_dead"}}


def test_a_page_of_an_unshippable_instrument_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KnowledgeBaseError) as err:
        questionnaire_from_data(_definition([_CSSRS_ITEM], instrument="cssrs_screen"))
    [problem] = err.value.diagnostics
    assert "page p: presents the items of C-SSRS screener (cssrs_screen)" in problem.message
    assert "licence does not allow shipping their texts" in problem.message
    assert "knowledge/instruments/cssrs_screen.yaml" in problem.message
    # without declaring the instrument, its answers are still recognised and refused
    with pytest.raises(KnowledgeBaseError, match="answers instrument 'cssrs_screen'"):
        questionnaire_from_data(_definition([_CSSRS_ITEM]))
    audit = {"id": "a1", "type": "choice", "text": "How often?", "options": [
        {"value": 0, "label": "Never"}], "maps_to": {"path": "instruments.audit_c[0]"}}
    with pytest.raises(KnowledgeBaseError, match="presents the items of AUDIT-C"):
        questionnaire_from_data(_definition([audit], instrument="audit_c"))
    # the same through the file loader, checked against the knowledge base it is given
    path = tmp_path / "q.yaml"
    path.write_text(json.dumps(_definition([_CSSRS_ITEM], instrument="cssrs_screen")),
                    encoding="utf-8")
    with pytest.raises(KnowledgeBaseError, match="does not allow shipping"):
        load_questionnaire(path, kb=load_knowledge_base())


def test_instrument_descriptions_come_from_the_knowledge_base_only() -> None:
    copied = {**_definition([{"id": "a", "type": "boolean", "text": "A?"}]),
              "instruments": {"phq9": {"name": "PHQ-9", "citation": "c", "licence": "free"}}}
    with pytest.raises(KnowledgeBaseError, match=r"knowledge/instruments/<id>\.yaml"):
        questionnaire_from_data(copied)
    with pytest.raises(KnowledgeBaseError, match="not a validated questionnaire of the "
                       "knowledge base"):
        questionnaire_from_data(_definition([{"id": "a", "type": "boolean", "text": "A?"}],
                                            instrument="mmse"))


def test_shipped_instrument_items_keep_their_own_wording() -> None:
    scale = [{"value": v, "label": label} for v, label in enumerate(
        ["Not at all", "Several days", "More than half the days", "Nearly every day"])]
    good = {"id": "g1", "type": "choice", "text": "Feeling nervous,  anxious, or on edge",
            "options": scale, "maps_to": {"path": "instruments.gad7[0]"}}
    q = questionnaire_from_data(_definition([good], instrument="gad7"))
    assert q.instruments["gad7"].name == "GAD-7"
    reworded = {**good, "text": "Feeling nervous or on edge"}
    relabelled = {**good, "id": "g2", "options": [*scale[:3], {"value": 3, "label": "Always"}],
                  "maps_to": {"path": "instruments.gad7[1]"}}
    with pytest.raises(KnowledgeBaseError) as err:
        questionnaire_from_data(_definition([reworded, relabelled], instrument="gad7"))
    text = str(err.value)
    assert "item g1: the text must be GAD-7 item 1's own wording" in text
    assert "item g2: the answers must be GAD-7's own" in text


def test_broken_definitions_are_refused(tmp_path: Path) -> None:
    base: dict[str, Any] = {"id": "t", "version": "1", "title": "t", "description": "d",
                            "pages": [{"id": "p", "title": "P", "items": [
                                {"id": "a", "type": "boolean", "text": "A?",
                                 "maps_to": {"path": "readiness.own_choice"}},
                                {"id": "b", "type": "boolean", "text": "B?",
                                 "enable_when": [{"item": "zzz", "operator": "=",
                                                  "answer": True}],
                                 "maps_to": {"path": "readiness.nonsense"}},
                                {"id": "a", "type": "choice", "text": "dup"}]}]}
    with pytest.raises(KnowledgeBaseError) as err:
        questionnaire_from_data(base)
    text = str(err.value)
    assert "not an earlier item" in text and "not an intake field" in text
    assert "duplicate id" in text and "needs options" in text
    bad_yaml = tmp_path / "q.yaml"
    bad_yaml.write_text("pages: [unclosed", encoding="utf-8")
    with pytest.raises(KnowledgeBaseError, match="not valid YAML"):
        load_questionnaire(bad_yaml)
