"""FHIR R4 out: the assessment Bundle (RiskAssessment, DetectedIssue, OperationOutcome), the
intake as a record, every emitted resource parsed back with the R4B models, and the round trip
intake → FHIR → intake."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.detectedissue import DetectedIssue
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.riskassessment import RiskAssessment

from ketascreen.adapters.fhir_out import (
    DECISION_SYSTEM,
    RULE_SYSTEM,
    assessment_bundle,
    contraindication_level,
    intake_bundle,
    validate,
)
from ketascreen.adapters.fhir_r4 import FHIR_MODELS, FHIR_VERSION, bundle_to_intake
from ketascreen.core.model import Assessment
from ketascreen.core.vocab import normalize_code
from ketascreen.services import Screener
from ketascreen.testing import BASELINE_DATE, merge_intake
from tests.fhir.builders import ICD10CM, bundle, coding, condition, patient

EXAMPLES = Path(__file__).resolve().parents[1] / "cases" / "examples"
STAMP = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)


def entries(b: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in b["entry"] if e["resource"]["resourceType"] == rtype]


def test_the_version_is_pinned_on_purpose() -> None:
    assert FHIR_VERSION == "4.0.1"
    assert FHIR_MODELS == "fhir.resources.R4B"


@pytest.mark.parametrize("fragment", [
    {},  # eligible
    {"conditions": [{"code": "I67.1"}, {"code": "F20.9", "status": "history"}]},
    {"symptoms": {"suicidal": "plan_or_intent"}},  # urgent
    {"vitals": {"systolic": 184, "diastolic": 112}},
], ids=["eligible", "aneurysm-schizophrenia", "urgent", "bp-severe"])
def test_the_assessment_bundle_is_valid_r4(screener: Screener, fragment: dict[str, Any]) -> None:
    a = screener.screen(merge_intake(fragment), today=BASELINE_DATE)
    b = assessment_bundle(a, patient="Patient/p1", rules_url="https://ketascreen.example/rules",
                          timestamp=STAMP)
    parsed = Bundle.model_validate(b)  # R4B models (FHIR R4): every entry is parsed too
    assert parsed.type == "collection"
    kinds = [type(e.resource) for e in parsed.entry or []]
    assert kinds[0] is RiskAssessment
    issues = [f for f in a.findings if contraindication_level(f)]
    assert kinds.count(DetectedIssue) == len(issues)
    for e in b["entry"]:  # and each resource on its own, through the public validator
        validate(e["resource"])


def test_risk_assessment_carries_decision_routes_and_every_finding(screener: Screener) -> None:
    a = screener.screen(merge_intake({"conditions": [{"code": "I67.1"}, {"code": "I10",
                                                                        "controlled": True}]}),
                        today=BASELINE_DATE)
    risk = entries(assessment_bundle(a, patient="Patient/p1", timestamp=STAMP),
                   "RiskAssessment")[0]
    assert risk["subject"] == {"reference": "Patient/p1"}
    assert risk["status"] == "final" and risk["occurrenceDateTime"] == "2026-11-16"
    first = risk["prediction"][0]["outcome"]["coding"][0]
    assert first == {"system": DECISION_SYSTEM, "code": a.decision,
                     "display": "not recommended"}
    rules = [p["outcome"]["coding"][0]["code"] for p in risk["prediction"]
             if p["outcome"]["coding"][0]["system"] == RULE_SYSTEM]
    assert rules == [f.rule for f in a.findings]
    aneurysm = next(p for p in risk["prediction"]
                    if p["outcome"]["coding"][0]["code"] == "cardio.aneurysm_avm")
    assert "Evidence: conditions[0]" in aneurysm["rationale"]
    assert "Sources: [" in aneurysm["rationale"]
    assert risk["method"]["coding"][0]["version"] == a.knowledge_base.version
    assert len(risk["prediction"]) == 1 + len(a.routes) + len(a.findings)


def test_one_detected_issue_per_contraindication_level_finding(screener: Screener) -> None:
    a = screener.screen(merge_intake({
        "conditions": [{"code": "I67.1"}], "symptoms": {"suicidal": "plan_or_intent"},
        "substances": [{"substance": "alcohol", "status": "current", "disorder": False}]}),
        today=BASELINE_DATE)
    b = assessment_bundle(a, patient="Patient/p1", orders=["MedicationRequest/ket1"],
                          rules_url="https://ketascreen.example/rules", timestamp=STAMP)
    issues = {i["code"]["coding"][0]["code"]: i for i in entries(b, "DetectedIssue")}
    expected = {f.rule for f in a.findings if f.urgent or f.severity in ("exclude", "defer",
                                                                         "evaluation")}
    assert set(issues) == expected
    assert "subst.alcohol_current" not in issues or False  # a precaution is not an issue
    aneurysm = issues["cardio.aneurysm_avm"]
    assert aneurysm["severity"] == "high" and aneurysm["patient"] == {"reference": "Patient/p1"}
    assert aneurysm["implicated"] == [{"reference": "MedicationRequest/ket1"}]
    assert aneurysm["reference"] == "https://ketascreen.example/rules#cardioaneurysm_avm"
    assert aneurysm["evidence"][0]["code"][0]["text"].startswith("conditions[0]")
    urgent = next(i for r, i in issues.items() if next(
        f for f in a.findings if f.rule == r).urgent)
    assert urgent["severity"] == "high"
    for f in a.findings:
        if f.rule in issues and not f.urgent:
            assert issues[f.rule]["severity"] == {"exclude": "high", "defer": "moderate",
                                                  "evaluation": "low"}[f.severity]


def test_fhir_input_gives_references_and_an_operation_outcome(screener: Screener) -> None:
    data = bundle(patient(), condition("an1", coding(ICD10CM, "I67.1")),
                  condition("odd", coding("urn:local", "Z1", "Local thing")),
                  {"resourceType": "Encounter", "id": "e", "status": "finished"})
    intake, mapped = bundle_to_intake(data, kb=screener.kb, today=BASELINE_DATE)
    a = screener.screen(intake, today=BASELINE_DATE)
    b = assessment_bundle(a, mapped=mapped, timestamp=STAMP)
    risk = entries(b, "RiskAssessment")[0]
    assert risk["subject"] == {"reference": "Patient/example"}
    assert {"reference": "Condition/an1"} in risk["basis"]
    aneurysm = next(i for i in entries(b, "DetectedIssue")
                    if i["code"]["coding"][0]["code"] == "cardio.aneurysm_avm")
    assert aneurysm["evidence"][0]["detail"] == [{"reference": "Condition/an1"}]
    outcome = entries(b, "OperationOutcome")[0]
    OperationOutcome.model_validate(outcome)
    expressions = [x for i in outcome["issue"] for x in i.get("expression", [])]
    assert "Bundle.entry[2].resource.code.coding[0]" in expressions
    assert "Bundle.entry[3].resource" in expressions


def test_the_same_assessment_gives_the_same_bundle(screener: Screener) -> None:
    a = screener.screen(merge_intake({"conditions": [{"code": "I67.1"}]}), today=BASELINE_DATE)
    one = assessment_bundle(a, patient="Patient/p1", timestamp=STAMP)
    two = assessment_bundle(a, patient="Patient/p1", timestamp=STAMP)
    assert one == two
    ids = [e["resource"]["id"] for e in one["entry"]]
    assert len(ids) == len(set(ids)) and all(e["fullUrl"] == f"urn:uuid:{e['resource']['id']}"
                                             for e in one["entry"])


def test_a_subject_without_a_patient_reference_still_parses(screener: Screener) -> None:
    a = screener.screen(merge_intake({"conditions": [{"code": "I67.1"}]}), today=BASELINE_DATE)
    b = assessment_bundle(a, timestamp=STAMP)
    Bundle.model_validate(b)
    assert entries(b, "RiskAssessment")[0]["subject"] == {
        "display": "the person screened (baseline)"}


def test_validate_names_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="status"):
        validate({"resourceType": "Observation", "code": {"text": "x"}})
    with pytest.raises(ValueError, match="not a FHIR R4 resource type"):
        validate({"resourceType": "Nonsense"})


# --------------------------------------------------------------------------------------------
# Round trip: intake → FHIR record → intake


def _examples() -> list[Path]:
    return sorted(p for p in EXAMPLES.glob("*.json")
                  if p.name not in ("expected.json", "invalid-heart-rate.json"))


def _normal(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(data))
    out.pop("id", None)
    for key in ("conditions", "family_history"):
        for c in out.get(key) or []:
            if "code" in c:
                c["code"] = normalize_code(c["code"])
            if key == "conditions":
                c.setdefault("status", "active")
    subs = [s for s in out.get("substances") or [] if s.get("status") != "never"]
    if "substances" in out:
        out["substances"] = sorted(subs, key=lambda s: s["substance"])
    return out


def _essence(a: Assessment) -> dict[str, Any]:
    return {"decision": a.decision, "urgent": a.urgent, "routes": a.routes,
            "findings": sorted(f.rule for f in a.findings),
            "missing": sorted(m.field for m in a.missing),
            "unrecognized": sorted(u.value for u in a.unrecognized)}


@pytest.mark.parametrize("path", _examples(), ids=lambda p: p.stem)
def test_round_trip_intake_fhir_intake(screener: Screener, path: Path) -> None:
    raw = json.loads(path.read_text(encoding="utf-8"))
    intake = screener.parse(raw, today=BASELINE_DATE)
    as_of = intake.assessed_on or BASELINE_DATE
    record, lost = intake_bundle(intake, today=as_of)
    Bundle.model_validate(record)
    again, mapped = bundle_to_intake(record, kb=screener.kb, today=as_of)
    assert not [i for i in mapped.issues if i.kind in ("error", "unrecognized")]
    original = intake.model_dump(mode="json", exclude_none=True)
    for field in lost:  # what FHIR cannot say is reported, and is the only difference
        assert field.startswith(("substances", "readiness", "labs", "extensions")), field
    if not lost:
        assert _normal(again.model_dump(mode="json", exclude_none=True)) == _normal(original)
        assert again.id == intake.id
    if not any(f.startswith(("readiness", "labs")) for f in lost):
        assert _essence(screener.screen(again, today=as_of)) == _essence(
            screener.screen(intake, today=as_of))


def test_round_trip_of_a_full_record(screener: Screener) -> None:
    intake = screener.parse(merge_intake({
        "sex": "female", "route": "oral", "setting": "home",
        "indications": ["depression", "ptsd", "anxiety"],
        "conditions": [{"code": "I10", "controlled": True, "since": "2015"},
                       {"name": "bipolar disorder", "status": "remission"},
                       {"code": "F33.1", "status": "history", "until": "2024-02"}],
        "family_history": [{"code": "F20.9", "relation": "aunt_uncle"},
                           {"name": "schizophrenia", "relation": "mother"}],
        "medications": [{"name": "lamotrigine", "rxnorm": "28439", "dose": "100 mg",
                         "daily_mg": 100.0},
                        {"name": "lorazepam", "schedule": "as_needed"},
                        {"name": "phenelzine", "schedule": "stopped",
                         "stopped_on": "2026-10-01"}],
        "allergies": [{"substance": "penicillin", "reaction": "rash"}],
        "substances": [{"substance": "alcohol", "status": "current", "disorder": True,
                        "last_use": "2026-11", "recovery_support": True},
                       {"substance": "cannabis", "status": "past", "disorder": False}],
        "vitals": {"systolic": 132, "diastolic": 84, "heart_rate": 70, "taken_on": "2026-11-10"},
        "pregnancy": {"pregnant": "no", "breastfeeding": False, "planning": True},
        "labs": {"alt": 40.0, "ast": 35.0},
        "prior_ketamine": {"received": True, "adverse_reaction": "nausea", "misuse": False},
        "instruments": {"phq9": [1, 2, 3, 0, 1, 2, 1, 0, 0], "gad7": [1, 1, 1, 1, 1, 1, 1],
                        "pcl5": [1] * 20},
    }), today=BASELINE_DATE)
    record, lost = intake_bundle(intake, today=BASELINE_DATE)
    assert lost == []
    Bundle.model_validate(record)
    types = {e["resource"]["resourceType"] for e in record["entry"]}
    assert types >= {"Patient", "Condition", "MedicationStatement", "AllergyIntolerance",
                     "FamilyMemberHistory", "Observation", "QuestionnaireResponse"}
    again, mapped = bundle_to_intake(record, kb=screener.kb, today=BASELINE_DATE)
    assert _normal(again.model_dump(mode="json", exclude_none=True)) == _normal(
        intake.model_dump(mode="json", exclude_none=True))
    assert mapped.patient_reference is not None and mapped.patient_reference.startswith(
        "Patient/")
    assert _essence(screener.screen(again, today=BASELINE_DATE)) == _essence(
        screener.screen(intake, today=BASELINE_DATE))


def test_what_fhir_cannot_say_is_reported(screener: Screener) -> None:
    intake = screener.parse(merge_intake({
        "labs": {"child_pugh": "B"}, "extensions": {"clinic": {"ward": 3}},
        "instruments": {"dast10": [False] * 10, "audit_c": [2, 1, 0],
                        "cssrs_screen": {"wish_dead": True, "active_thoughts": False,
                                         "method": False, "intent": False, "plan": False,
                                         "behavior_3mo": False}}}), today=BASELINE_DATE)
    record, lost = intake_bundle(intake, today=BASELINE_DATE)
    # The questionnaire carries only the instruments licensed to ship: the others are reported.
    assert {"labs.child_pugh", "extensions", "instruments.dast10", "instruments.audit_c",
            "instruments.cssrs_screen"} <= set(lost)
    assert "cssrs" not in json.dumps(record) and "audit_c" not in json.dumps(record)


def test_empty_lists_survive_as_none_known(screener: Screener) -> None:
    intake = screener.parse(merge_intake({}), today=BASELINE_DATE)
    record, _lost = intake_bundle(intake, today=BASELINE_DATE)
    again, _ = bundle_to_intake(record, kb=screener.kb, today=BASELINE_DATE)
    assert again.allergies == [] and again.family_history == [] and again.medications == []
    assert again.substances is not None and all(s.status == "never" for s in again.substances)
    assert date.fromisoformat(record["timestamp"][:10]) == BASELINE_DATE
