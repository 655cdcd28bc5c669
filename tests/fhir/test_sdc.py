"""The SDC Questionnaire and the web questionnaire are drawn from one source
(knowledge/questionnaire.yaml), and a QuestionnaireResponse reads back exactly as the web app's
answers do."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fhir.resources.R4B.questionnaire import Questionnaire as R4Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from ketascreen.adapters.sdc import (
    INTAKE_FIELD,
    answer_system,
    questionnaire_resource,
    questionnaire_url,
    read_response,
    response_for,
)
from ketascreen.knowledge.questionnaire import Item, Questionnaire, load_questionnaire


@pytest.fixture(scope="module")
def q() -> Questionnaire:
    return load_questionnaire()


@pytest.fixture(scope="module")
def sdc(q: Questionnaire) -> dict[str, Any]:
    return questionnaire_resource(q, crisis_contacts="Call 988.")


def flat(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for node in items:
        out[node["linkId"]] = node
        out.update(flat(node.get("item", [])))
    return out


def test_it_is_a_valid_r4_sdc_questionnaire(sdc: dict[str, Any], q: Questionnaire) -> None:
    parsed = R4Questionnaire.model_validate(sdc)
    assert parsed.url == questionnaire_url(q) and parsed.version == q.version
    assert parsed.status == "active"
    assert sdc["meta"]["profile"] == [
        "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire"]


def test_every_page_and_question_comes_from_the_definition(sdc: dict[str, Any],
                                                           q: Questionnaire) -> None:
    assert [g["linkId"] for g in sdc["item"]] == [p.id for p in q.pages]
    nodes = flat(sdc["item"])
    questions = {k: v for k, v in nodes.items() if v["type"] not in ("group", "display")}
    assert set(questions) == {i.id for i in q.items() if i.type != "display"}
    for item in q.items():
        node = nodes[item.id]
        assert node["text"] == " ".join(item.text.split())
        assert node.get("required", False) == item.required
        assert node.get("repeats", False) == (item.type == "multi_choice")
        if item.code is not None:
            assert node["code"][0]["code"] == item.code.code  # LOINC where the data gives it
        assert [o["valueCoding"]["display"] for o in node.get("answerOption", [])] == [
            o.label for o in item.options]
        assert [o["valueCoding"]["code"] for o in node.get("answerOption", [])] == [
            str(o.value) for o in item.options]
        assert len(node.get("enableWhen", [])) == len(item.enable_when)
        for fhir_c, c in zip(node.get("enableWhen", []), item.enable_when, strict=True):
            assert fhir_c["question"] == c.item and fhir_c["operator"] == c.operator
        if item.maps_to is not None:
            assert any(e["url"] == INTAKE_FIELD for e in node["extension"])


def test_follow_ups_types_and_limits(sdc: dict[str, Any], q: Questionnaire) -> None:
    nodes = flat(sdc["item"])
    setting = nodes["setting"]
    assert setting["enableWhen"] == [{"question": "route", "operator": "=", "answerCoding": {
        "system": answer_system("route", q), "code": "oral",
        "display": "Tablets or lozenges that dissolve in the mouth"}}]
    reaction = nodes["ketamine_reaction"]
    assert reaction["enableWhen"][0] == {"question": "ketamine_before", "operator": "=",
                                         "answerBoolean": True}
    age = nodes["age"]
    assert age["type"] == "integer" and age["code"][0] == {
        "system": "http://loinc.org", "code": "30525-0", "display": "Age"}
    assert {"url": "http://hl7.org/fhir/StructureDefinition/minValue", "valueInteger": 10} in (
        age["extension"])
    systolic = nodes["bp_systolic"]
    unit = next(e for e in systolic["extension"] if e["url"].endswith("questionnaire-unit"))
    assert unit["valueCoding"]["code"] == "mm[Hg]"
    pregnancy = nodes["pregnancy"]
    assert pregnancy["enableBehavior"] == "all" and len(pregnancy["enableWhen"]) == 3
    none_option = nodes["diagnoses"]["answerOption"][-1]
    assert none_option["extension"] == [{
        "url": "http://hl7.org/fhir/StructureDefinition/questionnaire-optionExclusive",
        "valueBoolean": True}]
    phq = nodes["phq9_1"]["answerOption"][3]["valueCoding"]
    assert phq["extension"] == [{"url": "http://hl7.org/fhir/StructureDefinition/ordinalValue",
                                 "valueDecimal": 3}]


def test_no_item_text_whose_licence_forbids_shipping(sdc: dict[str, Any],
                                                      q: Questionnaire) -> None:
    """The export carries only the validated questionnaires licensed to ship (PHQ-9, GAD-7,
    PCL-5): none of the C-SSRS screener's or AUDIT-C's questions, nor their answers' fields."""
    text = json.dumps(sdc, ensure_ascii=False).lower()
    for words in ("thoughts of killing yourself", "wished you were dead",
                  "go to sleep and not wake up", "how you might do this",
                  "drink containing alcohol", "six or more drinks", "typical day when you are "
                  "drinking", "instruments.cssrs_screen", "instruments.audit_c", "c-ssrs",
                  "audit-c", "72109-2"):
        assert words not in text, words
    nodes = flat(sdc["item"])
    assert not [k for k in nodes if k.startswith(("cssrs", "audit_c"))]
    assert [g["linkId"] for g in sdc["item"] if g.get("code")] == ["phq9", "gad7"]
    assert [p.instrument for p in q.pages if p.instrument] == ["phq9", "gad7", "pcl5"]
    licences = sdc["copyright"].split("\n\n")
    assert [c.split(" ", 1)[0] for c in licences] == ["PHQ-9", "GAD-7", "PCL-5"]
    assert "Public domain" in licences[2] and "Kroenke K" in licences[0]


def test_crisis_alerts_are_shown_by_enable_when(sdc: dict[str, Any], q: Questionnaire) -> None:
    nodes = flat(sdc["item"])
    alert = nodes["alert.suicide_crisis"]
    assert alert["type"] == "display" and "Call 988." in alert["text"]
    assert alert["enableBehavior"] == "any"
    assert {c["question"] for c in alert["enableWhen"]} == {
        c.item for c in q.alerts[0].when}
    assert all("{crisis_contacts}" not in n.get("text", "") for n in nodes.values())


def _answer(item: Item, value: Any, q: Questionnaire) -> list[dict[str, Any]]:
    values = value if isinstance(value, list) else [value]
    out = []
    for v in values:
        if item.options:
            o = item.option(v)
            assert o is not None
            out.append({"valueCoding": {"system": answer_system(item.id, q),
                                        "code": str(o.value), "display": o.label}})
        elif item.type == "boolean":
            out.append({"valueBoolean": v})
        elif item.type == "integer":
            out.append({"valueInteger": v})
        elif item.type in ("date", "month"):
            out.append({"valueDate": v})
        else:
            out.append({"valueString": v})
    return out


WEB_ANSWERS: dict[str, Any] = {
    "age": 34, "sex": "female", "reasons": ["depression", "ptsd"], "route": "intranasal",
    "pregnant": "no", "breastfeeding": False, "planning_pregnancy": False,
    "suicidal": "passive", "suicide_attempt": "none", "hallucinations_past": False,
    "psychosis_now": False, "mania_now": False, "dissociation": "occasional",
    "diagnoses": ["depression", "ptsd"], "family_psychosis": ["none"],
    "family_bipolar": ["aunt_uncle"], "bp_red_flags": False, "heart_conditions": ["high_bp"],
    "bp_controlled": True, "knows_bp": True, "bp_systolic": 134, "bp_diastolic": 86,
    "bp_taken_on": "2026-10-30", "body_conditions": ["none"], "takes_medicines": True,
    "medicine_list": "sertraline 100 mg\nlorazepam 1 mg as needed", "has_allergies": False,
    "ketamine_before": False, "sub_alcohol": "current", "sub_alcohol_problem": False,
    "own_choice": True, "pressured": False, "expects_quick_fix": False,
}


def _response(q: Questionnaire, answers: dict[str, Any]) -> dict[str, Any]:
    groups = []
    for page in q.pages:
        nodes = [{"linkId": i.id, "answer": _answer(i, answers[i.id], q)}
                 for i in page.items if i.id in answers]
        if nodes:
            groups.append({"linkId": page.id, "item": nodes})
    return {"resourceType": "QuestionnaireResponse", "status": "completed",
            "questionnaire": questionnaire_url(q), "item": groups}


def test_a_response_reads_exactly_as_the_web_answers_do(q: Questionnaire) -> None:
    qr = _response(q, WEB_ANSWERS)
    QuestionnaireResponse.model_validate(qr)
    read = read_response(qr, "entry[3].resource", q)
    web = q.to_intake(WEB_ANSWERS, audience="clinician")
    assert read.data == web  # one source, one path from answers to an intake
    assert not read.issues
    assert read.origins["symptoms.suicidal"] == "entry[3].resource.item[2].item[0].answer[0]"
    assert web["conditions"][2] == {"code": "I10", "controlled": True}


def test_bad_answers_are_errors_at_their_path(q: Questionnaire) -> None:
    answers = dict(WEB_ANSWERS)
    qr = _response(q, answers)
    qr["item"][0]["item"][0]["answer"] = [{"valueInteger": 300}]  # age
    qr["item"][0]["item"].append({"linkId": "favourite_colour", "answer": [
        {"valueString": "blue"}]})
    read = read_response(qr, "QR", q)
    assert [(i.path, i.kind) for i in read.issues][:2] == [
        ("QR.item[0].item[0].answer[0]", "error"), ("QR.item[0].item[4]", "ignored")]
    assert "age" not in read.data
    # Without an age the pregnancy page does not apply: its answers are reported, not used.
    assert {i.value for i in read.issues[2:]} == {"pregnant", "breastfeeding",
                                                  "planning_pregnancy"}
    assert "pregnancy" not in read.data


def test_answers_to_questions_that_do_not_apply_are_reported(q: Questionnaire) -> None:
    answers = dict(WEB_ANSWERS, route="iv", setting="home")
    read = read_response(_response(q, answers), "QR", q)
    assert "setting" not in read.data
    assert [i.message for i in read.issues] == [
        "answers a question that does not apply, given the other answers"]


def test_response_for_writes_the_answers_an_intake_gives(q: Questionnaire) -> None:
    intake = q.to_intake(WEB_ANSWERS, audience="clinician")
    qr, lost = response_for(intake, q=q, subject="Patient/1", authored="2026-11-16")
    QuestionnaireResponse.model_validate(qr)
    again = read_response(qr, "QR", q).data
    for key in ("symptoms", "readiness", "route", "indications", "substances",
                "prior_ketamine"):
        assert again.get(key) == intake.get(key), key
    assert lost == []
