"""The screening contract, version 1, as pydantic models: the Intake read and the Assessment returned.

Field names and enumerations follow ``screening-contract.md`` exactly. Extensions are optional
fields only. Unknown keys are rejected (a typo such as ``pregant`` must never be ignored).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ketascreen.core.dates import PartialDate

CONTRACT_VERSION = "1"

Route = Literal["iv", "im", "intranasal", "oral"]
ROUTES: tuple[Route, ...] = ("iv", "im", "intranasal", "oral")
Setting = Literal["clinic", "home"]
Sex = Literal["female", "male", "intersex", "unknown"]
Indication = Literal[
    "depression",
    "treatment_resistant_depression",
    "bipolar_depression",
    "ptsd",
    "anxiety",
    "ocd",
    "chronic_pain",
    "fibromyalgia",
    "suicidal_ideation",
    "other",
]
ConditionStatus = Literal["active", "remission", "history"]
Relation = Literal[
    "mother", "father", "sibling", "child", "grandparent", "aunt_uncle", "cousin", "other"
]
FIRST_DEGREE: frozenset[str] = frozenset({"mother", "father", "sibling", "child"})
Schedule = Literal["daily", "as_needed", "stopped"]
Substance = Literal[
    "alcohol",
    "opioids",
    "stimulants",
    "cocaine",
    "methamphetamine",
    "cannabis",
    "sedatives",
    "ketamine",
    "hallucinogens",
    "nicotine",
    "other",
]
SUBSTANCES: tuple[str, ...] = get_args(Substance)
SubstanceStatus = Literal["current", "past", "never"]
YesNoUnknown = Literal["yes", "no", "unknown"]
Dissociation = Literal["none", "occasional", "frequent"]
Suicidal = Literal["none", "passive", "active", "plan_or_intent"]
SuicideAttempt = Literal["none", "lifetime", "past_3_months"]
Severity = Literal["info", "precaution", "evaluation", "defer", "exclude"]
SEVERITIES: tuple[Severity, ...] = ("info", "precaution", "evaluation", "defer", "exclude")
Decision = Literal[
    "eligible",
    "eligible_with_precautions",
    "needs_evaluation",
    "incomplete",
    "defer",
    "not_recommended",
]
# The contract's ranking, most favourable first.
DECISION_RANK: dict[str, int] = {
    "eligible": 0,
    "eligible_with_precautions": 1,
    "needs_evaluation": 2,
    "incomplete": 3,
    "defer": 4,
    "not_recommended": 5,
}
SEVERITY_RANK: dict[str, int] = {s: i for i, s in enumerate(SEVERITIES)}
SEVERITY_DECISION: dict[str, Decision] = {
    "info": "eligible",
    "precaution": "eligible_with_precautions",
    "evaluation": "needs_evaluation",
    "defer": "defer",
    "exclude": "not_recommended",
}
Category = Literal[
    "psychosis",
    "family_psychosis",
    "bipolar",
    "dissociation",
    "trauma",
    "personality",
    "suicide_risk",
    "substance_use",
    "cardiovascular",
    "neurological",
    "pregnancy",
    "hepatic",
    "renal_urologic",
    "endocrine",
    "ocular",
    "bleeding",
    "respiratory",
    "interaction",
    "allergy",
    "age",
    "readiness",
    "consistency",
]


# Numbers are strict: JSON true must never become 1, nor "45" silently an age.
SInt = Annotated[int, Strict()]
SFloat = Annotated[float, Strict()]


def _partial_date(value: str) -> str:
    PartialDate.parse(value)
    return value


DateText = Annotated[str, AfterValidator(_partial_date)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Condition(_Strict):
    code: str | None = Field(None, min_length=1, max_length=16, description="ICD-10-CM code")
    name: str | None = Field(None, min_length=1, max_length=200, description="free text")
    status: ConditionStatus = "active"
    controlled: bool | None = None
    since: DateText | None = None
    until: DateText | None = None

    @model_validator(mode="after")
    def _code_or_name(self) -> Condition:
        if self.code is None and self.name is None:
            raise ValueError("a condition needs a code or a name (or both)")
        return self


class FamilyCondition(_Strict):
    code: str | None = Field(None, min_length=1, max_length=16)
    name: str | None = Field(None, min_length=1, max_length=200)
    relation: Relation

    @model_validator(mode="after")
    def _code_or_name(self) -> FamilyCondition:
        if self.code is None and self.name is None:
            raise ValueError("a family condition needs a code or a name (or both)")
        return self


class Medication(_Strict):
    name: str = Field(min_length=1, max_length=200)
    rxnorm: str | None = Field(None, pattern=r"^\d{1,10}$")
    dose: str | None = Field(None, max_length=200)
    daily_mg: SFloat | None = Field(None, ge=0, le=100_000)
    schedule: Schedule = "daily"
    stopped_on: DateText | None = None


class Allergy(_Strict):
    substance: str = Field(min_length=1, max_length=200)
    reaction: str | None = Field(None, max_length=500)


class SubstanceUse(_Strict):
    substance: Substance
    status: SubstanceStatus
    disorder: bool | None = None
    last_use: DateText | None = None
    recovery_support: bool | None = None


class Vitals(_Strict):
    systolic: SInt = Field(ge=50, le=300, description="mmHg, resting seated")
    diastolic: SInt = Field(ge=20, le=200, description="mmHg, below the systolic")
    heart_rate: SInt | None = Field(None, ge=20, le=250, description="beats per minute")
    taken_on: DateText | None = None

    @model_validator(mode="after")
    def _diastolic_below_systolic(self) -> Vitals:
        if self.diastolic >= self.systolic:
            raise ValueError(
                f"diastolic ({self.diastolic}) must be below systolic ({self.systolic})"
            )
        return self


class Labs(_Strict):
    child_pugh: Literal["A", "B", "C"] | None = None
    alt: SFloat | None = Field(None, ge=0, le=20_000, description="U/L")
    ast: SFloat | None = Field(None, ge=0, le=20_000, description="U/L")
    alp: SFloat | None = Field(None, ge=0, le=20_000, description="U/L")
    ggt: SFloat | None = Field(None, ge=0, le=20_000, description="U/L")


class Pregnancy(_Strict):
    pregnant: YesNoUnknown | None = None
    breastfeeding: bool | None = None
    planning: bool | None = None


class Symptoms(_Strict):
    psychosis_now: bool | None = None
    mania_now: bool | None = None
    hallucinations_past: bool | None = None
    dissociation: Dissociation | None = None
    suicidal: Suicidal | None = None
    suicide_attempt: SuicideAttempt | None = None
    bp_red_flags: bool | None = None


class Readiness(_Strict):
    own_choice: bool | None = None
    pressured: bool | None = None
    can_consent: bool | None = None
    expects_quick_fix: bool | None = None
    support_person: bool | None = None
    session_monitor: bool | None = None
    safe_storage: bool | None = None
    integration_support: bool | None = None
    open_to_therapy: bool | None = None
    can_attend_series: bool | None = None
    ride_home: bool | None = None


class PriorKetamine(_Strict):
    received: bool
    adverse_reaction: str | None = Field(None, max_length=500)
    misuse: bool = False


Item03 = Annotated[int, Strict(), Field(ge=0, le=3)]
Item04 = Annotated[int, Strict(), Field(ge=0, le=4)]


class MDQ(_Strict):
    items: list[Annotated[bool, Strict()]] = Field(min_length=13, max_length=13)
    clustered: bool
    impairment: Literal["none", "minor", "moderate", "serious"]


class CSSRSScreen(_Strict):
    wish_dead: bool
    active_thoughts: bool
    method: bool
    intent: bool
    plan: bool
    behavior_3mo: bool


class Instruments(_Strict):
    phq9: list[Item03] | None = Field(None, min_length=9, max_length=9)
    gad7: list[Item03] | None = Field(None, min_length=7, max_length=7)
    audit_c: list[Item04] | None = Field(None, min_length=3, max_length=3)
    dast10: list[Annotated[bool, Strict()]] | None = Field(None, min_length=10, max_length=10)
    pcl5: list[Item04] | None = Field(None, min_length=20, max_length=20)
    mdq: MDQ | None = None
    cssrs_screen: CSSRSScreen | None = None


class Intake(_Strict):
    """One person's screening intake (contract version 1).

    ``conditions``, ``medications`` and ``substances`` are required by the contract; when one is
    absent the engine reports it in ``missing`` as a must-have answer rather than guessing
    "none". Validation context ``{"today": date}`` supplies the default screening date.
    """

    id: str | None = Field(None, max_length=200)
    assessed_on: date | None = None
    age: SInt | None = Field(None, ge=0, le=120)
    sex: Sex = "unknown"
    route: Route | None = None
    setting: Setting | None = None
    indications: list[Indication] | None = None
    conditions: list[Condition] | None = None
    family_history: list[FamilyCondition] | None = None
    medications: list[Medication] | None = None
    allergies: list[Allergy] | None = None
    substances: list[SubstanceUse] | None = None
    vitals: Vitals | None = None
    labs: Labs | None = None
    pregnancy: Pregnancy | None = None
    symptoms: Symptoms | None = None
    readiness: Readiness | None = None
    prior_ketamine: PriorKetamine | None = None
    instruments: Instruments | None = None
    extensions: dict[str, Any] | None = None

    @field_validator("assessed_on", mode="before")
    @classmethod
    def _strict_date(cls, value: object) -> object:
        if isinstance(value, str) and not (
            len(value) == 10 and value[4] == "-" and value[7] == "-"
        ):
            raise ValueError("must be a full date written YYYY-MM-DD")
        return value

    @model_validator(mode="after")
    def _dates_not_after_screening(self, info: ValidationInfo) -> Intake:
        as_of = self.assessed_on
        if as_of is None and isinstance(info.context, dict):
            today = info.context.get("today")
            as_of = today if isinstance(today, date) else None
        if as_of is None:
            return self
        late: list[str] = []
        for path, text in self.dated_fields():
            if PartialDate.parse(text).earliest() > as_of:
                late.append(f"{path} ({text})")
        if late:
            raise ValueError(
                "dates after the screening date " + as_of.isoformat() + ": " + ", ".join(late))
        return self

    def dated_fields(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for i, c in enumerate(self.conditions or ()):
            if c.since:
                out.append((f"conditions[{i}].since", c.since))
            if c.until:
                out.append((f"conditions[{i}].until", c.until))
        for i, m in enumerate(self.medications or ()):
            if m.stopped_on:
                out.append((f"medications[{i}].stopped_on", m.stopped_on))
        for i, s in enumerate(self.substances or ()):
            if s.last_use:
                out.append((f"substances[{i}].last_use", s.last_use))
        if self.vitals and self.vitals.taken_on:
            out.append(("vitals.taken_on", self.vitals.taken_on))
        return out


# --------------------------------------------------------------------------------------------
# Assessment


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Evidence(_Out):
    field: str = Field(description="path of the input, e.g. conditions[1].code")
    value: str = Field(description="the input as given")
    meaning: str | None = Field(None, description="what ketascreen resolved it to")


class SourceRef(_Out):
    id: str
    citation: str
    url: str | None = None


class Finding(_Out):
    rule: str
    category: Category
    severity: Severity
    urgent: bool
    title: str
    clinician: str
    patient: str
    evidence: list[Evidence]
    actions: list[str]
    sources: list[SourceRef]
    claims: list[str]
    routes: list[Route]


class MissingAnswer(_Out):
    field: str
    question: str
    needed_by: list[str]
    blocking: bool


class Unrecognized(_Out):
    field: str
    value: str


class Score(_Out):
    instrument: str
    score: int | None = None
    band: str | None = None
    positive: bool | None = None
    detail: str | None = None
    # Optional extensions: which form of the questionnaire was scored, and its reference.
    version: str | None = None
    citation: str | None = None


class ProtocolInfo(_Out):
    name: str
    version: str
    sha256: str
    deviations: list[str]


class KnowledgeBaseInfo(_Out):
    version: str
    sha256: str


class Summary(_Out):
    clinician: str
    patient: str


class TraceEntry(_Out):
    rule: str
    route: str = Field(description="'all', or the route it was evaluated for")
    result: Literal["fired", "not_fired", "unknown", "disabled"]
    why: str


class Assessment(_Out):
    id: str | None
    as_of: date
    decision: Decision
    urgent: bool
    findings: list[Finding]
    missing: list[MissingAnswer]
    unrecognized: list[Unrecognized]
    routes: dict[Route, Decision]
    scores: dict[str, Score]
    protocol: ProtocolInfo
    knowledge_base: KnowledgeBaseInfo
    # Optional extensions (the contract allows added optional fields).
    contract_version: str = CONTRACT_VERSION
    route: Route | None = Field(None, description="the route asked about, null = every route")
    summary: Summary | None = None
    notes: list[str] = Field(default_factory=list)
    trace: list[TraceEntry] | None = None
