"""The normalised-table layout for population screening: its tables, columns and answer fields.

This module is data: the readers check input files against it, the normaliser turns it into
typed SQL, ``docs/population.md`` explains it (a test checks that every column named here is
documented there). Each table is one row per fact, keyed by ``person_id``. Everything the
screening contract's intake carries has a place here, except ``extensions`` (never read by a
rule); see ``docs/population.md`` for the mapping.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ketascreen.core.model import ROUTES, SUBSTANCES

Kind = str  # "key" | "text" | "int" | "float" | "bool" | "date" | "pdate" | "enum"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: Kind
    doc: str
    required: bool = False
    values: tuple[str, ...] = ()
    lo: float | None = None
    hi: float | None = None
    max_len: int | None = None
    pattern: str | None = None  # a regular expression the trimmed text must match in full


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    doc: str
    columns: tuple[Column, ...]
    required: bool = False
    list_name: str | None = None  # the intake list this table carries, if any

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


PERSON_ID = Column("person_id", "key", "the person's identifier (text or integer), echoed as `id`",
                   required=True)
SEQ = Column("seq", "int", "optional: the item's place in the person's list (rows are ordered by "
             "`seq`, then by their content)", lo=0, hi=2**31 - 1)

SEX = ("female", "male", "intersex", "unknown")
STATUS = ("active", "remission", "history")
RELATIONS = ("mother", "father", "sibling", "child", "grandparent", "aunt_uncle", "cousin", "other")
SCHEDULES = ("daily", "as_needed", "stopped")
SUBSTANCE_STATUS = ("current", "past", "never")
INDICATIONS = ("depression", "treatment_resistant_depression", "bipolar_depression", "ptsd",
               "anxiety", "ocd", "chronic_pain", "fibromyalgia", "suicidal_ideation", "other")
LISTS = ("conditions", "family_history", "medications", "allergies", "substances")

PEOPLE = Table(
    "people",
    "one row per person",
    (
        PERSON_ID,
        Column("assessed_on", "date", "the screening date (YYYY-MM-DD); default: `--date`, or today"),
        Column("age", "int", "years", lo=0, hi=120),
        Column("sex", "enum", "sex assigned at birth (default `unknown`)", values=SEX),
        Column("route", "enum", "planned route; empty = assess every route", values=ROUTES),
        Column("setting", "enum", "where doses are taken (default `home` for oral, `clinic` "
               "otherwise)", values=("clinic", "home")),
        *(Column(f"{name}_asked", "bool", f"whether `{name}` was asked (see 'Asked or not')")
          for name in LISTS),
    ),
    required=True,
)

CONDITIONS = Table(
    "conditions",
    "the person's own diagnoses, current and past",
    (
        PERSON_ID, SEQ,
        Column("code", "text", "ICD-10-CM code, with or without the dot", max_len=16),
        Column("name", "text", "free text, when there is no code", max_len=200),
        Column("status", "enum", "default `active`", values=STATUS),
        Column("controlled", "bool", "for conditions that can be controlled"),
        Column("since", "pdate", "when it began or happened (YYYY, YYYY-MM or YYYY-MM-DD)"),
        Column("until", "pdate", "when it ended"),
    ),
    list_name="conditions",
)

FAMILY = Table(
    "family_history",
    "relatives' diagnoses",
    (
        PERSON_ID, SEQ,
        Column("code", "text", "ICD-10-CM code", max_len=16),
        Column("name", "text", "free text", max_len=200),
        Column("relation", "enum", "first-degree: mother, father, sibling, child", required=True,
               values=RELATIONS),
    ),
    list_name="family_history",
)

MEDICATIONS = Table(
    "medications",
    "everything taken as medicine, current and stopped",
    (
        PERSON_ID, SEQ,
        Column("name", "text", "generic or brand name", required=True, max_len=200),
        Column("rxnorm", "text", "RxNorm code (digits)", max_len=10, pattern=r"[0-9]{1,10}"),
        Column("dose", "text", "dose as the person states it", max_len=200),
        Column("daily_mg", "float", "total milligrams a day", lo=0, hi=100_000),
        Column("schedule", "enum", "default `daily`", values=SCHEDULES),
        Column("stopped_on", "pdate", "when it was stopped"),
    ),
    list_name="medications",
)

ALLERGIES = Table(
    "allergies",
    "drug allergies and hypersensitivities",
    (
        PERSON_ID, SEQ,
        Column("substance", "text", "what the person is allergic to", required=True, max_len=200),
        Column("reaction", "text", "what happened", max_len=500),
    ),
    list_name="allergies",
)

SUBSTANCE_USE = Table(
    "substances",
    "non-medical use of alcohol and drugs",
    (
        PERSON_ID, SEQ,
        Column("substance", "enum", "", required=True, values=SUBSTANCES),
        Column("status", "enum", "`current` = any use in the 30 days before the screening date",
               required=True, values=SUBSTANCE_STATUS),
        Column("disorder", "bool", "meets use-disorder criteria now or in the past"),
        Column("last_use", "pdate", "date of last use"),
        Column("recovery_support", "bool", "a programme, group, counsellor or sponsor"),
    ),
    list_name="substances",
)

VITALS = Table(
    "vitals",
    "resting seated blood-pressure readings; the latest counts",
    (
        PERSON_ID,
        Column("systolic", "int", "mmHg", required=True, lo=50, hi=300),
        Column("diastolic", "int", "mmHg, below the systolic", required=True, lo=20, hi=200),
        Column("heart_rate", "int", "beats per minute", lo=20, hi=250),
        Column("taken_on", "pdate", "when the reading was taken"),
    ),
)

ANSWERS_LONG = Table(
    "answers",
    "one row per answer: `field` names the answer, `value` holds it as text",
    (
        PERSON_ID,
        Column("field", "text", "an answer field (see the list below)", required=True),
        Column("value", "text", "the answer, as text", required=True),
    ),
)

TABLES: tuple[Table, ...] = (PEOPLE, CONDITIONS, FAMILY, MEDICATIONS, ALLERGIES, SUBSTANCE_USE,
                             VITALS, ANSWERS_LONG)
TABLE_BY_NAME = {t.name: t for t in TABLES}
LIST_TABLES: tuple[Table, ...] = (CONDITIONS, FAMILY, MEDICATIONS, ALLERGIES, SUBSTANCE_USE)


# --------------------------------------------------------------------------------------------
# Answer fields: the scalar answers of the intake's objects, named by their contract path.


@dataclass(frozen=True, slots=True)
class AnswerField:
    field: str
    kind: Kind
    values: tuple[str, ...] = ()
    lo: float | None = None
    hi: float | None = None
    max_len: int | None = None
    group: str = ""
    multi: bool = False  # several rows allowed (indications)
    column: str = ""


def column_of(path: str) -> str:
    """The canonical SQL column of an answer field: ``symptoms.suicidal`` → ``symptoms_suicidal``."""
    return re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_")


def _answer(path: str, kind: Kind, **kw: object) -> AnswerField:
    group = path.split(".", 1)[0].split("[", 1)[0]
    return AnswerField(path, kind, group=group, column=column_of(path), **kw)  # type: ignore[arg-type]


INSTRUMENT_ITEMS: dict[str, tuple[int, Kind, int]] = {
    # name: (items, kind, highest value)
    "phq9": (9, "int", 3),
    "gad7": (7, "int", 3),
    "audit_c": (3, "int", 4),
    "dast10": (10, "bool", 1),
    "pcl5": (20, "int", 4),
}
CSSRS_KEYS = ("wish_dead", "active_thoughts", "method", "intent", "plan", "behavior_3mo")


def _answer_fields() -> tuple[AnswerField, ...]:
    out: list[AnswerField] = [_answer("indications", "enum", values=INDICATIONS, multi=True)]
    for key in ("psychosis_now", "mania_now", "hallucinations_past"):
        out.append(_answer(f"symptoms.{key}", "bool"))
    out.append(_answer("symptoms.dissociation", "enum", values=("none", "occasional", "frequent")))
    out.append(_answer("symptoms.suicidal", "enum",
                       values=("none", "passive", "active", "plan_or_intent")))
    out.append(_answer("symptoms.suicide_attempt", "enum",
                       values=("none", "lifetime", "past_3_months")))
    out.append(_answer("symptoms.bp_red_flags", "bool"))
    for key in ("own_choice", "pressured", "can_consent", "expects_quick_fix", "support_person",
                "session_monitor", "safe_storage", "integration_support", "open_to_therapy",
                "can_attend_series", "ride_home"):
        out.append(_answer(f"readiness.{key}", "bool"))
    out.append(_answer("pregnancy.pregnant", "enum", values=("yes", "no", "unknown")))
    out.append(_answer("pregnancy.breastfeeding", "bool"))
    out.append(_answer("pregnancy.planning", "bool"))
    out.append(_answer("prior_ketamine.received", "bool"))
    out.append(_answer("prior_ketamine.misuse", "bool"))
    out.append(_answer("prior_ketamine.adverse_reaction", "text", max_len=500))
    out.append(_answer("labs.child_pugh", "enum", values=("A", "B", "C")))
    for key in ("alt", "ast", "alp", "ggt"):
        out.append(_answer(f"labs.{key}", "float", lo=0, hi=20_000))
    for name, (n, kind, top) in INSTRUMENT_ITEMS.items():
        for i in range(n):
            if kind == "bool":
                out.append(_answer(f"instruments.{name}[{i}]", "bool"))
            else:
                out.append(_answer(f"instruments.{name}[{i}]", "int", lo=0, hi=top))
    for i in range(13):
        out.append(_answer(f"instruments.mdq.items[{i}]", "bool"))
    out.append(_answer("instruments.mdq.clustered", "bool"))
    out.append(_answer("instruments.mdq.impairment", "enum",
                       values=("none", "minor", "moderate", "serious")))
    for key in CSSRS_KEYS:
        out.append(_answer(f"instruments.cssrs_screen.{key}", "bool"))
    return tuple(out)


ANSWER_FIELDS: tuple[AnswerField, ...] = _answer_fields()
ANSWER_BY_FIELD: dict[str, AnswerField] = {a.field: a for a in ANSWER_FIELDS}


def answer_column(path: str) -> str:
    return ANSWER_BY_FIELD[path].column


def table_files_doc() -> str:
    """Names of the tables, for messages."""
    return ", ".join(t.name for t in TABLES)
