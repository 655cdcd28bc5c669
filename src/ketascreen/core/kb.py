"""The knowledge base as typed data: rules, their closed predicate language, vocabularies, protocols.

Nothing here reads files: ``ketascreen.knowledge.loader`` parses YAML into these models. The
predicate set is closed and typed on purpose, so that the same rules can later be compiled to
SQL for population screening. See ``docs/knowledge-base.md`` for the language with examples.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ketascreen.core.model import Category, Route, Severity, Sex

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


INSTRUMENT_ID = r"^[a-z][a-z0-9_]*$"


class InstrumentTrigger(_Data):
    """Another questionnaire's result that makes an absent questionnaire a must-have answer."""

    instrument: str = Field(pattern=INSTRUMENT_ID)
    item: int | None = Field(None, ge=1)
    item_gte: int | None = None
    score_gte: int | None = None
    positive: bool | None = None


class InstrumentPredicate(_Data):
    """A computed questionnaire result (``knowledge/instruments/<name>.yaml`` defines it).

    Supplementary: an absent questionnaire never fires and never blocks (the missing answer is
    ``instruments``), unless ``required_when`` holds for another questionnaire; then its absence
    is the missing answer ``instruments.<name>``, whose class answers.yaml gives (must-have).
    ``band`` names bands of the instrument's definition (C-SSRS: low, moderate, high).
    """

    kind: Literal["instrument"]
    name: str = Field(pattern=INSTRUMENT_ID)
    score_gte: Number | None = None
    score_lt: Number | None = None
    positive: bool | None = None
    item: int | None = Field(None, ge=1)
    item_gte: Number | None = None
    band: list[str] | None = Field(None, min_length=1)
    required_when: InstrumentTrigger | None = None


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
    instruments: dict[str, Instrument] = Field(
        default_factory=dict, description="validated questionnaires by intake key")

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


# --------------------------------------------------------------------------------------------
# Validated questionnaires (knowledge/instruments/*.yaml), scored by ketascreen.core.scoring.
# An instrument is data: adding one needs its YAML file (and, for the intake to carry its
# answers, an optional field in the contract's ``instruments`` object), never engine code.


class AnswerOption(_Data):
    """One point of an item's answer scale; ``label`` only where the licence allows it."""

    value: int
    label: str | None = None


class AnswerScale(_Data):
    """The answers an item takes.

    ``points``: integers ``min``..``max``; ``yes_no``: true/false, scored 1/0; ``choice``: one of
    ``choices`` (not part of any total; read by ``positive.requires``).
    """

    kind: Literal["points", "yes_no", "choice"]
    min: int = 0
    max: int = 1
    options: list[AnswerOption] = Field(default_factory=list)
    choices: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _shape(self) -> AnswerScale:
        if self.kind == "yes_no" and (self.min, self.max) != (0, 1):
            raise ValueError("a yes_no scale is scored 0 (no) and 1 (yes)")
        if self.kind == "points" and self.max <= self.min:
            raise ValueError("max must be above min")
        if self.kind == "choice" and not self.choices:
            raise ValueError("a choice scale lists its choices")
        for o in self.options:
            if not self.min <= o.value <= self.max:
                raise ValueError(f"option {o.value} is outside {self.min}..{self.max}")
        return self


class InstrumentItem(_Data):
    number: int = Field(ge=1, description="1-based, in the order the intake lists the answers")
    key: str | None = Field(None, description="the answer's key when answers are an object")
    topic: str = Field(min_length=3, description="what the item asks about, in our own words")
    text: str | None = Field(None, description="the verbatim wording, only where licensed")
    scale: str
    reverse: bool = False
    critical: str | None = Field(
        None, description="why this item is always shown with the score (PHQ-9 item 9)")


class InstrumentField(_Data):
    """An answer beside the items that scoring reads (MDQ: clustered, impairment)."""

    key: str
    topic: str = Field(min_length=3)
    text: str | None = None
    scale: str


class Cutoff(_Data):
    """A positive-screen cut-off on the total; the first whose ``sex`` matches applies."""

    score_gte: int
    sex: list[Sex] | None = Field(None, description="absent: everyone not matched before")
    label: str = Field(min_length=3, description="short, shown with the score: '4 or more (men)'")
    note: str | None = Field(None, description="its accuracy and provenance, for the docs")


class PositiveScreen(_Data):
    """When the screen is positive: every part given must hold."""

    cutoffs: list[Cutoff] = Field(default_factory=list)
    requires: dict[str, list[str | bool]] = Field(
        default_factory=dict, description="answers beside the items, e.g. impairment")
    any_item: list[int] = Field(
        default_factory=list, description="any of these items answered above its lowest value")

    @model_validator(mode="after")
    def _something(self) -> PositiveScreen:
        if not (self.cutoffs or self.requires or self.any_item):
            raise ValueError("a positive screen needs cutoffs, requires or any_item")
        if self.cutoffs and self.cutoffs[-1].sex is not None:
            raise ValueError("the last cut-off must apply to everyone (no sex)")
        return self


class Band(_Data):
    """A result band. The first band whose tests all hold is the result's; no tests = the rest."""

    label: str = Field(min_length=1)
    min: int | None = None
    max: int | None = None
    any_item: list[int] = Field(default_factory=list)
    positive: bool | None = None
    meaning: str | None = None

    def is_catch_all(self) -> bool:
        return (self.min is None and self.max is None and not self.any_item
                and self.positive is None)


class Scoring(_Data):
    total: Literal["sum", "none"] = "sum"
    positive: PositiveScreen
    bands: list[Band] = Field(min_length=1)


class Licence(_Data):
    holder: str
    terms: str
    ship_item_texts: bool = Field(description="whether the item wording may be shipped")
    why: str
    verified: bool = True


class Instrument(_Data):
    """One validated questionnaire: items, answer scales, scoring, bands, cut-offs, licence."""

    id: str = Field(pattern=INSTRUMENT_ID, description="its key in the intake's instruments")
    name: str
    title: str
    version: str
    citation: str
    sources: list[str] = Field(min_length=1)
    screens: str
    timeframe: str | None = None
    instructions: str | None = Field(None, description="verbatim stem, only where licensed")
    licence: Licence
    answers_under: str | None = Field(
        None, description="the item answers are the list under this key of an object (MDQ)")
    scales: dict[str, AnswerScale]
    items: list[InstrumentItem] = Field(min_length=1)
    fields: list[InstrumentField] = Field(default_factory=list)
    scoring: Scoring

    @model_validator(mode="after")
    def _consistent(self) -> Instrument:
        problems: list[str] = []
        numbers = [i.number for i in self.items]
        if numbers != list(range(1, len(numbers) + 1)):
            problems.append("items are numbered 1, 2, 3... in order")
        keyed = {i.key is not None for i in self.items}
        if len(keyed) > 1:
            problems.append("either every item has a key (answers are an object) or none has")
        if self.answers_under and True in keyed:
            problems.append("answers_under takes a list of answers: items have no key")
        for name, scale in [(f"item {i.number}", i.scale) for i in self.items] + [
                (f"field {f.key}", f.scale) for f in self.fields]:
            if scale not in self.scales:
                problems.append(f"{name}: unknown scale {scale!r}")
            elif name.startswith("item") and self.scales[scale].kind == "choice":
                problems.append(f"{name}: items are scored, a choice scale is not")
        if not self.licence.ship_item_texts:
            shipped = [f"item {i.number}" for i in self.items if i.text] + [
                f"field {f.key}" for f in self.fields if f.text]
            if self.instructions:
                shipped.append("instructions")
            shipped += [f"scale {k}" for k, sc in self.scales.items()
                        if sc.kind == "points" and any(o.label for o in sc.options)]
            if shipped:
                problems.append("the licence does not allow shipping the wording, yet these "
                                "have it: " + ", ".join(shipped))
        n = len(self.items)
        for where, numbers_used in [("positive.any_item", self.scoring.positive.any_item)] + [
                (f"band {b.label!r}", b.any_item) for b in self.scoring.bands]:
            if any(not 1 <= k <= n for k in numbers_used):
                problems.append(f"{where}: item numbers are 1..{n}")
        keys = {f.key for f in self.fields}
        for key in self.scoring.positive.requires:
            if key not in keys:
                problems.append(f"positive.requires: {key!r} is not one of the fields")
        if self.scoring.total == "none" and (
                self.scoring.positive.cutoffs
                or any(b.min is not None or b.max is not None for b in self.scoring.bands)):
            problems.append("without a total there can be no cut-offs or score bands")
        problems += self._band_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _band_problems(self) -> list[str]:
        bands = self.scoring.bands
        if all(b.min is not None and b.max is not None for b in bands):
            lo, hi = self.total_range()
            spans = sorted((b.min or 0, b.max or 0) for b in bands)
            expected = lo
            for start, end in spans:
                if start != expected or end < start:
                    return [f"score bands must cover {lo}..{hi} without gaps or overlaps"]
                expected = end + 1
            return [] if expected == hi + 1 else [
                f"score bands must cover {lo}..{hi} without gaps or overlaps"]
        if not bands[-1].is_catch_all():
            return ["the last band must have no tests (it takes every other result), or every "
                    "band must give min and max"]
        return []

    def total_range(self) -> tuple[int, int]:
        """The lowest and highest possible total."""
        lo = sum(self.scales[i.scale].min for i in self.items if i.scale in self.scales)
        hi = sum(self.scales[i.scale].max for i in self.items if i.scale in self.scales)
        return lo, hi

