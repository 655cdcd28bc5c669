"""Which rules can be skipped for an intake without changing anything (a pure speed-up).

A rule is *gated* when its `when` can only be true or unknown if some condition code matches a
pattern, or some medication has a class, that the rule names (``condition`` and ``medication``
leaves are false when their list is known and nothing matches; ``all`` is gated by any gated
part; ``any`` only when every part is gated). An inverted index from codes and classes to rules
then finds the few gated rules an intake can open; all the others are false and are skipped.
``screen(explain=True)`` evaluates every rule, and a property test checks both paths agree.
"""

from __future__ import annotations

from typing import Any

from ketascreen.core.facts import Facts
from ketascreen.core.vocab import code_matcher, code_matches

Opener = tuple[str, tuple[str, ...]]  # ("cond", patterns) or ("med", classes)


def gate_of(pred: Any) -> list[Opener] | None:
    kind = pred.kind
    if kind == "condition":
        return [("cond", tuple(pred.codes))]
    if kind in ("medication", "medication_classes"):
        return [("med", tuple(pred.classes))]
    if kind == "all":
        gates = [g for g in (gate_of(x) for x in pred.of) if g is not None]
        return min(gates, key=len) if gates else None
    if kind == "any":
        out: list[Opener] = []
        for x in pred.of:
            g = gate_of(x)
            if g is None:
                return None
            out.extend(g)
        return out
    return None


class GateIndex:
    """Inverted index: condition code / medication class → indices of the rules they open."""

    def __init__(self, gates: list[list[Opener] | None]) -> None:
        self.ungated = frozenset(i for i, g in enumerate(gates) if g is None)
        self.cond_gated = frozenset(i for i, g in enumerate(gates)
                                    if g is not None and any(k == "cond" for k, _ in g))
        self.med_gated = frozenset(i for i, g in enumerate(gates)
                                   if g is not None and any(k == "med" for k, _ in g))
        self._cond: list[tuple[int, list[tuple[str, str, str]]]] = []
        self.by_class: dict[str, set[int]] = {}
        for i, g in enumerate(gates):
            for kind, items in g or ():
                if kind == "cond":
                    self._cond.append((i, [code_matcher(p) for p in items]))
                else:
                    for cls in items:
                        self.by_class.setdefault(cls, set()).add(i)
        self._by_code: dict[str, frozenset[int]] = {}

    def rules_for_code(self, code: str) -> frozenset[int]:
        found = self._by_code.get(code)
        if found is None:
            found = self._by_code[code] = frozenset(
                i for i, matchers in self._cond if any(code_matches(code, m) for m in matchers))
        return found

    def open_rules(self, facts: Facts) -> set[int]:
        live = set(self.ungated)
        if facts.conditions is None:
            live |= self.cond_gated
        else:
            for c in facts.conditions:
                if c.code is not None:
                    live |= self.rules_for_code(c.code)
        if facts.medications is None:
            live |= self.med_gated
        else:
            for m in facts.medications:
                for cls in m.classes:
                    live |= self.by_class.get(cls, set())
        return live
