"""Scores of the validated questionnaires, computed from their definitions, never taken from callers.

Each questionnaire is data: ``knowledge/instruments/<id>.yaml`` (an ``Instrument``) gives its
items and answer scales, how the total is formed (a sum, with reverse-scored items), the
positive screen (cut-offs, sex-specific where the instrument has them; further answers it
requires; items any of which must be answered yes) and its bands. This module reads those
definitions and the intake's answers and knows no questionnaire by name, so adding one never
touches it. ``check_instruments`` cross-checks the definitions against the screening contract
and against the rules that read them; it runs at every knowledge-base load.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from ketascreen.core.kb import AnswerScale, Instrument, InstrumentPredicate, KnowledgeBase
from ketascreen.core.model import Instruments, Score
from ketascreen.errors import Diagnostic, KnowledgeBaseError


@dataclass(frozen=True, slots=True)
class ScoredInstrument:
    """One questionnaire's result, and its raw item answers in item order (yes = 1, no = 0)."""

    score: Score
    items: tuple[int, ...]


def score_instruments(
    answers: Instruments | None, sex: str, definitions: Mapping[str, Instrument]
) -> dict[str, ScoredInstrument]:
    """Every questionnaire the intake answered, scored, in the contract's order."""
    if answers is None:
        return {}
    out: dict[str, ScoredInstrument] = {}
    for key in type(answers).model_fields:
        raw = getattr(answers, key)
        if raw is None:
            continue
        definition = definitions.get(key)
        if definition is None:
            # Never drop answers silently: a knowledge base without the definition is broken.
            raise KnowledgeBaseError([Diagnostic(
                "KB131", f"the intake answered instruments.{key}, which no instrument defines",
                "instruments/")])
        out[key] = score_instrument(definition, raw, sex)
    return out


def score_instrument(d: Instrument, raw: Any, sex: str) -> ScoredInstrument:
    """Score one questionnaire's answers (as the intake holds them) by its definition."""
    values, fields = _answers(d, raw)
    scales = [d.scales[i.scale] for i in d.items]
    above = {item.number for item, value, scale in zip(d.items, values, scales, strict=True)
             if value > scale.min}
    total: int | None = None
    if d.scoring.total == "sum":
        total = sum((scale.min + scale.max - value) if item.reverse else value
                    for item, value, scale in zip(d.items, values, scales, strict=True))
    rule = d.scoring.positive
    cutoff = next((c for c in rule.cutoffs if c.sex is None or sex in c.sex), None)
    positive = True
    if cutoff is not None:
        positive = total is not None and total >= cutoff.score_gte
    for key, allowed in rule.requires.items():
        positive = positive and fields.get(key) in allowed
    if rule.any_item:
        positive = positive and any(n in above for n in rule.any_item)
    band = next(b for b in d.scoring.bands if _band_holds(b, total, positive, above))

    parts: list[str] = []
    if cutoff is not None:
        parts.append(f"cut-off {cutoff.label}")
    topics = {f.key: f.topic for f in d.fields}
    for key in rule.requires:
        parts.append(f"{topics[key]}: {_shown(fields.get(key))}")
    if d.scoring.total == "none":
        parts.append("answered yes: items " + ", ".join(str(n) for n in sorted(above))
                     if above else "no item answered yes")
    for item, value in zip(d.items, values, strict=True):
        if item.critical:
            parts.append(f"item {item.number} ({item.topic}) = {value}")
    score = Score(instrument=d.name, score=total, band=band.label, positive=positive,
                  detail="; ".join(parts) or None, version=d.version, citation=d.citation)
    return ScoredInstrument(score=score, items=tuple(values))


def _band_holds(b: Any, total: int | None, positive: bool, above: set[int]) -> bool:
    if b.min is not None and (total is None or total < b.min):
        return False
    if b.max is not None and (total is None or total > b.max):
        return False
    if b.any_item and not any(n in above for n in b.any_item):
        return False
    return b.positive is None or b.positive == positive


def _shown(value: object) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)


def _answers(d: Instrument, raw: Any) -> tuple[list[int], dict[str, object]]:
    """(item answers in item order as integers, the answers beside the items)."""
    data = raw.model_dump() if isinstance(raw, BaseModel) else raw
    fields: dict[str, object] = {}
    if d.answers_under is not None:
        values = data[d.answers_under]
    elif d.items[0].key is not None:
        values = [data[i.key or ""] for i in d.items]
    else:
        values = data
    if isinstance(data, dict):
        fields = {f.key: data.get(f.key) for f in d.fields}
    if not isinstance(values, list) or len(values) != len(d.items):
        raise KnowledgeBaseError([Diagnostic(
            "KB132", f"the answers do not fit the definition's {len(d.items)} items",
            f"instruments/{d.id}.yaml")])
    return [int(v) for v in values], fields


# --------------------------------------------------------------------------------------------
# Cross-checks of the definitions, run at load time (every problem at once).


def check_instruments(kb: KnowledgeBase) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for key, d in kb.instruments.items():
        where = f"instruments/{key}.yaml"
        if d.id != key:
            out.append(Diagnostic("KB130", f"id {d.id!r} differs from the file name", where))
        for sid in d.sources:
            if sid not in kb.sources:
                out.append(Diagnostic("KB101", f"unknown source {sid!r}", where))
        out.extend(_check_contract(d, where))
    for key in Instruments.model_fields:
        if key not in kb.instruments:
            out.append(Diagnostic("KB131", f"the intake carries instruments.{key}, but no "
                                  "instrument defines how to score it", "instruments/"))
    for rule in kb.rules:
        for pred in _walk(rule.when):
            if isinstance(pred, InstrumentPredicate):
                out.extend(_check_predicate(kb, pred, f"rule {rule.id}"))
    return out


def _check_predicate(kb: KnowledgeBase, p: InstrumentPredicate, where: str) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    d = kb.instruments.get(p.name)
    if d is None:
        return [Diagnostic("KB133", f"no instrument {p.name!r} is defined", where)]
    if p.item is not None and p.item > len(d.items):
        out.append(Diagnostic("KB134", f"{d.name} has items 1..{len(d.items)}, not {p.item}",
                              where))
    labels = [b.label for b in d.scoring.bands]
    for band in p.band or ():
        if band not in labels:
            out.append(Diagnostic("KB135", f"{d.name} has no band {band!r} (it has: "
                                  f"{', '.join(labels)})", where))
    if d.scoring.total == "none" and (p.score_gte is not None or p.score_lt is not None):
        out.append(Diagnostic("KB136", f"{d.name} has no total to compare", where))
    t = p.required_when
    if t is not None:
        trigger = kb.instruments.get(t.instrument)
        if trigger is None:
            out.append(Diagnostic("KB133", f"no instrument {t.instrument!r} is defined", where))
        elif t.item is not None and t.item > len(trigger.items):
            out.append(Diagnostic("KB134", f"{trigger.name} has items 1..{len(trigger.items)}",
                                  where))
        spec = kb.answers.get(f"instruments.{p.name}")
        if spec is None or spec.klass != "must_have":
            # Without the entry the engine would class the answer as supplementary, silently.
            out.append(Diagnostic("KB137", f"required_when needs answers.yaml to list "
                                  f"instruments.{p.name} as must_have", where))
    return out


def _walk(pred: Any) -> Iterator[Any]:
    yield pred
    if pred.kind in ("all", "any"):
        for x in pred.of:
            yield from _walk(x)
    elif pred.kind == "not":
        yield from _walk(pred.of)


def _check_contract(d: Instrument, where: str) -> list[Diagnostic]:
    """The intake contract accepts exactly the answers the definition scores."""

    def low(scale: AnswerScale) -> object:
        return False if scale.kind == "yes_no" else scale.min

    def high(scale: AnswerScale) -> object:
        return True if scale.kind == "yes_no" else scale.max

    def accepts(build: Callable[[AnswerScale], object], *, drop_last: bool = False,
                choice: int = 0, bad_choice: bool = False) -> bool:
        values = [build(d.scales[i.scale]) for i in d.items]
        if drop_last:
            values = values[:-1]
        data: Any
        if d.items[0].key is not None:
            data = {i.key: v for i, v in zip(d.items, values, strict=False)}
        elif d.answers_under is not None:
            data = {d.answers_under: values}
        else:
            data = values
        if d.fields:
            if not isinstance(data, dict):
                return False
            for f in d.fields:
                scale = d.scales[f.scale]
                if scale.kind == "choice":
                    data[f.key] = "\0" if bad_choice else scale.choices[choice % len(
                        scale.choices)]
                else:
                    data[f.key] = build(scale)
        try:
            Instruments.model_validate({d.id: data})
        except ValidationError:
            return False
        return True

    out: list[Diagnostic] = []
    if d.id not in Instruments.model_fields:
        return [Diagnostic("KB130", f"the intake contract has no instruments.{d.id}", where)]
    width = max((len(d.scales[f.scale].choices) for f in d.fields), default=1)
    if not all(accepts(low, choice=i) and accepts(high, choice=i) for i in range(width)):
        out.append(Diagnostic("KB132", "the intake contract rejects answers the definition "
                              "allows (item count, answer kinds, keys or choices differ)", where))
    too_high = any(d.scales[i.scale].kind == "points" for i in d.items) and accepts(
        lambda s: s.max + 1 if s.kind == "points" else high(s))
    if too_high or accepts(high, drop_last=True) or (
            any(d.scales[f.scale].kind == "choice" for f in d.fields)
            and accepts(high, bad_choice=True)):
        out.append(Diagnostic("KB132", "the intake contract accepts answers the definition "
                              "cannot score (out of range, too few items, or another choice)",
                              where))
    return out
