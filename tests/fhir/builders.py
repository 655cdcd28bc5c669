"""Realistic FHIR R4 resources, built in the tests (US Core style: SNOMED CT, ICD-10-CM, RxNorm,
LOINC, UCUM units, statuses), for the adapter and CDS Hooks tests."""

from __future__ import annotations

from typing import Any

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
A_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
A_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
BIRTHSEX = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex"


def coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def concept(*codings: dict[str, Any], text: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if codings:
        out["coding"] = list(codings)
    if text:
        out["text"] = text
    return out


def patient(pid: str = "example", *, birth: str | None = "1981-03-14",
            gender: str | None = "female", birthsex: str | None = "F") -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Patient", "id": pid,
        "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},
        "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "12345"}],
        "name": [{"family": "Chalmers", "given": ["Peter", "James"]}],
    }
    if birth is not None:
        res["birthDate"] = birth
    if gender is not None:
        res["gender"] = gender
    if birthsex is not None:
        res["extension"] = [{"url": BIRTHSEX, "valueCode": birthsex}]
    return res


def condition(cid: str, *codings: dict[str, Any], text: str | None = None,
              clinical: str | None = "active", verification: str | None = "confirmed",
              onset: str | None = None, abatement: str | None = None,
              subject: str = "Patient/example") -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Condition", "id": cid,
        "category": [concept(coding("http://terminology.hl7.org/CodeSystem/condition-category",
                                    "problem-list-item", "Problem List Item"))],
        "code": concept(*codings, text=text),
        "subject": {"reference": subject},
    }
    if clinical is not None:
        res["clinicalStatus"] = concept(coding(CLINICAL, clinical))
    if verification is not None:
        res["verificationStatus"] = concept(coding(VERIFICATION, verification))
    if onset:
        res["onsetDateTime"] = onset
    if abatement:
        res["abatementDateTime"] = abatement
    return res


def med_statement(mid: str, rxnorm: str | None, name: str, *, status: str = "active",
                  dose_mg: float | None = None, per_day: int = 1, text: str | None = None,
                  as_needed: bool = False) -> dict[str, Any]:
    codings = [coding(RXNORM, rxnorm, name)] if rxnorm else []
    dosage: dict[str, Any] = {}
    if text:
        dosage["text"] = text
    if as_needed:
        dosage["asNeededBoolean"] = True
    if dose_mg is not None:
        dosage["timing"] = {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}}
        dosage["doseAndRate"] = [{"doseQuantity": {"value": dose_mg, "unit": "mg",
                                                   "system": UCUM, "code": "mg"}}]
    res: dict[str, Any] = {
        "resourceType": "MedicationStatement", "id": mid, "status": status,
        "medicationCodeableConcept": concept(*codings, text=None if codings else name),
        "subject": {"reference": "Patient/example"},
        "effectiveDateTime": "2026-01-10",
    }
    if dosage:
        res["dosage"] = [dosage]
    return res


def med_request(mid: str, rxnorm: str | None, name: str, *, status: str = "active",
                route: tuple[str, str] | None = None, intent: str = "order") -> dict[str, Any]:
    codings = [coding(RXNORM, rxnorm, name)] if rxnorm else []
    res: dict[str, Any] = {
        "resourceType": "MedicationRequest", "id": mid, "status": status, "intent": intent,
        "medicationCodeableConcept": concept(*codings, text=name),
        "subject": {"reference": "Patient/example"},
        "authoredOn": "2026-11-01",
    }
    if route is not None:
        res["dosageInstruction"] = [{"text": f"{name}, as directed",
                                     "route": concept(coding(SNOMED, *route))}]
    return res


def allergy(aid: str, *codings: dict[str, Any], text: str | None = None,
            clinical: str | None = "active", verification: str | None = "confirmed",
            reaction: str | None = None) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "AllergyIntolerance", "id": aid,
        "code": concept(*codings, text=text), "patient": {"reference": "Patient/example"},
    }
    if clinical:
        res["clinicalStatus"] = concept(coding(A_CLINICAL, clinical))
    if verification:
        res["verificationStatus"] = concept(coding(A_VERIFICATION, verification))
    if reaction:
        res["reaction"] = [{"manifestation": [concept(text=reaction)]}]
    return res


def family(fid: str, relation: str, *codings: dict[str, Any], text: str | None = None,
           status: str = "completed") -> dict[str, Any]:
    return {
        "resourceType": "FamilyMemberHistory", "id": fid, "status": status,
        "patient": {"reference": "Patient/example"},
        "relationship": concept(coding("http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                                       relation)),
        "condition": [{"code": concept(*codings, text=text)}],
    }


def bp(oid: str, systolic: float, diastolic: float, when: str | None, *,
       unit: str = "mm[Hg]", status: str = "final") -> dict[str, Any]:
    def component(code: str, value: float) -> dict[str, Any]:
        return {"code": concept(coding(LOINC, code)),
                "valueQuantity": {"value": value, "unit": "mmHg", "system": UCUM, "code": unit}}

    res: dict[str, Any] = {
        "resourceType": "Observation", "id": oid, "status": status,
        "category": [concept(coding("http://terminology.hl7.org/CodeSystem/observation-category",
                                    "vital-signs"))],
        "code": concept(coding(LOINC, "85354-9", "Blood pressure panel with all children "
                                                 "optional"), text="Blood pressure"),
        "subject": {"reference": "Patient/example"},
        "component": [component("8480-6", systolic), component("8462-4", diastolic)],
    }
    if when:
        res["effectiveDateTime"] = when
    return res


def heart_rate(oid: str, value: float, when: str, unit: str = "/min") -> dict[str, Any]:
    return {
        "resourceType": "Observation", "id": oid, "status": "final",
        "code": concept(coding(LOINC, "8867-4", "Heart rate")),
        "subject": {"reference": "Patient/example"}, "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": "beats/minute", "system": UCUM, "code": unit},
    }


def coded_observation(oid: str, loinc: str, answer: dict[str, Any], when: str,
                      status: str = "final") -> dict[str, Any]:
    return {
        "resourceType": "Observation", "id": oid, "status": status,
        "code": concept(coding(LOINC, loinc)), "subject": {"reference": "Patient/example"},
        "effectiveDateTime": when, "valueCodeableConcept": concept(answer),
    }


def bundle(*resources: dict[str, Any], kind: str = "collection") -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    for r in resources:
        entry: dict[str, Any] = {"resource": r}
        if r.get("id"):
            entry["fullUrl"] = f"https://ehr.example/fhir/{r['resourceType']}/{r['id']}"
        entries.append(entry)
    return {"resourceType": "Bundle", "type": kind, "entry": entries}
