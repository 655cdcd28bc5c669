"""The knowledge base's declarative rules, compiled to set-based SQL (SQLGlot trees).

The per-patient engine evaluates each rule's predicate on one intake, in three-valued logic,
for every route, and aggregates. Here the same predicates become SQL over whole tables:

1. **Row tests.** Each leaf that reads a list (``condition``, ``family``, ``medication``,
   ``medication_classes``, ``allergy``, ``substance``, ``unresolved``) becomes a test on one row
   of that list, packed as one bit of a BIGINT mask per row: a *full* bit (the row makes the leaf
   true) and, where a row can make it unknown, a *part* bit (e.g. a hypertension row without
   ``controlled``). Code patterns and drug classes are tested once per distinct code or drug, on
   the vocabulary tables, and joined.
2. **Per person.** ``bit_or`` folds the masks of each person's rows; person-level leaves read the
   canonical person row. For the few people whose result names list items (``conditions[3].
   controlled``, ``substances[0].disorder``, unrecognized inputs), the items are numbered exactly
   as in the intake.
3. **Rules.** SQL's NULL is Kleene's unknown, so ``all``/``any``/``not`` are ``AND``/``OR``/
   ``NOT``. Beside each node's value the compiler carries, for every answer that can be missing,
   a test "unknown, and this answer is among the missing", which is how the engine collects
   ``missing``.
4. **Decisions.** Per route: the worst known severity, the worst blocking unknown, ``incomplete``
   below ``defer``; the decision of the asked route or the most favourable one; ``urgent`` from
   any route; findings of the considered routes (urgent ones always); missing answers of the
   considered routes, ordered as the engine orders them.

Whatever the SQL path cannot reproduce exactly makes :class:`BatchCompileError` name the rule
and the predicate, instead of silently differing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from ketascreen.batch import layout as L
from ketascreen.batch import sql as S
from ketascreen.batch.normalise import days_before
from ketascreen.core import kb as K
from ketascreen.core.engine import _INDEX, _SUICIDE_FIELDS, CompiledKnowledgeBase, _reads_bp
from ketascreen.core.model import FIRST_DEGREE, ROUTES, SEVERITY_RANK
from ketascreen.core.predicates import CompileError, resolve_number, uses_setting
from ketascreen.core.protocols import ALWAYS_MUST_HAVE
from ketascreen.core.vocab import code_matcher
from ketascreen.errors import KetascreenError

Expr = exp.Expr
WORD = 62  # bits used per BIGINT mask word (sign bit and one spare left alone)
DECISIONS = ("eligible", "eligible_with_precautions", "needs_evaluation", "incomplete", "defer",
             "not_recommended")
# Known severity index (info..exclude) → decision rank (incomplete is rank 3).
_SEV_TO_RANK = (0, 1, 2, 4, 5)
F1X_SUBSTANCE = {
    "F10": "alcohol", "F11": "opioids", "F12": "cannabis", "F13": "sedatives", "F14": "cocaine",
    "F15": "stimulants", "F16": "hallucinogens", "F18": "other", "F19": "other",
}


class BatchCompileError(KetascreenError):
    """A rule whose predicate the SQL path cannot evaluate exactly as the engine does."""

    def __init__(self, rule: str, predicate: Any, why: str) -> None:
        self.rule = rule
        self.why = why
        try:
            shown = json.dumps(predicate.model_dump(mode="json", by_alias=True,
                                                    exclude_defaults=True))
        except Exception:
            shown = repr(predicate)
        self.predicate = shown
        super().__init__(f"rule {rule}: the batch SQL cannot evaluate the predicate {shown}: {why}. "
                         "Screen these people one by one (`ketascreen screen`), or change the rule.")


# ============================================================================== the bit layout


@dataclass
class Bits:
    """Named bits over BIGINT words, for one mask family (e.g. the full bits of conditions).

    A bit's test has a *static* part, a function of the row's values alone, evaluated once per
    distinct combination of those values, and optionally a *dynamic* part (a date compared with
    the screening date), evaluated per row only where the static part holds.
    """

    prefix: str
    index: dict[tuple[str, str | None], int] = field(default_factory=dict)
    tests: list[tuple[str, str | None]] = field(default_factory=list)

    def bit(self, test: str, dynamic: str | None = None) -> int:
        key = (test, dynamic)
        found = self.index.get(key)
        if found is None:
            found = self.index[key] = len(self.tests)
            self.tests.append(key)
        return found

    def words(self) -> int:
        return max(1, (len(self.tests) + WORD - 1) // WORD)

    def column(self, n: int) -> str:
        return f"{self.prefix}{n // WORD}"

    def _sum(self, w: int, pick: Callable[[str, str | None], str | None]) -> str:
        terms = []
        for i, (static, dynamic) in enumerate(self.tests):
            if i // WORD != w:
                continue
            test = pick(static, dynamic)
            if test is not None:
                terms.append(f"CASE WHEN coalesce({test}, FALSE) THEN {1 << (i % WORD)} ELSE 0 END")
        return f"CAST({_balanced(terms, '+')} AS BIGINT)" if terms else "CAST(0 AS BIGINT)"

    def masks(self) -> list[tuple[str, str]]:
        """(SQL, column) per word, for the whole test (static and dynamic parts together)."""
        return [(self._sum(w, lambda st, dy: st if dy is None else f"({st}) AND ({dy})"),
                 f"{self.prefix}{w}") for w in range(self.words())]

    def static_masks(self) -> list[tuple[str, str]]:
        """Per word: the static tests, and (as ``<word>_pre``) the static parts of dynamic ones."""
        out = []
        for w in range(self.words()):
            out.append((self._sum(w, lambda st, dy: st if dy is None else None), f"{self.prefix}{w}"))
            if self.dynamic():
                out.append((self._sum(w, lambda st, dy: st if dy is not None else None),
                            f"{self.prefix}{w}_pre"))
        return out

    def dynamic(self) -> bool:
        return any(dy is not None for _st, dy in self.tests)

    def row_masks(self) -> list[tuple[str, str]]:
        """Per word: the static word with the dynamic bits whose static part held and whose
        dynamic part holds for this row."""
        out = []
        for w in range(self.words()):
            terms = [f"CASE WHEN ({self.prefix}{w}_pre & {1 << (i % WORD)}) <> 0 AND "
                     f"coalesce({dy}, FALSE) THEN {1 << (i % WORD)} ELSE 0 END"
                     for i, (_st, dy) in enumerate(self.tests) if i // WORD == w and dy is not None]
            if terms:
                out.append((f"{self.prefix}{w} + CASE WHEN {self.prefix}{w}_pre = 0 THEN 0 ELSE "
                            f"{_balanced(terms, '+')} END", f"{self.prefix}{w}"))
            else:
                out.append((f"{self.prefix}{w}", f"{self.prefix}{w}"))
        return out

    def test(self, n: int, ref: Callable[[str], Expr] | None = None) -> Expr:
        column = self.column(n)
        target = ref(column) if ref else S.col(column)
        return S.bit_set(target, n % WORD)


def _balanced(terms: list[str], op: str) -> str:
    """``a op b op c …`` as a balanced tree (shallow expressions plan faster)."""
    if len(terms) == 1:
        return terms[0]
    mid = len(terms) // 2
    return f"({_balanced(terms[:mid], op)} {op} {_balanced(terms[mid:], op)})"


def _code_sql(pattern: str, ref: str = "code") -> str:
    kind, a, b = code_matcher(pattern)
    if kind == "prefix":
        return f"{ref} LIKE {S.quote(a + '%')}"
    if kind == "range":
        n = len(a)
        return (f"(length({ref}) >= {n} AND substr({ref}, 1, {n}) BETWEEN {S.quote(a)} "
                f"AND {S.quote(b)})")
    return f"{ref} LIKE {S.quote(a.replace('?', '_') + '%')}"


def _code_set_sql(codes: Sequence[str], exclude: Sequence[str], name_has: Sequence[str]) -> str:
    inc = " OR ".join(_code_sql(c) for c in codes)
    parts = [f"code IS NOT NULL AND ({inc})"]
    if exclude:
        parts.append("NOT (" + " OR ".join(_code_sql(c) for c in exclude) + ")")
    if name_has:
        parts.append("(" + " OR ".join(f"strpos(name_norm, {S.quote(w.lower())}) > 0"
                                       for w in name_has) + ")")
    return " AND ".join(parts)


def _classes_sql(classes: Sequence[str], ref: str = "classes") -> str:
    return "(" + " OR ".join(f"coalesce(array_contains({ref}, {S.quote(c)}), FALSE)"
                             for c in sorted(set(classes))) + ")"


# ============================================================================== nodes


Need = tuple[Expr, str, int]  # (condition, part-mask word column, bit): those items are listed


@dataclass
class Node:
    """A compiled predicate: its value (NULL = unknown), and what makes it unknown.

    For a leaf, ``static[k]`` is true exactly when the leaf is unknown and answer ``k`` is among
    its missing answers; ``items[k]`` says which list items' paths (``conditions[3].controlled``)
    it lists: those whose part bit is set, under a condition that holds only when the leaf is
    unknown. For a combination (``composite``) both hold *given that the node is unknown*:
    :meth:`static_if` and :meth:`items_if` add that condition, from the node's value or from a
    column holding it.
    """

    value: Expr
    const: bool | None = None
    static: dict[str, Expr] = field(default_factory=dict)
    items: dict[str, list[Need]] = field(default_factory=dict)
    composite: bool = False

    def v(self) -> Expr:
        return self.value.copy()

    def static_if(self, key: str, unknown: Expr | None = None) -> Expr:
        if not self.composite:
            return self.static[key].copy()
        u = unknown.copy() if unknown is not None else S.is_null(self.v())
        return S.and_(u, self.static[key].copy())

    def items_if(self, key: str, unknown: Expr | None = None) -> list[Need]:
        if not self.composite:
            return [(c.copy(), w, b) for c, w, b in self.items[key]]
        u = unknown if unknown is not None else S.is_null(self.v())
        return [(S.and_(u.copy(), c.copy()), w, b) for c, w, b in self.items[key]]


def _const(value: bool) -> Node:
    return Node(S.boolean(value), const=value)


def _combine(children: list[Node], kind: str) -> Node:
    stop = kind == "any"  # the constant that decides the node
    live = []
    for c in children:
        if c.const is stop:
            return _const(stop)
        if c.const is None:
            live.append(c)
    if not live:
        return _const(not stop)
    if len(live) == 1:
        return live[0]
    joiner = S.or_ if kind == "any" else S.and_
    value = joiner(*(c.v() for c in live))
    static: dict[str, Expr] = {}
    for key in sorted({k for c in live for k in c.static}):
        static[key] = S.or_(*(c.static_if(key) for c in live if key in c.static))
    items: dict[str, list[Need]] = {}
    for key in sorted({k for c in live for k in c.items}):
        items[key] = [n for c in live if key in c.items for n in c.items_if(key)]
    return Node(value, None, static, items, composite=True)


def _not(child: Node) -> Node:
    if child.const is not None:
        return _const(not child.const)
    return Node(S.not_(child.v()), None, {k: v.copy() for k, v in child.static.items()},
                {k: [(c.copy(), w, b) for c, w, b in v] for k, v in child.items.items()},
                child.composite)


# Item keys: the person's numbered items column and the path of a missing answer.
ITEM_KEYS: dict[str, tuple[str, str]] = {
    "conditions[].controlled": ("c_items", "conditions[{}].controlled"),
    "medications[].dose": ("m_items", "medications[{}].dose"),
    "substances[].disorder": ("s_items", "substances[{}].disorder"),
    "substances[].last_use": ("s_items", "substances[{}].last_use"),
    "substances[].recovery_support": ("s_items", "substances[{}].recovery_support"),
}


# ============================================================================== the compiler


@dataclass
class Entry:
    """One rule for all its routes, or for one route (when the route's setting matters)."""

    rule: K.Rule
    routes: tuple[str, ...]
    value: Expr
    static: dict[str, Expr] = field(default_factory=dict)
    items: dict[str, list[Need]] = field(default_factory=dict)
    node: Node | None = None  # the rule's predicate, when it is the same for every route


@dataclass
class RuleVariant:
    rule: K.Rule
    setting: str | None  # None: route-independent; "home" / "clinic" for route-dependent rules
    node: Node
    name: str  # column prefix


class Compiler:
    """Compile a knowledge base (with a protocol applied) to SQL over the canonical tables."""

    def __init__(self, ckb: CompiledKnowledgeBase) -> None:
        self.ckb = ckb
        self.rules = [cr.rule for cr in ckb.rules]
        # Row-level bit families: full / part bits of each list, code and class sets.
        self.cs = Bits("cs")            # code sets, on kv_conditions
        self.ms = Bits("ms")            # medication class sets, on kv_medications
        self.als = Bits("als")          # allergy class sets, on kv_allergies
        self.cf, self.cp = Bits("cf"), Bits("cp")      # conditions
        self.ff = Bits("ff")                           # family history
        self.mf, self.mp = Bits("mf"), Bits("mp")      # medications
        self.af = Bits("af")                           # allergies
        self.sf, self.sp = Bits("sf"), Bits("sp")      # substances (listed)
        self.cf.bit("code IS NULL")                    # bit 0: unresolved (conditions)
        self.ff.bit("code IS NULL")
        self.mf.bit("drug IS NULL")
        self.af.bit("classes IS NULL")
        self.cf.bit(self._code_item_sql(None))         # bit 1: any code-derived substance item
        self.borrow: set[str] = set()                  # substances whose recovery support is borrowed
        self.variants: list[RuleVariant] = []
        self.lu_tests: dict[tuple[str, float], int] = {}
        self._entry_cache: list[Entry] | None = None
        self._slot_cache: list[Slot] | None = None
        self.need_cols: dict[str, list[tuple[str, str]]] = {}
        self._scored: dict[str, Questionnaire] = {}
        for i, rule in enumerate(self.rules):
            dependent = uses_setting(rule.when)
            for setting in (("home", "clinic") if dependent else (None,)):
                node = self._node(rule, rule.when, dict(rule.params), setting)
                tag = f"r{i}" + (f"_{setting}" if setting else "")
                self.variants.append(RuleVariant(rule, setting, node, tag))
        self.bp_rules = sorted(cr.rule.id for cr in ckb.rules if _reads_bp(cr.rule.when))
        # Listed recovery support per substance, for items derived from codes (see features).
        self.rs_bits = {s: (self.sf.bit(f"substance = {S.quote(s)} AND recovery_support = TRUE"),
                            self.sf.bit(f"substance = {S.quote(s)} AND recovery_support = FALSE"))
                        for s in sorted(self.borrow)}
        for name in ("cf", "cp", "ff", "mf", "mp", "af", "sf", "sp"):
            bits: Bits = getattr(self, name)
            if not bits.tests:
                bits.bit("FALSE")

    # ---------------------------------------------------------------- answers: class and order

    def klass(self, key: str) -> str:
        c = self.ckb.answer_class.get(key)
        if c is None:
            c = self.ckb.answer_class.get(key.split(".", 1)[0], "must_have")
        return c

    def order(self, key: str) -> int:
        return self.ckb.answer_order.get(key, 10_000)

    # ---------------------------------------------------------------- leaves

    def _num(self, rule: K.Rule, pred: Any, value: Any, params: dict[str, float]) -> float | None:
        try:
            return resolve_number(value, params)
        except CompileError as exc:
            raise BatchCompileError(rule.id, pred, str(exc)) from None

    def _node(self, rule: K.Rule, pred: Any, params: dict[str, float], setting: str | None) -> Node:
        kind = getattr(pred, "kind", None)
        if kind in ("all", "any"):
            return _combine([self._node(rule, p, params, setting) for p in pred.of], kind)
        if kind == "not":
            return _not(self._node(rule, pred.of, params, setting))
        builder = getattr(self, f"_leaf_{kind}", None)
        if builder is None:
            raise BatchCompileError(rule.id, pred, f"no SQL translation for predicate kind {kind!r}")
        node: Node = builder(rule, pred, params, setting)
        return node

    @staticmethod
    def _list_leaf(asked: str, missing_key: str, full: Expr, part: Expr | None = None,
                   items: dict[str, tuple[str, int]] | None = None) -> Node:
        """A leaf over a list: unknown when the list was not asked, or when rows are partial."""
        not_asked = S.not_(S.col(asked))
        whens = [(not_asked, S.NULL), (full, S.TRUE)]
        if part is not None:
            whens.append((part.copy(), S.NULL))
        value = S.case(whens, S.FALSE)
        node = Node(value, None, {missing_key: not_asked.copy()}, {})
        if part is not None and items:
            unknown_by_rows = S.and_(part.copy(), S.col(asked), S.not_(full.copy()))
            for key, (word, bit) in items.items():
                node.items[key] = [(unknown_by_rows.copy(), word, bit)]
        return node

    def _leaf_condition(self, rule: K.Rule, p: K.ConditionPredicate, params: dict[str, float],
                        setting: str | None) -> Node:
        try:
            code_bit = self.cs.bit(_code_set_sql(p.codes, p.exclude, p.name_has))
        except ValueError as exc:
            raise BatchCompileError(rule.id, p, str(exc)) from None
        base = [self.cs.test(code_bit, lambda c: exp.column(c)).sql("duckdb"),
                f"status IN ({', '.join(S.quote(s) for s in p.status)})"]
        within = self._num(rule, p, p.within_days, params)
        dynamic = None
        if within is not None:
            undated = "TRUE" if p.undated == "match" else "FALSE"
            dynamic = f"CASE WHEN since_days IS NULL THEN {undated} ELSE since_days <= {S.lit(within)} END"
        base_sql = " AND ".join(f"({b})" for b in base)
        if p.controlled is None:
            full = self.cf.bit(base_sql, dynamic)
            return self._list_leaf("conditions_asked", "conditions", self.cf.test(full))
        want = "TRUE" if p.controlled else "FALSE"
        full_sql = f"{base_sql} AND (controlled = {want}" + (
            " OR controlled IS NULL)" if p.unanswered == "match" else ")")
        full = self.cf.bit(full_sql, dynamic)
        if p.unanswered != "unknown":
            return self._list_leaf("conditions_asked", "conditions", self.cf.test(full))
        part = self.cp.bit(f"{base_sql} AND controlled IS NULL", dynamic)
        return self._list_leaf("conditions_asked", "conditions", self.cf.test(full),
                               self.cp.test(part),
                               {"conditions[].controlled": (self.cp.column(part), part % WORD)})

    def _leaf_family(self, rule: K.Rule, p: K.FamilyPredicate, params: dict[str, float],
                     setting: str | None) -> Node:
        try:
            code_bit = self.cs.bit(_code_set_sql(p.codes, [], []))
        except ValueError as exc:
            raise BatchCompileError(rule.id, p, str(exc)) from None
        test = self.cs.test(code_bit, lambda c: exp.column(c)).sql("duckdb")
        first = ", ".join(S.quote(r) for r in sorted(FIRST_DEGREE))
        if p.degree == "first":
            test += f" AND relation IN ({first})"
        elif p.degree == "second":
            test += f" AND relation NOT IN ({first})"
        return self._list_leaf("family_history_asked", "family_history",
                               self.ff.test(self.ff.bit(test)))

    def _leaf_medication(self, rule: K.Rule, p: K.MedicationPredicate, params: dict[str, float],
                         setting: str | None) -> Node:
        cls_bit = self.ms.bit(_classes_sql(p.classes))
        base = (f"{self.ms.test(cls_bit, lambda c: exp.column(c)).sql('duckdb')} AND schedule IN "
                f"({', '.join(S.quote(s) for s in p.schedule)})")
        gt = self._num(rule, p, p.diazepam_mg_gt, params)
        lte = self._num(rule, p, p.diazepam_mg_lte, params)
        if gt is None and lte is None:
            return self._list_leaf("medications_asked", "medications",
                                   self.mf.test(self.mf.bit(base)))
        eq = "(daily_mg * dzp)"
        tests = ["daily_mg IS NOT NULL AND dzp IS NOT NULL"]
        if gt is not None:
            tests.append(f"{eq} > {S.lit(gt)}")
        if lte is not None:
            tests.append(f"{eq} <= {S.lit(lte)}")
        full = self.mf.bit(f"{base} AND " + " AND ".join(tests))
        part = self.mp.bit(f"{base} AND (daily_mg IS NULL OR dzp IS NULL)")
        return self._list_leaf("medications_asked", "medications", self.mf.test(full),
                               self.mp.test(part),
                               {"medications[].dose": (self.mp.column(part), part % WORD)})

    def _leaf_medication_classes(self, rule: K.Rule, p: K.MedicationClassesPredicate,
                                 params: dict[str, float], setting: str | None) -> Node:
        flags = []
        for c in sorted(set(p.classes)):
            cls_bit = self.ms.bit(_classes_sql([c]))
            test = (f"{self.ms.test(cls_bit, lambda col: exp.column(col)).sql('duckdb')} "
                    "AND schedule <> 'stopped'")
            flags.append(S.case([(self.mf.test(self.mf.bit(test)), S.num(1))], S.num(0)))
        total = flags[0]
        for f in flags[1:]:
            total = exp.Add(this=total, expression=f)
        return self._list_leaf("medications_asked", "medications",
                               S.gte(exp.Paren(this=total), S.num(p.at_least)))

    def _leaf_allergy(self, rule: K.Rule, p: K.AllergyPredicate, params: dict[str, float],
                      setting: str | None) -> Node:
        cls_bit = self.als.bit(_classes_sql(p.classes))
        test = self.als.test(cls_bit, lambda c: exp.column(c)).sql("duckdb")
        return self._list_leaf("allergies_asked", "allergies", self.af.test(self.af.bit(test)))

    def _leaf_unresolved(self, rule: K.Rule, p: K.UnresolvedPredicate, params: dict[str, float],
                         setting: str | None) -> Node:
        bits = {"conditions": self.cf, "family_history": self.ff, "medications": self.mf,
                "allergies": self.af}[p.list_]
        return Node(bits.test(0))

    # ---------------------------------------------------------------- substances

    @staticmethod
    def _code_item_sql(substance: str | None, pattern: str | None = None) -> str:
        """Row test on conditions: a code-derived substance item (of ``substance``, matching
        ``pattern`` as the engine reads codes)."""
        heads = [h for h, s in F1X_SUBSTANCE.items() if substance is None or s == substance]
        if not heads:
            return "FALSE"
        test = f"code IS NOT NULL AND substr(code, 1, 3) IN ({', '.join(S.quote(h) for h in heads)})"
        disorder = "substr(code, 4, 1) IN ('1', '2')"
        in_remission = "(substr(code, 4, 2) IN ('11', '21') OR status <> 'active')"
        extra = {
            None: None, "ever_used": None,
            "current_use": f"NOT {in_remission}",
            "current_disorder": f"{disorder} AND NOT {in_remission}",
            "remitted_disorder": f"{disorder} AND {in_remission}",
            "any_disorder": disorder,
        }[pattern]
        return test if extra is None else f"{test} AND {extra}"

    def _substance_row(self, p: K.SubstancePredicate, current: float, remission: float
                       ) -> tuple[str, str, str]:
        """Row tests on listed substances: (true, unknown for disorder, unknown for last_use)."""
        wanted = f"substance IN ({', '.join(S.quote(s) for s in p.substances)})"
        never = "(status = 'never' AND NOT coalesce(disorder, FALSE))"
        recent = f"(status = 'current' OR {self._lu('<=', current)})"
        pattern = p.pattern
        if pattern == "ever_used":
            return f"{wanted} AND NOT {never}", "FALSE", "FALSE"
        if pattern == "current_use":
            return f"{wanted} AND NOT {never} AND {recent}", "FALSE", "FALSE"
        known = f"{wanted} AND NOT {never} AND disorder IS NOT NULL AND disorder"
        unknown_disorder = f"{wanted} AND NOT {never} AND disorder IS NULL"
        if pattern == "any_disorder":
            return known, unknown_disorder, "FALSE"
        within = self._lu("<", remission)
        dated = "(lu_class & 1) = 0"
        if pattern == "current_disorder":
            true = f"{known} AND ({recent} OR {within})"
        else:  # remitted_disorder
            true = f"{known} AND NOT {recent} AND {dated} AND NOT {within}"
        unknown_last = f"{known} AND NOT {recent} AND NOT {dated}"
        return true, unknown_disorder, unknown_last

    def _lu(self, op: str, value: float) -> str:
        """A test on the days since last use, read from the row's ``lu_class``: the days are
        reduced to the comparisons the rules make (bit 0: no date)."""
        key = (op, value)
        bit = self.lu_tests.get(key)
        if bit is None:
            bit = self.lu_tests[key] = len(self.lu_tests) + 1
        return f"(lu_class & {1 << bit}) <> 0"

    def _leaf_substance(self, rule: K.Rule, p: K.SubstancePredicate, params: dict[str, float],
                        setting: str | None) -> Node:
        current = self._num(rule, p, p.current_days, params) or 30.0
        remission = self._num(rule, p, p.remission_days, params) or 90.0
        true, unk_dis, unk_last = self._substance_row(p, current, remission)
        support = p.recovery_support
        items: dict[str, tuple[str, int]] = {}
        part_tests: list[Expr] = []
        if support is None:
            full_listed = self.sf.test(self.sf.bit(true))
        else:
            want = "TRUE" if support else "FALSE"
            full_listed = self.sf.test(self.sf.bit(f"{true} AND recovery_support = {want}"))
            rs = self.sp.bit(f"{true} AND recovery_support IS NULL")
            part_tests.append(self.sp.test(rs))
            items["substances[].recovery_support"] = (self.sp.column(rs), rs % WORD)
        for test, attr in ((unk_dis, "disorder"), (unk_last, "last_use")):
            if test == "FALSE":
                continue
            b = self.sp.bit(test)
            part_tests.append(self.sp.test(b))
            items[f"substances[].{attr}"] = (self.sp.column(b), b % WORD)
        # Items derived from F10-F19 codes among the conditions.
        derivable = [s for s in p.substances if s in F1X_SUBSTANCE.values()]
        code_full: Expr = S.FALSE
        code_part: Expr = S.FALSE
        if derivable and support is None:
            tests = " OR ".join(f"({self._code_item_sql(s, p.pattern)})" for s in sorted(set(derivable)))
            code_full = self.cf.test(self.cf.bit(tests))
        elif derivable:
            fulls, parts = [], []
            for s in sorted(set(derivable)):
                self.borrow.add(s)
                has = self.cf.test(self.cf.bit(self._code_item_sql(s, p.pattern)))
                borrowed = S.col(f"rs_{s}")
                fulls.append(S.and_(has.copy(), S.coalesce(
                    S.eq(borrowed.copy(), S.boolean(bool(support))), S.FALSE)))
                parts.append(S.and_(has, S.is_null(borrowed)))
            code_full = S.or_(*fulls)
            code_part = S.or_(*parts)
        full = S.or_(full_listed, code_full)
        listed_part = S.or_(*part_tests) if part_tests else S.FALSE
        asked = S.col("substances_asked")
        given = S.or_(asked.copy(), self.cf.test(1))
        value = S.case([
            (S.not_(given.copy()), S.NULL),
            (full.copy(), S.TRUE),
            (S.or_(listed_part.copy(), code_part.copy()), S.NULL),
            (S.not_(asked.copy()), S.NULL),
        ], S.FALSE)
        not_full = S.not_(full.copy())
        static = {
            "substances": S.and_(S.not_(asked.copy()), not_full.copy(), S.not_(code_part.copy())),
        }
        if support is not None and derivable:
            static["substances.recovery_support"] = S.and_(not_full.copy(), code_part.copy())
        node = Node(value, None, static, {})
        listed = S.and_(asked.copy(), not_full.copy())
        for key, (word, bit) in items.items():
            # The (rare) item bit first: AND stops early for everyone else.
            node.items[key] = [(S.and_(S.bit_set(S.col(word), bit), listed.copy()), word, bit)]
        return node

    # ---------------------------------------------------------------- person-level leaves

    def _leaf_vital(self, rule: K.Rule, p: K.VitalPredicate, params: dict[str, float],
                    setting: str | None) -> Node:
        gte = self._num(rule, p, p.gte, params)
        lt = self._num(rule, p, p.lt, params)
        value = S.col(p.field)
        tests = [S.gte(value.copy(), S.num(gte))] if gte is not None else []
        if lt is not None:
            tests.append(S.lt(value.copy(), S.num(lt)))
        key = "vitals.heart_rate" if p.field == "heart_rate" else "vitals"
        # Comparisons with NULL are NULL (unknown): no CASE needed.
        return Node(S.and_(*tests), None, {key: S.is_null(value)})

    def _leaf_age(self, rule: K.Rule, p: K.AgePredicate, params: dict[str, float],
                  setting: str | None) -> Node:
        age = S.col("age")
        tests: list[Expr] = []
        if (gte := self._num(rule, p, p.gte, params)) is not None:
            tests.append(S.gte(age.copy(), S.num(gte)))
        if (lt := self._num(rule, p, p.lt, params)) is not None:
            tests.append(S.lt(age.copy(), S.num(lt)))
        if not tests:
            return Node(S.case([(S.is_null(age.copy()), S.NULL)], S.TRUE), None,
                        {"age": S.is_null(age)})
        return Node(S.and_(*tests), None, {"age": S.is_null(age)})

    def _leaf_sex(self, rule: K.Rule, p: K.SexPredicate, params: dict[str, float],
                  setting: str | None) -> Node:
        return Node(S.in_strings(S.col("sex"), p.any_of))

    def _leaf_setting(self, rule: K.Rule, p: K.SettingPredicate, params: dict[str, float],
                      setting: str | None) -> Node:
        return _const(setting is not None and setting in p.any_of)

    def _leaf_indication(self, rule: K.Rule, p: K.IndicationPredicate, params: dict[str, float],
                         setting: str | None) -> Node:
        known = [v for v in p.any_of if v in L.INDICATIONS]
        if not known:
            return _const(False)
        return Node(S.or_(*(S.col(f"ind_{v}") for v in sorted(set(known)))))

    def _leaf_answer(self, rule: K.Rule, p: K.AnswerPredicate, params: dict[str, float],
                     setting: str | None) -> Node:
        spec = L.ANSWER_BY_FIELD.get(p.field)
        if spec is None:
            raise BatchCompileError(rule.id, p, f"the answer {p.field!r} has no column in the "
                                                "batch layout")
        v = S.col(spec.column)
        is_bool = spec.kind == "bool"
        is_num = spec.kind == "float"
        if spec.kind == "text" and (p.equals is not None or p.any_of is not None):
            raise BatchCompileError(rule.id, p, "it compares free text exactly, and the batch "
                                                "tables do not normalise free text as the intake "
                                                "validator does")

        def same_type(x: object) -> bool:
            if is_bool:
                return isinstance(x, bool)
            if is_num:
                return isinstance(x, (int, float)) and not isinstance(x, bool)
            return isinstance(x, str)

        def literal(x: object) -> Expr:
            if isinstance(x, bool):
                return S.boolean(x)
            if isinstance(x, (int, float)):
                return S.num(x)
            return S.string(str(x))

        if p.equals is not None:
            test = S.eq(v.copy(), literal(p.equals)) if same_type(p.equals) else S.FALSE
        elif p.any_of is not None:
            vals = [literal(x) for x in p.any_of if same_type(x)]
            test = S.in_(v.copy(), vals) if vals else S.FALSE
        elif p.present is not None:
            test = S.boolean(p.present)
        else:
            gt = self._num(rule, p, p.gt, params)
            gte = self._num(rule, p, p.gte, params)
            if spec.kind in ("text", "enum"):
                test = S.FALSE
            else:
                number = S.cast(v.copy(), "DOUBLE") if not is_bool else S.cast(
                    S.cast(v.copy(), "INTEGER"), "DOUBLE")
                tests = []
                if gt is not None:
                    tests.append(S.gt(number.copy(), S.num(gt)))
                if gte is not None:
                    tests.append(S.gte(number.copy(), S.num(gte)))
                test = S.and_(*tests)
        absent = S.is_null(v.copy())
        whens: list[tuple[Expr, Expr]] = []
        static: dict[str, Expr] = {}
        group = p.field.split(".", 1)[0]
        if group == "pregnancy":
            applies = S.and_(S.ne(S.col("sex"), S.string("male")),
                             S.or_(S.is_null(S.col("age")),
                                   exp.Between(this=S.col("age"), low=S.num(10), high=S.num(60))))
            whens.append((S.and_(absent.copy(), S.not_(applies.copy())), S.FALSE))
            whens.append((absent.copy(), S.NULL))
            unknown = S.and_(absent.copy(), applies)
            static["pregnancy"] = S.and_(unknown.copy(), S.not_(S.col("pregnancy_given")))
            static[p.field] = S.and_(unknown, S.col("pregnancy_given"))
        elif group == "prior_ketamine" and p.present is not None:
            given = S.col("prior_ketamine_given")
            whens.append((S.and_(absent.copy(), given.copy()), S.boolean(not p.present)))
            whens.append((absent.copy(), S.NULL))
            static[p.field] = S.and_(absent.copy(), S.not_(given))
        else:
            static[p.field] = absent.copy()
            if isinstance(test, (exp.EQ, exp.In, exp.GT, exp.GTE)):
                return Node(test, None, static)  # NULL when the answer is absent
            whens.append((absent.copy(), S.NULL))
        return Node(S.case(whens, test), None, static)

    def _leaf_instrument(self, rule: K.Rule, p: K.InstrumentPredicate, params: dict[str, float],
                         setting: str | None) -> Node:
        q = self._questionnaire(rule, p, p.name)
        tests: list[Expr] = []
        if p.band:
            tests.append(S.coalesce(S.in_strings(q.band, p.band), S.FALSE))
        if p.positive is not None:
            tests.append(S.eq(q.positive, S.boolean(p.positive)))
        s_gte = self._num(rule, p, p.score_gte, params)
        s_lt = self._num(rule, p, p.score_lt, params)
        for bound, cmp in ((s_gte, S.gte), (s_lt, S.lt)):
            if bound is not None:
                tests.append(S.coalesce(cmp(q.total.copy(), S.num(bound)), S.FALSE)
                             if q.total is not None else S.FALSE)
        if p.item is not None:
            if p.item > len(q.values):
                tests.append(S.FALSE)
            else:
                item_gte = self._num(rule, p, p.item_gte, params)
                if item_gte is not None:
                    tests.append(S.gte(q.values[p.item - 1].copy(), S.num(item_gte)))
        test = S.and_(*tests) if tests else S.TRUE
        absent = S.not_(q.given.copy())
        trigger = self._triggered(rule, p)
        static = {"instruments": S.and_(absent.copy(), S.not_(trigger.copy())),
                  f"instruments.{p.name}": S.and_(absent.copy(), trigger)}
        return Node(S.case([(absent, S.NULL)], test), None, static)

    def _triggered(self, rule: K.Rule, p: K.InstrumentPredicate) -> Expr:
        """``required_when``: another questionnaire's result that makes this one a must-have."""
        t = p.required_when
        if t is None:
            return S.FALSE
        other = self._questionnaire(rule, p, t.instrument)
        tests = [other.given.copy()]
        if t.positive is not None:
            tests.append(S.eq(other.positive.copy(), S.boolean(t.positive)))
        if t.score_gte is not None:
            tests.append(S.coalesce(S.gte(other.total.copy(), S.num(t.score_gte)), S.FALSE)
                         if other.total is not None else S.FALSE)
        if t.item is not None:
            if t.item > len(other.values):
                tests.append(S.FALSE)
            elif t.item_gte is not None:
                tests.append(S.gte(other.values[t.item - 1].copy(), S.num(t.item_gte)))
        return S.coalesce(S.and_(*tests), S.FALSE)

    def _questionnaire(self, rule: K.Rule, p: Any, name: str) -> Questionnaire:
        found = self._scored.get(name)
        if found is None:
            definition = getattr(self.ckb.kb, "instruments", {}).get(name)
            if definition is None:
                raise BatchCompileError(rule.id, p, f"no questionnaire {name!r} is defined")
            try:
                found = self._scored[name] = questionnaire_sql(definition)
            except ValueError as exc:
                raise BatchCompileError(rule.id, p, str(exc)) from None
        return found

    # ================================================================= SQL, stage by stage

    def dims(self) -> dict[str, str]:
        """Small tables, computed once: the vocabularies with their code-set and class-set bits,
        then every distinct row shape of each list with its static leaf bits ("combos")."""
        def with_bits(bits: Bits, source: str, keep: str) -> str:
            masks = ", ".join(f"{m} AS {n}" for m, n in bits.masks())
            return f"SELECT {keep}, {masks} FROM {source}"

        def combo(keys: list[str], source: str, dim: str, on: str, keep: str, *families: Bits) -> str:
            masks = ", ".join(f"{m} AS {n}" for b in families for m, n in b.static_masks())
            return (f"SELECT *, {masks} FROM (SELECT {keep} FROM (SELECT DISTINCT "
                    f"{', '.join(keys)} FROM {source}) AS k LEFT JOIN {dim} AS d ON {on}) AS j")

        cs = ", ".join(f"d.cs{w} AS cs{w}" for w in range(self.cs.words()))
        ms = ", ".join(f"d.ms{w} AS ms{w}" for w in range(self.ms.words()))
        als = ", ".join(f"d.als{w} AS als{w}" for w in range(self.als.words()))
        same_cond = ("k.code IS NOT DISTINCT FROM d.raw_code AND k.name IS NOT DISTINCT FROM "
                     "d.raw_name")
        return {
            "kd_conditions": with_bits(self.cs, "kv_conditions", "raw_code, raw_name, code, name_norm"),
            "kd_medications": with_bits(self.ms, "kv_medications",
                                        "raw_name, raw_rxnorm, drug, classes, dzp"),
            "kd_allergies": with_bits(self.als, "kv_allergies", "raw_substance, classes"),
            "kk_conditions": combo(
                ["code", "name", "status", "controlled"], "kt_conditions", "kd_conditions",
                same_cond, f"k.code AS k_code, k.name AS k_name, k.status AS status, k.controlled "
                f"AS controlled, d.code AS code, d.name_norm AS name_norm, {cs}", self.cf, self.cp),
            "kk_family_history": combo(
                ["code", "name", "relation"], "kt_family_history", "kd_conditions", same_cond,
                f"k.code AS k_code, k.name AS k_name, k.relation AS relation, d.code AS code, {cs}",
                self.ff),
            "kk_medications": combo(
                ["name", "rxnorm", "schedule", "daily_mg"], "kt_medications", "kd_medications",
                "k.name IS NOT DISTINCT FROM d.raw_name AND k.rxnorm IS NOT DISTINCT FROM "
                "d.raw_rxnorm", f"k.name AS k_name, k.rxnorm AS k_rxnorm, k.schedule AS schedule, "
                f"k.daily_mg AS daily_mg, d.drug AS drug, d.classes AS classes, d.dzp AS dzp, {ms}",
                self.mf, self.mp),
            "kk_allergies": combo(
                ["substance"], "kt_allergies", "kd_allergies", "k.substance = d.raw_substance",
                f"k.substance AS k_substance, d.classes AS classes, {als}", self.af),
            "kl_substances": self.substance_rows(),
            "kk_substances": (
                "SELECT *, " + ", ".join(f"{m} AS {n}" for b in (self.sf, self.sp)
                                         for m, n in b.static_masks())
                + " FROM (SELECT substance AS substance, status AS status, disorder AS disorder, "
                "recovery_support AS recovery_support, lu_class AS lu_class FROM (SELECT DISTINCT "
                "substance, status, disorder, recovery_support, lu_class FROM kl_substances) AS d) "
                "AS k"),
        }

    def rows(self) -> dict[str, str]:
        """Per-list row views: the typed rows with their leaf masks (from their combo, plus the
        date tests for the rows that need them)."""
        def words(*families: Bits) -> str:
            return ", ".join(f"k.{b.prefix}{w}" + (f", k.{b.prefix}{w}_pre" if b.dynamic() else "")
                             for b in families for w in range(b.words()))

        pre = " OR ".join(f"k.{b.prefix}{w}_pre <> 0" for b in (self.cf, self.cp) if b.dynamic()
                          for w in range(b.words())) or "FALSE"
        days = days_before("c.since_lo", "c.since_hi", "c.as_of")
        cond_inner = (f"SELECT c.person_id, c.seq, c.code AS raw_code, c.name AS raw_name, c.status, "
                      f"c.controlled, c.since, c.until, k.code, CASE WHEN {pre} THEN {days} END "
                      f"AS since_days, {words(self.cf, self.cp)} FROM kt_conditions AS c JOIN "
                      "kk_conditions AS k ON c.code IS NOT DISTINCT FROM k.k_code AND c.name IS NOT "
                      "DISTINCT FROM k.k_name AND c.status = k.status AND c.controlled IS NOT "
                      "DISTINCT FROM k.controlled")
        cond_masks = ", ".join(f"{m} AS {n}" for b in (self.cf, self.cp) for m, n in b.row_masks())
        cond_cols = ("person_id, seq, raw_code, raw_name, status, controlled, since, until, code, "
                     + cond_masks)
        out = {
            "kr_conditions": f"SELECT {cond_cols} FROM ({cond_inner}) AS i",
            "kr_family_history": (
                f"SELECT c.person_id, c.seq, c.code AS raw_code, c.name AS raw_name, c.relation, "
                f"k.code, {words(self.ff)} FROM kt_family_history AS c JOIN kk_family_history AS k "
                "ON c.code IS NOT DISTINCT FROM k.k_code AND c.name IS NOT DISTINCT FROM k.k_name "
                "AND c.relation = k.relation"),
            "kr_medications": (
                f"SELECT m.person_id, m.seq, m.name AS raw_name, m.rxnorm AS raw_rxnorm, m.dose, "
                f"m.daily_mg, m.schedule, m.stopped_on, k.drug, {words(self.mf, self.mp)} FROM "
                "kt_medications AS m JOIN kk_medications AS k ON m.name = k.k_name AND m.rxnorm IS "
                "NOT DISTINCT FROM k.k_rxnorm AND m.schedule = k.schedule AND m.daily_mg IS NOT "
                "DISTINCT FROM k.daily_mg"),
            "kr_allergies": (
                f"SELECT a.person_id, a.seq, a.substance AS raw_substance, a.reaction, k.classes, "
                f"{words(self.af)} FROM kt_allergies AS a JOIN kk_allergies AS k ON "
                "a.substance = k.k_substance"),
        }
        out["kr_substances"] = (
            f"SELECT s.person_id, s.seq, s.substance, s.status, s.disorder, s.last_use, "
            f"s.recovery_support, {words(self.sf, self.sp)} FROM kl_substances AS s JOIN "
            "kk_substances AS k ON s.substance = k.substance AND s.status = k.status AND "
            "s.disorder IS NOT DISTINCT FROM k.disorder AND s.recovery_support IS NOT DISTINCT "
            "FROM k.recovery_support AND s.lu_class = k.lu_class")
        return out

    def substance_rows(self) -> str:
        """Listed substances with ``lu_class``: their days since last use, reduced to the
        comparisons the rules make (so that distinct rows are few)."""
        days = days_before("last_use_lo", "last_use_hi", "as_of")
        terms = [f"CASE WHEN lu_days {op} {S.lit(v)} THEN {1 << bit} ELSE 0 END"
                 for (op, v), bit in self.lu_tests.items()]
        cls = "CASE WHEN lu_days IS NULL THEN 1 ELSE " + (" + ".join(terms) or "0") + " END"
        return (f"SELECT *, CAST({cls} AS BIGINT) AS lu_class FROM (SELECT person_id, seq, "
                f"substance, status, disorder, last_use, recovery_support, {days} AS lu_days "
                "FROM kt_substances) AS i")

    # Per list: (row view, prefix, full bits, part bits, columns that order and tell items apart,
    #            the unrecognized field and value).
    def _lists(self) -> list[tuple[str, str, Bits, Bits | None, list[str], str | None, str | None]]:
        return [
            ("kr_conditions", "c", self.cf, self.cp,
             ["seq", "raw_code", "raw_name", "status", "controlled", "since", "until"],
             "'conditions[' || CAST(idx AS VARCHAR) || CASE WHEN raw_code IS NOT NULL THEN "
             "'].code' ELSE '].name' END", "coalesce(raw_code, raw_name)"),
            ("kr_family_history", "f", self.ff, None,
             ["seq", "raw_code", "raw_name", "relation"],
             "'family_history[' || CAST(idx AS VARCHAR) || CASE WHEN raw_code IS NOT NULL THEN "
             "'].code' ELSE '].name' END", "coalesce(raw_code, raw_name)"),
            ("kr_medications", "m", self.mf, self.mp,
             ["seq", "raw_name", "raw_rxnorm", "dose", "daily_mg", "schedule", "stopped_on"],
             "'medications[' || CAST(idx AS VARCHAR) || '].name'", "raw_name"),
            ("kr_allergies", "a", self.af, None, ["seq", "raw_substance", "reaction"],
             "'allergies[' || CAST(idx AS VARCHAR) || '].substance'", "raw_substance"),
            ("kr_substances", "s", self.sf, self.sp,
             ["seq", "substance", "status", "disorder", "last_use", "recovery_support"], None, None),
        ]

    def person_tables(self) -> list[tuple[str, str]]:
        """(name, SQL) to materialise in order: per-person masks, numbered items, features."""
        unions = []
        agg_cols: list[str] = []
        all_cols: list[tuple[str, str]] = []  # (column, source prefix)
        for view, _prefix, full, part, _order, _field, _value in self._lists():
            for w in range(full.words()):
                all_cols.append((f"{full.prefix}{w}", view))
            if part is not None:
                for w in range(part.words()):
                    all_cols.append((f"{part.prefix}{w}", view))
        for view, _prefix, full, part, _order, _field, _value in self._lists():
            own = [f"{full.prefix}{w}" for w in range(full.words())]
            if part is not None:
                own += [f"{part.prefix}{w}" for w in range(part.words())]
            select = ", ".join(c if c in own else f"CAST(NULL AS BIGINT) AS {c}" for c, _ in all_cols)
            nonzero = " OR ".join(f"{c} <> 0" for c in own)
            unions.append(f"SELECT person_id, {select} FROM {view} WHERE {nonzero}")
        agg_cols = [f"bit_or({c}) AS {c}" for c, _ in all_cols]
        tables = [("kx_masks", f"SELECT person_id, {', '.join(agg_cols)} FROM ("
                   + " UNION ALL ".join(unions) + ") AS u GROUP BY person_id")]
        # Numbered items, only for the people whose result names items.
        for view, prefix, full, part, order, field_sql, value_sql in self._lists():
            flags = []
            if part is not None:
                flags += [f"{part.prefix}{w} <> 0" for w in range(part.words())]
            if field_sql is not None:
                flags.append(f"({full.prefix}0 & 1) <> 0")
            rs = self.rs_bits if prefix == "s" else {}
            conflicts = [f"({full.column(t)} & {1 << (t % WORD)}) <> 0 AND "
                         f"({full.column(f)} & {1 << (f % WORD)}) <> 0"
                         for t, f in rs.values()]
            if not flags and not conflicts:
                continue
            # The people flagged, from their masks (each the bit_or of their rows' words).
            flagged = ("SELECT person_id FROM kx_masks WHERE "
                       + " OR ".join(f"({c})" for c in flags + conflicts))
            keep = ["person_id", *order]
            keep += [f"{full.prefix}{w}" for w in range(full.words())]
            if part is not None:
                keep += [f"{part.prefix}{w}" for w in range(part.words())]
            order_by = ", ".join(f"{c} NULLS FIRST" for c in order)
            numbered = (f"SELECT *, row_number() OVER (PARTITION BY person_id ORDER BY {order_by}) - 1 "
                        f"AS idx FROM (SELECT DISTINCT {', '.join(keep)} FROM {view} SEMI JOIN "
                        f"({flagged}) AS fl USING (person_id)) AS d")
            struct_fields = ["'idx': idx"]
            if part is not None:
                struct_fields += [f"'p{w}': {part.prefix}{w}" for w in range(part.words())]
            aggs = [f"list({{{', '.join(struct_fields)}}}) AS {prefix}_items"]
            if field_sql is not None:
                aggs.append(f"list({{'idx': idx, 'field': {field_sql}, 'value': {value_sql}}}) "
                            f"FILTER (WHERE ({full.prefix}0 & 1) <> 0) AS {prefix}_unrec")
            for s in rs:
                aggs.append(f"max_by(recovery_support, idx) FILTER (WHERE substance = {S.quote(s)} "
                            f"AND recovery_support IS NOT NULL) AS rs_exact_{s}")
            tables.append((f"kx_items_{prefix}", f"SELECT person_id, {', '.join(aggs)} FROM "
                           f"({numbered}) AS n GROUP BY person_id"))
        return tables

    def features(self, item_tables: Sequence[str]) -> str:
        """The per-person feature row: the canonical person, its masks, its numbered items."""
        joins = ["LEFT JOIN kx_masks AS mk ON p.person_id = mk.person_id"]
        cols = ["p.*"]
        for _view, _prefix, full, part, *_ in self._lists():
            names = [f"{full.prefix}{w}" for w in range(full.words())]
            if part is not None:
                names += [f"{part.prefix}{w}" for w in range(part.words())]
            cols += [f"coalesce(mk.{c}, 0) AS {c}" for c in names]
        for prefix in ("c", "f", "m", "a", "s"):
            name = f"kx_items_{prefix}"
            has = name in item_tables
            if has:
                joins.append(f"LEFT JOIN {name} AS it_{prefix} ON p.person_id = it_{prefix}.person_id")
            part_words = {"c": self.cp, "m": self.mp, "s": self.sp}.get(prefix)
            fields = ["idx BIGINT"] + ([f"p{w} BIGINT" for w in range(part_words.words())]
                                       if part_words else [])
            cols.append(f"it_{prefix}.{prefix}_items" if has else
                        f"CAST(NULL AS STRUCT({', '.join(fields)})[]) AS {prefix}_items")
            if prefix != "s":
                cols.append(f"it_{prefix}.{prefix}_unrec" if has else
                            "CAST(NULL AS STRUCT(idx BIGINT, field VARCHAR, value VARCHAR)[]) "
                            f"AS {prefix}_unrec")
        rs = self.rs_bits
        for s in rs:
            cols.append(f"it_s.rs_exact_{s}" if "kx_items_s" in item_tables
                        else f"CAST(NULL AS BOOLEAN) AS rs_exact_{s}")
        inner = f"SELECT {', '.join(cols)} FROM ks_people AS p {' '.join(joins)}"
        borrowed = []
        for s, (t_bit, f_bit) in rs.items():
            t_set = self.sf.test(t_bit).sql("duckdb")
            f_set = self.sf.test(f_bit).sql("duckdb")
            borrowed.append(f"CASE WHEN {t_set} AND {f_set} THEN rs_exact_{s} WHEN {t_set} THEN TRUE "
                            f"WHEN {f_set} THEN FALSE END AS rs_{s}")
        return f"SELECT *{''.join(', ' + b for b in borrowed)} FROM ({inner}) AS q"

    # ---------------------------------------------------------------- rules and decisions

    def _supplementary(self, key: str) -> bool:
        return self.klass(_INDEX.sub("[]", key)) == "supplementary"

    def _blocking_static(self, key: str) -> Expr | None:
        """When a missing static answer blocks: always, never (None), or unless stale."""
        klass = self.klass(key)
        if klass != "must_have":
            return None
        if key == "vitals":
            return S.not_(S.col("vitals_stale"))
        return S.TRUE

    def values_select(self) -> Expr:
        """Stage 2a: every rule's value (per setting for the rules that read it)."""
        cols: list[Expr] = [exp.Star()]
        cols += [S.alias(v.node.v(), f"v_{v.name}") for v in self.variants]
        return S.select(cols, "kx_features")

    def _entries(self) -> list[Entry]:
        """Each rule's value and what it leaves missing: once, or per route when the route's
        setting changes it."""
        if self._entry_cache is not None:
            return self._entry_cache
        out: list[Entry] = []
        by_rule: dict[str, list[RuleVariant]] = {}
        for v in self.variants:
            by_rule.setdefault(v.rule.id, []).append(v)
        for variants in by_rule.values():
            rule = variants[0].rule
            if variants[0].setting is None:
                v = variants[0]
                unknown = S.is_null(S.col(f"v_{v.name}"))
                e = Entry(rule, tuple(r for r in ROUTES if r in rule.routes), S.col(f"v_{v.name}"),
                          node=v.node)
                for k in v.node.static:
                    e.static[k] = v.node.static_if(k, unknown)
                for k in v.node.items:
                    e.items[k] = v.node.items_if(k, unknown)
                out.append(e)
                continue
            home = next(v for v in variants if v.setting == "home")
            clinic = next(v for v in variants if v.setting == "clinic")
            for q in ROUTES:
                if q not in rule.routes:
                    continue
                at_home = S.eq(S.coalesce(S.col("setting"),
                                          S.string("home" if q == "oral" else "clinic")),
                               S.string("home"))
                e = Entry(rule, (q,), S.case([(at_home.copy(), S.col(f"v_{home.name}"))],
                                             S.col(f"v_{clinic.name}")))
                for side, v in ((at_home, home), (S.not_(at_home.copy()), clinic)):
                    unknown = S.is_null(S.col(f"v_{v.name}"))
                    for k in v.node.static:
                        term = S.and_(side.copy(), v.node.static_if(k, unknown))
                        e.static[k] = S.or_(e.static[k], term) if k in e.static else term
                    for k in v.node.items:
                        e.items.setdefault(k, []).extend(
                            (S.and_(side.copy(), c), w, b) for c, w, b in v.node.items_if(k, unknown))
                out.append(e)
        # The first entry of each rule takes the rule's place in the findings order (so a
        # rule's bit is its entry's bit); further entries (other routes) come after them all.
        place = {r.id: i for i, r in enumerate(self.order_rules())}
        first: dict[str, Entry] = {}
        extra: list[Entry] = []
        for e in out:
            if e.rule.id in first:
                extra.append(e)
            else:
                first[e.rule.id] = e
        out = sorted(first.values(), key=lambda e: place[e.rule.id]) + extra
        self._entry_cache = out
        return out

    @staticmethod
    def _considered(routes: tuple[str, ...]) -> Expr | None:
        """The person's route is among ``routes`` (or none is given); None when always."""
        if len(routes) == len(ROUTES):
            return None
        route = S.col("route")
        return S.or_(S.is_null(route.copy()), S.in_strings(route, routes))

    def _slots(self) -> list[Slot]:
        """The missing answers' places, in the engine's order (suicide questions first, then
        blocking ones, then by the order of answers.yaml)."""
        if self._slot_cache is not None:
            return self._slot_cache
        keys = {k for e in self._entries() for k in e.static if not self._supplementary(k)}
        items = {k for e in self._entries() for k in e.items if not self._supplementary(k)}
        slots: list[Slot] = []
        for k in keys:
            blocking = self.klass(k) == "must_have"
            suicide = 0 if k in _SUICIDE_FIELDS else 1
            if k == "vitals" and blocking:
                slots.append(Slot((suicide, 0, self.order(k), k), k, True, stale=False))
                slots.append(Slot((suicide, 1, self.order(k), k), k, False, stale=True))
            else:
                slots.append(Slot((suicide, int(not blocking), self.order(k), k), k, blocking))
        if self.bp_rules and "vitals.taken_on" not in keys:
            slots.append(Slot((1, 1, self.order("vitals.taken_on"), "vitals.taken_on"),
                              "vitals.taken_on", False, special=True))
        for k in items:
            blocking = self.klass(k) == "must_have"
            slots.append(Slot((1, int(not blocking), self.order(k), k), k, blocking, item=True))
        slots.sort(key=lambda x: x.order)
        self._slot_cache = slots
        return slots

    def dense_select(self) -> Expr:
        """Stage 2b: per person, integers only. Inside: one bit per rule entry for "fired" and
        one for "unknown for want of a must-have answer", the missing-answer slots and item
        needs; outside, with masks known at compile time: each route's worst known and worst
        blocking severity, urgency, and the findings of the considered routes."""
        entries = self._entries()
        words = max(1, (len(entries) + WORD - 1) // WORD)
        sev = {r.id: SEVERITY_RANK[r.severity] for r in self.rules}
        passed = ["person_id", "id", "ord", "as_of", "route", "c_items", "m_items", "s_items",
                  "c_unrec", "f_unrec", "m_unrec", "a_unrec"]
        inner: list[Expr] = [S.col(c) for c in passed]
        fired: dict[int, list[Expr]] = {}
        blocked: dict[int, list[Expr]] = {}
        for i, e in enumerate(entries):
            bit = S.num(1 << (i % WORD))
            # A leaf's value is read only here: its test inline (SQL then computes no value
            # column for it). A combination's value column is also read for "unknown".
            value = e.node.v() if e.node is not None and not e.node.composite else e.value.copy()
            fired.setdefault(i // WORD, []).append(S.case([(S.truth(value), bit)], S.num(0)))
            parts = []
            for k, cond in e.static.items():
                if self._supplementary(k) or self.klass(k) != "must_have":
                    continue
                parts.append(S.and_(cond.copy(), S.not_(S.col("vitals_stale")))
                             if k == "vitals" else cond.copy())
            for k, needs_ in e.items.items():
                if not self._supplementary(k) and self.klass(_INDEX.sub("[]", k)) == "must_have":
                    parts.extend(c.copy() for c, _w, _b in needs_)
            if parts:
                blocked.setdefault(i // WORD, []).append(
                    S.case([(S.truth(S.or_(*parts)), bit.copy())], S.num(0)))
        for w in range(words):
            inner.append(S.alias(_or_bits(fired.get(w, [])), f"ef{w}"))
            inner.append(S.alias(_or_bits(blocked.get(w, [])), f"eb{w}"))
        # Missing answers of the considered routes: one bit per slot, and item needs.
        static_terms: dict[str, list[Expr]] = {}
        needs: dict[tuple[str, str], list[Expr]] = {}
        for e in entries:
            considered = self._considered(e.routes)
            for k, cond in e.static.items():
                if self._supplementary(k):
                    continue
                term = cond.copy() if considered is None else S.and_(considered.copy(), cond.copy())
                static_terms.setdefault(k, []).append(term)
            for k, items in e.items.items():
                if self._supplementary(k):
                    continue
                for cond, word, bit_n in items:
                    term = cond.copy() if considered is None else S.and_(considered.copy(), cond.copy())
                    needs.setdefault((k, word), []).append(
                        S.case([(S.truth(term), S.num(1 << bit_n))], S.num(0)))
        slot_terms: dict[int, list[Expr]] = {}
        for i, slot in enumerate(self.static_slots()):
            if slot.special:
                when = S.and_(S.col("vitals_given"), S.not_(S.col("vitals_dated")))
            else:
                when = S.or_(*(t.copy() for t in static_terms[slot.key]))
                if slot.stale is not None:
                    when = S.and_(when, S.col("vitals_stale") if slot.stale
                                  else S.not_(S.col("vitals_stale")))
            slot_terms.setdefault(i // WORD, []).append(
                S.case([(S.truth(when), S.num(1 << (i % WORD)))], S.num(0)))
        mwords = max(1, (len(self.static_slots()) + WORD - 1) // WORD)
        for w in range(mwords):
            inner.append(S.alias(_or_bits(slot_terms.get(w, [])), f"mw{w}"))
        self.need_cols = {}
        for (k, word), terms in sorted(needs.items()):
            name = f"need_{_key_col(k)}_{word}"
            self.need_cols.setdefault(k, []).append((name, word))
            inner.append(S.alias(_or_bits(terms), name))

        # Outside: masks known at compile time.
        def mask(pick: Callable[[int, Entry], bool]) -> list[int]:
            out = [0] * words
            for i, e in enumerate(entries):
                if pick(i, e):
                    out[i // WORD] |= 1 << (i % WORD)
            return out

        def any_set(prefix: str, m: list[int]) -> Expr:
            tests = [S.ne(exp.BitwiseAnd(this=S.col(f"{prefix}{w}"), expression=S.num(v)), S.num(0))
                     for w, v in enumerate(m) if v]
            return S.or_(*tests) if tests else S.FALSE

        outer: list[Expr] = [S.col(c) for c in passed]
        outer += [S.col(f"mw{w}") for w in range(mwords)]
        outer += [S.col(name) for cols in self.need_cols.values() for name, _w in cols]
        def level_mask(route: str, level: int) -> list[int]:
            return mask(lambda _i, e: route in e.routes and sev[e.rule.id] == level)

        for q in ROUTES:
            known_whens: list[tuple[Expr, Expr]] = []
            for level in (4, 3, 2, 1):
                m = level_mask(q, level)
                if any(m):
                    known_whens.append((any_set("ef", m), S.num(level)))
            outer.append(S.alias(S.case(known_whens, S.num(0)) if known_whens else S.num(0),
                                 f"known_{q}"))
            unknown_whens: list[tuple[Expr, Expr]] = []
            for level in (4, 3, 2, 1, 0):
                m = level_mask(q, level)
                if any(m):
                    unknown_whens.append((any_set("eb", m), S.num(level)))
            outer.append(S.alias(S.case(unknown_whens, S.num(-1)) if unknown_whens
                                 else S.num(-1), f"unknown_{q}"))
        outer.append(S.alias(any_set("ef", mask(lambda _i, e: e.rule.urgent)), "urgent"))

        def considered_mask(route: str) -> list[int]:
            return mask(lambda _i, e: e.rule.urgent or route in e.routes)

        # Findings: entries of the considered routes (urgent ones whatever the route).
        considered_masks = {q: considered_mask(q) for q in ROUTES}
        self.entry_words = words
        for w in range(words):
            route = S.col("route")
            whens = [(S.eq(route.copy(), S.string(q)),
                      exp.BitwiseAnd(this=S.col(f"ef{w}"), expression=S.num(considered_masks[q][w])))
                     for q in ROUTES]
            outer.append(S.alias(S.case(whens, S.col(f"ef{w}")), f"fw{w}"))
        inner_select = S.select(inner, "kx_values")
        middle = exp.Select(expressions=outer, from_=exp.From(this=exp.Subquery(
            this=inner_select, alias=exp.TableAlias(this=exp.to_identifier("a")))))
        # Decision ranks (eligible 0 … not recommended 5; incomplete 3), as plain integers.
        last: list[Expr] = [exp.Star()]
        for q in ROUTES:
            known, unknown = S.col(f"known_{q}"), S.col(f"unknown_{q}")
            by_severity = S.case([(S.eq(known.copy(), S.num(i)), S.num(rank))
                                  for i, rank in enumerate(_SEV_TO_RANK)])
            last.append(S.alias(S.case([(S.and_(S.gt(unknown, known.copy()),
                                                S.lt(known.copy(), S.num(3))), S.num(3))],
                                       by_severity), f"rank_{q}"))
        return exp.Select(expressions=last, from_=exp.From(this=exp.Subquery(
            this=middle, alias=exp.TableAlias(this=exp.to_identifier("b")))))

    def ranks_select(self) -> Expr:
        """Stage 2b with the overall rank: the asked route's, or the most favourable route's."""
        dense = self.dense_select()  # sets need_cols
        route = S.col("route")
        overall = S.case([(S.eq(route.copy(), S.string(q)), S.col(f"rank_{q}")) for q in ROUTES],
                         S.least(S.col("rank_iv"), [S.col(f"rank_{q}") for q in ROUTES[1:]]))
        words = [S.alias(S.parse(w), f"rw{i}") for i, w in enumerate(self.rules_words())]
        # Only what the output reads (a narrow table is cheaper to write and to read).
        keep = ["person_id", "id", "ord", "as_of", "c_items", "m_items", "s_items", "c_unrec",
                "f_unrec", "m_unrec", "a_unrec", *self.signature_keys(),
                *(name for cols in self.need_cols.values() for name, _w in cols), "urgent",
                *(f"rank_{q}" for q in ROUTES)]
        return exp.Select(expressions=[*(S.col(k) for k in keep), S.alias(overall, "rank_all"),
                                       *words],
                          from_=exp.From(this=exp.Subquery(this=dense, alias=exp.TableAlias(
                              this=exp.to_identifier("c")))))

    def order_rules(self) -> list[K.Rule]:
        """Rules in the engine's findings order: worst first, urgent first, then by id."""
        sev = {r.id: SEVERITY_RANK[r.severity] for r in self.rules}
        return sorted(self.rules, key=lambda r: (-sev[r.id], not r.urgent, r.id))

    def rule_words(self) -> int:
        """Words of the per-person findings mask (one bit per rule entry)."""
        return max(1, (len(self._entries()) + WORD - 1) // WORD)

    def static_slots(self) -> list[Slot]:
        return [s for s in self._slots() if not s.item]

    def signature_select(self) -> str:
        """Stage 3: the missing answers, once per distinct missing-slot mask (a few thousand in a
        million people), as segments between the item slots."""
        keys = self.signature_keys()
        segments: list[list[str]] = [[]]
        static_index = 0
        for slot in self._slots():
            if slot.item:
                segments.append([])
                continue
            i = static_index
            static_index += 1
            item = (f"{{'field': {S.quote(slot.key)}, 'blocking': "
                    f"{'TRUE' if slot.blocking else 'FALSE'}}}")
            segments[-1].append(f"CASE WHEN (mw{i // WORD} & {1 << (i % WORD)}) <> 0 THEN [{item}] END")
        cols = list(keys)
        empty = "CAST([] AS STRUCT(field VARCHAR, blocking BOOLEAN)[])"
        for j, seg in enumerate(segments):
            parts = ", ".join(seg)
            cols.append(f"flatten(list_filter([{parts}], lambda x: x IS NOT NULL)) AS seg{j}"
                        if seg else f"{empty} AS seg{j}")
        all_parts = ", ".join(f"seg{j}" for j in range(len(segments)))
        fresh = ", ".join(f"{k} AS {k}" for k in keys)
        inner = (f"SELECT {', '.join(cols)} FROM (SELECT {fresh} FROM (SELECT DISTINCT "
                 f"{', '.join(keys)} FROM kx_dense) AS d0) AS d")
        return f"SELECT *, flatten([{all_parts}]) AS missing_static FROM ({inner}) AS s"

    def signature_keys(self) -> list[str]:
        return [f"mw{w}" for w in range((len(self.static_slots()) + WORD - 1) // WORD or 1)]

    def rules_words(self, ref: str = "") -> list[str]:
        """SQL of the per-rule findings words (bit = place in the findings order), folding the
        extra route entries of setting-dependent rules into their rule's bit."""
        entries = self._entries()
        n = len(self.rules)
        words = max(1, (n + WORD - 1) // WORD)
        place = {r.id: i for i, r in enumerate(self.order_rules())}
        out = []
        for w in range(words):
            primary = sum(1 << (i % WORD) for i in range(w * WORD, min(n, (w + 1) * WORD)))
            terms = [f"({ref}fw{w} & {primary})"]
            for i, e in enumerate(entries[n:], start=n):
                bit = place[e.rule.id]
                if bit // WORD == w:
                    terms.append(f"CASE WHEN ({ref}fw{i // WORD} & {1 << (i % WORD)}) <> 0 THEN "
                                 f"{1 << (bit % WORD)} ELSE 0 END")
            out.append("(" + " | ".join(terms) + ")")
        return out

    def rules_list(self, words: list[str]) -> str:
        """The fired rule ids, in order, from the findings words: four bits at a time, each
        nibble looking its ids up in a constant list of 16."""
        ids = [r.id for r in self.order_rules()]
        parts = []
        for w, word in enumerate(words):
            for shift in range(0, WORD, 4):
                width = min(4, WORD - shift)
                base = w * WORD + shift
                if base >= len(ids):
                    break
                lists = []
                for b in range(1 << width):
                    chosen = [ids[base + j] for j in range(width)
                              if (b >> j) & 1 and base + j < len(ids)]
                    lists.append("[" + ", ".join(S.quote(x) for x in chosen) + "]::VARCHAR[]")
                parts.append(f"[{', '.join(lists)}][CAST((({word} >> {shift}) & "
                             f"{(1 << width) - 1}) + 1 AS BIGINT)]")
        return f"flatten([{', '.join(parts)}])"

    def item_slots(self) -> list[tuple[Slot, str, str | None]]:
        """The item slots in order: (slot, numbered items column, the test on an item ``it``
        that it is missing, or None when no rule can leave it missing)."""
        out: list[tuple[Slot, str, str | None]] = []
        for slot in self._slots():
            if not slot.item:
                continue
            column = ITEM_KEYS[slot.key][0]
            parts = self.need_cols.get(slot.key, [])
            test = (" OR ".join(f"(it.p{int(word[2:])} & {name}) <> 0" for name, word in parts)
                    if parts else None)
            out.append((slot, column, test))
        return out

    def missing_counts(self) -> tuple[str, str, list[tuple[str, bool]]] | None:
        """For the summary, people per missing answer (item paths as ``[]``) without building
        anyone's list: (static answers counted per signature: field, blocking, people; item
        answers: one count per item slot; those slots' (field, blocking)). None when an item
        path could coincide with another answer (then each person's list must be read)."""
        def collapse(field: str) -> str:
            return re.sub(r"\[[0-9]+\]", "[]", field)

        keys = self.signature_keys()
        items = self.item_slots()
        named = [(collapse(ITEM_KEYS[slot.key][1].format(0)), slot.blocking)
                 for slot, _c, _t in items]
        static = {(collapse(slot.key), slot.blocking) for slot in self.static_slots()}
        if len(set(named)) != len(named) or static & set(named):
            return None
        ok = "kx_dense AS dn LEFT JOIN ks_problems AS e ON dn.person_id = e.person_id"
        per_key = ", ".join(f"dn.{k}" for k in keys)
        static_sql = (
            "SELECT f, b, sum(n) FROM (SELECT DISTINCT " + ", ".join(f"s.{k}" for k in keys)
            + ", regexp_replace(s.m.field, '\\[[0-9]+\\]', '[]', 'g') AS f, s.m.blocking AS b, "
            "s.n AS n FROM (SELECT " + ", ".join(f"g.{k}" for k in keys) + ", c.n AS n, "
            "unnest(g.missing_static) AS m FROM kx_signatures AS g JOIN (SELECT "
            + ", ".join(f"dn.{k} AS {k}" for k in keys) + f", count(*) AS n FROM {ok} WHERE "
            f"e.message IS NULL GROUP BY {per_key}) AS c ON "
            + " AND ".join(f"g.{k} = c.{k}" for k in keys) + ") AS s) AS v GROUP BY f, b")
        counts = []
        for slot, column, test in items:
            if test is None:
                counts.append("0")
                continue
            need = " OR ".join(f"dn.{name} <> 0" for name, _w in self.need_cols[slot.key])
            counts.append(f"sum(CASE WHEN ({need}) AND array_length(list_filter(dn.{column}, lambda it: "
                          f"{test})) > 0 THEN 1 ELSE 0 END)")
        item_sql = f"SELECT {', '.join(counts) or '0'} FROM {ok} WHERE e.message IS NULL"
        return static_sql, item_sql, named

    def output_select(self, kb_version: str, kb_sha: str, protocol_name: str, protocol_sha: str
                      ) -> str:
        """Stage 4: one output row per person (DuckDB text): decisions, lists from the
        signature, item paths, unrecognized inputs, and the error of an invalid person."""
        names = dict(enumerate(DECISIONS))

        def decision_of(rank: str) -> str:
            return "CASE " + " ".join(
                f"WHEN {rank} = {i} THEN {S.quote(d)}" for i, d in names.items()) + " END"

        # Missing item paths, only where the mask says some are missing.
        item_lists: list[str] = []
        any_need: list[str] = []
        for slot, column, test in self.item_slots():
            head, tail = ITEM_KEYS[slot.key][1].split("{}")
            if test is None:
                item_lists.append("CAST([] AS STRUCT(field VARCHAR, blocking BOOLEAN)[])")
                continue
            flag = "TRUE" if slot.blocking else "FALSE"
            item_lists.append(
                f"coalesce(list_transform(list_sort(list_transform(list_filter(dn.{column}, "
                f"lambda it: {test}), lambda it: {S.quote(head)} || CAST(it.idx AS VARCHAR) || "
                f"{S.quote(tail)})), lambda it: {{'field': it, 'blocking': {flag}}}), "
                "CAST([] AS STRUCT(field VARCHAR, blocking BOOLEAN)[]))")
            any_need += [f"dn.{name} <> 0" for name, _w in self.need_cols[slot.key]]
        pieces = []
        for j in range(len(item_lists) + 1):
            pieces.append(f"g.seg{j}")
            if j < len(item_lists):
                pieces.append(item_lists[j])
        missing = (f"CASE WHEN {' OR '.join(any_need)} THEN flatten([{', '.join(pieces)}]) "
                   "ELSE g.missing_static END") if any_need else "g.missing_static"
        unrec_cols = ("c_unrec", "f_unrec", "m_unrec", "a_unrec")
        unrec = ("CASE WHEN " + " OR ".join(f"dn.{c} IS NOT NULL" for c in unrec_cols)
                 + " THEN list_transform(flatten(list_filter([" + ", ".join(
                     f"list_sort(dn.{c})" for c in unrec_cols)
                 + "], lambda it: it IS NOT NULL)), lambda it: {'field': it.field, "
                 "'value': it.value}) "
                 "ELSE CAST([] AS STRUCT(field VARCHAR, value VARCHAR)[]) END")
        inner = "kx_dense"
        join = " AND ".join(f"dn.{k} = g.{k}" for k in self.signature_keys())
        ok = "e.message IS NULL"
        rules = self.rules_list([f"dn.rw{i}" for i in range(len(self.rules_words()))])
        cols = [
            "dn.person_id AS _key", "dn.ord AS _ord", "dn.id AS id", "dn.as_of AS as_of",
            f"CASE WHEN {ok} THEN {decision_of('dn.rank_all')} END AS decision",
            f"CASE WHEN {ok} THEN dn.urgent END AS urgent",
            *(f"CASE WHEN {ok} THEN {decision_of('dn.rank_' + q)} END AS route_{q}" for q in ROUTES),
            f"CASE WHEN {ok} THEN {rules} END AS rules",
            f"CASE WHEN {ok} THEN {missing} END AS missing",
            f"CASE WHEN {ok} THEN {unrec} END AS unrecognized",
            f"{S.quote(kb_version)} AS kb_version",
            f"{S.quote(kb_sha)} AS kb_sha256",
            f"{S.quote(protocol_name)} AS protocol",
            f"{S.quote(protocol_sha)} AS protocol_sha256",
            "e.message AS error",
            *(f"dn.rw{w} AS _rw{w}" for w in range(len(self.rules_words()))),
        ]
        return (f"SELECT {', '.join(cols)} FROM {inner} AS dn JOIN kx_signatures AS g ON {join} "
                "LEFT JOIN ks_problems AS e ON dn.person_id = e.person_id")


def _or_bits(terms: list[Expr]) -> Expr:
    """The bitwise OR of BIGINT terms, as a balanced tree (0 when there are none). Terms
    ``CASE WHEN c THEN bits ELSE 0 END`` with the same condition become one."""
    merged: dict[Expr, int] = {}
    others: list[Expr] = []
    for t in terms:
        ifs = t.args.get("ifs") if isinstance(t, exp.Case) else None
        default = t.args.get("default") if ifs else None
        if (ifs and len(ifs) == 1 and isinstance(ifs[0].args.get("true"), exp.Literal)
                and ifs[0].args["true"].is_int and isinstance(default, exp.Literal)
                and default.is_int and int(default.this) == 0):
            cond = ifs[0].this
            if isinstance(cond, exp.Boolean) and not cond.this:
                continue
            merged[cond] = merged.get(cond, 0) | int(ifs[0].args["true"].this)
        else:
            others.append(t)
    if merged:
        terms = others + [S.num(v) if isinstance(c, exp.Boolean) else S.case([(c, S.num(v))], S.num(0))
                          for c, v in merged.items()]
    return _or_tree(terms)


def _or_tree(terms: list[Expr]) -> Expr:
    if not terms:
        return S.cast(S.num(0), "BIGINT")
    if len(terms) == 1:
        return S.cast(terms[0], "BIGINT")
    mid = len(terms) // 2
    return exp.BitwiseOr(this=exp.Paren(this=_or_tree(terms[:mid])),
                         expression=exp.Paren(this=_or_tree(terms[mid:])))


@dataclass
class Slot:
    order: tuple[int, int, int, str]
    key: str
    blocking: bool
    stale: bool | None = None  # vitals: the slot for a stale reading (True) or none (False)
    special: bool = False  # vitals.taken_on: a dated reading is missing its date
    item: bool = False


@dataclass
class Questionnaire:
    """A questionnaire's result as SQL over the canonical person row (``core.scoring``)."""

    given: Expr
    values: list[Expr]  # item answers as integers (yes = 1, no = 0), in item order
    total: Expr | None
    positive: Expr
    band: Expr


def _answer_path(d: Any, item: Any, n: int) -> str:
    if item.key is not None:
        return f"instruments.{d.id}.{item.key}"
    if d.answers_under is not None:
        return f"instruments.{d.id}.{d.answers_under}[{n}]"
    return f"instruments.{d.id}[{n}]"


def _sum(terms: Sequence[Expr]) -> Expr:
    out = terms[0]
    for t in terms[1:]:
        out = exp.Add(this=out, expression=t)
    return exp.Paren(this=out)


def questionnaire_sql(d: Any) -> Questionnaire:
    """Score a questionnaire from its definition, in SQL, exactly as ``score_instrument`` does.
    ValueError when an answer has no column in the batch layout."""
    values: list[Expr] = []
    above: dict[int, Expr] = {}
    points: list[Expr] = []
    for n, item in enumerate(d.items):
        path = _answer_path(d, item, n)
        spec = L.ANSWER_BY_FIELD.get(path)
        if spec is None:
            raise ValueError(f"the answer {path} has no column in the batch layout")
        scale = d.scales[item.scale]
        column = S.col(spec.column)
        value = S.case([(column, S.num(1))], S.num(0)) if scale.kind == "yes_no" else column
        values.append(value)
        above[item.number] = S.gt(value.copy(), S.num(scale.min))
        points.append(exp.Sub(this=S.num(scale.min + scale.max), expression=value.copy())
                      if item.reverse else value.copy())
    first = L.ANSWER_BY_FIELD[_answer_path(d, d.items[0], 0)].column
    given = S.not_null(S.col(first))
    total = _sum(points) if d.scoring.total == "sum" else None
    fields: dict[str, Expr] = {}
    for f in d.fields:
        path = f"instruments.{d.id}.{f.key}"
        spec = L.ANSWER_BY_FIELD.get(path)
        if spec is None:
            raise ValueError(f"the answer {path} has no column in the batch layout")
        fields[f.key] = S.col(spec.column)
    rule = d.scoring.positive
    parts: list[Expr] = []
    if rule.cutoffs:
        whens: list[tuple[Expr, Expr]] = []
        default: Expr = S.TRUE
        for c in rule.cutoffs:
            test = (S.coalesce(S.gte(total.copy(), S.num(c.score_gte)), S.FALSE)
                    if total is not None else S.FALSE)
            if c.sex is None:
                default = test
                break
            whens.append((S.in_strings(S.col("sex"), c.sex), test))
        parts.append(S.case(whens, default) if whens else default)
    for key, allowed in rule.requires.items():
        vals = [S.boolean(v) if isinstance(v, bool) else S.string(str(v)) for v in allowed]
        parts.append(S.coalesce(S.in_(fields[key].copy(), vals), S.FALSE))
    if rule.any_item:
        parts.append(S.or_(*(above[k].copy() for k in rule.any_item)))
    positive = S.and_(*parts) if parts else S.TRUE
    bands = []
    for band in d.scoring.bands:
        tests: list[Expr] = []
        if band.min is not None:
            tests.append(S.coalesce(S.gte(total.copy(), S.num(band.min)), S.FALSE)
                         if total is not None else S.FALSE)
        if band.max is not None:
            tests.append(S.coalesce(S.lte(total.copy(), S.num(band.max)), S.FALSE)
                         if total is not None else S.FALSE)
        if band.any_item:
            tests.append(S.or_(*(above[k].copy() for k in band.any_item)))
        if band.positive is not None:
            tests.append(S.eq(positive.copy(), S.boolean(band.positive)))
        bands.append((S.and_(*tests) if tests else S.TRUE, S.string(band.label)))
    return Questionnaire(given, values, total, positive, S.case(bands))


def _key_col(key: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", key.lower()).strip("_")


def check_compilable(ckb: CompiledKnowledgeBase) -> Compiler:
    """Compile every rule now: raises BatchCompileError naming the first rule that cannot be."""
    return Compiler(ckb)


__all__ = ["ALWAYS_MUST_HAVE", "BatchCompileError", "Compiler", "check_compilable"]
