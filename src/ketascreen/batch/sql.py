"""Small helpers to build SQL with SQLGlot, once, for every dialect the runners speak.

Templates are written in DuckDB's dialect and parsed by SQLGlot (for DuckDB they run as
written); the compiler builds its large expressions as SQLGlot trees directly (parsing them
would cost more than running them). Each runner renders a tree in its own dialect (``duckdb``
or ``spark``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date

import sqlglot
from sqlglot import exp

Expr = exp.Expr


def parse(text: str) -> Expr:
    """A DuckDB-dialect query or expression as a SQLGlot tree."""
    return sqlglot.parse_one(text, read="duckdb")


def render(query: str | Expr, dialect: str) -> str:
    if isinstance(query, str):
        if dialect == "duckdb":
            return query  # already DuckDB text: parsing it again would only cost time
        return parse(query).sql(dialect=dialect)
    return query.sql(dialect=dialect)


def quote(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def ident(name: str) -> str:
    """A quoted identifier (DuckDB dialect)."""
    return '"' + name.replace('"', '""') + '"'


def lit(value: object) -> str:
    """A SQL literal, as DuckDB-dialect text."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 2**53:
            return str(int(value))
        return f"CAST({value!r} AS DOUBLE)"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    return quote(str(value))


# ---------------------------------------------------------------------------------- trees


def col(name: str, table: str | None = None) -> Expr:
    return exp.column(name, table=table, quoted=True)


def num(value: float | int) -> Expr:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        value = int(value)  # as ``lit`` writes it
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return exp.Literal.number(value)  # as parsing ``lit(value)`` would give, but faster
    return parse(lit(value))


def string(value: str) -> Expr:
    return exp.Literal.string(value)


TRUE: Expr = exp.Boolean(this=True)
FALSE: Expr = exp.Boolean(this=False)
NULL: Expr = exp.Null()


def boolean(value: bool) -> Expr:
    return exp.Boolean(this=value)


def paren(e: Expr) -> Expr:
    """``e`` in parentheses when it is an operator (AND, OR, NOT, comparisons, arithmetic)."""
    if isinstance(e, (exp.Connector, exp.Binary, exp.Unary, exp.Predicate)):
        return exp.Paren(this=e)
    return e


def and_(*parts: Expr) -> Expr:
    items = [paren(p) for p in parts]
    if not items:
        return TRUE
    out = items[0]
    for p in items[1:]:
        out = exp.And(this=out, expression=p)
    return out


def or_(*parts: Expr) -> Expr:
    items = [paren(p) for p in parts]
    if not items:
        return FALSE
    out = items[0]
    for p in items[1:]:
        out = exp.Or(this=out, expression=p)
    return out


def not_(e: Expr) -> Expr:
    return exp.Not(this=paren(e))


def is_null(e: Expr) -> Expr:
    return exp.Is(this=paren(e), expression=exp.Null())


def not_null(e: Expr) -> Expr:
    return exp.Not(this=exp.Is(this=paren(e), expression=exp.Null()))


def coalesce(e: Expr, default: Expr) -> Expr:
    return exp.Coalesce(this=e, expressions=[default])


def eq(a: Expr, b: Expr) -> Expr:
    return exp.EQ(this=paren(a), expression=paren(b))


def ne(a: Expr, b: Expr) -> Expr:
    return exp.NEQ(this=paren(a), expression=paren(b))


def gte(a: Expr, b: Expr) -> Expr:
    return exp.GTE(this=paren(a), expression=paren(b))


def gt(a: Expr, b: Expr) -> Expr:
    return exp.GT(this=paren(a), expression=paren(b))


def lt(a: Expr, b: Expr) -> Expr:
    return exp.LT(this=paren(a), expression=paren(b))


def lte(a: Expr, b: Expr) -> Expr:
    return exp.LTE(this=paren(a), expression=paren(b))


def in_(a: Expr, values: Iterable[Expr]) -> Expr:
    return exp.In(this=paren(a), expressions=list(values))


def in_strings(a: Expr, values: Iterable[str]) -> Expr:
    return in_(a, [string(v) for v in values])


def case(whens: Sequence[tuple[Expr, Expr]], default: Expr | None = None) -> Expr:
    """CASE WHEN … END, built without copying its parts."""
    return exp.Case(ifs=[exp.If(this=cond, true=then) for cond, then in whens], default=default)


def select(columns: Sequence[Expr], source: str) -> exp.Select:
    """SELECT columns FROM source, built without copying the columns."""
    return exp.Select(expressions=list(columns), from_=exp.From(this=exp.to_table(source)))


def bit_set(column: Expr, bit: int) -> Expr:
    """``(column & 2^bit) <> 0`` for a BIGINT mask (never NULL where the compiler uses it)."""
    masked = exp.BitwiseAnd(this=column, expression=num(1 << bit))
    return exp.NEQ(this=exp.Paren(this=masked), expression=num(0))


def greatest(first: Expr, rest: Sequence[Expr]) -> Expr:
    """GREATEST of values that are never NULL (as is, in every dialect)."""
    if not rest:
        return first
    return exp.Anonymous(this="GREATEST", expressions=[first, *rest])


def least(first: Expr, rest: Sequence[Expr]) -> Expr:
    if not rest:
        return first
    return exp.Anonymous(this="LEAST", expressions=[first, *rest])


def array(items: Sequence[Expr]) -> Expr:
    return exp.Array(expressions=list(items))


def lam(var: str, body: Expr) -> Expr:
    return exp.Lambda(this=body, expressions=[exp.to_identifier(var)])


def array_filter(arr: Expr, var: str, cond: Expr) -> Expr:
    return exp.ArrayFilter(this=arr, expression=lam(var, cond))


def array_transform(arr: Expr, var: str, body: Expr) -> Expr:
    return exp.Transform(this=arr, expression=lam(var, body))


def compact(items: Sequence[Expr]) -> Expr:
    """An array of the non-null values among ``items``."""
    return array_filter(array(items), "x", not_null(exp.column("x")))


def concat_arrays(items: Sequence[Expr]) -> Expr:
    if len(items) == 1:
        return items[0]
    return exp.ArrayConcat(this=items[0], expressions=list(items[1:]))


def struct(**fields: Expr) -> Expr:
    return exp.Struct(expressions=[
        exp.PropertyEQ(this=exp.to_identifier(k), expression=v) for k, v in fields.items()])


def cast(e: Expr, to: str) -> Expr:
    return exp.Cast(this=e, to=exp.DataType.build(to))


def alias(e: Expr, name: str) -> Expr:
    return exp.alias_(e, name, quoted=True)


# ------------------------------------------------------------------------- conditions


def _bare(e: Expr) -> Expr:
    while isinstance(e, exp.Paren):
        e = e.this
    return e


def _flat(e: Expr, kind: type[exp.Expr]) -> list[Expr]:
    e = _bare(e)
    if isinstance(e, kind):
        return _flat(e.this, kind) + _flat(e.expression, kind)
    return [e]


def _implies(a: Expr, b: Expr) -> bool:
    """Whenever ``a`` is TRUE, ``b`` is TRUE (by the shapes of the two, ``a`` and ``b`` bare)."""
    if a == b:
        return True
    if isinstance(b, exp.Or) and any(_implies(a, t) for t in _flat(b, exp.Or)):
        return True
    if isinstance(a, exp.And):
        return any(_implies(t, b) for t in _flat(a, exp.And))
    if isinstance(a, exp.Or):
        return all(_implies(t, b) for t in _flat(a, exp.Or))
    return False


def _absorb(terms: list[Expr], stronger: bool) -> list[Expr]:
    """Distinct terms, without those another term makes redundant: in an OR (``stronger`` =
    False) a term that implies another, in an AND one that another implies."""
    kept: list[Expr] = []
    for t in terms:
        if any((_implies(t, k) if not stronger else _implies(k, t)) for k in kept):
            continue
        kept = [k for k in kept if not (_implies(k, t) if not stronger else _implies(t, k))]
        kept.append(t)
    return kept


def truth(e: Expr) -> Expr:
    """A simpler condition that is TRUE exactly where ``e`` is TRUE (where it is not, FALSE and
    NULL may trade places): for CASE WHEN and WHERE, never for a value. Duplicated and absorbed
    terms of AND and OR go, and constants fold (NOT is not looked through)."""
    e = _bare(e)
    if isinstance(e, exp.Coalesce) and len(e.expressions) == 1 and isinstance(
            _bare(e.expressions[0]), exp.Boolean) and not _bare(e.expressions[0]).this:
        return truth(e.this)  # coalesce(x, FALSE)
    if (isinstance(e, exp.Case) and e.this is None and len(e.args.get("ifs") or []) <= 4
            and not any(isinstance(r, exp.Literal) for r in _results(e))):
        return _case_truth(e)
    if isinstance(e, exp.Not) and isinstance(_bare(e.this), exp.Boolean):
        return boolean(not _bare(e.this).this)
    if isinstance(e, (exp.And, exp.Or)):
        is_or = isinstance(e, exp.Or)
        kind = exp.Or if is_or else exp.And
        terms: list[Expr] = []
        for t in _flat(e, kind):
            for u in _flat(truth(t), kind):
                if isinstance(u, exp.Boolean):
                    if u.this == is_or:  # TRUE in an OR, FALSE in an AND: decides it
                        return boolean(is_or)
                    continue  # FALSE in an OR, TRUE in an AND: no effect
                terms.append(u)
        if not terms:
            return boolean(not is_or)
        kept = _absorb(terms, stronger=not is_or)
        if is_or and len(kept) > 1:
            # A conjunct common to every term goes first, once: (c AND a) OR (c AND b) is
            # c AND (a OR b), and AND stops at the first FALSE.
            conjuncts = [_flat(k, exp.And) for k in kept]
            common = [c for c in conjuncts[0] if all(c in other for other in conjuncts[1:])]
            if common:
                rest = [and_(*(c for c in cs if c not in common)) for cs in conjuncts]
                if any(isinstance(_bare(r), exp.Boolean) for r in rest):  # a term was all common
                    return and_(*common)
                return and_(*common, or_(*rest))
        return (or_ if is_or else and_)(*kept)
    return e


def _never_null(c: Expr) -> bool:
    c = _bare(c)
    while isinstance(c, exp.Not):
        c = _bare(c.this)
    return isinstance(c, (exp.Is, exp.Boolean))


def _not_true(c: Expr) -> Expr:
    """TRUE where ``c`` is FALSE or NULL."""
    c = _bare(c)
    if isinstance(c, exp.Not):
        inner = _bare(c.this)
        return inner.copy() if _never_null(inner) else coalesce(inner.copy(), TRUE)
    if _never_null(c):
        return not_(c.copy())
    return not_(coalesce(c.copy(), FALSE))


def _results(e: exp.Case) -> list[Expr]:
    found = [_bare(i.args["true"]) for i in e.args["ifs"]]
    default = e.args.get("default")
    return [*found, _bare(default)] if default is not None else found


def _case_truth(e: exp.Case) -> Expr:
    """``CASE WHEN c1 THEN r1 … ELSE d END`` is TRUE where, for some branch, the earlier
    conditions are not TRUE, its own is, and its result is TRUE."""
    terms: list[Expr] = []
    before: list[Expr] = []
    branches = [(i.this, i.args.get("true")) for i in e.args["ifs"]]
    default = e.args.get("default")
    for cond, result in [*branches, (None, default)]:
        r = truth(result) if result is not None else boolean(False)
        if not (isinstance(r, exp.Boolean) and not r.this) and not isinstance(r, exp.Null):
            parts = [p.copy() for p in before]
            if cond is not None:
                parts.append(cond.copy())
            if not (isinstance(r, exp.Boolean) and r.this):
                parts.append(r)
            terms.append(and_(*parts) if parts else boolean(True))
        if cond is not None:
            before.append(_not_true(cond))
    return truth(or_(*terms)) if terms else boolean(False)

