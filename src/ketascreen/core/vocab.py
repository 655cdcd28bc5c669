"""Resolving what people write (codes, names, brands) to what the rules speak of.

Pure: builds look-up tables from a ``Vocabulary`` (data) and answers questions about strings.
What resolves to nothing is reported by the caller as unrecognized, never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ketascreen.core.kb import Vocabulary

_SPACES = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s/+-]")
_CODE = re.compile(r"^[A-Z][0-9][0-9A-Z](?:\.?[0-9A-Z]{1,4})?$")


def normalize_name(text: str) -> str:
    """Lower case, punctuation dropped (except / + -), whitespace collapsed."""
    return _SPACES.sub(" ", _PUNCT.sub(" ", text.lower())).strip()


def normalize_code(text: str) -> str:
    """ICD-10-CM code without the dot, upper case: ``f20.9`` → ``F209``."""
    return text.strip().upper().replace(".", "")


def display_code(code: str) -> str:
    """``F209`` → ``F20.9``."""
    return code if len(code) <= 3 else f"{code[:3]}.{code[3:]}"


@dataclass(frozen=True, slots=True)
class DrugInfo:
    name: str
    rxnorm: str | None
    classes: frozenset[str]
    diazepam_equivalent: float | None


@dataclass(frozen=True, slots=True)
class Resolved:
    """What a condition resolved to: a normalised code (no dot), and how."""

    code: str
    via: str  # "code" or "name"


class Lexicon:
    """Look-up tables built once per knowledge base."""

    def __init__(self, vocab: Vocabulary) -> None:
        self.icd10cm = vocab.icd10cm
        self.release = vocab.icd10cm_release
        self.condition_names: dict[str, str] = {}
        for term in vocab.conditions:
            code = normalize_code(term.code)
            for name in term.names:
                self.condition_names[normalize_name(name)] = code
        self.drugs: dict[str, DrugInfo] = {}
        self.rxnorm: dict[str, DrugInfo] = {}
        for drug in vocab.drugs:
            info = DrugInfo(drug.name, drug.rxnorm, frozenset(drug.classes),
                            drug.diazepam_equivalent)
            for name in (drug.name, *drug.brands, *drug.synonyms):
                self.drugs[normalize_name(name)] = info
            if drug.rxnorm:
                self.rxnorm[drug.rxnorm] = info
        self.allergens: dict[str, frozenset[str]] = {}
        for allergen in vocab.allergens:
            for name in (allergen.name, *allergen.synonyms):
                self.allergens[normalize_name(name)] = frozenset(allergen.classes)
        self.medication_classes = frozenset(vocab.medication_classes)

    def is_valid_code(self, text: str) -> bool:
        code = normalize_code(text)
        return bool(_CODE.match(text.strip().upper())) and code in self.icd10cm

    def condition(self, code: str | None, name: str | None) -> Resolved | None:
        if code is not None:
            return Resolved(normalize_code(code), "code") if self.is_valid_code(code) else None
        if name is not None:
            key = normalize_name(name)
            found = self.condition_names.get(key)
            if found is None and self.is_valid_code(name):
                return Resolved(normalize_code(name), "code")
            return Resolved(found, "name") if found else None
        return None

    def drug(self, name: str, rxnorm: str | None = None) -> DrugInfo | None:
        key = normalize_name(name)
        found = self.drugs.get(key)
        if found is None and rxnorm:
            found = self.rxnorm.get(rxnorm)
        if found is None:
            # "sertraline 50 mg", "lorazepam tablets": try the leading words.
            words = key.split(" ")
            for n in range(len(words) - 1, 0, -1):
                found = self.drugs.get(" ".join(words[:n]))
                if found:
                    break
        return found

    def allergy(self, substance: str) -> frozenset[str] | None:
        key = normalize_name(substance)
        if key in self.allergens:
            return self.allergens[key]
        drug = self.drug(substance)
        if drug is not None:
            return drug.classes | {"drug"}
        return None


def code_matcher(pattern: str) -> tuple[str, str, str]:
    """Compile one code pattern to (kind, a, b): prefix, range or wildcard (``?`` = any char)."""
    p = pattern.strip().upper().replace(".", "")
    if "-" in p:
        lo, hi = p.split("-", 1)
        if len(lo) != len(hi):
            raise ValueError(f"range {pattern!r}: both ends need the same length")
        return ("range", lo, hi)
    if "?" in p:
        return ("wild", p, "")
    return ("prefix", p, "")


def code_matches(code: str, matcher: tuple[str, str, str]) -> bool:
    kind, a, b = matcher
    if kind == "prefix":
        return code.startswith(a)
    if kind == "range":
        head = code[: len(a)]
        return len(head) == len(a) and a <= head <= b
    if len(code) < len(a):
        return False
    return all(pc == "?" or pc == cc for pc, cc in zip(a, code, strict=False))
