"""FHIR R4 in: realistic bundles (SNOMED CT, ICD-10-CM, RxNorm, units, statuses, missing pieces
and junk) read into intakes, with everything not used reported at its FHIR path."""

from __future__ import annotations

from typing import Any

import pytest

from ketascreen.adapters.fhir_r4 import (
    BundleIntake,
    annotate_assessment,
    bundle_to_intake,
    is_fhir,
    read_bundle,
)
from ketascreen.core.kb import KnowledgeBase
from ketascreen.errors import IntakeError
from ketascreen.services import Screener
from ketascreen.testing import BASELINE_DATE
from tests.fhir.builders import (
    ICD10CM,
    LOINC,
    RXNORM,
    SNOMED,
    allergy,
    bp,
    bundle,
    coded_observation,
    coding,
    concept,
    condition,
    family,
    heart_rate,
    med_request,
    med_statement,
    patient,
)

TODAY = BASELINE_DATE  # 2026-11-16


def read(kb: KnowledgeBase, *resources: dict[str, Any], **kw: Any) -> BundleIntake:
    return read_bundle(bundle(*resources), kb=kb, today=TODAY, **kw)


def issue_at(mapped: BundleIntake, path: str) -> list[str]:
    return [f"{i.kind}: {i.message}" for i in mapped.issues if i.path == path]


def test_a_realistic_record_maps_field_by_field(kb: KnowledgeBase) -> None:
    mapped = read(
        kb,
        patient(birth="1981-03-14", gender="female", birthsex="F"),
        condition("htn", coding(SNOMED, "59621000", "Essential hypertension"),
                  coding(ICD10CM, "I10", "Essential (primary) hypertension"), onset="2015"),
        condition("mdd", coding(SNOMED, "370143000", "Major depressive disorder"),
                  clinical="recurrence", onset="2019-06-02T09:30:00-05:00"),
        condition("psy", coding(SNOMED, "69322001", "Psychotic disorder"), clinical="resolved",
                  abatement="2012-05"),
        med_statement("ms1", "36437", "sertraline", dose_mg=100, text="100 mg every morning"),
        med_statement("ms2", "6470", "lorazepam", dose_mg=0.5, as_needed=True,
                      text="0.5 mg as needed"),
        allergy("al1", coding(SNOMED, "91936005", "Allergy to penicillin"), text="Penicillin",
                reaction="Hives"),
        family("fh1", "MTH", coding(SNOMED, "58214004", "Schizophrenia")),
        bp("bp-old", 150, 95, "2026-06-01"),
        bp("bp-new", 128, 82, "2026-11-02T08:15:00Z"),
        heart_rate("hr1", 74, "2026-11-02T08:15:00Z"),
        coded_observation("preg", "82810-3", coding(LOINC, "LA26683-5", "Not pregnant"),
                          "2026-11-02"),
        coded_observation("bf", "63895-7", coding(LOINC, "LA29253-4",
                                                  "Not currently breastfeeding"), "2026-11-02"),
    )
    data = mapped.data
    assert data["age"] == 45 and data["sex"] == "female" and data["id"] == "Patient/example"
    assert data["assessed_on"] == "2026-11-16"
    assert data["conditions"] == [
        {"code": "I10", "name": "Essential hypertension", "status": "active", "since": "2015"},
        {"code": "F32.9", "name": "Major depressive disorder", "status": "active",
         "since": "2019-06-02"},
        {"code": "F29", "name": "Psychotic disorder", "status": "history", "until": "2012-05"},
    ]
    assert data["medications"] == [
        {"name": "sertraline", "rxnorm": "36437", "dose": "100 mg every morning",
         "daily_mg": 100.0},
        {"name": "lorazepam", "rxnorm": "6470", "dose": "0.5 mg as needed",
         "schedule": "as_needed", "daily_mg": 0.5},
    ]
    assert data["allergies"] == [{"substance": "Penicillin", "reaction": "Hives"}]
    assert data["family_history"] == [{"code": "F20.9", "name": "Schizophrenia",
                                       "relation": "mother"}]
    assert data["vitals"] == {"systolic": 128, "diastolic": 82, "heart_rate": 74,
                              "taken_on": "2026-11-02"}
    assert data["pregnancy"] == {"pregnant": "no", "breastfeeding": False}
    # ICD-10-CM wins over SNOMED CT when both are given; the origin is the coding used.
    assert mapped.origins["conditions[0].code"] == "entry[1].resource.code.coding[1]"
    assert mapped.origins["conditions[1].code"] == "entry[2].resource.code.coding[0]"
    assert mapped.references["conditions[2]"] == "Condition/psy"
    assert mapped.origins["vitals"] == "entry[9].resource"
    assert issue_at(mapped, "entry[8].resource") == [
        "ignored: an older blood-pressure reading: the newest valid one is used"]
    assert not mapped.errors


@pytest.mark.parametrize(("clinical", "status"), [
    ("active", "active"), ("recurrence", "active"), ("relapse", "active"),
    ("remission", "remission"), ("inactive", "history"), ("resolved", "history")])
def test_clinical_status_maps_to_the_contracts_status(kb: KnowledgeBase, clinical: str,
                                                     status: str) -> None:
    mapped = read(kb, patient(), condition("c", coding(ICD10CM, "F31.9"), clinical=clinical))
    assert mapped.data["conditions"] == [{"code": "F31.9", "status": status}]


def test_a_missing_clinical_status_is_read_as_active_and_said_so(kb: KnowledgeBase) -> None:
    mapped = read(kb, patient(), condition("c", coding(ICD10CM, "I67.1"), clinical=None),
                  condition("d", coding(ICD10CM, "F31.9"), clinical=None, abatement="2001"))
    assert [c["status"] for c in mapped.data["conditions"]] == ["active", "history"]
    assert issue_at(mapped, "entry[1].resource.clinicalStatus") == [
        "note: no clinicalStatus: read as active (the safe reading)"]


@pytest.mark.parametrize("verification", ["refuted", "entered-in-error"])
def test_refuted_or_mistaken_conditions_are_not_counted_and_said_so(
        kb: KnowledgeBase, screener: Screener, verification: str) -> None:
    mapped = read(kb, patient(), condition("c", coding(ICD10CM, "F20.9"),
                                           verification=verification))
    assert "conditions" not in mapped.data  # nothing counted, and no list was given either
    assert issue_at(mapped, "entry[1].resource.verificationStatus") == [
        f"ignored: verificationStatus is {verification}: not counted"]


def test_provisional_diagnoses_count_for_a_clinician_to_confirm(kb: KnowledgeBase) -> None:
    mapped = read(kb, patient(), condition("c", coding(ICD10CM, "F20.9"),
                                           verification="provisional"))
    assert mapped.data["conditions"] == [{"code": "F20.9", "status": "active"}]
    assert issue_at(mapped, "entry[1].resource.verificationStatus")[0].startswith("note:")


def test_snomed_only_conditions_map_through_the_vocabulary(kb: KnowledgeBase,
                                                          screener: Screener) -> None:
    intake, mapped = bundle_to_intake(
        bundle(patient(), condition("c", coding(SNOMED, "128609009", "Intracranial aneurysm"))),
        kb=kb, today=TODAY)
    assert mapped.data["conditions"][0]["code"] == "I67.1"
    a = annotate_assessment(screener.screen(intake, today=TODAY), mapped)
    aneurysm = next(f for f in a.findings if f.rule == "cardio.aneurysm_avm")
    assert aneurysm.severity == "exclude"
    assert aneurysm.evidence[0].field == "entry[1].resource"  # the Condition it came from


def test_an_unmapped_snomed_concept_falls_back_to_its_text(kb: KnowledgeBase) -> None:
    mapped = read(kb, patient(), condition(
        "c", coding(SNOMED, "1234567001", "Hydrocephalus"), text="Hydrocephalus"))
    assert mapped.data["conditions"] == [{"name": "Hydrocephalus", "status": "active"}]
    assert issue_at(mapped, "entry[1].resource.code.coding[0]")[0].startswith(
        "unrecognized: a SNOMED CT concept with no ICD-10-CM map")


def test_unknown_coding_systems_are_unrecognized_never_dropped(kb: KnowledgeBase,
                                                              screener: Screener) -> None:
    intake, mapped = bundle_to_intake(bundle(
        patient(),
        condition("c", coding("http://example.org/local-codes", "X-99", "Zorbing syndrome")),
        med_statement("m", None, "placeholder") | {"medicationCodeableConcept": concept(
            coding("http://hl7.org/fhir/sid/ndc", "0071-0155-23"))},
    ), kb=kb, today=TODAY)
    assert issue_at(mapped, "entry[1].resource.code.coding[0]") == [
        "unrecognized: a coding in a system ketascreen does not know"]
    assert issue_at(mapped, "entry[2].resource.medicationCodeableConcept.coding[0]") == [
        "unrecognized: a coding in a system ketascreen does not know"]
    a = annotate_assessment(screener.screen(intake, today=TODAY), mapped)
    fields = {u.field for u in a.unrecognized}
    assert "entry[1].resource.code" in fields  # the condition itself: for a clinician
    assert "entry[2].resource.medicationCodeableConcept" in fields
    assert "entry[1].resource.code.coding[0]" in fields or any(
        f.startswith("entry[1].resource.code") for f in fields)
    assert {"vocab.unresolved_condition", "vocab.unresolved_medication"} <= {
        f.rule for f in a.findings}


def test_a_condition_with_no_code_or_text_is_listed_as_unidentified(kb: KnowledgeBase) -> None:
    res = condition("c")
    del res["code"]
    mapped = read(kb, patient(), res)
    assert mapped.data["conditions"][0]["name"].startswith("unidentified condition")
    assert issue_at(mapped, "entry[1].resource.code")[0].startswith("unrecognized:")


def test_invalid_icd10_codes_are_unrecognized(kb: KnowledgeBase) -> None:
    mapped = read(kb, patient(), condition("c", coding(ICD10CM, "ZZZ.99"), text="Something"))
    assert mapped.data["conditions"] == [{"name": "Something", "status": "active"}]
    assert issue_at(mapped, "entry[1].resource.code.coding[0]")[0].startswith("unrecognized:")


def test_the_newest_valid_blood_pressure_wins(kb: KnowledgeBase) -> None:
    mapped = read(
        kb, patient(),
        bp("kpa", 17.3, 10.7, "2026-11-15", unit="kPa"),  # newest, but not in mm[Hg]
        bp("swap", 80, 120, "2026-11-14"),  # diastolic above systolic: a data-entry error
        bp("prelim", 190, 120, "2026-11-13", status="preliminary"),
        bp("good", 142, 91, "2026-11-10"),
        bp("older", 118, 76, "2026-10-01"),
        bp("future", 120, 80, "2026-12-01"),
    )
    assert mapped.data["vitals"] == {"systolic": 142, "diastolic": 91, "taken_on": "2026-11-10"}
    assert issue_at(mapped, "entry[1].resource.component[0].valueQuantity.code")[0].startswith(
        "ignored: the unit must be mm[Hg]")
    assert issue_at(mapped, "entry[2].resource.component")[0].startswith(
        "ignored: diastolic 120 is not below systolic 80")
    assert issue_at(mapped, "entry[3].resource.status")[0].startswith("ignored: status is "
                                                                     "preliminary")
    assert issue_at(mapped, "entry[5].resource")[0].startswith("ignored: an older")
    assert issue_at(mapped, "entry[6].resource.effectiveDateTime")[0].startswith(
        "ignored: 2026-12-01 is after the screening date")


def test_separate_systolic_and_diastolic_observations_pair_by_time(kb: KnowledgeBase) -> None:
    def single(oid: str, code: str, value: int, when: str) -> dict[str, Any]:
        return {"resourceType": "Observation", "id": oid, "status": "final",
                "code": concept(coding(LOINC, code)), "effectiveDateTime": when,
                "subject": {"reference": "Patient/example"},
                "valueQuantity": {"value": value, "unit": "mmHg", "code": "mm[Hg]"}}

    mapped = read(kb, patient(), single("s", "8480-6", 135, "2026-11-01T10:00:00Z"),
                  single("d", "8462-4", 85, "2026-11-01T10:00:00Z"),
                  single("lone", "8480-6", 200, "2026-11-03T10:00:00Z"))
    assert mapped.data["vitals"] == {"systolic": 135, "diastolic": 85, "taken_on": "2026-11-01"}
    assert issue_at(mapped, "entry[3].resource")[0].startswith("ignored: a systolic or "
                                                              "diastolic pressure without")


def test_a_heart_rate_alone_is_reported_not_guessed_into_vitals(kb: KnowledgeBase) -> None:
    mapped = read(kb, patient(), heart_rate("hr", 88, "2026-11-01"))
    assert "vitals" not in mapped.data
    assert issue_at(mapped, "entry[1].resource")[0].startswith("ignored: a heart rate without")


@pytest.mark.parametrize(("answer", "expected"), [
    (coding(LOINC, "LA15173-0", "Pregnant"), "yes"),
    (coding(SNOMED, "77386006", "Pregnant"), "yes"),
    (coding(LOINC, "LA26683-5", "Not pregnant"), "no"),
    (coding(LOINC, "LA4489-6", "Unknown"), "unknown"),
    (coding(SNOMED, "261665006", "Unknown"), "unknown")])
def test_pregnancy_status_and_unknown_stays_unknown(kb: KnowledgeBase, answer: dict[str, Any],
                                                    expected: str) -> None:
    mapped = read(kb, patient(), coded_observation("p", "82810-3", answer, "2026-11-10"))
    assert mapped.data["pregnancy"] == {"pregnant": expected}


def test_a_stale_not_pregnant_is_asked_again_but_pregnant_stands(kb: KnowledgeBase) -> None:
    stale = read(kb, patient(), coded_observation(
        "p", "82810-3", coding(LOINC, "LA26683-5"), "2026-06-01"))
    assert "pregnancy" not in stale.data
    assert issue_at(stale, "entry[1].resource.valueCodeableConcept")[0].startswith(
        "ignored: a pregnancy status (no) from 2026-06-01 is too old")
    older_yes = read(kb, patient(), coded_observation(
        "p", "82810-3", coding(LOINC, "LA15173-0"), "2026-06-01"))
    assert older_yes.data["pregnancy"] == {"pregnant": "yes"}


def test_an_unknown_pregnancy_answer_is_unrecognized(kb: KnowledgeBase) -> None:
    mapped = read(kb, patient(), coded_observation(
        "p", "82810-3", coding("http://example.org/answers", "P", "Preggers"), "2026-11-10"))
    assert "pregnancy" not in mapped.data
    assert issue_at(mapped, "entry[1].resource.valueCodeableConcept.coding[0]")[0].startswith(
        "unrecognized:")


def test_medication_statuses_and_references(kb: KnowledgeBase) -> None:
    contained = med_request("mr-ref", None, "x")
    del contained["medicationCodeableConcept"]
    contained["contained"] = [{"resourceType": "Medication", "id": "med1",
                               "code": concept(coding(RXNORM, "30121", "phenelzine"))}]
    contained["medicationReference"] = {"reference": "#med1"}
    mapped = read(
        kb, patient(),
        med_request("draft", "6470", "lorazepam", status="draft"),
        med_request("cancel", "6470", "lorazepam", status="cancelled"),
        med_request("stopped", "30121", "phenelzine", status="stopped"),
        med_statement("gone", "36437", "sertraline", status="entered-in-error"),
        med_statement("done", "36437", "sertraline", status="completed")
        | {"effectivePeriod": {"start": "2025-01-01", "end": "2026-11-01"}},
        contained,
    )
    assert mapped.data["medications"] == [
        {"name": "phenelzine", "rxnorm": "30121", "schedule": "stopped"},
        {"name": "sertraline", "rxnorm": "36437", "schedule": "stopped",
         "stopped_on": "2026-11-01"},
        {"name": "phenelzine", "rxnorm": "30121"},
    ]
    assert issue_at(mapped, "entry[1].resource.status") == [
        "ignored: status is draft: not counted"]
    assert issue_at(mapped, "entry[4].resource.status") == [
        "ignored: status is entered-in-error: not counted"]
    assert mapped.origins["medications[2].rxnorm"] == "entry[6].resource.contained[0].code.coding[0]"


def test_allergies_none_known_refuted_and_resolved(kb: KnowledgeBase) -> None:
    nka = read(kb, patient(), allergy("n", coding(SNOMED, "716186003", "No known allergy")))
    assert nka.data["allergies"] == []
    mixed = read(kb, patient(),
                 allergy("r", text="Ketamine", verification="refuted"),
                 allergy("s", text="Codeine", clinical="resolved"),
                 allergy("k", coding(RXNORM, "6130", "ketamine"), reaction="Anaphylaxis"))
    assert mixed.data["allergies"] == [{"substance": "ketamine", "reaction": "Anaphylaxis"}]
    assert issue_at(mixed, "entry[1].resource.verificationStatus")[0].startswith("ignored:")
    assert issue_at(mixed, "entry[2].resource.clinicalStatus")[0].startswith("ignored:")
    none_said = read(kb, patient())
    assert "allergies" not in none_said.data  # never "none" from absence alone


def test_family_history_relations(kb: KnowledgeBase) -> None:
    mapped = read(kb, patient(),
                  family("a", "NBRO", coding(ICD10CM, "F31.9")),
                  family("b", "MAUNT", coding(SNOMED, "58214004")),
                  family("c", "FRND", text="Psychosis"))
    assert mapped.data["family_history"] == [
        {"code": "F31.9", "relation": "sibling"},
        {"code": "F20.9", "relation": "aunt_uncle"},
        {"name": "Psychosis", "relation": "other"},
    ]
    assert issue_at(mapped, "entry[3].resource.relationship")[0].startswith("note:")


def test_nil_known_lists_and_searched_types(kb: KnowledgeBase) -> None:
    nil = {"resourceType": "List", "id": "l", "status": "current", "mode": "snapshot",
           "code": concept(coding(LOINC, "11450-4", "Problem list")),
           "emptyReason": concept(coding(
               "http://terminology.hl7.org/CodeSystem/list-empty-reason", "nilknown"))}
    assert read(kb, patient(), nil).data["conditions"] == []
    assert "conditions" not in read(kb, patient()).data
    searched = read(kb, patient(), searched={"Condition", "MedicationStatement"})
    assert searched.data["conditions"] == [] and searched.data["medications"] == []
    assert issue_at(searched, "conditions")[0].startswith("note: no Condition found")


def test_junk_is_reported_with_its_path(kb: KnowledgeBase) -> None:
    data = bundle(patient(), {"resourceType": "Encounter", "id": "e1", "status": "finished"})
    data["entry"] += [{"fullUrl": "urn:uuid:0"}, "junk", {"resource": {"id": "no-type"}},
                      {"resource": {"resourceType": "Observation", "id": "w", "status": "final",
                                    "code": concept(coding(LOINC, "29463-7", "Body weight")),
                                    "valueQuantity": {"value": 80, "code": "kg"}}},
                      {"resource": condition("other", coding(ICD10CM, "F20.9"),
                                             subject="Patient/someone-else")}]
    mapped = read_bundle(data, kb=kb, today=TODAY)
    assert issue_at(mapped, "entry[1].resource") == [
        "ignored: ketascreen does not read Encounter resources"]
    assert issue_at(mapped, "entry[2]") == ["ignored: an entry without a resource"]
    assert issue_at(mapped, "entry[3]") == ["ignored: an entry without a resource"]
    assert issue_at(mapped, "entry[4].resource") == ["ignored: a resource without a resourceType"]
    assert issue_at(mapped, "entry[5].resource") == [
        "ignored: an Observation ketascreen's rules do not use"]
    assert issue_at(mapped, "entry[6].resource") == [
        "ignored: about another person, not the Bundle's Patient"]
    assert "conditions" not in mapped.data
    assert not mapped.errors


@pytest.mark.parametrize(("data", "path", "message"), [
    ({"resourceType": "Patient", "id": "x"}, "resourceType", "a FHIR Bundle is expected"),
    (bundle(condition("c", coding(ICD10CM, "I10"))), "entry", "the Bundle has no Patient"),
    (bundle(patient("a"), patient("b")), "entry[1].resource", "more than one Patient"),
    (bundle(patient(birth="14/03/1981")), "entry[0].resource.birthDate", "must be a date"),
    (bundle(patient(birth="2030-01-01")), "entry[0].resource.birthDate", "after the screening"),
    (bundle(patient(gender="yes")), "entry[0].resource.gender", "must be male, female"),
    (bundle(patient(), condition("c", coding(ICD10CM, "I10"), onset="last tuesday")),
     "entry[1].resource.onsetDateTime", "must be a FHIR date"),
])
def test_malformed_input_is_an_error_naming_the_fhir_path(kb: KnowledgeBase, data: Any,
                                                         path: str, message: str) -> None:
    with pytest.raises(IntakeError) as caught:
        bundle_to_intake(data, kb=kb, today=TODAY, source="record.json")
    fields = [p.field for p in caught.value.problems]
    assert path in fields
    assert message in caught.value.describe()
    assert caught.value.describe().startswith("record.json: ")


def test_sex_from_administrative_gender_is_said_so(kb: KnowledgeBase) -> None:
    mapped = read(kb, patient(gender="male", birthsex=None))
    assert mapped.data["sex"] == "male"
    assert issue_at(mapped, "entry[0].resource.gender")[0].startswith(
        "note: sex assigned at birth read from the administrative gender")
    partial = read(kb, patient(birth="1981"))
    assert partial.data["age"] == 44  # the youngest the person could be on 2026-11-16
    assert issue_at(partial, "entry[0].resource.birthDate")[0].startswith(
        "note: a partial birth date")


def test_every_issue_names_a_path_into_the_bundle(kb: KnowledgeBase) -> None:
    mapped = read(kb, patient(), condition("c", coding("urn:local", "1")),
                  bp("b", 400, 10, "2026-11-01"), {"resourceType": "Basic", "id": "b1"},
                  searched={"Condition"})
    assert mapped.issues
    lists = {"conditions", "medications", "allergies", "family_history"}
    for issue in mapped.issues:
        assert issue.path.startswith("entry") or issue.path in lists, issue


def test_is_fhir_tells_bundles_from_intakes() -> None:
    assert is_fhir({"resourceType": "Bundle"})
    assert not is_fhir({"age": 40, "conditions": []})
    assert not is_fhir([{"resourceType": "Bundle"}])


def _qr(answers: dict[str, Any], authored: str = "2026-11-14") -> dict[str, Any]:
    """A response to ketascreen's own Questionnaire, built the way an EHR form would."""
    from ketascreen.adapters.sdc import answer_system, questionnaire_url
    from ketascreen.knowledge.questionnaire import load_questionnaire

    q = load_questionnaire()
    groups = []
    for page in q.pages:
        nodes = []
        for item in page.items:
            if item.id not in answers:
                continue
            values = answers[item.id] if isinstance(answers[item.id], list) else [
                answers[item.id]]
            if item.options:
                answer = [{"valueCoding": {"system": answer_system(item.id, q),
                                           "code": str(v)}} for v in values]
            elif item.type == "boolean":
                answer = [{"valueBoolean": v} for v in values]
            elif item.type == "integer":
                answer = [{"valueInteger": v} for v in values]
            else:
                answer = [{"valueDate" if item.type in ("date", "month") else "valueString": v}
                          for v in values]
            nodes.append({"linkId": item.id, "answer": answer})
        if nodes:
            groups.append({"linkId": page.id, "item": nodes})
    return {"resourceType": "QuestionnaireResponse", "id": "qr1", "status": "completed",
            "questionnaire": f"{questionnaire_url(q)}|{q.version}", "authored": authored,
            "subject": {"reference": "Patient/example"}, "item": groups}


def test_the_questionnaire_response_gives_every_other_answer(kb: KnowledgeBase) -> None:
    qr = _qr({"age": 30, "sex": "female", "route": "iv", "pregnant": "unknown",
              "breastfeeding": False, "planning_pregnancy": True, "suicidal": "passive",
              "mania_now": False, "diagnoses": ["bipolar"], "knows_bp": True,
              "bp_systolic": 150, "bp_diastolic": 95, "bp_taken_on": "2026-11-12",
              "sub_alcohol": "never", "own_choice": True})
    mapped = read(kb, patient(birth="1981-03-14"),
                  condition("c", coding(ICD10CM, "I10"), onset="2015"),
                  bp("old", 120, 80, "2026-10-01"),
                  coded_observation("p", "82810-3", coding(LOINC, "LA26683-5"), "2026-11-10"),
                  qr)
    data = mapped.data
    assert data["age"] == 45  # the record's birth date wins over the typed age
    assert data["symptoms"] == {"suicidal": "passive", "mania_now": False}
    assert data["readiness"] == {"own_choice": True}
    assert data["route"] == "iv"
    assert data["pregnancy"] == {"pregnant": "unknown", "breastfeeding": False,
                                 "planning": True}  # the worse of record and answer
    assert data["vitals"] == {"systolic": 150, "diastolic": 95, "taken_on": "2026-11-12"}
    assert data["conditions"] == [{"code": "F31.9"}, {"code": "I10", "status": "active",
                                                      "since": "2015"}]
    assert data["substances"] == [{"substance": "alcohol", "status": "never"}]
    assert mapped.origins["conditions[1]"] == "entry[1].resource"
    assert mapped.origins["symptoms.suicidal"].startswith("entry[4].resource.item[")
    assert any(i.message.startswith("age is also in the record") for i in mapped.issues)
    assert issue_at(mapped, "entry[2].resource")[0].startswith("ignored: an older "
                                                              "blood-pressure reading")


def test_other_questionnaires_and_older_responses_are_reported(kb: KnowledgeBase) -> None:
    other = _qr({"suicidal": "none"}) | {"id": "x", "questionnaire": "http://loinc.org/q/44249-1"}
    newer = _qr({"suicidal": "active"}, authored="2026-11-15") | {"id": "n"}
    older = _qr({"suicidal": "none"}, authored="2026-01-01") | {"id": "o"}
    mapped = read(kb, patient(), other, older, newer)
    assert mapped.data["symptoms"] == {"suicidal": "active"}
    assert issue_at(mapped, "entry[1].resource.questionnaire")[0].startswith(
        "ignored: answers a questionnaire other than ketascreen's own")
    assert issue_at(mapped, "entry[2].resource")[0].startswith("ignored: an older response")


def test_smoking_status_joins_the_substances_answered(kb: KnowledgeBase) -> None:
    smoker = coded_observation("s", "72166-2", coding(SNOMED, "449868002",
                                                      "Current every day smoker"), "2026-11-01")
    alone = read(kb, patient(), smoker)
    assert "substances" not in alone.data
    assert issue_at(alone, "entry[1].resource")[0].startswith("note: smoking status (current)")
    with_qr = read(kb, patient(), smoker, _qr({"sub_alcohol": "past",
                                               "sub_alcohol_problem": False}))
    assert with_qr.data["substances"] == [
        {"substance": "alcohol", "status": "past", "disorder": False},
        {"substance": "nicotine", "status": "current", "last_use": "2026-11-01"}]
