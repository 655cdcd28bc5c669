"""The knowledge base as typed data: rules, their closed predicate language, vocabularies, protocols.

Nothing here reads files: ``ketascreen.knowledge.loader`` parses YAML into these models. The
predicate set is closed and typed on purpose, so that the same rules can later be compiled to
SQL for population screening. See ``docs/knowledge-base.md`` for the language with examples.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ketascreen.core.model import Category, Route, Severity

StatusName = Literal["active", "remission", "history"]
ScheduleName = Literal["daily", "as_needed", "stopped"]
SubstanceName = Literal[
    "alcohol", "opioids", "stimulants", "cocaine", "methamphetamine", "cannabis", "sedatives",
    "ketamine", "hallucinogens", "nicotine", "other",
]
_ALL_STATUSES: tuple[StatusName, ...] = ("active", "remission", "history")
_CURRENT_SCHEDULES: tuple[ScheduleName, ...] = ("daily", "as_needed")
_NOT_NICOTINE: tuple[SubstanceName, ...] = (
    "alcohol", "opioids", "stimulants", "cocaine", "methamphetamine", "cannabis", "sedatives",
    "ketamine", "hallucinogens", "other",
)
_ALL_ROUTES: tuple[Route, ...] = ("iv", "im", "intranasal", "oral")

RULE_ID = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
Number = float | int | str  # a literal, or "$param" naming one of the rule's params


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


# --------------------------------------------------------------------------------------------
# Predicates. In YAML each is a mapping with one key (its kind); the loader adds ``kind``.

AnswerField = Literal[
    "symptoms.psychosis_now",
    "symptoms.mania_now",
    "symptoms.hallucinations_past",
    "symptoms.dissociation",
    "symptoms.suicidal",
    "symptoms.suicide_attempt",
    "symptoms.bp_red_flags",
    "readiness.own_choice",
    "readiness.pressured",
    "readiness.can_consent",
    "readiness.expects_quick_fix",
    "readiness.support_person",
    "readiness.session_monitor",
    "readiness.safe_storage",
    "readiness.integration_support",
    "readiness.open_to_therapy",
    "readiness.can_attend_series",
    "readiness.ride_home",
    "pregnancy.pregnant",
    "pregnancy.breastfeeding",
    "pregnancy.planning",
    "prior_ketamine.received",
    "prior_ketamine.misuse",
    "prior_ketamine.adverse_reaction",
    "labs.child_pugh",
    "labs.alt",
    "labs.ast",
    "labs.alp",
    "labs.ggt",
]
ANSWER_FIELDS: tuple[str, ...] = AnswerField.__args__  # type: ignore[attr-defined]


class ConditionPredicate(_Data):
    """The person's own conditions. Codes: prefix ``F20``, range ``I20-I25``, wildcard ``F1?.?5``."""

    kind: Literal["condition"]
    codes: list[str] = Field(min_length=1)
    exclude: list[str] = Field(default_factory=list)
    # Words the condition's free-text name must contain (any of them), e.g. Z88.4 naming ketamine.
    name_has: list[str] = Field(default_factory=list)
    status: list[StatusName] = Field(default_factory=lambda: list(_ALL_STATUSES))
    controlled: bool | None = None
    # When the `controlled` filter meets an item without a `controlled` answer: ask for it
    # (unknown, the default), or treat the item as matching / not matching.
    unanswered: Literal["unknown", "match", "no_match"] = "unknown"
    within_days: Number | None = None
    undated: Literal["match", "no_match"] = "no_match"


class FamilyPredicate(_Data):
    kind: Literal["family"]
    codes: list[str] = Field(min_length=1)
    degree: Literal["first", "second", "any"] = "any"


class MedicationPredicate(_Data):
    kind: Literal["medication"]
    classes: list[str] = Field(min_length=1)
    schedule: list[ScheduleName] = Field(default_factory=lambda: list(_CURRENT_SCHEDULES))
    # Daily dose in diazepam-equivalent mg (daily_mg x the drug's equivalence factor).
    diazepam_mg_gt: Number | None = None
    diazepam_mg_lte: Number | None = None


class MedicationClassesPredicate(_Data):
    """At least ``at_least`` distinct classes of ``classes`` among current medications."""

    kind: Literal["medication_classes"]
    classes: list[str] = Field(min_length=2)
    at_least: int = Field(2, ge=2)


class SubstancePredicate(_Data):
    """Non-medical substance use, from ``substances`` and from F10-F19 codes in ``conditions``.

    patterns: ``current_use`` (any use within ``current_days``), ``current_disorder`` (a use
    disorder with use within ``remission_days``, or an active F1x.1x/F1x.2x code),
    ``remitted_disorder`` (a disorder whose last use is ``remission_days`` or more ago, or an
    F1x.11/F1x.21 code, or an F1x.1x/2x code in remission or history), ``any_disorder``,
    ``ever_used``.
    """

    kind: Literal["substance"]
    substances: list[SubstanceName] = Field(default_factory=lambda: list(_NOT_NICOTINE))
    pattern: Literal[
        "current_use", "current_disorder", "remitted_disorder", "any_disorder", "ever_used"
    ]
    recovery_support: bool | None = None
    current_days: Number = 30
    remission_days: Number = 90


class VitalPredicate(_Data):
    kind: Literal["vital"]
    field: Literal["systolic", "diastolic", "heart_rate"]
    gte: Number | None = None
    lt: Number | None = None

    @model_validator(mode="after")
    def _bound(self) -> VitalPredicate:
        if self.gte is None and self.lt is None:
            raise ValueError("a vital predicate needs gte or lt")
        return self


class AnswerPredicate(_Data):
    kind: Literal["answer"]
    field: AnswerField
    equals: bool | str | None = None
    any_of: list[str | bool] | None = Field(None, alias="in")
    present: bool | None = None
    gt: Number | None = None
    gte: Number | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)

    @model_validator(mode="after")
    def _one_test(self) -> AnswerPredicate:
        tests = [self.equals is not None, self.any_of is not None, self.present is not None,
                 self.gt is not None or self.gte is not None]
        if sum(tests) != 1:
            raise ValueError("an answer predicate needs exactly one of equals, in, present, gt/gte")
        return self


class AgePredicate(_Data):
    kind: Literal["age"]
    gte: Number | None = None
    lt: Number | None = None


class SexPredicate(_Data):
    kind: Literal["sex"]
    any_of: list[Literal["female", "male", "intersex", "unknown"]] = Field(alias="in")
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)


class SettingPredicate(_Data):
    kind: Literal["setting"]
    any_of: list[Literal["clinic", "home"]] = Field(alias="in")
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)


class IndicationPredicate(_Data):
    kind: Literal["indication"]
    any_of: list[str] = Field(alias="in")
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)


class AllergyPredicate(_Data):
    kind: Literal["allergy"]
    classes: list[str] = Field(min_length=1)


class UnresolvedPredicate(_Data):
    """Inputs the vocabularies could not resolve (also listed in ``unrecognized``)."""

    kind: Literal["unresolved"]
    list_: Literal["conditions", "medications", "allergies", "family_history"] = Field(
        alias="list"
    )
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)


class InstrumentPredicate(_Data):
    """A computed questionnaire result. Supplementary: absent questionnaires never fire."""

    kind: Literal["instrument"]
    name: Literal["phq9", "gad7", "audit_c", "dast10", "pcl5", "mdq", "cssrs_screen"]
    score_gte: Number | None = None
    score_lt: Number | None = None
    positive: bool | None = None
    item: int | None = Field(None, ge=1, le=20)
    item_gte: Number | None = None
    risk: list[Literal["low", "moderate", "high"]] | None = None


class AllPredicate(_Data):
    kind: Literal["all"]
    of: list[Predicate] = Field(min_length=1)


class AnyPredicate(_Data):
    kind: Literal["any"]
    of: list[Predicate] = Field(min_length=1)


class NotPredicate(_Data):
    kind: Literal["not"]
    of: Predicate


Predicate = Annotated[
    ConditionPredicate
    | FamilyPredicate
    | MedicationPredicate
    | MedicationClassesPredicate
    | SubstancePredicate
    | VitalPredicate
    | AnswerPredicate
    | AgePredicate
    | SexPredicate
    | SettingPredicate
    | IndicationPredicate
    | AllergyPredicate
    | UnresolvedPredicate
    | InstrumentPredicate
    | AllPredicate
    | AnyPredicate
    | NotPredicate,
    Field(discriminator="kind"),
]
PREDICATE_KINDS: tuple[str, ...] = (
    "condition", "family", "medication", "medication_classes", "substance", "vital", "answer",
    "age", "sex", "setting", "indication", "allergy", "unresolved", "instrument", "all", "any",
    "not",
)


def tag_predicates(raw: Any) -> Any:
    """Turn YAML's ``{condition: {...}}`` / ``{all: [...]}`` into ``{kind: ..., ...}`` recursively.

    Anything that is not of that shape is returned as is, for validation to report.
    """
    if isinstance(raw, dict) and len(raw) == 1:
        ((key, body),) = raw.items()
        if key in ("all", "any"):
            return {"kind": key, "of": [tag_predicates(x) for x in body] if isinstance(body, list) else body}
        if key == "not":
            return {"kind": "not", "of": tag_predicates(body)}
        if key in PREDICATE_KINDS and isinstance(body, dict):
            return {"kind": key, **body}
        if isinstance(key, str):
            return {"kind": key} if not isinstance(body, dict) else {"kind": key, **body}
    return raw


# --------------------------------------------------------------------------------------------
# Rules


class RuleExample(_Data):
    """An intake fragment merged onto the complete baseline intake, and what the rule does."""

    name: str | None = None
    intake: dict[str, Any] = Field(default_factory=dict)
    unset: list[str] = Field(default_factory=list, description="dotted paths to remove")
    expect: Literal["fires", "not_fired", "unknown"]


class Rule(_Data):
    id: str
    category: Category
    severity: Severity
    urgent: bool = False
    routes: list[Route] = Field(default_factory=lambda: list(_ALL_ROUTES))
    title: str = Field(min_length=3, max_length=120)
    when: Predicate
    params: dict[str, float] = Field(default_factory=dict)
    clinician: str = Field(min_length=10)
    patient: str = Field(min_length=10)
    actions: list[str] = Field(min_length=1)
    sources: list[str] = Field(min_length=1)
    claims: list[str] = Field(default_factory=list)
    temporary: bool = Field(
        False, description="the obstacle can pass: patient wording says 'not right now'"
    )
    safety_floor: Severity | None = Field(
        None, description="a protocol may not set a severity below this without an override"
    )
    implies: list[str] = Field(
        default_factory=list,
        description="for 'medication implies an unlisted diagnosis' rules: condition codes "
        "whose addition must never improve the decision (checked by the lint)",
    )
    note: str | None = Field(None, description="why the protocol treats it so, where it differs")
    examples: list[RuleExample] = Field(min_length=2)

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not RULE_ID.match(value):
            raise ValueError("rule ids are dotted lower-case words, e.g. cardio.bp_severe")
        return value

    @field_validator("when", mode="before")
    @classmethod
    def _tag(cls, value: Any) -> Any:
        return tag_predicates(value)


# --------------------------------------------------------------------------------------------
# Registries and vocabularies


class Source(_Data):
    citation: str
    url: str | None = None
    kind: Literal[
        "label", "guideline", "study", "review", "practice", "regulator", "code_set",
        "secondary", "instrument",
    ]
    unverified: bool = False


class Claim(_Data):
    article: Literal["A", "B"]
    text: str
    treatment: Literal["adopted", "adopted_with_change", "informational"]
    why: str | None = None
    features: list[str] = Field(
        default_factory=list, description="non-rule features that carry it (education topics…)"
    )


class EducationTopic(_Data):
    title: str
    patient: str
    clinician: str
    claims: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)


class AnswerSpec(_Data):
    klass: Literal["must_have", "confirm", "supplementary"] = Field(alias="class")
    question: str
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)


class ConditionTerm(_Data):
    code: str
    names: list[str] = Field(min_length=1)


class MedicationClass(_Data):
    label: str
    cns_depressant: bool = False


class Drug(_Data):
    name: str
    rxnorm: str | None = None
    classes: list[str] = Field(default_factory=list)
    brands: list[str] = Field(default_factory=list)
    synonyms: list[str] = Field(default_factory=list)
    diazepam_equivalent: float | None = Field(
        None, gt=0, description="mg of diazepam equal to 1 mg of this drug (Ashton)"
    )


class Allergen(_Data):
    name: str
    classes: list[str] = Field(default_factory=list)
    synonyms: list[str] = Field(default_factory=list)


class Vocabulary(_Data):
    icd10cm: frozenset[str] = Field(description="valid ICD-10-CM codes, no dot, upper case")
    icd10cm_release: str
    conditions: list[ConditionTerm]
    medication_classes: dict[str, MedicationClass]
    drugs: list[Drug]
    allergens: list[Allergen]


class KnowledgeBase(_Data):
    name: str
    version: str
    sha256: str
    rules: list[Rule]
    sources: dict[str, Source]
    claims: dict[str, Claim]
    education: dict[str, EducationTopic]
    answers: dict[str, AnswerSpec]
    texts: dict[str, str] = Field(default_factory=dict)
    vocabulary: Vocabulary

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)


# --------------------------------------------------------------------------------------------
# Protocols


class RuleOverride(_Data):
    enabled: bool = True
    severity: Severity | None = None
    urgent: bool | None = None
    params: dict[str, float] = Field(default_factory=dict)
    reason: str | None = None
    override_safety_floor: bool = False


class Protocol(_Data):
    name: str = Field(min_length=1)
    version: str = "1"
    description: str | None = None
    overrides: dict[str, RuleOverride] = Field(default_factory=dict)
    add_rules: list[Rule] = Field(default_factory=list)
    confirm_at_first_visit: list[str] = Field(default_factory=list)
    sha256: str = ""


