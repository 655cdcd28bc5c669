"""Hypothesis strategies for whole intakes that exercise every predicate the rules use.

The pools of codes, drugs and allergens are drawn from the knowledge base itself: for every code
pattern a rule names, a few real ICD-10-CM codes it matches (and some it does not); for every
medication class, drugs by name, brand and RxNorm code; unknown codes and names on purpose.
"""

from __future__ import annotations

import random
from datetime import date
from typing import Any

from hypothesis import strategies as st

from ketascreen.core.lint import walk
from ketascreen.core.vocab import code_matcher, code_matches, display_code
from ketascreen.services import load_knowledge_base

KB = load_knowledge_base()
REF = date(2026, 11, 16)
_rnd = random.Random(20261116)


def _codes() -> list[str]:
    patterns: set[str] = set()
    for rule in KB.rules:
        for p in walk(rule.when):
            if p.kind in ("condition", "family"):
                patterns.update(p.codes)
                patterns.update(getattr(p, "exclude", []))
    codes = sorted(KB.vocabulary.icd10cm)
    picked: set[str] = set()
    for pattern in sorted(patterns):
        m = code_matcher(pattern)
        hits = [c for c in codes if code_matches(c, m)]
        picked.update(_rnd.sample(hits, min(3, len(hits))))
    picked.update(_rnd.sample(codes, 40))
    # Substance-use codes of every kind (F10-F19: use, abuse, dependence, remission).
    picked.update(c for c in codes if c[:3] in ("F10", "F11", "F12", "F14", "F15", "F17", "F19")
                  and len(c) <= 5)
    return sorted(display_code(c) for c in picked)


CODES = _codes()
UNKNOWN_CODES = ["X99.99", "F99.9Z", "Q", "U07.1Q"]
NAMES = [*sorted({n for t in KB.vocabulary.conditions for n in t.names[:1]})[:120],
         "a strange feeling", "ketamine allergy status", "allergic to ketamine"]


def _drugs() -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    by_class: dict[str, list[Any]] = {}
    for d in KB.vocabulary.drugs:
        for c in d.classes or ["none"]:
            by_class.setdefault(c, []).append(d)
    for drugs in by_class.values():
        for d in _rnd.sample(drugs, min(3, len(drugs))):
            out.append((d.name, None))
            if d.brands:
                out.append((d.brands[0], None))
            if d.rxnorm:
                out.append(("Generic tablets", d.rxnorm))
                out.append((f"{d.name} 10 mg tablets", None))
    out += [("notadrugazine", None), ("herbal tea", "999999")]
    return sorted(set(out), key=lambda x: (x[0], x[1] or ""))


DRUGS = _drugs()
ALLERGENS = [*sorted({a.name for a in KB.vocabulary.allergens})[:40],
             "penicillin", "ketamine", "codeine", "propofol", "mystery cream"]
SUBSTANCES = ["alcohol", "opioids", "stimulants", "cocaine", "methamphetamine", "cannabis",
              "sedatives", "ketamine", "hallucinogens", "nicotine", "other"]
DATES = ["1999", "2010-03", "2020", "2024-06", "2025-12-01", "2026-08", "2026-09-30", "2026-10",
         "2026-10-20", "2026-11", "2026-11-01", "2026-11-12", "2026-11-16"]


def _date_before(as_of: str) -> st.SearchStrategy[str]:
    return st.sampled_from([d for d in DATES if d[:len(as_of)] <= as_of[:len(d)] and d <= as_of])


@st.composite
def condition(draw: st.DrawFn, as_of: str) -> dict[str, Any]:
    kind = draw(st.sampled_from(["code", "code", "code", "code", "name", "both", "unknown"]))
    c: dict[str, Any] = {}
    if kind in ("code", "both"):
        code = draw(st.sampled_from(CODES))
        c["code"] = code if draw(st.booleans()) else code.replace(".", "").lower()
    if kind in ("name", "both"):
        c["name"] = draw(st.sampled_from(NAMES))
    if kind == "unknown":
        c["code"] = draw(st.sampled_from(UNKNOWN_CODES))
    if draw(st.booleans()):
        c["status"] = draw(st.sampled_from(["active", "remission", "history"]))
    if draw(st.integers(0, 2)) == 0:
        c["controlled"] = draw(st.booleans())
    if draw(st.booleans()):
        c["since"] = draw(_date_before(as_of))
    return c


@st.composite
def medication(draw: st.DrawFn, as_of: str) -> dict[str, Any]:
    name, rxnorm = draw(st.sampled_from(DRUGS))
    m: dict[str, Any] = {"name": name}
    if rxnorm:
        m["rxnorm"] = rxnorm
    if draw(st.booleans()):
        m["schedule"] = draw(st.sampled_from(["daily", "as_needed", "stopped"]))
    if draw(st.booleans()):
        m["daily_mg"] = draw(st.sampled_from([0.25, 0.5, 1.0, 2.0, 3.0, 6.0, 40.0, 0.1]))
    if m.get("schedule") == "stopped" and draw(st.booleans()):
        m["stopped_on"] = draw(_date_before(as_of))
    if draw(st.integers(0, 3)) == 0:
        m["dose"] = "one in the morning"
    return m


@st.composite
def substance(draw: st.DrawFn, as_of: str) -> dict[str, Any]:
    s: dict[str, Any] = {"substance": draw(st.sampled_from(SUBSTANCES)),
                         "status": draw(st.sampled_from(["current", "past", "never"]))}
    if draw(st.integers(0, 3)) > 0:
        s["disorder"] = draw(st.booleans())
    if draw(st.booleans()):
        s["last_use"] = draw(_date_before(as_of))
    if draw(st.booleans()):
        s["recovery_support"] = draw(st.booleans())
    return s


def _answers(draw: st.DrawFn, keys: dict[str, list[Any]], p_absent: float = 0.25
             ) -> dict[str, Any]:
    """Some of ``keys``, each with one of its values."""
    out: dict[str, Any] = {}
    for key, values in keys.items():
        if draw(st.floats(0, 1)) >= p_absent:
            out[key] = draw(st.sampled_from(values))
    return out


SYMPTOMS: dict[str, list[Any]] = {"psychosis_now": [False, True], "mania_now": [False, True],
            "hallucinations_past": [False, True], "dissociation": ["none", "occasional", "frequent"],
            "suicidal": ["none", "passive", "active", "plan_or_intent"],
            "suicide_attempt": ["none", "lifetime", "past_3_months"], "bp_red_flags": [False, True]}
READINESS: dict[str, list[Any]] = {k: [True, False] for k in (
    "own_choice", "pressured", "can_consent", "expects_quick_fix", "support_person",
    "session_monitor", "safe_storage", "integration_support", "open_to_therapy",
    "can_attend_series", "ride_home")}


@st.composite
def instruments(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        out["phq9"] = draw(st.lists(st.integers(0, 3), min_size=9, max_size=9))
    if draw(st.integers(0, 2)) == 0:
        out["gad7"] = draw(st.lists(st.integers(0, 3), min_size=7, max_size=7))
    if draw(st.integers(0, 2)) == 0:
        out["audit_c"] = draw(st.lists(st.integers(0, 4), min_size=3, max_size=3))
    if draw(st.integers(0, 2)) == 0:
        out["dast10"] = draw(st.lists(st.booleans(), min_size=10, max_size=10))
    if draw(st.integers(0, 3)) == 0:
        out["pcl5"] = draw(st.lists(st.integers(0, 4), min_size=20, max_size=20))
    if draw(st.integers(0, 2)) == 0:
        out["mdq"] = {"items": draw(st.lists(st.booleans(), min_size=13, max_size=13)),
                      "clustered": draw(st.booleans()),
                      "impairment": draw(st.sampled_from(["none", "minor", "moderate", "serious"]))}
    if draw(st.booleans()):
        out["cssrs_screen"] = {k: draw(st.booleans()) for k in (
            "wish_dead", "active_thoughts", "method", "intent", "plan", "behavior_3mo")}
    return out


@st.composite
def intake(draw: st.DrawFn, n: int) -> dict[str, Any]:
    """One valid intake (id ``p<n>``), any shape the contract allows."""
    as_of = draw(st.sampled_from(["2026-11-16", "2026-11-16", "2026-11-16", "2026-06-01", None]))
    limit = as_of or REF.isoformat()
    sex = draw(st.sampled_from(["female", "male", "intersex", "unknown", None]))
    data: dict[str, Any] = {"id": f"p{n}"}
    if as_of:
        data["assessed_on"] = as_of
    if draw(st.integers(0, 20)) > 0:
        data["age"] = draw(st.sampled_from([9, 11, 15, 17, 18, 24, 25, 40, 55, 56, 60, 61, 64,
                                            65, 80, 120]))
    if sex:
        data["sex"] = sex
    route = draw(st.sampled_from([None, None, "iv", "im", "intranasal", "oral"]))
    if route:
        data["route"] = route
    if draw(st.integers(0, 3)) == 0:
        data["setting"] = draw(st.sampled_from(["clinic", "home"]))
    if draw(st.booleans()):
        data["indications"] = draw(st.lists(st.sampled_from(
            ["depression", "treatment_resistant_depression", "bipolar_depression", "ptsd",
             "anxiety", "ocd", "chronic_pain", "fibromyalgia", "suicidal_ideation", "other"]),
            min_size=1, max_size=3))
    for key, item, size in (("conditions", condition, 5), ("medications", medication, 5),
                            ("substances", substance, 3)):
        if draw(st.integers(0, 12)) > 0:
            data[key] = draw(st.lists(item(limit), max_size=size))
    if draw(st.integers(0, 6)) > 0:
        data["family_history"] = [
            {**draw(st.sampled_from([{"code": c} for c in ("F20.9", "F25.0", "F31.9", "F32.9")]
                                    + [{"name": "schizophrenia"}, {"code": "X99.99"},
                                       {"name": "something odd"}])),
             "relation": draw(st.sampled_from(["mother", "sibling", "cousin", "other", "child"]))}
            for _ in range(draw(st.integers(0, 2)))]
    if draw(st.integers(0, 6)) > 0:
        data["allergies"] = [{"substance": draw(st.sampled_from(ALLERGENS))}
                             for _ in range(draw(st.integers(0, 2)))]
    if draw(st.integers(0, 8)) > 0:
        systolic = draw(st.sampled_from([95, 120, 139, 140, 150, 159, 160, 175, 179, 180, 200]))
        diastolic = min(systolic - 1, draw(st.sampled_from([60, 80, 89, 90, 99, 100, 109, 110, 120])))
        v: dict[str, Any] = {"systolic": systolic, "diastolic": diastolic}
        if draw(st.booleans()):
            v["heart_rate"] = draw(st.sampled_from([55, 80, 109, 110, 130]))
        if draw(st.integers(0, 3)) > 0:
            v["taken_on"] = draw(_date_before(limit))
        data["vitals"] = v
    symptoms = _answers(draw, SYMPTOMS)
    asked: bool = draw(st.booleans())
    if symptoms or asked:
        data["symptoms"] = symptoms
    readiness = _answers(draw, READINESS)
    asked = draw(st.booleans())
    if readiness or asked:
        data["readiness"] = readiness
    if draw(st.integers(0, 3)) > 0:
        data["pregnancy"] = _answers(draw, {"pregnant": ["yes", "no", "unknown"],
                                            "breastfeeding": [True, False],
                                            "planning": [True, False]}, 0.15)
    if draw(st.integers(0, 3)) == 0:
        pk: dict[str, Any] = {"received": draw(st.booleans())}
        if draw(st.booleans()):
            pk["misuse"] = draw(st.booleans())
        if draw(st.booleans()):
            pk["adverse_reaction"] = "felt unreal for hours"
        data["prior_ketamine"] = pk
    if draw(st.integers(0, 3)) == 0:
        data["labs"] = _answers(draw, {"child_pugh": ["A", "B", "C"], "alt": [20.0, 121.0, 300.5],
                                       "ast": [15.0, 120.0, 150.0], "alp": [50.0], "ggt": [40.0]},
                                0.4)
    inst = draw(instruments())
    if inst:
        data["instruments"] = inst
    return data


@st.composite
def population(draw: st.DrawFn, min_size: int = 10, max_size: int = 18) -> list[dict[str, Any]]:
    size = draw(st.integers(min_size, max_size))
    return [draw(intake(i)) for i in range(size)]
