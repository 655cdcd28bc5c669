"""The predicate language, compiled once per knowledge base into fast three-valued closures.

Each compiled predicate takes (facts, route) and returns ``(value, evidence, missing)``:
``value`` is FALSE, TRUE or UNKNOWN (Kleene logic); ``evidence`` the inputs that made it true, as
``(field, value, meaning)`` triples; ``missing`` the answer paths whose absence made it unknown.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ketascreen.core import kb
from ketascreen.core.facts import NOT_APPLICABLE, Facts, SubstanceFact
from ketascreen.core.vocab import code_matcher, code_matches, display_code

FALSE, TRUE, UNKNOWN = 0, 1, 2
Ev = tuple[str, str, str | None]
Result = tuple[int, tuple[Ev, ...], tuple[str, ...]]
Compiled = Callable[[Facts, str | None], Result]

_NO: Result = (FALSE, (), ())


class CompileError(ValueError):
    """A predicate refers to a parameter the rule does not define, or a malformed code."""


def resolve_number(value: kb.Number | None, params: dict[str, float]) -> float | None:
    """A predicate's number: a literal, or a ``$param`` of the rule (CompileError if neither)."""
    if value is None:
        return None
    if isinstance(value, str):
        if not value.startswith("$"):
            try:
                return float(value)
            except ValueError as exc:
                raise CompileError(f"{value!r} is neither a number nor a $param") from exc
        name = value[1:]
        if name not in params:
            raise CompileError(f"parameter {value!r} is not defined in the rule's params")
        return float(params[name])
    return float(value)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def compile_predicate(pred: Any, params: dict[str, float]) -> Compiled:
    kind = pred.kind
    builder = _BUILDERS.get(kind)
    if builder is None:
        raise CompileError(f"unknown predicate {kind!r}")
    return builder(pred, params)


# ---------------------------------------------------------------------------- combinators


def _all(p: kb.AllPredicate, params: dict[str, float]) -> Compiled:
    parts = [compile_predicate(x, params) for x in p.of]

    def ev(f: Facts, route: str | None) -> Result:
        evidence: list[Ev] = []
        missing: list[str] = []
        unknown = False
        for part in parts:
            v, e, m = part(f, route)
            if v == FALSE:
                return _NO
            if v == UNKNOWN:
                unknown = True
                missing.extend(m)
            else:
                evidence.extend(e)
        if unknown:
            return (UNKNOWN, (), tuple(missing))
        return (TRUE, tuple(evidence), ())

    return ev


def _any(p: kb.AnyPredicate, params: dict[str, float]) -> Compiled:
    parts = [compile_predicate(x, params) for x in p.of]

    def ev(f: Facts, route: str | None) -> Result:
        evidence: list[Ev] = []
        missing: list[str] = []
        hit = False
        unknown = False
        for part in parts:
            v, e, m = part(f, route)
            if v == TRUE:
                hit = True
                evidence.extend(e)
            elif v == UNKNOWN:
                unknown = True
                missing.extend(m)
        if hit:
            return (TRUE, tuple(evidence), ())
        if unknown:
            return (UNKNOWN, (), tuple(missing))
        return _NO

    return ev


def _not(p: kb.NotPredicate, params: dict[str, float]) -> Compiled:
    inner = compile_predicate(p.of, params)
    looked_at = describe_fields(p.of)

    def ev(f: Facts, route: str | None) -> Result:
        v, _e, m = inner(f, route)
        if v == UNKNOWN:
            return (UNKNOWN, (), m)
        if v == TRUE:
            return _NO
        return (TRUE, tuple((name, describe_value(f, name), "none matching") for name in looked_at),
                ())

    return ev


def describe_fields(pred: Any) -> list[str]:
    """The top-level input fields a predicate reads (for the evidence of a negation)."""
    kind = pred.kind
    if kind in ("all", "any"):
        out: list[str] = []
        for x in pred.of:
            for name in describe_fields(x):
                if name not in out:
                    out.append(name)
        return out
    if kind == "not":
        return describe_fields(pred.of)
    return {
        "condition": ["conditions"], "family": ["family_history"],
        "medication": ["medications"], "medication_classes": ["medications"],
        "substance": ["substances"], "vital": ["vitals"], "age": ["age"], "sex": ["sex"],
        "setting": ["setting"], "indication": ["indications"], "allergy": ["allergies"],
        "unresolved": [getattr(pred, "list_", "")], "instrument": ["instruments"],
        "answer": [getattr(pred, "field", "")],
    }.get(kind, [kind])


def describe_value(f: Facts, name: str) -> str:
    lists: dict[str, list[Any] | None] = {
        "conditions": f.conditions, "family_history": f.family, "medications": f.medications,
        "substances": f.substances, "allergies": f.allergies,
    }
    if name in lists:
        items = lists[name]
        if not items:
            return "none reported"
        return ", ".join(str(getattr(x, "given", "")) for x in items)
    if name == "age":
        return str(f.age)
    if name == "sex":
        return f.sex
    if name == "indications":
        return ", ".join(sorted(f.indications)) or "none listed"
    if name in f.answers:
        return str(f.answers[name])
    return "-"


# ---------------------------------------------------------------------------- leaves


def _matchers(codes: list[str]) -> list[tuple[str, str, str]]:
    try:
        return [code_matcher(c) for c in codes]
    except ValueError as exc:
        raise CompileError(str(exc)) from exc


def _code_in(code: str, include: list[tuple[str, str, str]],
             exclude: list[tuple[str, str, str]]) -> bool:
    if not any(code_matches(code, m) for m in include):
        return False
    return not any(code_matches(code, m) for m in exclude)


def _code_memo(codes: list[str], excluded: list[str]) -> Callable[[str], bool]:
    """A membership test for codes, memoised per code (the code set is finite)."""
    include = _matchers(codes)
    exclude = _matchers(excluded)
    memo: dict[str, bool] = {}

    def test(code: str) -> bool:
        hit = memo.get(code)
        if hit is None:
            hit = memo[code] = _code_in(code, include, exclude)
        return hit

    return test


def _condition(p: kb.ConditionPredicate, params: dict[str, float]) -> Compiled:
    matches = _code_memo(p.codes, p.exclude)
    words = tuple(w.lower() for w in p.name_has)
    statuses = frozenset(p.status)
    controlled = p.controlled
    unanswered = p.unanswered
    within = resolve_number(p.within_days, params)
    undated_match = p.undated == "match"

    def ev(f: Facts, route: str | None) -> Result:
        conds = f.conditions
        if conds is None:
            return (UNKNOWN, (), ("conditions",))
        evidence: list[Ev] = []
        missing: list[str] = []
        for c in conds:
            if c.code is None or c.status not in statuses or not matches(c.code):
                continue
            if words and not any(w in c.name for w in words):
                continue
            if within is not None:
                if c.since_days is None:
                    if not undated_match:
                        continue
                elif c.since_days > within:
                    continue
            if controlled is not None:
                if c.controlled is None:
                    if unanswered == "unknown":
                        missing.append(f"{c.path}.controlled")
                    if unanswered != "match":
                        continue
                elif c.controlled != controlled:
                    continue
            meaning = f"{display_code(c.code)}, {c.status}"
            if c.controlled is not None:
                meaning += ", controlled" if c.controlled else ", not controlled"
            elif controlled is not None:
                meaning += ", control not stated"
            evidence.append((c.path, c.given, meaning))
        if evidence:
            return (TRUE, tuple(evidence), ())
        if missing:
            return (UNKNOWN, (), tuple(missing))
        return _NO

    return ev


def _family(p: kb.FamilyPredicate, params: dict[str, float]) -> Compiled:
    matches = _code_memo(p.codes, [])
    degree = p.degree

    def ev(f: Facts, route: str | None) -> Result:
        if f.family is None:
            return (UNKNOWN, (), ("family_history",))
        evidence: list[Ev] = []
        for x in f.family:
            if x.code is None or not matches(x.code):
                continue
            if degree == "first" and not x.first_degree:
                continue
            if degree == "second" and x.first_degree:
                continue
            evidence.append((x.path, x.given,
                             "first-degree relative" if x.first_degree else "more distant relative"))
        return (TRUE, tuple(evidence), ()) if evidence else _NO

    return ev


def _medication(p: kb.MedicationPredicate, params: dict[str, float]) -> Compiled:
    classes = frozenset(p.classes)
    schedules = frozenset(p.schedule)
    gt = resolve_number(p.diazepam_mg_gt, params)
    lte = resolve_number(p.diazepam_mg_lte, params)

    def ev(f: Facts, route: str | None) -> Result:
        meds = f.medications
        if meds is None:
            return (UNKNOWN, (), ("medications",))
        evidence: list[Ev] = []
        missing: list[str] = []
        for m in meds:
            if m.schedule not in schedules or not (m.classes & classes):
                continue
            meaning = f"{m.resolved}: {', '.join(sorted(m.classes & classes))}"
            if gt is not None or lte is not None:
                if m.daily_mg is None or m.diazepam_equivalent is None:
                    missing.append(f"{m.path}.dose")
                    continue
                eq = m.daily_mg * m.diazepam_equivalent
                if gt is not None and not eq > gt:
                    continue
                if lte is not None and not eq <= lte:
                    continue
                meaning += f" ({_fmt(round(eq, 1))} mg/day diazepam-equivalent)"
            evidence.append((m.path, m.given, meaning))
        if evidence:
            return (TRUE, tuple(evidence), ())
        if missing:
            return (UNKNOWN, (), tuple(missing))
        return _NO

    return ev


def _medication_classes(p: kb.MedicationClassesPredicate, params: dict[str, float]) -> Compiled:
    classes = frozenset(p.classes)
    at_least = p.at_least

    def ev(f: Facts, route: str | None) -> Result:
        meds = f.medications
        if meds is None:
            return (UNKNOWN, (), ("medications",))
        found: set[str] = set()
        evidence: list[Ev] = []
        for m in meds:
            if m.schedule == "stopped":
                continue
            hit = m.classes & classes
            if hit:
                found |= hit
                evidence.append((m.path, m.given, f"{m.resolved}: {', '.join(sorted(hit))}"))
        if len(found) >= at_least:
            return (TRUE, tuple(evidence), ())
        return _NO

    return ev


def _substance_item(
    s: SubstanceFact, pattern: str, current_days: float, remission_days: float
) -> tuple[int, str | None]:
    """Value for one item and, when unknown, the missing answer's path."""
    if s.from_code:
        if pattern == "current_use":
            return (TRUE if s.status == "current" else FALSE, None)
        if pattern == "current_disorder":
            return (TRUE if s.disorder and s.status == "current" else FALSE, None)
        if pattern == "remitted_disorder":
            return (TRUE if s.disorder and s.remission_code else FALSE, None)
        if pattern == "any_disorder":
            return (TRUE if s.disorder else FALSE, None)
        return (TRUE, None)  # ever_used
    never = s.status == "never" and not s.disorder
    if pattern == "ever_used":
        return (FALSE if never else TRUE, None)
    recent = s.status == "current" or (
        s.last_use_days is not None and s.last_use_days <= current_days)
    if pattern == "current_use":
        return (FALSE if never else (TRUE if recent else FALSE), None)
    if never:
        return (FALSE, None)
    if s.disorder is None:
        return (UNKNOWN, f"{s.path}.disorder")
    if not s.disorder:
        return (FALSE, None)
    if pattern == "any_disorder":
        return (TRUE, None)
    if recent:
        return (TRUE if pattern == "current_disorder" else FALSE, None)
    if s.last_use_days is None:
        return (UNKNOWN, f"{s.path}.last_use")
    within = s.last_use_days < remission_days
    if pattern == "current_disorder":
        return (TRUE if within else FALSE, None)
    return (FALSE if within else TRUE, None)  # remitted_disorder


def _substance(p: kb.SubstancePredicate, params: dict[str, float]) -> Compiled:
    wanted = frozenset(p.substances)
    pattern = p.pattern
    support = p.recovery_support
    current_days = resolve_number(p.current_days, params) or 30.0
    remission_days = resolve_number(p.remission_days, params) or 90.0

    def ev(f: Facts, route: str | None) -> Result:
        subs = f.substances
        if subs is None:
            return (UNKNOWN, (), ("substances",))
        evidence: list[Ev] = []
        missing: list[str] = []
        for s in subs:
            if s.substance not in wanted:
                continue
            v, miss = _substance_item(s, pattern, current_days, remission_days)
            if v == UNKNOWN:
                missing.append(miss or "substances")
                continue
            if v == FALSE:
                continue
            if support is not None:
                if s.recovery_support is None:
                    missing.append(f"{s.path}.recovery_support" if not s.from_code
                                   else "substances.recovery_support")
                    continue
                if s.recovery_support != support:
                    continue
            evidence.append((s.path, s.given, _describe_substance(s)))
        if evidence:
            return (TRUE, tuple(evidence), ())
        if missing:
            return (UNKNOWN, (), tuple(missing))
        if not f.substances_listed and pattern != "ever_used":
            return (UNKNOWN, (), ("substances",))
        if not f.substances_listed:
            return (UNKNOWN, (), ("substances",))
        return _NO

    return ev


def _describe_substance(s: SubstanceFact) -> str:
    if s.from_code:
        phase = "in remission" if s.remission_code else "active"
        kind = "use disorder" if s.disorder else "use"
        return f"{s.substance} {kind} (diagnosis code, {phase})"
    parts = [s.substance, s.status]
    if s.disorder:
        parts.append("use disorder")
    if s.last_use_days is not None:
        parts.append(f"last use {s.last_use_days} days ago")
    if s.recovery_support is not None:
        parts.append("with recovery support" if s.recovery_support else "no recovery support")
    return ", ".join(parts)


def _vital(p: kb.VitalPredicate, params: dict[str, float]) -> Compiled:
    name = p.field
    gte = resolve_number(p.gte, params)
    lt = resolve_number(p.lt, params)
    missing_name = "vitals.heart_rate" if name == "heart_rate" else "vitals"
    unit = "bpm" if name == "heart_rate" else "mmHg"

    def ev(f: Facts, route: str | None) -> Result:
        value: int | None = getattr(f, name)
        if value is None:
            if name == "heart_rate" and f.vitals_given and not f.vitals_stale:
                return (UNKNOWN, (), ("vitals.heart_rate",))
            return (UNKNOWN, (), (missing_name,))
        if gte is not None and value < gte:
            return _NO
        if lt is not None and value >= lt:
            return _NO
        return (TRUE, ((f"vitals.{name}", str(value), f"{value} {unit}"),), ())

    return ev


def _answer(p: kb.AnswerPredicate, params: dict[str, float]) -> Compiled:
    name = p.field
    equals = p.equals
    any_of = p.any_of
    present = p.present
    gt = resolve_number(p.gt, params)
    gte = resolve_number(p.gte, params)

    def ev(f: Facts, route: str | None) -> Result:
        value = f.answers.get(name)
        if value is NOT_APPLICABLE:
            return _NO
        if value is None:
            if present is not None and name.startswith("prior_ketamine.") and (
                    "prior_ketamine.received" in f.answers):
                return _NO if present else (TRUE, ((name, "none", None),), ())
            return (UNKNOWN, (), (f.aliases.get(name, name),))
        if equals is not None:
            hit = value == equals
        elif any_of is not None:
            hit = value in any_of
        elif present is not None:
            hit = present
        else:
            if not isinstance(value, (int, float)):
                return _NO
            hit = (gt is None or value > gt) and (gte is None or value >= gte)
        if not hit:
            return _NO
        shown = "true" if value is True else "false" if value is False else str(value)
        return (TRUE, ((name, shown, None),), ())

    return ev


def _age(p: kb.AgePredicate, params: dict[str, float]) -> Compiled:
    gte = resolve_number(p.gte, params)
    lt = resolve_number(p.lt, params)

    def ev(f: Facts, route: str | None) -> Result:
        if f.age is None:
            return (UNKNOWN, (), ("age",))
        if gte is not None and f.age < gte:
            return _NO
        if lt is not None and f.age >= lt:
            return _NO
        return (TRUE, (("age", str(f.age), f"{f.age} years"),), ())

    return ev


def _sex(p: kb.SexPredicate, params: dict[str, float]) -> Compiled:
    wanted = frozenset(p.any_of)

    def ev(f: Facts, route: str | None) -> Result:
        return (TRUE, (("sex", f.sex, None),), ()) if f.sex in wanted else _NO

    return ev


def _setting(p: kb.SettingPredicate, params: dict[str, float]) -> Compiled:
    wanted = frozenset(p.any_of)

    def ev(f: Facts, route: str | None) -> Result:
        # Without a route (route-independent evaluation) a setting test cannot hold.
        if route is None:
            return _NO
        setting = f.setting[route]
        return (TRUE, (("setting", setting, f"for route {route}"),), ()) if (
            setting in wanted) else _NO

    return ev


def _indication(p: kb.IndicationPredicate, params: dict[str, float]) -> Compiled:
    wanted = frozenset(p.any_of)

    def ev(f: Facts, route: str | None) -> Result:
        hit = sorted(f.indications & wanted)
        return (TRUE, (("indications", ", ".join(hit), None),), ()) if hit else _NO

    return ev


def _allergy(p: kb.AllergyPredicate, params: dict[str, float]) -> Compiled:
    classes = frozenset(p.classes)

    def ev(f: Facts, route: str | None) -> Result:
        if f.allergies is None:
            return (UNKNOWN, (), ("allergies",))
        evidence = [(a.path, a.given, ", ".join(sorted(a.classes & classes)))
                    for a in f.allergies if a.classes and a.classes & classes]
        return (TRUE, tuple(evidence), ()) if evidence else _NO

    return ev


def _unresolved(p: kb.UnresolvedPredicate, params: dict[str, float]) -> Compiled:
    prefix = p.list_ + "["

    def ev(f: Facts, route: str | None) -> Result:
        evidence = [(u.field, u.value, "not in ketascreen's vocabularies")
                    for u in f.unrecognized if u.field.startswith(prefix)]
        return (TRUE, tuple(evidence), ()) if evidence else _NO

    return ev


def _instrument(p: kb.InstrumentPredicate, params: dict[str, float]) -> Compiled:
    name = p.name
    s_gte = resolve_number(p.score_gte, params)
    s_lt = resolve_number(p.score_lt, params)
    positive = p.positive
    item = p.item
    item_gte = resolve_number(p.item_gte, params)
    bands = frozenset(p.band or ())
    trigger = p.required_when
    # Absent and not required: the supplementary class (the rule is simply not applied).
    skipped: Result = (UNKNOWN, (), ("instruments",))
    required: Result = (UNKNOWN, (), (f"instruments.{name}",))

    def triggered(f: Facts) -> bool:
        if trigger is None:
            return False
        other = f.scores.get(trigger.instrument)
        if other is None:
            return False
        if trigger.positive is not None and bool(other.positive) != trigger.positive:
            return False
        if trigger.score_gte is not None and (other.score is None
                                              or other.score < trigger.score_gte):
            return False
        if trigger.item is not None:
            values = f.instrument_items.get(trigger.instrument, [])
            if trigger.item > len(values):
                return False
            if trigger.item_gte is not None and values[trigger.item - 1] < trigger.item_gte:
                return False
        return True

    def ev(f: Facts, route: str | None) -> Result:
        score = f.scores.get(name)
        if score is None:
            return required if triggered(f) else skipped
        if bands and score.band not in bands:
            return _NO
        if positive is not None and bool(score.positive) != positive:
            return _NO
        total = score.score
        if s_gte is not None and (total is None or total < s_gte):
            return _NO
        if s_lt is not None and (total is None or total >= s_lt):
            return _NO
        if item is not None:
            values = f.instrument_items.get(name, [])
            if item > len(values):
                return _NO
            if item_gte is not None and values[item - 1] < item_gte:
                return _NO
            return (TRUE, ((f"instruments.{name}[{item - 1}]", str(values[item - 1]),
                            f"{score.instrument} item {item}"),), ())
        shown = str(total) if total is not None else (score.band or "")
        screen = "positive screen" if score.positive else "negative screen"
        band = score.band or ""
        meaning = f"{score.instrument}: " + (
            screen if band in ("positive", "negative") else f"{band}, {screen}")
        return (TRUE, ((f"instruments.{name}", shown, meaning),), ())

    return ev


_BUILDERS: dict[str, Callable[[Any, dict[str, float]], Compiled]] = {
    "all": _all,
    "any": _any,
    "not": _not,
    "condition": _condition,
    "family": _family,
    "medication": _medication,
    "medication_classes": _medication_classes,
    "substance": _substance,
    "vital": _vital,
    "answer": _answer,
    "age": _age,
    "sex": _sex,
    "setting": _setting,
    "indication": _indication,
    "allergy": _allergy,
    "unresolved": _unresolved,
    "instrument": _instrument,
}


def uses_setting(pred: Any) -> bool:
    """Whether a predicate depends on the route (through the route's setting)."""
    if pred.kind == "setting":
        return True
    if pred.kind in ("all", "any"):
        return any(uses_setting(x) for x in pred.of)
    if pred.kind == "not":
        return uses_setting(pred.of)
    return False
