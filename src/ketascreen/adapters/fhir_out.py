"""FHIR R4 out: an assessment as a Bundle (RiskAssessment + DetectedIssue), an intake as a record.

:func:`assessment_bundle` writes a ``collection`` Bundle with one ``RiskAssessment`` (the
decision, each route's decision and each finding as a ``prediction`` with its rule id, severity,
evidence and sources; what is missing and what was not recognised as ``note``), one
``DetectedIssue`` per contraindication-level finding (severity ``exclude``, ``defer`` or
``evaluation``, or urgent) and, when the input was FHIR, an ``OperationOutcome`` listing what the
input adapter did not use, each with its FHIR path.

:func:`intake_bundle` writes an intake as the record an EHR would hold (Patient, Condition,
MedicationStatement, AllergyIntolerance, FamilyMemberHistory, Observation, List) plus a
``QuestionnaireResponse`` for the answers only a person can give; it is how the tests prove the
round trip intake → FHIR → intake.

Every resource is validated by :func:`validate` with ``fhir.resources``' R4B models (FHIR R4; the
package's default import is R5 and is never used here).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from ketascreen.adapters.fhir_r4 import (
    ALLERGY_CLINICAL,
    ALLERGY_VERIFICATION,
    BREASTFEEDING_STATUS,
    CANONICAL_BASE,
    CONDITION_CLINICAL,
    CONDITION_VERIFICATION,
    CONTROLLED_EXTENSION,
    DIASTOLIC,
    FHIR_VERSION,
    HEART_RATE,
    ICD10CM,
    INTAKE_ID_SYSTEM,
    LIST_EMPTY_REASON,
    LOINC,
    OBSERVATION_CATEGORY,
    PREGNANCY_STATUS,
    RELATION_SYSTEM,
    ROLE_CODE,
    RXNORM,
    SNOMED,
    SYSTOLIC,
    UCUM,
    US_CORE_BIRTHSEX,
    BundleIntake,
    MappingIssue,
)

if TYPE_CHECKING:
    from ketascreen.core.model import Assessment, Finding, Intake

__all__ = [
    "DECISION_SYSTEM",
    "RULE_SYSTEM",
    "assessment_bundle",
    "contraindication_level",
    "intake_bundle",
    "validate",
]

DECISION_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/decision"
RULE_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/rule"
ASSESSMENT_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/assessment"
KB_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/knowledge-base"
RISK_PROBABILITY = "http://terminology.hl7.org/CodeSystem/risk-probability"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
_NAMESPACE = uuid.UUID("5f0d3c1e-2b7a-4c55-9a5e-6b1f0e2d7c41")  # ketascreen's uuid5 namespace

DECISION_TEXT = {
    "eligible": "no concerns found",
    "eligible_with_precautions": "eligible with precautions",
    "needs_evaluation": "needs a clinician's evaluation",
    "incomplete": "incomplete: answers missing",
    "defer": "defer for now",
    "not_recommended": "not recommended",
}
DECISION_RISK = {"eligible": "low", "eligible_with_precautions": "low",
                 "needs_evaluation": "moderate", "defer": "high", "not_recommended": "high"}
SEVERITY_RISK = {"info": "negligible", "precaution": "low", "evaluation": "moderate",
                 "defer": "high", "exclude": "high"}
ISSUE_SEVERITY = {"exclude": "high", "defer": "moderate", "evaluation": "low"}
ROUTE_TEXT = {"iv": "intravenous", "im": "intramuscular", "intranasal": "intranasal",
              "oral": "oral or sublingual"}
OUTCOME = {"error": ("error", "invalid"), "unrecognized": ("warning", "code-invalid"),
           "ignored": ("information", "informational"), "note": ("information", "informational")}


def contraindication_level(f: Finding) -> bool:
    """Whether a finding gets its own DetectedIssue (and, in CDS Hooks, is shown first)."""
    return f.urgent or f.severity in ISSUE_SEVERITY


def _coding(system: str, code: str, display: str | None = None,
            version: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"system": system, "code": code}
    if version:
        out["version"] = version
    if display:
        out["display"] = display
    return out


def _concept(text: str, *codings: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"text": text}
    if codings:
        out["coding"] = list(codings)
    return out


class _Ids:
    """Stable ids: the same assessment always gives the same Bundle (snapshots, idempotency)."""

    def __init__(self, seed: str) -> None:
        self.seed = seed
        self.n = 0

    def next(self, kind: str) -> str:
        self.n += 1
        return str(uuid.uuid5(_NAMESPACE, f"{self.seed}:{kind}:{self.n}"))


def _entry(resource: dict[str, Any], rid: str) -> dict[str, Any]:
    resource["id"] = rid
    return {"fullUrl": f"urn:uuid:{rid}", "resource": resource}


def _rule_link(rules_url: str | None, rule: str) -> str | None:
    if not rules_url:
        return None
    anchor = re.sub(r"[^a-z0-9_-]", "", rule.lower())
    return f"{rules_url}#{anchor}"


def assessment_bundle(
    assessment: Assessment,
    *,
    patient: str | None = None,
    mapped: BundleIntake | None = None,
    orders: list[str] | None = None,
    rules_url: str | None = None,
    timestamp: datetime | None = None,
) -> dict[str, Any]:
    """The assessment as a FHIR R4 ``collection`` Bundle (plain JSON).

    ``patient`` is the reference of the person screened (``Patient/123``; from ``mapped`` when
    the input was a Bundle). ``orders`` are references to the orders the screening is about
    (CDS Hooks draft orders): each DetectedIssue names them as ``implicated``. ``rules_url``
    links each DetectedIssue to its rule in the rules catalogue.
    """
    digest = hashlib.sha256(assessment.model_dump_json().encode()).hexdigest()
    ids = _Ids(digest + (patient or ""))
    patient = patient or (mapped.patient_reference if mapped else None)
    subject: dict[str, Any] = {"reference": patient} if patient else {
        "display": f"the person screened ({assessment.id})" if assessment.id
        else "the person screened"}
    when = assessment.as_of.isoformat()
    evidence_refs = _evidence_references(mapped)

    def refs_for(fields: list[str]) -> list[dict[str, Any]]:
        found: list[str] = []
        for f in fields:
            ref = evidence_refs(f)
            if ref and ref not in found:
                found.append(ref)
        return [{"reference": r} for r in found]

    predictions: list[dict[str, Any]] = []
    decision = assessment.decision
    overall: dict[str, Any] = {"outcome": _concept(
        f"Ketamine therapy: {DECISION_TEXT[decision]}",
        _coding(DECISION_SYSTEM, decision, DECISION_TEXT[decision]))}
    if decision in DECISION_RISK:
        overall["qualitativeRisk"] = _concept(DECISION_RISK[decision], _coding(
            RISK_PROBABILITY, DECISION_RISK[decision]))
    if assessment.summary is not None:
        overall["rationale"] = assessment.summary.clinician
    predictions.append(overall)
    for route, route_decision in assessment.routes.items():
        predictions.append({
            "outcome": _concept(f"{ROUTE_TEXT[route]} route: {DECISION_TEXT[route_decision]}",
                                _coding(DECISION_SYSTEM, route_decision,
                                        DECISION_TEXT[route_decision])),
            "rationale": f"Decision for the {ROUTE_TEXT[route]} route.",
        })
    for f in assessment.findings:
        rationale = f.clinician
        if f.evidence:
            rationale += " Evidence: " + "; ".join(
                f"{e.field} = {e.value}" + (f" ({e.meaning})" if e.meaning else "")
                for e in f.evidence) + "."
        if f.sources:
            rationale += " Sources: " + "; ".join(
                f"[{s.id}] {s.citation}" + (f" {s.url}" if s.url else "") for s in f.sources)
        predictions.append({
            "outcome": _concept(f.title, _coding(RULE_SYSTEM, f.rule, f.title)),
            "qualitativeRisk": _concept(f"{f.severity}" + (", urgent" if f.urgent else ""),
                                        _coding(RISK_PROBABILITY, SEVERITY_RISK[f.severity])),
            "rationale": rationale,
        })
    notes: list[dict[str, Any]] = []
    if assessment.urgent:
        notes.append({"text": "URGENT: something needs attention today; see the urgent "
                              "findings."})
    for m in assessment.missing:
        kind = "blocking" if m.blocking else "confirm at the first visit"
        notes.append({"text": f"Not yet answered ({kind}): {m.question} [{m.field}]"})
    for u in assessment.unrecognized:
        notes.append({"text": f"Not recognised, for a clinician to review: {u.value} "
                              f"[{u.field}]"})
    notes += [{"text": n} for n in assessment.notes]
    kb = assessment.knowledge_base
    risk: dict[str, Any] = {
        "resourceType": "RiskAssessment",
        "meta": {"tag": [_coding(f"{CANONICAL_BASE}/CodeSystem/fhir-version", FHIR_VERSION)]},
        "status": "final",
        "code": _concept("Ketamine therapy screening", _coding(
            ASSESSMENT_SYSTEM, "ketamine-screening", "Ketamine therapy screening")),
        "method": _concept(
            f"ketascreen knowledge base {kb.version} (sha256 {kb.sha256[:12]}), protocol "
            f"{assessment.protocol.name} {assessment.protocol.version}",
            _coding(KB_SYSTEM, "ketascreen-knowledge-base", "ketascreen knowledge base",
                    version=kb.version)),
        "subject": subject,
        "occurrenceDateTime": when,
        "prediction": predictions,
    }
    if assessment.id:
        risk["identifier"] = [{"system": INTAKE_ID_SYSTEM, "value": assessment.id}]
    basis = refs_for([e.field for f in assessment.findings for e in f.evidence])
    if basis:
        risk["basis"] = basis
    actions = list(dict.fromkeys(a for f in assessment.findings for a in f.actions))
    if actions:
        risk["mitigation"] = " ".join(a if a.endswith(".") else a + "." for a in actions)
    if notes:
        risk["note"] = notes
    entries = [_entry(risk, ids.next("risk"))]
    for f in assessment.findings:
        if not contraindication_level(f):
            continue
        issue: dict[str, Any] = {
            "resourceType": "DetectedIssue",
            "status": "final",
            "code": _concept(f.title, _coding(RULE_SYSTEM, f.rule, f.title)),
            "severity": "high" if f.urgent else ISSUE_SEVERITY[f.severity],
            "patient": subject,
            "identifiedDateTime": when,
            "detail": f.clinician,
        }
        if orders:
            issue["implicated"] = [{"reference": o} for o in orders]
        evidence = []
        for e in f.evidence:
            item: dict[str, Any] = {"code": [{"text": f"{e.field}: {e.value}" + (
                f" ({e.meaning})" if e.meaning else "")}]}
            detail = refs_for([e.field])
            if detail:
                item["detail"] = detail
            evidence.append(item)
        if evidence:
            issue["evidence"] = evidence
        link = _rule_link(rules_url, f.rule) or next((s.url for s in f.sources if s.url), None)
        if link:
            issue["reference"] = link
        entries.append(_entry(issue, ids.next("issue")))
    if mapped is not None and mapped.issues:
        entries.append(_entry(operation_outcome(mapped.issues), ids.next("outcome")))
    stamp = (timestamp or datetime.now(UTC)).isoformat(timespec="seconds")
    return {"resourceType": "Bundle", "id": ids.next("bundle"), "type": "collection",
            "timestamp": stamp, "entry": entries}


def operation_outcome(issues: list[MappingIssue]) -> dict[str, Any]:
    """The input adapter's issues as an OperationOutcome (FHIRPath expressions from Bundle)."""
    out = []
    for i in issues:
        severity, code = OUTCOME[i.kind]
        entry: dict[str, Any] = {"severity": severity, "code": code,
                                 "diagnostics": f"{i.kind}: {i.message}" + (
                                     f" ({i.value})" if i.value else "")}
        if i.path.startswith(("entry", "resourceType")):
            entry["expression"] = [f"Bundle.{i.path}"]
        else:
            entry["diagnostics"] = f"{i.path}: {entry['diagnostics']}"
        out.append(entry)
    return {"resourceType": "OperationOutcome", "issue": out}


def _evidence_references(mapped: BundleIntake | None) -> Any:
    """A function: evidence field (intake path or FHIR path) → the reference it came from."""
    if mapped is None:
        return lambda field: None
    by_path: dict[str, str] = {}
    for key, ref in mapped.references.items():
        origin = mapped.origins.get(key)
        if origin:
            by_path[origin] = ref

    def find(field: str) -> str | None:
        ref = mapped.reference_for(field)
        if ref:
            return ref
        m = re.match(r"^(entry\[\d+\]\.resource)", field)
        if m:
            for path, r in by_path.items():
                if path.startswith(m.group(1)):
                    return r
        return None

    return find


# --------------------------------------------------------------------------------------------
# intake → FHIR record


_BIRTH_SEX = {"female": "F", "male": "M", "unknown": "UNK"}
_RELATION_V3 = {"mother": "MTH", "father": "FTH", "sibling": "SIB", "child": "CHILD",
                "grandparent": "GRPRN", "aunt_uncle": "EXT", "cousin": "COUSN", "other": "EXT"}
_STATUS = {"active": "active", "remission": "remission", "history": "resolved"}
_PREGNANCY = {"yes": ("LA15173-0", "Pregnant"), "no": ("LA26683-5", "Not pregnant"),
              "unknown": ("LA4489-6", "Unknown")}
_LABS = {"alt": ("1742-6", "Alanine aminotransferase"),
         "ast": ("1920-8", "Aspartate aminotransferase"),
         "alp": ("6768-6", "Alkaline phosphatase"),
         "ggt": ("2324-2", "Gamma glutamyl transferase")}


def intake_bundle(intake: Intake | dict[str, Any], *, today: date | None = None,
                  ) -> tuple[dict[str, Any], list[str]]:
    """An intake as the FHIR R4 record an EHR would hold (a ``collection`` Bundle).

    Returns the Bundle and the intake fields it cannot express (they would be lost on the way
    back: a field no question asks about, or an answer that does not apply given the others).
    """
    from ketascreen.adapters.sdc import response_for
    from ketascreen.core.model import Intake as IntakeModel

    model = intake if isinstance(intake, IntakeModel) else IntakeModel.model_validate(
        intake, context={"today": today or date.today()})
    data = model.model_dump(mode="json", exclude_none=True)
    as_of = model.assessed_on or today or date.today()
    seed = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    ids = _Ids(seed)
    pid = ids.next("patient")
    patient_ref = f"urn:uuid:{pid}"
    subject = {"reference": patient_ref}
    entries: list[dict[str, Any]] = []
    lost: list[str] = []

    patient: dict[str, Any] = {"resourceType": "Patient"}
    if model.id:
        patient["identifier"] = [{"system": INTAKE_ID_SYSTEM, "value": model.id}]
    if model.age is not None:
        try:
            born = as_of.replace(year=as_of.year - model.age)
        except ValueError:  # 29 February
            born = as_of.replace(year=as_of.year - model.age, day=28)
        patient["birthDate"] = born.isoformat()
    if model.sex in _BIRTH_SEX:
        patient["gender"] = model.sex
        patient["extension"] = [{"url": US_CORE_BIRTHSEX, "valueCode": _BIRTH_SEX[model.sex]}]
    else:
        patient["gender"] = "other"  # intersex: the questionnaire's answer carries it
    entries.append(_entry(patient, pid))

    def add(resource: dict[str, Any], kind: str) -> None:
        entries.append(_entry(resource, ids.next(kind)))

    def nil_known(code: str, display: str) -> None:
        add({"resourceType": "List", "status": "current", "mode": "snapshot",
             "code": _concept(display, _coding(LOINC, code, display)), "subject": subject,
             "emptyReason": _concept("Nil known", _coding(LIST_EMPTY_REASON, "nilknown",
                                                          "Nil Known"))}, "list")

    if model.conditions is not None:
        if not model.conditions:
            nil_known("11450-4", "Problem list - Reported")
        for c in model.conditions:
            codings = [_coding(ICD10CM, c.code.upper())] if c.code else []
            res: dict[str, Any] = {
                "resourceType": "Condition",
                "clinicalStatus": _concept(c.status, _coding(CONDITION_CLINICAL,
                                                             _STATUS[c.status])),
                "verificationStatus": _concept("confirmed", _coding(CONDITION_VERIFICATION,
                                                                    "confirmed")),
                "category": [_concept("Problem list item", _coding(
                    CONDITION_CATEGORY, "problem-list-item"))],
                "code": {"coding": codings, **({"text": c.name} if c.name else {})}
                if codings else {"text": c.name},
                "subject": subject,
            }
            if c.controlled is not None:
                res["extension"] = [{"url": CONTROLLED_EXTENSION, "valueBoolean": c.controlled}]
            if c.since:
                res["onsetDateTime"] = c.since
            if c.until:
                res["abatementDateTime"] = c.until
            add(res, "condition")
    if model.medications is not None:
        if not model.medications:
            nil_known("10160-0", "History of Medication use Narrative")
        for m in model.medications:
            concept: dict[str, Any] = {"text": m.name}
            if m.rxnorm:
                concept["coding"] = [_coding(RXNORM, m.rxnorm)]
            dosage: dict[str, Any] = {}
            if m.dose:
                dosage["text"] = m.dose
            if m.schedule == "as_needed":
                dosage["asNeededBoolean"] = True
            if m.daily_mg is not None:
                dosage["timing"] = {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}
                dosage["doseAndRate"] = [{"doseQuantity": {"value": m.daily_mg, "unit": "mg",
                                                           "system": UCUM, "code": "mg"}}]
            stmt: dict[str, Any] = {"resourceType": "MedicationStatement",
                                    "status": "stopped" if m.schedule == "stopped" else "active",
                                    "medicationCodeableConcept": concept, "subject": subject}
            if m.schedule == "stopped" and m.stopped_on:
                stmt["effectivePeriod"] = {"end": m.stopped_on}
            if dosage and m.schedule != "stopped":
                stmt["dosage"] = [dosage]
            elif m.schedule == "stopped" and (m.dose or m.daily_mg is not None):
                lost.append("medications[].dose of a stopped medicine")
            add(stmt, "medication")
    if model.allergies is not None:
        if not model.allergies:
            add({"resourceType": "AllergyIntolerance", "patient": subject,
                 "verificationStatus": _concept("confirmed", _coding(ALLERGY_VERIFICATION,
                                                                     "confirmed")),
                 "code": _concept("No known allergy", _coding(SNOMED, "716186003",
                                                              "No known allergy"))}, "allergy")
        for a in model.allergies:
            allergy: dict[str, Any] = {
                "resourceType": "AllergyIntolerance", "patient": subject,
                "clinicalStatus": _concept("active", _coding(ALLERGY_CLINICAL, "active")),
                "code": {"text": a.substance}}
            if a.reaction:
                allergy["reaction"] = [{"manifestation": [{"text": a.reaction}]}]
            add(allergy, "allergy")
    if model.family_history is not None:
        if not model.family_history:
            nil_known("10157-6", "History of family member diseases Narrative")
        for fc in model.family_history:
            cond_code: dict[str, Any] = {"coding": [_coding(ICD10CM, fc.code.upper())]} \
                if fc.code else {}
            if fc.name:
                cond_code["text"] = fc.name
            add({"resourceType": "FamilyMemberHistory", "status": "completed",
                 "patient": subject,
                 "relationship": _concept(fc.relation.replace("_", " or "),
                                          _coding(RELATION_SYSTEM, fc.relation),
                                          _coding(ROLE_CODE, _RELATION_V3[fc.relation])),
                 "condition": [{"code": cond_code}]}, "family")
    if model.vitals is not None:
        v = model.vitals
        panel: dict[str, Any] = {
            "resourceType": "Observation", "status": "final",
            "category": [_concept("Vital Signs", _coding(OBSERVATION_CATEGORY, "vital-signs"))],
            "code": _concept("Blood pressure", _coding(LOINC, "85354-9",
                                                       "Blood pressure panel")),
            "subject": subject,
            "component": [
                {"code": _concept("Systolic", _coding(LOINC, SYSTOLIC)),
                 "valueQuantity": {"value": v.systolic, "unit": "mmHg", "system": UCUM,
                                   "code": "mm[Hg]"}},
                {"code": _concept("Diastolic", _coding(LOINC, DIASTOLIC)),
                 "valueQuantity": {"value": v.diastolic, "unit": "mmHg", "system": UCUM,
                                   "code": "mm[Hg]"}}]}
        if v.taken_on:
            panel["effectiveDateTime"] = v.taken_on
        add(panel, "vitals")
        if v.heart_rate is not None:
            pulse: dict[str, Any] = {
                "resourceType": "Observation", "status": "final",
                "category": panel["category"],
                "code": _concept("Heart rate", _coding(LOINC, HEART_RATE, "Heart rate")),
                "subject": subject,
                "valueQuantity": {"value": v.heart_rate, "unit": "beats/minute",
                                  "system": UCUM, "code": "/min"}}
            if v.taken_on:
                pulse["effectiveDateTime"] = v.taken_on
            add(pulse, "vitals")
    p = model.pregnancy
    if p is not None and p.pregnant is not None:
        code, display = _PREGNANCY[p.pregnant]
        add(_status_observation(subject, as_of, PREGNANCY_STATUS, "Pregnancy status",
                                _coding(LOINC, code, display)), "pregnancy")
    if p is not None and p.breastfeeding is not None:
        answer = ("LA29252-6", "Currently breastfeeding") if p.breastfeeding else (
            "LA29253-4", "Not currently breastfeeding")
        add(_status_observation(subject, as_of, BREASTFEEDING_STATUS, "Breastfeeding status",
                                _coding(LOINC, *answer)), "pregnancy")
    if model.labs is not None:
        for key, (code, display) in _LABS.items():
            value = getattr(model.labs, key)
            if value is not None:
                add({"resourceType": "Observation", "status": "final",
                     "category": [_concept("Laboratory", _coding(OBSERVATION_CATEGORY,
                                                                 "laboratory"))],
                     "code": _concept(display, _coding(LOINC, code, display)),
                     "subject": subject, "effectiveDateTime": as_of.isoformat(),
                     "valueQuantity": {"value": value, "unit": "U/L", "system": UCUM,
                                       "code": "U/L"}}, "lab")
    response, not_expressed = response_for(data, subject=patient_ref,
                                           authored=as_of.isoformat())
    if response.get("item"):
        add(response, "response")
    lost += not_expressed
    bundle = {"resourceType": "Bundle", "id": ids.next("bundle"), "type": "collection",
              "timestamp": datetime.combine(as_of, datetime.min.time(), UTC).isoformat(
                  timespec="seconds"), "entry": entries}
    return bundle, list(dict.fromkeys(lost))


def _status_observation(subject: dict[str, Any], as_of: date, code: str, display: str,
                        value: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final",
            "category": [_concept("Social History", _coding(OBSERVATION_CATEGORY,
                                                            "social-history"))],
            "code": _concept(display, _coding(LOINC, code, display)), "subject": subject,
            "effectiveDateTime": as_of.isoformat(),
            "valueCodeableConcept": _concept(str(value.get("display", "")), value)}


# --------------------------------------------------------------------------------------------
# Validation


def validate(resource: dict[str, Any]) -> Any:
    """Parse a resource (a Bundle validates every entry) with the R4B models; returns the model.

    Raises ``ValueError`` naming every problem when the resource is not valid FHIR.
    """
    from pydantic import ValidationError

    from ketascreen.adapters.fhir_r4 import FHIR_MODELS

    module = __import__(FHIR_MODELS, fromlist=["get_fhir_model_class"])
    rtype = resource.get("resourceType")
    try:
        model = module.get_fhir_model_class(str(rtype))
    except ValueError as exc:
        raise ValueError(f"not a FHIR R4 resource type: {rtype!r}") from exc
    try:
        return model.model_validate(resource)
    except ValidationError as exc:
        raise ValueError(f"{rtype} is not valid FHIR R4: " + "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())) from exc
