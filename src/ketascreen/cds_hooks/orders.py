"""Which draft orders are ketamine or esketamine, and by which route.

Recognised by RxNorm codes (the ingredient, and any code the medication vocabulary gives for a
ketamine-class drug) and by names (every name, brand and synonym the vocabulary lists for the
``ketamine`` class: Ketalar, Spravato, esketamine nasal spray…), in the order's
``medicationCodeableConcept`` or the ``Medication`` it refers to.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ketascreen.core.vocab import Lexicon, normalize_name

__all__ = ["KETAMINE_RXNORM", "DraftOrder", "draft_orders"]

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
KETAMINE_RXNORM = frozenset({"6130"})  # ketamine (ingredient)
"""RxNorm ingredient codes recognised without a name; esketamine products are recognised by
name (every esketamine product's RxNorm name contains "esketamine" or "Spravato")."""

_ROUTES_SNOMED = {"47625008": "iv", "78421000": "im", "46713006": "intranasal",
                  "26643006": "oral", "37839007": "oral", "54471007": "oral"}
_ROUTE_WORDS = (
    (re.compile(r"\b(intravenous|iv|infusion)\b"), "iv"),
    (re.compile(r"\b(intramuscular|im)\b"), "im"),
    (re.compile(r"\b(intranasal|nasal)\b"), "intranasal"),
    (re.compile(r"\b(oral|sublingual|buccal|troche|lozenge|tablet)\b"), "oral"),
)


@dataclass(frozen=True, slots=True)
class DraftOrder:
    resource: dict[str, Any]
    reference: str | None  # "MedicationRequest/abc"
    name: str
    ketamine: bool
    route: str | None


def _codings(concept: Any) -> list[dict[str, Any]]:
    if not isinstance(concept, dict):
        return []
    return [c for c in concept.get("coding") or [] if isinstance(c, dict)]


def _medication_concept(order: dict[str, Any], bundle_resources: list[dict[str, Any]]) -> Any:
    concept = order.get("medicationCodeableConcept")
    if concept is not None:
        return concept
    ref = (order.get("medicationReference") or {}).get("reference")
    if not isinstance(ref, str):
        return {"text": (order.get("medicationReference") or {}).get("display")}
    candidates = list(order.get("contained") or []) + bundle_resources
    for res in candidates:
        if not isinstance(res, dict) or res.get("resourceType") != "Medication":
            continue
        if (ref.startswith("#") and res.get("id") == ref[1:]) or ref.endswith(
                f"Medication/{res.get('id')}"):
            return res.get("code")
    return {"text": (order.get("medicationReference") or {}).get("display")}


def _is_ketamine(concept: Any, lex: Lexicon, codes: frozenset[str]) -> tuple[bool, str]:
    names: list[str] = []
    found = False
    if isinstance(concept, dict) and isinstance(concept.get("text"), str):
        names.append(concept["text"])
    for c in _codings(concept):
        if c.get("system") == RXNORM and str(c.get("code")) in codes:
            found = True
        if isinstance(c.get("display"), str):
            names.append(c["display"])
    for name in names:
        drug = lex.drug(name)
        if (drug is not None and "ketamine" in drug.classes) or re.search(
                r"\b(es)?ketamine\b|\bspravato\b|\bketalar\b", normalize_name(name)):
            found = True
    return found, (names[0] if names else "an unnamed medication")


def _route(order: dict[str, Any], name: str) -> str | None:
    for dose in order.get("dosageInstruction") or []:
        if not isinstance(dose, dict):
            continue
        route = dose.get("route")
        for c in _codings(route):
            if c.get("system") == SNOMED and str(c.get("code")) in _ROUTES_SNOMED:
                return _ROUTES_SNOMED[str(c.get("code"))]
        text = " ".join(str(x) for x in [route.get("text") if isinstance(route, dict) else None,
                                           *(c.get("display") for c in _codings(route))] if x)
        for pattern, value in _ROUTE_WORDS:
            if text and pattern.search(text.lower()):
                return value
    lowered = normalize_name(name)
    if "esketamine" in lowered or "spravato" in lowered or "nasal" in lowered:
        return "intranasal"
    for pattern, value in _ROUTE_WORDS:
        if pattern.search(lowered):
            return value
    return None


def draft_orders(context: dict[str, Any], lex: Lexicon, *,
                 only: Iterable[str] | None = None) -> list[DraftOrder]:
    """The medication orders in ``context.draftOrders`` (``only``: the selected ones)."""
    codes = KETAMINE_RXNORM | frozenset(
        d.rxnorm for d in lex.drugs.values() if d.rxnorm and "ketamine" in d.classes)
    bundle = context.get("draftOrders")
    entries = bundle.get("entry") if isinstance(bundle, dict) else None
    resources = [e["resource"] for e in entries or [] if isinstance(e, dict)
                 and isinstance(e.get("resource"), dict)]
    wanted = set(only) if only is not None else None
    out: list[DraftOrder] = []
    for res in resources:
        if res.get("resourceType") != "MedicationRequest":
            continue
        rid = res.get("id")
        ref = f"MedicationRequest/{rid}" if isinstance(rid, str) else None
        if wanted is not None and (ref is None or ref not in wanted):
            continue
        concept = _medication_concept(res, resources)
        ketamine, name = _is_ketamine(concept, lex, codes)
        out.append(DraftOrder(res, ref, name, ketamine, _route(res, name) if ketamine else None))
    return out
