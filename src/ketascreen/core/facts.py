"""One intake, normalised once into the facts that predicates read.

Codes are resolved, drugs mapped to classes, dates turned into days before the screening date
(on the safe reading), substance use gathered from ``substances`` and F10-F19 codes, and
everything the vocabularies could not resolve collected for ``unrecognized``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from ketascreen.core.dates import days_before
from ketascreen.core.kb import Instrument
from ketascreen.core.model import FIRST_DEGREE, Intake, Score, Unrecognized
from ketascreen.core.scoring import score_instruments
from ketascreen.core.vocab import Lexicon, display_code, normalize_name

_PREGNANCY_ALIASES = dict.fromkeys(
    ("pregnancy.pregnant", "pregnancy.breastfeeding", "pregnancy.planning"), "pregnancy")
NOT_APPLICABLE = object()  # answer to a question that does not apply (pregnancy for a man)
STALE_DAYS = 90  # a blood-pressure reading older than this is not a reading (contract)

# F1x code → substance in the contract's vocabulary (F17 nicotine is never a disorder finding).
_F1X_SUBSTANCE = {
    "F10": "alcohol", "F11": "opioids", "F12": "cannabis", "F13": "sedatives",
    "F14": "cocaine", "F15": "stimulants", "F16": "hallucinogens", "F18": "other",
    "F19": "other",
}


@dataclass(slots=True)
class ConditionFact:
    path: str
    code: str | None  # normalised, no dot; None when unresolved
    given: str
    status: str
    controlled: bool | None
    since_days: int | None
    name: str = ""  # the free-text name, normalised


@dataclass(slots=True)
class FamilyFact:
    path: str
    code: str | None
    given: str
    first_degree: bool


@dataclass(slots=True)
class MedicationFact:
    path: str
    given: str
    resolved: str | None
    classes: frozenset[str]
    schedule: str
    daily_mg: float | None
    diazepam_equivalent: float | None


@dataclass(slots=True)
class AllergyFact:
    path: str
    given: str
    classes: frozenset[str] | None


@dataclass(slots=True)
class SubstanceFact:
    path: str
    substance: str
    status: str  # current | past | never (codes: current when active and not in remission)
    disorder: bool | None
    last_use_days: int | None
    recovery_support: bool | None
    from_code: bool
    remission_code: bool
    given: str


@dataclass(slots=True)
class Facts:
    as_of: date
    age: int | None
    sex: str
    route: str | None
    setting: dict[str, str]
    indications: frozenset[str]
    conditions: list[ConditionFact] | None
    family: list[FamilyFact] | None
    medications: list[MedicationFact] | None
    allergies: list[AllergyFact] | None
    substances: list[SubstanceFact] | None
    substances_listed: bool
    systolic: int | None
    diastolic: int | None
    heart_rate: int | None
    vitals_given: bool
    vitals_stale: bool
    vitals_dated: bool
    answers: dict[str, object]
    scores: dict[str, Score]
    instrument_items: dict[str, list[int]]
    aliases: dict[str, str] = field(default_factory=dict)
    unrecognized: list[Unrecognized] = field(default_factory=list)


def prior_ketamine_answers(intake: Intake) -> dict[str, object]:
    """The prior-ketamine answers by contract path (an empty reaction text is no answer)."""
    pk = intake.prior_ketamine
    if pk is None:
        return {}
    out: dict[str, object] = {"prior_ketamine.received": pk.received,
                              "prior_ketamine.misuse": pk.misuse}
    if pk.adverse_reaction:
        out["prior_ketamine.adverse_reaction"] = pk.adverse_reaction
    return out


def _answers(intake: Intake, pregnancy_applies: bool) -> dict[str, object]:
    out: dict[str, object] = {}
    for group in ("symptoms", "readiness"):
        obj = getattr(intake, group)
        if obj is not None:
            for key, value in obj.model_dump().items():
                if value is not None:
                    out[f"{group}.{key}"] = value
    p = intake.pregnancy
    for key in ("pregnant", "breastfeeding", "planning"):
        value = getattr(p, key) if p is not None else None
        if value is not None:
            out[f"pregnancy.{key}"] = value
        elif not pregnancy_applies:
            out[f"pregnancy.{key}"] = NOT_APPLICABLE
    out.update(prior_ketamine_answers(intake))
    if intake.labs is not None:
        for key, value in intake.labs.model_dump().items():
            if value is not None:
                out[f"labs.{key}"] = value
    return out


def pregnancy_applies(intake: Intake) -> bool:
    if intake.sex == "male":
        return False
    return intake.age is None or 10 <= intake.age <= 60


def build_facts(intake: Intake, lex: Lexicon, as_of: date, *,
                instruments: Mapping[str, Instrument] | None = None) -> Facts:
    """The facts of one intake; ``instruments`` are the questionnaire definitions that score
    its ``instruments`` answers (answers without a definition are an error, never dropped)."""
    unrecognized: list[Unrecognized] = []

    conditions: list[ConditionFact] | None = None
    substance_facts: list[SubstanceFact] = []
    if intake.conditions is not None:
        conditions = []
        for i, c in enumerate(intake.conditions):
            path = f"conditions[{i}]"
            resolved = lex.condition(c.code, c.name)
            given = c.code or c.name or ""
            if c.code is not None and c.name is not None:
                given = f"{c.code} ({c.name})"
            if resolved is None:
                field_name = f"{path}.code" if c.code is not None else f"{path}.name"
                unrecognized.append(Unrecognized(field=field_name, value=c.code or c.name or ""))
            code = resolved.code if resolved else None
            conditions.append(ConditionFact(
                path=path, code=code, given=given, status=c.status, controlled=c.controlled,
                since_days=days_before(as_of, c.since),
                name=normalize_name(c.name) if c.name else "",
            ))
            if code and code[:3] in _F1X_SUBSTANCE:
                pattern = code[3:4]
                disorder = pattern in ("1", "2")
                remission_code = code[3:5] in ("11", "21")
                in_remission = remission_code or c.status != "active"
                substance_facts.append(SubstanceFact(
                    path=path, substance=_F1X_SUBSTANCE[code[:3]],
                    status="past" if in_remission else "current", disorder=disorder,
                    last_use_days=None, recovery_support=None, from_code=True,
                    remission_code=in_remission, given=display_code(code),
                ))

    family: list[FamilyFact] | None = None
    if intake.family_history is not None:
        family = []
        for i, f in enumerate(intake.family_history):
            path = f"family_history[{i}]"
            resolved = lex.condition(f.code, f.name)
            if resolved is None:
                field_name = f"{path}.code" if f.code is not None else f"{path}.name"
                unrecognized.append(Unrecognized(field=field_name, value=f.code or f.name or ""))
            family.append(FamilyFact(path=path, code=resolved.code if resolved else None,
                                     given=f"{f.code or f.name} ({f.relation})",
                                     first_degree=f.relation in FIRST_DEGREE))

    medications: list[MedicationFact] | None = None
    if intake.medications is not None:
        medications = []
        for i, m in enumerate(intake.medications):
            path = f"medications[{i}]"
            info = lex.drug(m.name, m.rxnorm)
            if info is None:
                unrecognized.append(Unrecognized(field=f"{path}.name", value=m.name))
            medications.append(MedicationFact(
                path=path, given=m.name, resolved=info.name if info else None,
                classes=info.classes if info else frozenset(), schedule=m.schedule,
                daily_mg=m.daily_mg,
                diazepam_equivalent=info.diazepam_equivalent if info else None,
            ))

    allergies: list[AllergyFact] | None = None
    if intake.allergies is not None:
        allergies = []
        for i, a in enumerate(intake.allergies):
            path = f"allergies[{i}]"
            classes = lex.allergy(a.substance)
            if classes is None:
                unrecognized.append(Unrecognized(field=f"{path}.substance", value=a.substance))
            allergies.append(AllergyFact(path=path, given=a.substance, classes=classes))

    substances: list[SubstanceFact] | None = None
    if intake.substances is not None or substance_facts:
        substances = []
        for i, s in enumerate(intake.substances or ()):
            substances.append(SubstanceFact(
                path=f"substances[{i}]", substance=s.substance, status=s.status,
                disorder=s.disorder, last_use_days=days_before(as_of, s.last_use),
                recovery_support=s.recovery_support, from_code=False, remission_code=False,
                given=s.substance,
            ))
        # A code-derived disorder borrows recovery support from the same substance's entry.
        for sf in substance_facts:
            for listed in substances:
                if listed.substance == sf.substance and listed.recovery_support is not None:
                    sf.recovery_support = listed.recovery_support
        substances.extend(substance_facts)

    v = intake.vitals
    stale = False
    dated = False
    if v is not None and v.taken_on is not None:
        dated = True
        age_days = days_before(as_of, v.taken_on)
        stale = age_days is not None and age_days > STALE_DAYS
    use_vitals = v is not None and not stale
    applies = pregnancy_applies(intake)
    # Questionnaires are scored from their definitions (data); see ketascreen.core.scoring.
    if instruments is None and intake.instruments is not None:
        raise ValueError("build_facts needs instruments=kb.instruments (the questionnaire "
                         "definitions) to score the intake's instruments")
    scored = score_instruments(intake.instruments, intake.sex, instruments or {})
    scores = {key: s.score for key, s in scored.items()}
    items = {key: list(s.items) for key, s in scored.items()}
    routes = ("iv", "im", "intranasal", "oral")
    setting: dict[str, str] = {
        r: intake.setting or ("home" if r == "oral" else "clinic") for r in routes
    }
    return Facts(
        as_of=as_of,
        age=intake.age,
        sex=intake.sex,
        route=intake.route,
        setting=setting,
        indications=frozenset(intake.indications or ()),
        conditions=conditions,
        family=family,
        medications=medications,
        allergies=allergies,
        substances=substances,
        substances_listed=intake.substances is not None,
        systolic=v.systolic if use_vitals and v else None,
        diastolic=v.diastolic if use_vitals and v else None,
        heart_rate=v.heart_rate if use_vitals and v else None,
        vitals_given=v is not None,
        vitals_stale=stale,
        vitals_dated=dated,
        answers=_answers(intake, applies),
        scores=scores,
        instrument_items=items,
        aliases=_PREGNANCY_ALIASES if intake.pregnancy is None else {},
        unrecognized=unrecognized,
    )
