"""Lint of the knowledge base: one check per function, each appending Diagnostics; never stops early.

``lint_knowledge_base`` runs the structural checks (at every load). ``check_examples`` also runs
every rule's own examples, and the "implied diagnosis" monotonicity check, through the engine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

from ketascreen.core.kb import KnowledgeBase, Rule
from ketascreen.core.model import SEVERITY_RANK
from ketascreen.core.vocab import code_matcher, code_matches, normalize_code, normalize_name
from ketascreen.errors import Diagnostic

Check = Callable[[KnowledgeBase, list[Diagnostic]], None]
_DECISION_KEYS = ("eligible", "eligible_with_precautions", "needs_evaluation", "incomplete",
                  "defer", "not_recommended")


def walk(pred: Any) -> Iterator[Any]:
    yield pred
    if pred.kind in ("all", "any"):
        for x in pred.of:
            yield from walk(x)
    elif pred.kind == "not":
        yield from walk(pred.of)


def _where(rule: Rule) -> str:
    return f"rule {rule.id}"


def check_unique_ids(kb: KnowledgeBase, out: list[Diagnostic]) -> None:
    for rid, n in Counter(r.id for r in kb.rules).items():
        if n > 1:
            out.append(Diagnostic("KB100", f"rule id used {n} times", f"rule {rid}"))


def check_sources(kb: KnowledgeBase, out: list[Diagnostic]) -> None:
    for r in kb.rules:
        for sid in r.sources:
            if sid not in kb.sources:
                out.append(Diagnostic("KB101", f"unknown source {sid!r}", _where(r)))
    for tid, t in kb.education.items():
        for sid in t.sources:
            if sid not in kb.sources:
                out.append(Diagnostic("KB101", f"unknown source {sid!r}", f"education {tid}"))


def check_claims(kb: KnowledgeBase, out: list[Diagnostic]) -> None:
    covered: set[str] = set()
    for r in kb.rules:
        for cid in r.claims:
            if cid not in kb.claims:
                out.append(Diagnostic("KB102", f"unknown seed claim {cid!r}", _where(r)))
            covered.add(cid)
    for tid, t in kb.education.items():
        for cid in t.claims:
            if cid not in kb.claims:
                out.append(Diagnostic("KB102", f"unknown seed claim {cid!r}", f"education {tid}"))
    for cid, claim in kb.claims.items():
        for feature in claim.features:
            if feature not in kb.education:
                out.append(Diagnostic("KB111", f"feature {feature!r} is not an education topic",
                                      f"claim {cid}"))
        if cid not in covered and not claim.features:
            out.append(Diagnostic("KB103", "seed claim is traced to no rule and no feature",
                                  f"claim {cid}"))


def check_codes_reachable(kb: KnowledgeBase, out: list[Diagnostic]) -> None:
    codes = kb.vocabulary.icd10cm
    memo: dict[str, bool] = {}
    for r in kb.rules:
        for p in walk(r.when):
            if p.kind not in ("condition", "family"):
                continue
            for pattern in [*p.codes, *getattr(p, "exclude", [])]:
                if pattern not in memo:
                    try:
                        m = code_matcher(pattern)
                    except ValueError as exc:
                        out.append(Diagnostic("KB104", str(exc), _where(r)))
                        memo[pattern] = True
                        continue
                    memo[pattern] = any(code_matches(c, m) for c in codes)
                if not memo[pattern]:
                    out.append(Diagnostic("KB104", f"code pattern {pattern!r} matches no "
                                          "ICD-10-CM code (unreachable)", _where(r)))


def check_classes(kb: KnowledgeBase, out: list[Diagnostic]) -> None:
    declared = set(kb.vocabulary.medication_classes)
    used_by_drugs = {c for d in kb.vocabulary.drugs for c in d.classes}
    allergen_classes = {c for a in kb.vocabulary.allergens for c in a.classes}
    for d in kb.vocabulary.drugs:
        for c in d.classes:
            if c not in declared:
                out.append(Diagnostic("KB105", f"undeclared class {c!r}", f"drug {d.name}"))
    for r in kb.rules:
        for p in walk(r.when):
            if p.kind in ("medication", "medication_classes"):
                for c in p.classes:
                    if c not in used_by_drugs:
                        out.append(Diagnostic("KB105", f"no drug has class {c!r} "
                                              "(unreachable)", _where(r)))
            elif p.kind == "allergy":
                for c in p.classes:
                    if c not in used_by_drugs | allergen_classes | {"drug"}:
                        out.append(Diagnostic("KB105", f"no allergen or drug has class {c!r}",
                                              _where(r)))


def check_params(kb: KnowledgeBase, out: list[Diagnostic]) -> None:
    for r in kb.rules:
        used: set[str] = set()
        for p in walk(r.when):
            for value in p.model_dump().values():
                if isinstance(value, str) and value.startswith("$"):
                    used.add(value[1:])
        for name in used - set(r.params):
            out.append(Diagnostic("KB106", f"${name} is used but not in params", _where(r)))
        for name in set(r.params) - used:
            out.append(Diagnostic("KB106", f"param {name!r} is never used", _where(r)))


def check_texts(kb: KnowledgeBase, out: list[Diagnostic]) -> None:
    for r in kb.rules:
        if r.urgent and "{crisis_contacts}" not in r.patient:
            out.append(Diagnostic("KB107", "urgent rule: patient text needs {crisis_contacts}",
                                  _where(r)))
        if r.safety_floor and SEVERITY_RANK[r.safety_floor] > SEVERITY_RANK[r.severity]:
            out.append(Diagnostic("KB116", "safety floor is above the rule's own severity",
                                  _where(r)))
        if not any(e.expect == "fires" for e in r.examples):
            out.append(Diagnostic("KB108", "no example in which the rule fires", _where(r)))
        if not any(e.expect == "not_fired" for e in r.examples):
            out.append(Diagnostic("KB108", "no example in which the rule does not fire",
                                  _where(r)))
        if not r.routes:
            out.append(Diagnostic("KB115", "the rule applies to no route", _where(r)))
    for key in ("crisis_contacts", "note_each_session", "patient_clinician_decides",
                *(f"patient_{d}" for d in _DECISION_KEYS)):
        if key not in kb.texts:
            out.append(Diagnostic("KB113", f"text {key!r} is missing", "manifest.yaml:texts"))


def check_answers(kb: KnowledgeBase, out: list[Diagnostic]) -> None:
    for r in kb.rules:
        for p in walk(r.when):
            if p.kind == "answer" and p.field not in kb.answers:
                out.append(Diagnostic("KB112", f"answer {p.field!r} is not in answers.yaml",
                                      _where(r)))


def check_vocabulary(kb: KnowledgeBase, out: list[Diagnostic]) -> None:
    v = kb.vocabulary
    seen: dict[str, str] = {}
    for t in v.conditions:
        if normalize_code(t.code) not in v.icd10cm:
            out.append(Diagnostic("KB109", f"{t.code} is not an ICD-10-CM code",
                                  "vocab/conditions.yaml"))
        for n in t.names:
            key = normalize_name(n)
            if key in seen and seen[key] != t.code:
                out.append(Diagnostic("KB110", f"name {n!r} maps to {seen[key]} and {t.code}",
                                      "vocab/conditions.yaml"))
            seen[key] = t.code
    names: dict[str, str] = {}
    for d in v.drugs:
        for n in (d.name, *d.brands, *d.synonyms):
            key = normalize_name(n)
            if key in names and names[key] != d.name:
                out.append(Diagnostic("KB110", f"name {n!r} belongs to {names[key]} and "
                                      f"{d.name}", "vocab/medications.yaml"))
            names[key] = d.name
    for a in v.allergens:
        for n in (a.name, *a.synonyms):
            key = normalize_name(n)
            if key in names:
                out.append(Diagnostic("KB110", f"allergen name {n!r} is also a drug name",
                                      "vocab/allergens.yaml"))


CHECKS: tuple[Check, ...] = (
    check_unique_ids,
    check_sources,
    check_claims,
    check_codes_reachable,
    check_classes,
    check_params,
    check_texts,
    check_answers,
    check_vocabulary,
)


def lint_knowledge_base(kb: KnowledgeBase) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for check in CHECKS:
        check(kb, out)
    return out


def check_examples(kb: KnowledgeBase, baseline: Callable[..., dict[str, Any]],
                   today: date, only: set[str] | None = None) -> list[Diagnostic]:
    """Run every rule's examples, and check implied-diagnosis rules never reward disclosure.

    ``baseline(fragment, unset)`` builds a complete intake from a fragment
    (``ketascreen.testing.merge_intake``); ``only`` limits the check to some rule ids (the
    whole knowledge base is still used to screen them).
    """
    from ketascreen.core.engine import CompiledKnowledgeBase, screen_compiled
    from ketascreen.core.validation import parse_intake
    from ketascreen.errors import IntakeError

    out: list[Diagnostic] = []
    ckb = CompiledKnowledgeBase(kb)
    for r in kb.rules:
        if only is not None and r.id not in only:
            continue
        for i, ex in enumerate(r.examples):
            where = f"rule {r.id} example {i + 1}" + (f" ({ex.name})" if ex.name else "")
            try:
                intake = parse_intake(baseline(ex.intake, ex.unset), today=today)
            except IntakeError as exc:
                out.append(Diagnostic("KB200", f"example intake is invalid: {exc}", where))
                continue
            a = screen_compiled(ckb, intake, today=today, explain=True)
            route = intake.route or "all"
            results = {t.result for t in a.trace or () if t.rule == r.id and (
                t.route == "all" or route in t.route.split(",") or route == "all")}
            got = "fires" if "fired" in results else (
                "unknown" if "unknown" in results else "not_fired")
            if got != ex.expect:
                why = "; ".join(t.why for t in a.trace or () if t.rule == r.id)
                out.append(Diagnostic("KB201", f"expected {ex.expect}, got {got}: {why}", where))
        for code in r.implies:
            out.extend(_check_implied(ckb, r, code, baseline, today))
    return out


def _check_implied(ckb: Any, rule: Rule, code: str, baseline: Callable[..., dict[str, Any]],
                   today: date) -> list[Diagnostic]:
    from ketascreen.core.engine import screen_compiled
    from ketascreen.core.validation import parse_intake

    fired = [e for e in rule.examples if e.expect == "fires"]
    if not fired:
        return []
    out: list[Diagnostic] = []
    ex = fired[0]
    base = baseline(ex.intake, ex.unset)
    before = screen_compiled(ckb, parse_intake(base, today=today), today=today)
    for controlled in (True, False):
        data = dict(base)
        data["conditions"] = [*(data.get("conditions") or []),
                              {"code": code, "status": "active", "controlled": controlled}]
        data["substances"] = data.get("substances") or []
        after = screen_compiled(ckb, parse_intake(data, today=today), today=today)
        route = after.route or "iv"
        worst_before = max((SEVERITY_RANK[f.severity] for f in before.findings
                            if route in f.routes), default=0)
        worst_after = max((SEVERITY_RANK[f.severity] for f in after.findings
                           if route in f.routes), default=0)
        if worst_after < worst_before:
            out.append(Diagnostic(
                "KB202", f"adding {code} (controlled={controlled}) lowers the worst finding from "
                f"{before.decision} to {after.decision}: disclosure must never help",
                f"rule {rule.id}"))
    return out
