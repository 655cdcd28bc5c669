"""FHIR R4 in: a Bundle of a person's record becomes a screening intake.

Version pinned on purpose: ketascreen reads and writes **FHIR R4 (4.0.1)**. Resources it emits are
validated with ``fhir.resources``' ``R4B`` models (:data:`FHIR_MODELS`): that package's default
import is FHIR R5 and must never be used for R4 data. Input is read tolerantly from plain JSON, so
that one malformed element is reported with its path instead of rejecting the whole record.

What maps to what (the integrator's view is in docs/integration.md):

- ``Patient`` → ``age`` (from ``birthDate`` at the screening date) and ``sex`` (the US Core
  birth-sex extension, else the administrative gender, said so);
- ``Condition`` → ``conditions`` (ICD-10-CM codings; SNOMED CT codings through
  knowledge/vocab/snomed_icd10.yaml; otherwise the text, resolved like a typed name);
  ``clinicalStatus`` active/recurrence/relapse → active, remission → remission, inactive/resolved
  → history; ``verificationStatus`` refuted or entered-in-error → not counted, and said so;
- ``MedicationStatement`` / ``MedicationRequest`` → ``medications`` (RxNorm codings or text);
- ``AllergyIntolerance`` → ``allergies``; ``FamilyMemberHistory`` → ``family_history``;
- ``Observation``: blood-pressure panel (LOINC 85354-9, components 8480-6 and 8462-4 in mm[Hg])
  and heart rate (8867-4), the newest valid reading; pregnancy status (82810-3), breastfeeding
  status (63895-7), tobacco smoking status (72166-2), liver enzymes (ALT, AST, ALP, GGT in U/L);
- ``List`` with ``emptyReason`` nilknown → "none known" for problems, medications, allergies or
  family history;
- ``QuestionnaireResponse`` answering ketascreen's own Questionnaire → every other answer.

Nothing is dropped silently: every element that is not used is reported as a
:class:`MappingIssue` with its FHIR path (``entry[4].resource.code.coding[0]``), and codings in
systems ketascreen does not know are ``unrecognized``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

from ketascreen.core.dates import PartialDate
from ketascreen.core.validation import parse_intake
from ketascreen.core.vocab import Lexicon, display_code, normalize_code
from ketascreen.errors import IntakeError, Problem

if TYPE_CHECKING:
    from ketascreen.core.kb import KnowledgeBase
    from ketascreen.core.model import Assessment, Intake

__all__ = [
    "CANONICAL_BASE",
    "FHIR_MODELS",
    "FHIR_VERSION",
    "BundleIntake",
    "MappingIssue",
    "annotate_assessment",
    "bundle_to_intake",
    "is_fhir",
    "read_bundle",
    "snomed_map",
]

FHIR_VERSION = "4.0.1"
"""The FHIR release ketascreen speaks (R4)."""
FHIR_MODELS = "fhir.resources.R4B"
"""The models that validate emitted resources; never ``fhir.resources``' default (R5)."""

CANONICAL_BASE = "https://ketascreen.org/fhir"
"""Base of ketascreen's canonical URLs (Questionnaire, code systems): identifiers, not links."""
CONTROLLED_EXTENSION = f"{CANONICAL_BASE}/StructureDefinition/condition-controlled"
"""ketascreen's extension on Condition: whether a controllable condition is controlled."""
RELATION_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/relation"
"""The screening contract's relations (``aunt_uncle`` has no single v3 RoleCode)."""
INTAKE_ID_SYSTEM = f"{CANONICAL_BASE}/NamingSystem/intake-id"
"""A Patient identifier in this system is read back as the intake's ``id``."""

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD10_WHO = "http://hl7.org/fhir/sid/icd-10"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
LIST_EMPTY_REASON = "http://terminology.hl7.org/CodeSystem/list-empty-reason"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
US_CORE_BIRTHSEX = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex"

# Systems whose codes ketascreen reads somewhere; a coding in any other system is unrecognized.
KNOWN_SYSTEMS = frozenset({
    LOINC, SNOMED, ICD10CM, ICD10_WHO, RXNORM, UCUM, CONDITION_CLINICAL, CONDITION_VERIFICATION,
    ALLERGY_CLINICAL, ALLERGY_VERIFICATION, ROLE_CODE, LIST_EMPTY_REASON, RELATION_SYSTEM,
})

# LOINC codes read from Observations.
BP_PANELS = frozenset({"85354-9", "55284-4"})
SYSTOLIC, DIASTOLIC, HEART_RATE = "8480-6", "8462-4", "8867-4"
PREGNANCY_STATUS, BREASTFEEDING_STATUS, SMOKING_STATUS = "82810-3", "63895-7", "72166-2"
LIVER_LABS = {"1742-6": "alt", "1920-8": "ast", "6768-6": "alp", "2324-2": "ggt"}
OBSERVATION_CODES = frozenset({*BP_PANELS, SYSTOLIC, DIASTOLIC, HEART_RATE, PREGNANCY_STATUS,
                               BREASTFEEDING_STATUS, SMOKING_STATUS, *LIVER_LABS})

PREGNANCY_ANSWERS: dict[tuple[str, str], str] = {
    (LOINC, "LA15173-0"): "yes", (SNOMED, "77386006"): "yes",
    (LOINC, "LA26683-5"): "no", (SNOMED, "60001007"): "no",
    (LOINC, "LA4489-6"): "unknown", (SNOMED, "261665006"): "unknown",
}
BREASTFEEDING_ANSWERS: dict[tuple[str, str], bool] = {
    (LOINC, "LA29252-6"): True, (SNOMED, "413712001"): True,
    (LOINC, "LA29253-4"): False,
}
SMOKING_ANSWERS: dict[str, str | None] = {  # SNOMED CT → substances[].status
    "449868002": "current", "428041000124106": "current", "77176002": "current",
    "428071000124103": "current", "428061000124105": "current", "8517006": "past",
    "266919005": "never", "266927001": None,
}
# How long a pregnancy or breastfeeding status stands for "now". A stale "no" is asked again
# rather than trusted; a "yes" stands for longer (the safe direction).
STATUS_FRESH_DAYS = {"no": 30, "unknown": 30, "yes": 300}

NO_KNOWN_DRUG_ALLERGY = frozenset({"716186003", "409137002"})  # SNOMED: no known (drug) allergy
NO_KNOWN_OTHER_ALLERGY = frozenset({"428607008", "429625007"})  # environmental, food

# List.code (LOINC section codes) → the intake list an empty "nil known" List speaks for.
NIL_KNOWN_LISTS = {"11450-4": "conditions", "10160-0": "medications", "48765-2": "allergies",
                   "10157-6": "family_history"}

RELATIONS: dict[str, str] = {
    "MTH": "mother", "NMTH": "mother", "FTH": "father", "NFTH": "father",
    "SIB": "sibling", "NSIB": "sibling", "BRO": "sibling", "NBRO": "sibling", "SIS": "sibling",
    "NSIS": "sibling", "TWIN": "sibling", "TWINBRO": "sibling", "TWINSIS": "sibling",
    "FTWIN": "sibling", "ITWIN": "sibling", "FTWINBRO": "sibling", "FTWINSIS": "sibling",
    "ITWINBRO": "sibling", "ITWINSIS": "sibling",
    "CHILD": "child", "NCHILD": "child", "SON": "child", "DAU": "child", "NSON": "child",
    "NDAU": "child",
    "GRPRN": "grandparent", "GRMTH": "grandparent", "GRFTH": "grandparent",
    "MGRMTH": "grandparent", "MGRFTH": "grandparent", "PGRMTH": "grandparent",
    "PGRFTH": "grandparent", "MGRPRN": "grandparent", "PGRPRN": "grandparent",
    "AUNT": "aunt_uncle", "UNCLE": "aunt_uncle", "MAUNT": "aunt_uncle", "PAUNT": "aunt_uncle",
    "MUNCLE": "aunt_uncle", "PUNCLE": "aunt_uncle",
    "COUSN": "cousin", "MCOUSN": "cousin", "PCOUSN": "cousin", "EXT": "other",
}
CONTRACT_RELATIONS = frozenset({"mother", "father", "sibling", "child", "grandparent",
                                "aunt_uncle", "cousin", "other"})

_LISTS = ("conditions", "medications", "allergies", "family_history")
_UNIT_ALIASES = {"mm[Hg]": {"mm[hg]", "mmhg", "mm hg"},
                 "/min": {"/min", "beats/min", "bpm", "{beats}/min", "{beat}/min"},
                 "U/L": {"u/l", "iu/l", "[iu]/l"}}
_DATETIME = re.compile(
    r"^(\d{4})(-(\d{2})(-(\d{2})(T(\d{2}):(\d{2})(:(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$")

IssueKind = Literal["error", "unrecognized", "ignored", "note"]


@dataclass(frozen=True, slots=True)
class MappingIssue:
    """Something in the FHIR input ketascreen did not (or could not) use, at its FHIR path.

    ``kind``: ``error`` — malformed where ketascreen needs it (the CLI exits 2, the API answers
    422; a CDS Hooks card lists it); ``unrecognized`` — a code or system ketascreen does not
    know; ``ignored`` — deliberately not used, with the reason; ``note`` — how something was read
    (a default, or a choice between readings).
    """

    path: str
    kind: IssueKind
    message: str
    value: str | None = None

    def __str__(self) -> str:
        shown = f" ({self.value})" if self.value else ""
        return f"{self.path}: {self.message}{shown}"


@dataclass(slots=True)
class BundleIntake:
    """The intake read from a Bundle (contract JSON), with everything said about the reading."""

    data: dict[str, Any]
    issues: list[MappingIssue] = field(default_factory=list)
    origins: dict[str, str] = field(default_factory=dict)
    """intake path (``age``, ``conditions[2]``, ``conditions[2].code``, ``vitals``) → FHIR path"""
    references: dict[str, str] = field(default_factory=dict)
    """intake item path (``conditions[2]``) → its resource's reference (``Condition/abc``)"""
    patient_reference: str | None = None

    @property
    def errors(self) -> list[MappingIssue]:
        return [i for i in self.issues if i.kind == "error"]

    def fhir_path(self, intake_path: str) -> str | None:
        """The FHIR path an intake path came from (its longest known prefix), or None."""
        best: str | None = None
        for key in self.origins:
            if (intake_path == key or intake_path.startswith((key + ".", key + "["))) and (
                    best is None or len(key) > len(best)):
                best = key
        return None if best is None else self.origins[best]

    def reference_for(self, intake_path: str) -> str | None:
        """The reference of the resource an intake path came from (``Condition/abc``)."""
        best: str | None = None
        for key in self.references:
            if (intake_path == key or intake_path.startswith((key + ".", key + "["))) and (
                    best is None or len(key) > len(best)):
                best = key
        return None if best is None else self.references[best]


# --------------------------------------------------------------------------------------------
# Vocabulary data


@dataclass(frozen=True, slots=True)
class SnomedMap:
    release: str
    icd10cm: dict[str, str]  # SNOMED CT concept id → ICD-10-CM code (with the dot)
    display: dict[str, str]


@lru_cache(maxsize=1)
def snomed_map() -> SnomedMap:
    """knowledge/vocab/snomed_icd10.yaml, loaded once."""
    import yaml

    text = (resources.files("ketascreen.knowledge") / "vocab" / "snomed_icd10.yaml").read_text(
        encoding="utf-8")
    raw = yaml.safe_load(text) or {}
    codes: dict[str, str] = {}
    names: dict[str, str] = {}
    for row in raw.get("maps") or []:
        codes[str(row["snomed"])] = str(row["icd10cm"])
        names[str(row["snomed"])] = str(row.get("display", ""))
    return SnomedMap(str(raw.get("release", "")), codes, names)


_LEXICONS: dict[int, tuple[KnowledgeBase, Lexicon]] = {}


def _lexicon(kb: KnowledgeBase) -> Lexicon:
    found = _LEXICONS.get(id(kb))
    if found is None or found[0] is not kb:
        if len(_LEXICONS) > 8:
            _LEXICONS.clear()
        found = _LEXICONS[id(kb)] = (kb, Lexicon(kb.vocabulary))
    return found[1]


# --------------------------------------------------------------------------------------------
# Small, typed access to untyped JSON


def _obj(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _codings(concept: Any, path: str) -> Iterator[tuple[str, str | None, str | None, str | None]]:
    """(path, system, code, display) of each coding of a CodeableConcept."""
    c = _obj(concept)
    if c is None:
        return
    for i, coding in enumerate(_items(c.get("coding"))):
        cd = _obj(coding)
        if cd is None:
            continue
        yield (f"{path}.coding[{i}]", _text(cd.get("system")), _text(cd.get("code")),
               _text(cd.get("display")))


def _code_in(concept: Any, system: str) -> str | None:
    for _p, s, c, _d in _codings(concept, ""):
        if s == system and c:
            return c
    return None


def _concept_text(concept: Any) -> str | None:
    c = _obj(concept)
    if c is None:
        return None
    text = _text(c.get("text"))
    if text:
        return text
    for _p, _s, _c, d in _codings(c, ""):
        if d:
            return d
    return None


def _show(system: str | None, code: str | None, display: str | None) -> str:
    shown = f"{system or '(no system)'}|{code or '(no code)'}"
    return f"{shown} {display}" if display else shown


# --------------------------------------------------------------------------------------------
# Dates


@dataclass(frozen=True, slots=True)
class _When:
    text: str  # the contract's date: YYYY, YYYY-MM or YYYY-MM-DD
    sort: str  # the FHIR value, for ordering readings (ISO strings sort in time order)

    @property
    def partial(self) -> PartialDate:
        return PartialDate.parse(self.text)


def _fhir_date(value: Any) -> _When | Literal[False] | None:
    """A FHIR date or dateTime as a contract date; None if absent, False if malformed."""
    text = _text(value)
    if text is None:
        return None
    m = _DATETIME.match(text)
    if not m:
        return False
    try:
        PartialDate.parse(text[:10])
    except ValueError:
        return False
    if m.group(6) and (int(m.group(7)) > 23 or int(m.group(8)) > 59):
        return False
    return _When(text[:10], text)


@dataclass(slots=True)
class _Item:
    """One entry of an intake list read from a resource, with where its parts came from."""

    data: dict[str, Any]
    path: str  # the resource (or element) it came from
    ref: str | None
    origins: dict[str, str] = field(default_factory=dict)  # ".code" → FHIR path


@dataclass(slots=True)
class _Reading:
    when: _When | None
    value: Any
    path: str


# --------------------------------------------------------------------------------------------
# The reader


class _Reader:
    def __init__(self, kb: KnowledgeBase, today: date, searched: Collection[str]) -> None:
        self.lex = _lexicon(kb)
        self.today = today
        self.searched = frozenset(searched)
        self.snomed = snomed_map()
        self.issues: list[MappingIssue] = []
        self.origins: dict[str, str] = {}
        self.references: dict[str, str] = {}
        self.data: dict[str, Any] = {"assessed_on": today.isoformat()}
        self.weak: set[str] = set()  # keys read from a weaker source (sex from gender)
        self.lists: dict[str, list[_Item]] = {k: [] for k in _LISTS}
        self.known_none: dict[str, str] = {}  # list → FHIR path saying "none known"
        self.by_ref: dict[str, dict[str, Any]] = {}
        self.patient_refs: set[str] = set()
        self.patient_reference: str | None = None
        self.bp: list[_Reading] = []
        self.lone_bp: dict[str, dict[str, tuple[int, str]]] = {}
        self.hr: list[_Reading] = []
        self.pregnancy: list[_Reading] = []
        self.breastfeeding: list[_Reading] = []
        self.smoking: list[_Reading] = []
        self.labs: dict[str, list[_Reading]] = {}
        self.responses: list[tuple[str, dict[str, Any], str]] = []  # authored, resource, path

    def issue(self, path: str, kind: IssueKind, message: str, value: str | None = None) -> None:
        self.issues.append(MappingIssue(path, kind, message, value))

    # -- entry points ----------------------------------------------------------------------

    def read(self, bundle: Any) -> BundleIntake:
        b = _obj(bundle)
        if b is None or b.get("resourceType") != "Bundle":
            got = b.get("resourceType") if b is not None else type(bundle).__name__
            self.issue("resourceType", "error", f"a FHIR Bundle is expected (got {got!r})")
            return self._finish()
        entries = b.get("entry")
        if entries is not None and not isinstance(entries, list):
            self.issue("entry", "error", "must be a list of entries")
            return self._finish()
        found: list[tuple[str, dict[str, Any]]] = []
        for i, entry in enumerate(_items(entries)):
            path = f"entry[{i}]"
            e = _obj(entry)
            res = _obj(e.get("resource")) if e is not None else None
            if e is None or res is None:
                self.issue(path, "ignored", "an entry without a resource")
                continue
            rtype = _text(res.get("resourceType"))
            if rtype is None:
                self.issue(f"{path}.resource", "ignored", "a resource without a resourceType")
                continue
            rid = _text(res.get("id"))
            if rid:
                self.by_ref[f"{rtype}/{rid}"] = res
            full = _text(e.get("fullUrl"))
            if full:
                self.by_ref[full] = res
            found.append((f"{path}.resource", res))
        self._find_patient(found)
        for path, res in found:
            self._dispatch(path, res)
        return self._finish()

    def _find_patient(self, found: list[tuple[str, dict[str, Any]]]) -> None:
        patients = [(p, r) for p, r in found if r.get("resourceType") == "Patient"]
        if not patients:
            self.issue("entry", "error", "the Bundle has no Patient: send one person's record "
                       "with their Patient resource")
            return
        ids = {_text(r.get("id")) for _p, r in patients}
        if len(patients) > 1 and (len(ids) > 1 or None in ids):
            self.issue(patients[1][0], "error", "the Bundle describes more than one Patient: "
                       "send one person's record per Bundle")
            return
        path, res = patients[0]
        rid = _text(res.get("id"))
        if rid:
            self.patient_reference = f"Patient/{rid}"
            self.patient_refs.add(self.patient_reference)
            self.data["id"] = self.patient_reference
            self.origins["id"] = f"{path}.id"
        for i, ident in enumerate(_items(res.get("identifier"))):
            io = _obj(ident) or {}
            if io.get("system") == INTAKE_ID_SYSTEM and _text(io.get("value")):
                self.data["id"] = _text(io.get("value"))  # the caller's own reference
                self.origins["id"] = f"{path}.identifier[{i}]"
                break
        self.patient_refs.update(k for k, r in self.by_ref.items() if r is res)
        self._patient(path, res)

    def _about_patient(self, path: str, res: dict[str, Any]) -> bool:
        ref: str | None = None
        for key in ("subject", "patient"):
            r = _obj(res.get(key))
            if r is not None:
                ref = _text(r.get("reference"))
                break
        if ref is None or not self.patient_refs or ref in self.patient_refs:
            return True
        if any(p.startswith("Patient/") and ref.endswith("/" + p) for p in self.patient_refs):
            return True
        self.issue(path, "ignored", "about another person, not the Bundle's Patient", ref)
        return False

    def _dispatch(self, path: str, res: dict[str, Any]) -> None:
        rtype = str(res.get("resourceType"))
        if rtype in ("Patient", "Medication"):
            return  # read above, or through the statement or request that refers to it
        handlers: dict[str, Callable[[str, dict[str, Any]], None]] = {
            "Condition": self._condition,
            "MedicationStatement": self._medication_statement,
            "MedicationRequest": self._medication_request,
            "AllergyIntolerance": self._allergy,
            "FamilyMemberHistory": self._family,
            "Observation": self._observation,
            "List": self._list,
            "QuestionnaireResponse": self._questionnaire_response,
        }
        handler = handlers.get(rtype)
        if handler is None:
            self.issue(path, "ignored", f"ketascreen does not read {rtype} resources")
            return
        if self._about_patient(path, res):
            handler(path, res)

    @staticmethod
    def _ref_of(res: dict[str, Any]) -> str | None:
        rid = _text(res.get("id"))
        return f"{res.get('resourceType')}/{rid}" if rid else None

    # -- Patient ---------------------------------------------------------------------------

    def _patient(self, path: str, res: dict[str, Any]) -> None:
        when = _fhir_date(res.get("birthDate"))
        if when is False:
            self.issue(f"{path}.birthDate", "error", "must be a date written YYYY, YYYY-MM or "
                       "YYYY-MM-DD", str(res.get("birthDate")))
        elif when is None:
            self.issue(f"{path}.birthDate", "note", "no birth date: the age stays unanswered")
        else:
            self._age(f"{path}.birthDate", when.partial)
        if res.get("deceasedBoolean") is True or res.get("deceasedDateTime"):
            self.issue(path, "note", "the Patient is recorded as deceased")
        self._sex(path, res)

    def _age(self, path: str, born: PartialDate) -> None:
        if born.earliest() > self.today:
            self.issue(path, "error", f"{born} is after the screening date "
                       f"{self.today.isoformat()}")
            return

        def years(b: date) -> int:
            t = self.today
            return t.year - b.year - ((t.month, t.day) < (b.month, b.day))

        youngest = max(years(born.nearest_to(self.today)), 0)
        oldest = years(born.earliest())
        if oldest > 120:
            self.issue(path, "error", f"an age of {oldest} is outside 0 to 120", str(born))
            return
        self.data["age"] = youngest
        self.origins["age"] = path
        if oldest != youngest:
            self.issue(path, "note", f"a partial birth date: the age is read as {youngest} "
                       f"(it could be {oldest})", str(born))

    def _sex(self, path: str, res: dict[str, Any]) -> None:
        gender = res.get("gender")
        if gender is not None and gender not in ("female", "male", "other", "unknown"):
            self.issue(f"{path}.gender", "error", "must be male, female, other or unknown",
                       str(gender))
            return
        for i, ext in enumerate(_items(res.get("extension"))):
            e = _obj(ext)
            if e is None or e.get("url") != US_CORE_BIRTHSEX:
                continue
            code = _text(e.get("valueCode"))
            sex = {"F": "female", "M": "male", "UNK": "unknown", "OTH": "unknown",
                   "ASKU": "unknown"}.get(code or "")
            p = f"{path}.extension[{i}].valueCode"
            if sex is None:
                self.issue(p, "unrecognized", "not a US Core birth-sex code", code)
                continue
            self.data["sex"] = sex
            self.origins["sex"] = p
            return
        if gender is None:
            self.issue(f"{path}.gender", "note", "no sex recorded: read as unknown, so the "
                       "pregnancy questions apply")
            return
        sex = {"female": "female", "male": "male", "other": "unknown",
               "unknown": "unknown"}[str(gender)]
        self.data["sex"] = sex
        self.weak.add("sex")
        self.origins["sex"] = f"{path}.gender"
        self.issue(f"{path}.gender", "note", "sex assigned at birth read from the administrative "
                   "gender (the US Core birth-sex extension is absent)", str(gender))

    # -- Condition -------------------------------------------------------------------------

    def _condition(self, path: str, res: dict[str, Any]) -> None:
        verification = _code_in(res.get("verificationStatus"), CONDITION_VERIFICATION)
        if verification in ("refuted", "entered-in-error"):
            self.issue(f"{path}.verificationStatus", "ignored",
                       f"verificationStatus is {verification}: not counted")
            return
        clinical = _code_in(res.get("clinicalStatus"), CONDITION_CLINICAL)
        status = {"active": "active", "recurrence": "active", "relapse": "active",
                  "remission": "remission", "inactive": "history",
                  "resolved": "history"}.get(clinical or "")
        if status is None:
            if clinical is not None:
                status = "active"
                self.issue(f"{path}.clinicalStatus", "unrecognized", "not a clinical-status "
                           "code: read as active (the safe reading)", clinical)
            elif any(k.startswith("abatement") for k in res):
                status = "history"
                self.issue(f"{path}.clinicalStatus", "note", "no clinicalStatus but an "
                           "abatement: read as history")
            else:
                status = "active"
                self.issue(f"{path}.clinicalStatus", "note", "no clinicalStatus: read as "
                           "active (the safe reading)")
        if verification in ("unconfirmed", "provisional", "differential"):
            self.issue(f"{path}.verificationStatus", "note", f"verificationStatus is "
                       f"{verification}: counted, for a clinician to confirm")
        item = _Item({}, path, self._ref_of(res))
        self._identify_condition(res.get("code"), f"{path}.code", item, "condition")
        item.data["status"] = status
        for ext_i, ext in enumerate(_items(res.get("extension"))):
            e = _obj(ext)
            if e is not None and e.get("url") == CONTROLLED_EXTENSION and isinstance(
                    e.get("valueBoolean"), bool):
                item.data["controlled"] = e["valueBoolean"]
                item.origins[".controlled"] = f"{path}.extension[{ext_i}]"
        since = self._date_of(res, path, ("onsetDateTime", "onsetPeriod.start"))
        until = self._date_of(res, path, ("abatementDateTime", "abatementPeriod.end"))
        if since:
            item.data["since"] = since
        if until:
            item.data["until"] = until
        self.lists["conditions"].append(item)

    def _date_of(self, res: dict[str, Any], path: str, keys: Iterable[str]) -> str | None:
        for key in keys:
            node: Any = res
            for part in key.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                continue
            when = _fhir_date(node)
            if when is False:
                self.issue(f"{path}.{key}", "error", "must be a FHIR date or dateTime", str(node))
                return None
            if when is None:
                continue
            if when.partial.earliest() > self.today:
                self.issue(f"{path}.{key}", "error", f"{when.text} is after the screening date "
                           f"{self.today.isoformat()}")
                return None
            return when.text
        return None

    def _identify_condition(self, concept: Any, path: str, item: _Item, what: str) -> None:
        """Fill ``code`` and/or ``name`` of a condition from a CodeableConcept."""
        icd: tuple[str, str] | None = None
        who: tuple[str, str] | None = None
        sct: tuple[str, str] | None = None
        unmapped: list[tuple[str, str]] = []
        for p, system, code, display in _codings(concept, path):
            if system in (ICD10CM, ICD10_WHO) and code:
                if self.lex.is_valid_code(code):
                    found = (display_code(normalize_code(code)), p)
                    if system == ICD10CM:
                        icd = icd or found
                    else:
                        who = who or found
                else:
                    self.issue(p, "unrecognized", "not a code of the ICD-10-CM code set "
                               f"({self.lex.release})", code)
            elif system == SNOMED and code:
                mapped = self.snomed.icd10cm.get(code)
                if mapped:
                    sct = sct or (mapped, p)
                else:
                    unmapped.append((p, _show(system, code, display)))
            elif system not in KNOWN_SYSTEMS or not code:
                self.issue(p, "unrecognized", "a coding in a system ketascreen does not know",
                           _show(system, code, display))
        text = _concept_text(concept)
        chosen = icd or sct or who
        if chosen is not None:
            item.data["code"] = chosen[0]
            item.origins[".code"] = chosen[1]
            if chosen is who:
                self.issue(chosen[1], "note", "an ICD-10 (WHO) code read as ICD-10-CM", chosen[0])
            elif chosen is sct:
                self.issue(chosen[1], "note", f"SNOMED CT read as ICD-10-CM {chosen[0]} "
                           "(knowledge/vocab/snomed_icd10.yaml)")
            if text:
                item.data["name"] = text[:200]
            return
        for p, shown in unmapped:
            self.issue(p, "unrecognized", "a SNOMED CT concept with no ICD-10-CM map in "
                       "ketascreen" + ("; its text is read instead" if text else ""), shown)
        if text:
            item.data["name"] = text[:200]
            item.origins[".name"] = path
            return
        item.data["name"] = f"unidentified {what} ({path})"
        item.origins[".name"] = path
        self.issue(path, "unrecognized", f"no code or text identifies this {what}: listed as "
                   "unidentified, for a clinician to review")

    # -- Medications -----------------------------------------------------------------------

    def _medication_statement(self, path: str, res: dict[str, Any]) -> None:
        status = _text(res.get("status"))
        if status in ("entered-in-error", "not-taken"):
            self.issue(f"{path}.status", "ignored", f"status is {status}: not counted")
            return
        stopped = status in ("completed", "stopped")
        stopped_on = None
        if stopped:
            stopped_on = self._date_of(res, path, ("effectivePeriod.end", "effectiveDateTime"))
        elif status not in ("active", "intended", "on-hold", "unknown"):
            self.issue(f"{path}.status", "note", "not a MedicationStatement status: counted as "
                       "taken (the safe reading)", status)
        self._medication(path, res, res.get("dosage"), "dosage", stopped, stopped_on)

    def _medication_request(self, path: str, res: dict[str, Any]) -> None:
        status = _text(res.get("status"))
        if status in ("cancelled", "entered-in-error", "draft"):
            self.issue(f"{path}.status", "ignored", f"status is {status}: not counted")
            return
        if res.get("doNotPerform") is True:
            self.issue(f"{path}.doNotPerform", "ignored", "an order not to give this medicine")
            return
        if status not in ("active", "on-hold", "unknown", "completed", "stopped"):
            self.issue(f"{path}.status", "note", "not a MedicationRequest status: counted as "
                       "taken (the safe reading)", status)
        self._medication(path, res, res.get("dosageInstruction"), "dosageInstruction",
                         status in ("completed", "stopped"), None)

    def _medication(self, path: str, res: dict[str, Any], dosage: Any, dosage_key: str,
                    stopped: bool, stopped_on: str | None) -> None:
        item = _Item({}, path, self._ref_of(res))
        concept = res.get("medicationCodeableConcept")
        cpath = f"{path}.medicationCodeableConcept"
        ref = _obj(res.get("medicationReference"))
        if concept is None and ref is not None:
            target = self._resolve(res, _text(ref.get("reference")), path)
            if target is not None:
                concept, cpath = target
            elif _text(ref.get("display")):
                concept = {"text": ref.get("display")}
                cpath = f"{path}.medicationReference.display"
            else:
                self.issue(f"{path}.medicationReference", "unrecognized", "refers to a "
                           "Medication that is not in the Bundle", _text(ref.get("reference")))
        self._identify_medication(concept, cpath, item)
        if stopped:
            item.data["schedule"] = "stopped"
            if stopped_on:
                item.data["stopped_on"] = stopped_on
        else:
            item.data.update(self._dosage(dosage))
        self.lists["medications"].append(item)

    def _resolve(self, res: dict[str, Any], ref: str | None, path: str) -> tuple[Any, str] | None:
        if ref is None:
            return None
        if ref.startswith("#"):
            for i, c in enumerate(_items(res.get("contained"))):
                co = _obj(c)
                if co is not None and co.get("id") == ref[1:]:
                    return co.get("code"), f"{path}.contained[{i}].code"
            return None
        target = self.by_ref.get(ref) or self.by_ref.get("/".join(ref.rsplit("/", 2)[-2:]))
        if target is None:
            return None
        return target.get("code"), f"{path}.medicationReference({ref}).code"

    def _identify_medication(self, concept: Any, path: str, item: _Item) -> None:
        rxnorm: str | None = None
        rx_display: str | None = None
        for p, system, code, display in _codings(concept, path):
            if system == RXNORM and code:
                if code.isdigit() and len(code) <= 10:
                    if rxnorm is None:
                        rxnorm, rx_display = code, display
                        item.origins[".rxnorm"] = p
                else:
                    self.issue(p, "unrecognized", "not an RxNorm concept id", code)
            elif system not in KNOWN_SYSTEMS or not code:
                self.issue(p, "unrecognized", "a coding in a system ketascreen does not know",
                           _show(system, code, display))
        name = _text((_obj(concept) or {}).get("text")) or rx_display or _concept_text(concept)
        if name is None:
            if rxnorm:
                name = f"RxNorm {rxnorm}"
            else:
                name = f"unidentified medication ({path})"
                self.issue(path, "unrecognized", "no code or text identifies this medication: "
                           "listed as unidentified, for a clinician to review")
        item.data["name"] = name[:200]
        item.origins[".name"] = path
        if rxnorm:
            item.data["rxnorm"] = rxnorm

    @staticmethod
    def _dosage(dosage: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        doses = [d for d in _items(dosage) if isinstance(d, dict)]
        texts = [t for d in doses if (t := _text(d.get("text")))]
        if texts:
            out["dose"] = "; ".join(texts)[:200]
        if any(d.get("asNeededBoolean") is True or _obj(d.get("asNeededCodeableConcept"))
               for d in doses):
            out["schedule"] = "as_needed"
        amounts = [_daily_mg(d) for d in doses]
        if amounts and all(a is not None for a in amounts):
            out["daily_mg"] = round(sum(a for a in amounts if a is not None), 3)
        return out

    # -- Allergies and family history ------------------------------------------------------

    def _allergy(self, path: str, res: dict[str, Any]) -> None:
        verification = _code_in(res.get("verificationStatus"), ALLERGY_VERIFICATION)
        if verification in ("refuted", "entered-in-error"):
            self.issue(f"{path}.verificationStatus", "ignored",
                       f"verificationStatus is {verification}: not counted")
            return
        clinical = _code_in(res.get("clinicalStatus"), ALLERGY_CLINICAL)
        if clinical in ("inactive", "resolved"):
            self.issue(f"{path}.clinicalStatus", "ignored", f"clinicalStatus is {clinical}: no "
                       "longer a risk, not counted")
            return
        sct = _code_in(res.get("code"), SNOMED)
        if sct in NO_KNOWN_DRUG_ALLERGY:
            self.known_none["allergies"] = f"{path}.code"
            return
        if sct in NO_KNOWN_OTHER_ALLERGY:
            self.issue(f"{path}.code", "ignored", "no known food or environmental allergy says "
                       "nothing about medicines")
            return
        for p, system, code, display in _codings(res.get("code"), f"{path}.code"):
            if system not in KNOWN_SYSTEMS or not code:
                self.issue(p, "unrecognized", "a coding in a system ketascreen does not know",
                           _show(system, code, display))
        substance = _concept_text(res.get("code"))
        if substance is None:
            substance = f"unidentified substance ({path}.code)"
            self.issue(f"{path}.code", "unrecognized", "no code or text identifies the "
                       "substance: listed as unidentified, for a clinician to review")
        item = _Item({"substance": substance[:200]}, path, self._ref_of(res),
                     {".substance": f"{path}.code"})
        reactions: list[str] = []
        for r in _items(res.get("reaction")):
            ro = _obj(r) or {}
            found = [t for m in _items(ro.get("manifestation")) if (t := _concept_text(m))]
            reactions.extend(found or ([str(ro["description"])] if _text(ro.get("description"))
                                       else []))
        if reactions:
            item.data["reaction"] = ", ".join(dict.fromkeys(reactions))[:500]
        self.lists["allergies"].append(item)

    def _family(self, path: str, res: dict[str, Any]) -> None:
        if _text(res.get("status")) == "entered-in-error":
            self.issue(f"{path}.status", "ignored", "status is entered-in-error: not counted")
            return
        rel = res.get("relationship")
        relation = _code_in(rel, RELATION_SYSTEM)
        if relation not in CONTRACT_RELATIONS:
            relation = RELATIONS.get(_code_in(rel, ROLE_CODE) or "")
        if relation is None:
            relation = "other"
            self.issue(f"{path}.relationship", "note", "not a relationship ketascreen knows: "
                       "read as another relative (second-degree)", _concept_text(rel))
        conditions = _items(res.get("condition"))
        if not conditions:
            self.issue(path, "ignored", "a family member without a listed condition")
            return
        for j, cond in enumerate(conditions):
            item = _Item({}, f"{path}.condition[{j}]", self._ref_of(res))
            self._identify_condition((_obj(cond) or {}).get("code"),
                                     f"{path}.condition[{j}].code", item, "family condition")
            item.data["relation"] = relation
            self.lists["family_history"].append(item)

    # -- Observations ----------------------------------------------------------------------

    def _observation(self, path: str, res: dict[str, Any]) -> None:
        codes = list(_codings(res.get("code"), f"{path}.code"))
        loinc = [c for _p, s, c, _d in codes if s == LOINC and c]
        label = _concept_text(res.get("code")) or (loinc[0] if loinc else None)
        status = _text(res.get("status"))
        if status not in ("final", "amended", "corrected"):
            self.issue(f"{path}.status", "ignored", f"status is {status or 'missing'}: only "
                       "final, amended or corrected results are read", label)
            return
        code = next((c for c in loinc if c in OBSERVATION_CODES), None)
        if code is None:
            for p, s, c, d in codes:
                if s not in KNOWN_SYSTEMS:
                    self.issue(p, "unrecognized", "a coding in a system ketascreen does not "
                               "know", _show(s, c, d))
            self.issue(path, "ignored", "an Observation ketascreen's rules do not use", label)
            return
        when = self._effective(res, path)
        if when is False:
            return
        if code in BP_PANELS:
            self._bp_panel(path, res, when)
        elif code in (SYSTOLIC, DIASTOLIC):
            value = self._quantity(res.get("valueQuantity"), f"{path}.valueQuantity", "mm[Hg]",
                                   *((20, 200) if code == DIASTOLIC else (50, 300)))
            if value is not None:
                key = when.sort if when else f"(undated {path})"
                self.lone_bp.setdefault(key, {})[code] = (round(value), path)
        elif code == HEART_RATE:
            value = self._quantity(res.get("valueQuantity"), f"{path}.valueQuantity", "/min",
                                   20, 250)
            if value is not None:
                self.hr.append(_Reading(when, round(value), path))
        elif code == PREGNANCY_STATUS:
            answer = self._answer(res, path, PREGNANCY_ANSWERS)
            if answer is not None:
                self.pregnancy.append(_Reading(when, answer, f"{path}.valueCodeableConcept"))
        elif code == BREASTFEEDING_STATUS:
            answer = self._answer(res, path, BREASTFEEDING_ANSWERS)
            if answer is not None:
                self.breastfeeding.append(_Reading(when, answer, f"{path}.valueCodeableConcept"))
        elif code == SMOKING_STATUS:
            value_code = _code_in(res.get("valueCodeableConcept"), SNOMED)
            if value_code not in SMOKING_ANSWERS:
                self.issue(f"{path}.valueCodeableConcept", "unrecognized", "not a smoking-status "
                           "code ketascreen knows", _concept_text(res.get("valueCodeableConcept")))
            elif SMOKING_ANSWERS[value_code] is None:
                self.issue(f"{path}.valueCodeableConcept", "ignored", "smoking status unknown")
            else:
                self.smoking.append(_Reading(when, SMOKING_ANSWERS[value_code], path))
        else:
            value = self._quantity(res.get("valueQuantity"), f"{path}.valueQuantity", "U/L",
                                   0, 20_000)
            if value is not None:
                self.labs.setdefault(LIVER_LABS[code], []).append(_Reading(when, value, path))

    def _effective(self, res: dict[str, Any], path: str) -> _When | Literal[False] | None:
        for key in ("effectiveDateTime", "effectiveInstant", "effectivePeriod", "issued"):
            value = res.get(key)
            if value is None:
                continue
            if key == "effectivePeriod":
                period = _obj(value) or {}
                key = "effectivePeriod.end" if period.get("end") else "effectivePeriod.start"
                value = period.get("end") or period.get("start")
            when = _fhir_date(value)
            if when is False:
                self.issue(f"{path}.{key}", "ignored", "not a FHIR dateTime: the reading is not "
                           "used", str(value))
                return False
            if when is not None:
                if when.partial.earliest() > self.today:
                    self.issue(f"{path}.{key}", "ignored", f"{when.text} is after the screening "
                               f"date {self.today.isoformat()}: the reading is not used")
                    return False
                return when
        return None

    def _quantity(self, q: Any, path: str, unit: str, low: float, high: float) -> float | None:
        qo = _obj(q)
        if qo is None:
            self.issue(path, "ignored", "no valueQuantity: the reading is not used")
            return None
        value = qo.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.issue(f"{path}.value", "ignored", "not a number: the reading is not used",
                       str(value))
            return None
        given = _text(qo.get("code")) or _text(qo.get("unit"))
        if given is None or given.lower() not in _UNIT_ALIASES[unit]:
            self.issue(f"{path}.code", "ignored", f"the unit must be {unit}: the reading is not "
                       "used", given)
            return None
        if not low <= float(value) <= high:
            self.issue(f"{path}.value", "ignored", f"{value:g} is outside {low:g} to {high:g}: "
                       "the reading is not used")
            return None
        return float(value)

    def _bp_panel(self, path: str, res: dict[str, Any], when: _When | None) -> None:
        values: dict[str, float] = {}
        for i, comp in enumerate(_items(res.get("component"))):
            co = _obj(comp) or {}
            code = _code_in(co.get("code"), LOINC)
            if code in (SYSTOLIC, DIASTOLIC):
                v = self._quantity(co.get("valueQuantity"), f"{path}.component[{i}].valueQuantity",
                                   "mm[Hg]", *((20, 200) if code == DIASTOLIC else (50, 300)))
                if v is None:
                    return
                values[code] = v
        if SYSTOLIC not in values or DIASTOLIC not in values:
            self.issue(f"{path}.component", "ignored", "a blood-pressure panel needs a systolic "
                       "(8480-6) and a diastolic (8462-4) component: the reading is not used")
            return
        s, d = round(values[SYSTOLIC]), round(values[DIASTOLIC])
        if d >= s:
            self.issue(f"{path}.component", "ignored", f"diastolic {d} is not below systolic "
                       f"{s}: the reading is not used")
            return
        self.bp.append(_Reading(when, (s, d), path))

    def _answer(self, res: dict[str, Any], path: str, table: dict[tuple[str, str], Any]) -> Any:
        vpath = f"{path}.valueCodeableConcept"
        for p, system, code, display in _codings(res.get("valueCodeableConcept"), vpath):
            if (system or "", code or "") in table:
                return table[(system or "", code or "")]
            if system not in KNOWN_SYSTEMS:
                self.issue(p, "unrecognized", "a coding in a system ketascreen does not know",
                           _show(system, code, display))
        self.issue(vpath, "unrecognized", "not an answer ketascreen knows: the status stays "
                   "unanswered", _concept_text(res.get("valueCodeableConcept")))
        return None

    # -- List and QuestionnaireResponse ----------------------------------------------------

    def _list(self, path: str, res: dict[str, Any]) -> None:
        target = NIL_KNOWN_LISTS.get(_code_in(res.get("code"), LOINC) or "")
        empty = _code_in(res.get("emptyReason"), LIST_EMPTY_REASON)
        if target and empty == "nilknown" and not _items(res.get("entry")):
            self.known_none[target] = path
            return
        self.issue(path, "ignored", "a List is read only as an empty 'nil known' problem, "
                   "medication, allergy or family-history list; items are read from their own "
                   "resources", _concept_text(res.get("code")))

    def _questionnaire_response(self, path: str, res: dict[str, Any]) -> None:
        from ketascreen.adapters.sdc import questionnaire_url

        url = (_text(res.get("questionnaire")) or "").split("|", 1)[0]
        if url != questionnaire_url():
            self.issue(f"{path}.questionnaire", "ignored", "answers a questionnaire other than "
                       "ketascreen's own", url or None)
            return
        status = _text(res.get("status"))
        if status == "entered-in-error":
            self.issue(f"{path}.status", "ignored", "status is entered-in-error: not counted")
            return
        if status not in ("completed", "amended"):
            self.issue(f"{path}.status", "note", f"status is {status or 'missing'}: the "
                       "answers given are read, the others stay unanswered")
        self.responses.append((_text(res.get("authored")) or "", res, path))

    # -- assembling ------------------------------------------------------------------------

    def _newest(self, readings: list[_Reading], what: str) -> _Reading | None:
        """The newest reading (dated before undated); the others are reported as superseded."""
        if not readings:
            return None
        ordered = sorted(readings, key=lambda r: (r.when is not None, r.when.sort if r.when
                                                  else ""), reverse=True)
        for older in ordered[1:]:
            self.issue(older.path, "ignored", f"an older {what}: the newest valid one is used")
        return ordered[0]

    def _finish(self) -> BundleIntake:
        self._assemble_vitals()
        self._assemble_pregnancy()
        self._assemble_labs()
        answered: dict[str, list[Any]] = {}
        if self.responses:
            answered = self._assemble_responses()
        self._assemble_substances()
        for key in _LISTS:
            self._assemble_list(key, answered.get(key))
        return BundleIntake(self.data, self.issues, self.origins, self.references,
                            self.patient_reference)

    def _assemble_list(self, key: str, answered: list[Any] | None) -> None:
        items = self.lists[key]
        types = {"conditions": ("Condition",),
                 "medications": ("MedicationStatement", "MedicationRequest")}.get(key, ())
        searched = any(t in self.searched for t in types)
        if answered is None and not items and key not in self.known_none and not searched:
            return  # not in the record and not asked: stays unanswered (missing)
        offset = len(answered or ())
        out: list[Any] = list(answered or ())
        for i, item in enumerate(items):
            ipath = f"{key}[{offset + i}]"
            out.append(item.data)
            self.origins[ipath] = item.path
            for suffix, p in item.origins.items():
                self.origins[ipath + suffix] = p
            if item.ref:
                self.references[ipath] = item.ref
        if key in self.known_none:
            self.origins.setdefault(key, self.known_none[key])
        elif answered is None and not items:
            self.issue(key, "note", f"no {' or '.join(types)} found on the FHIR server: read as "
                       "none recorded")
        self.data[key] = out

    def _assemble_vitals(self) -> None:
        for key, pair in self.lone_bp.items():
            if SYSTOLIC in pair and DIASTOLIC in pair:
                (s, sp), (d, dp) = pair[SYSTOLIC], pair[DIASTOLIC]
                when = None if key.startswith("(undated") else _fhir_date(key)
                if d >= s:
                    self.issue(dp, "ignored", f"diastolic {d} is not below systolic {s}: the "
                               "reading is not used")
                    continue
                self.bp.append(_Reading(when or None, (s, d), sp))
            else:
                for _v, p in pair.values():
                    self.issue(p, "ignored", "a systolic or diastolic pressure without its pair "
                               "taken at the same time: the reading is not used")
        newest = self._newest(self.bp, "blood-pressure reading")
        hr = self._newest(self.hr, "heart rate")
        if newest is None:
            if hr is not None:
                self.issue(hr.path, "ignored", "a heart rate without a blood pressure: the "
                           "intake's vitals need both pressures")
            return
        s, d = newest.value
        vitals: dict[str, Any] = {"systolic": s, "diastolic": d}
        if newest.when is not None:
            vitals["taken_on"] = newest.when.text
        else:
            self.issue(newest.path, "note", "a reading without a date: when it was taken stays "
                       "unanswered")
        if hr is not None:
            vitals["heart_rate"] = hr.value
            self.origins["vitals.heart_rate"] = hr.path
        self.data["vitals"] = vitals
        self.origins["vitals"] = newest.path

    def _fresh(self, when: _When | None, answer: str) -> bool:
        if when is None:
            return answer == "yes"
        age = (self.today - when.partial.nearest_to(self.today)).days
        return age <= STATUS_FRESH_DAYS.get(answer, 30)

    def _assemble_pregnancy(self) -> None:
        preg: dict[str, Any] = {}
        for key, readings, what in (("pregnant", self.pregnancy, "pregnancy status"),
                                    ("breastfeeding", self.breastfeeding, "breastfeeding status")):
            newest = self._newest(readings, what)
            if newest is None:
                continue
            answer = newest.value if key == "pregnant" else ("yes" if newest.value else "no")
            if self._fresh(newest.when, answer):
                preg[key] = newest.value
                self.origins[f"pregnancy.{key}"] = newest.path
            else:
                dated = f"from {newest.when.text}" if newest.when else "without a date"
                self.issue(newest.path, "ignored", f"a {what} ({answer}) {dated} is too old to "
                           "stand for now: asked again")
        if preg:
            self.data["pregnancy"] = preg

    def _assemble_labs(self) -> None:
        labs: dict[str, Any] = {}
        for key, readings in sorted(self.labs.items()):
            newest = self._newest(readings, f"{key.upper()} result")
            if newest is not None:
                labs[key] = newest.value
                self.origins[f"labs.{key}"] = newest.path
        if labs:
            self.data["labs"] = labs

    def _assemble_substances(self) -> None:
        newest = self._newest(self.smoking, "smoking status")
        if newest is None:
            return
        substances = self.data.get("substances")
        if not isinstance(substances, list):
            self.issue(newest.path, "note", f"smoking status ({newest.value}) read, but the "
                       "other substances were not asked, so substance use stays unanswered")
            return
        item: dict[str, Any] = {"substance": "nicotine", "status": newest.value}
        if newest.value == "current" and newest.when is not None:
            item["last_use"] = newest.when.text
        self.origins[f"substances[{len(substances)}]"] = newest.path
        substances.append(item)

    def _assemble_responses(self) -> dict[str, list[Any]]:
        """Merge the newest questionnaire response; returns the lists it answered."""
        from ketascreen.adapters.sdc import read_response

        ordered = sorted(self.responses, key=lambda r: r[0], reverse=True)
        for _authored, _res, older in ordered[1:]:
            self.issue(older, "ignored", "an older response to ketascreen's questionnaire: the "
                       "newest is used")
        _authored, res, path = ordered[0]
        answers = read_response(res, path)
        self.issues.extend(answers.issues)
        lists: dict[str, list[Any]] = {}
        for key, value in answers.data.items():
            where = answers.origins.get(key, path)
            if key in _LISTS:
                lists[key] = list(value)
            elif key == "pregnancy" and isinstance(value, dict):
                self._merge_pregnancy(value, answers.origins, path)
                continue
            elif key == "vitals" and isinstance(value, dict) and isinstance(
                    self.data.get("vitals"), dict):
                # The newest reading wins, whether the record's or the person's own.
                ours = str(self.data["vitals"].get("taken_on") or "")
                theirs = str(value.get("taken_on") or "")
                if theirs > ours:
                    self.issue(self.origins.get("vitals", path), "ignored", "an older "
                               "blood-pressure reading: the questionnaire gives a newer one")
                    self.data["vitals"] = value
                    for k in [k for k in self.origins if k.startswith("vitals")]:
                        del self.origins[k]
                else:
                    self.issue(where, "ignored", "the blood pressure answered in the "
                               "questionnaire is not newer than the record's reading")
                    continue
            elif key not in self.data or (key in self.weak and key != "id"):
                self.data[key] = value
            elif isinstance(value, dict) and isinstance(self.data[key], dict):
                for sub, v in value.items():
                    if sub not in self.data[key]:
                        self.data[key][sub] = v
                        self.origins.setdefault(f"{key}.{sub}", answers.origins.get(
                            f"{key}.{sub}", where))
                    elif self.data[key][sub] != v:
                        self.issue(answers.origins.get(f"{key}.{sub}", where), "note",
                                   f"{key}.{sub} is also in the record: the record's value is "
                                   "used", str(v))
                continue
            elif self.data[key] != value:
                self.issue(where, "note", f"{key} is also in the record: the record's value is "
                           "used", str(value))
                continue
            else:
                continue
            for k, p in answers.origins.items():
                if k == key or k.startswith((key + ".", key + "[")):
                    self.origins[k] = p
        return lists

    def _merge_pregnancy(self, answered: dict[str, Any], origins: dict[str, str],
                         path: str) -> None:
        """The record and the answers each count; where they disagree the worse one wins."""
        preg = self.data.setdefault("pregnancy", {})
        rank = {"no": 0, "unknown": 1, "yes": 2, False: 0, True: 2}
        for key, value in answered.items():
            where = origins.get(f"pregnancy.{key}", path)
            if key not in preg or rank.get(value, 0) > rank.get(preg[key], 0):
                if key in preg:
                    self.issue(where, "note", f"pregnancy.{key}: the answer ({value}) is worse "
                               f"than the record ({preg[key]}) and is used")
                preg[key] = value
                self.origins[f"pregnancy.{key}"] = where
            elif preg[key] != value:
                self.issue(where, "note", f"pregnancy.{key}: the record ({preg[key]}) is worse "
                           f"than the answer ({value}) and is used")


def _daily_mg(dose: dict[str, Any]) -> float | None:
    """Total mg a day of one Dosage, when its dose is in mg and its timing is regular."""
    amount: float | None = None
    for dr in _items(dose.get("doseAndRate")):
        q = _obj((_obj(dr) or {}).get("doseQuantity"))
        value = q.get("value") if q is not None else None
        if q is not None and isinstance(value, int | float) and not isinstance(value, bool) and (
                q.get("code") == "mg" or q.get("unit") == "mg"):
            amount = float(value)
            break
    repeat = _obj((_obj(dose.get("timing")) or {}).get("repeat")) or {}
    frequency, period = repeat.get("frequency", 1), repeat.get("period")
    per_day = {"h": 24.0, "d": 1.0, "wk": 1 / 7}.get(str(repeat.get("periodUnit")))
    if (amount is None or per_day is None or not isinstance(period, int | float)
            or period <= 0 or not isinstance(frequency, int) or frequency < 1):
        return None
    return amount * frequency * per_day / float(period)


# --------------------------------------------------------------------------------------------
# Public functions


def is_fhir(data: Any) -> bool:
    """Whether JSON data is a FHIR resource (it has a ``resourceType``) rather than an intake."""
    return isinstance(data, dict) and "resourceType" in data


def read_bundle(bundle: Any, *, kb: KnowledgeBase, today: date,
                searched: Collection[str] = ()) -> BundleIntake:
    """Read a FHIR R4 Bundle into contract intake data; never raises for its content.

    ``today`` is the screening date (ages and time windows count back from it). ``searched``
    names resource types the caller looked for on a FHIR server: finding none of
    ``Condition`` or ``MedicationStatement``/``MedicationRequest`` then means "none recorded".
    Without it a list with no resource in the Bundle stays unanswered, as the contract wants.
    Allergies and family history are never read as "none" from absence alone: only from an
    explicit "no known allergy" code or an empty "nil known" List.
    """
    return _Reader(kb, today, searched).read(bundle)


def bundle_to_intake(bundle: Any, *, kb: KnowledgeBase, today: date,
                     searched: Collection[str] = (), source: str | None = None,
                     ) -> tuple[Intake, BundleIntake]:
    """Read a Bundle and validate its intake; IntakeError (with FHIR paths) when invalid."""
    mapped = read_bundle(bundle, kb=kb, today=today, searched=searched)
    problems = [Problem(i.path, i.message + (f" (got {i.value!r})" if i.value else ""))
                for i in mapped.errors]
    try:
        intake = parse_intake(mapped.data, today=today, source=source)
    except IntakeError as exc:  # every problem at once, each at its FHIR path where known
        problems += [Problem(mapped.fhir_path(p.field) or p.field, p.message)
                     for p in exc.problems]
        raise IntakeError(problems, source) from exc
    if problems:
        raise IntakeError(problems, source)
    return intake, mapped


def annotate_assessment(assessment: Assessment, mapped: BundleIntake) -> Assessment:
    """The assessment with evidence and ``unrecognized`` pointing into the FHIR input, and the
    codings the adapter could not read added to ``unrecognized``."""
    from ketascreen.core.model import Evidence, Unrecognized

    def where(path: str) -> str:
        return mapped.fhir_path(path) or path

    findings = [f.model_copy(update={"evidence": [
        Evidence(field=where(e.field), value=e.value, meaning=e.meaning) for e in f.evidence]})
        for f in assessment.findings]
    unrecognized = [Unrecognized(field=where(u.field), value=u.value)
                    for u in assessment.unrecognized]
    seen = {u.field for u in unrecognized}
    for issue in mapped.issues:
        if issue.kind != "unrecognized" or issue.path in seen:
            continue
        unrecognized.append(Unrecognized(field=issue.path, value=issue.value or issue.message))
        seen.add(issue.path)
    return assessment.model_copy(update={"findings": findings, "unrecognized": unrecognized})
