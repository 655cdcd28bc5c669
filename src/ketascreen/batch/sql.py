"""Small helpers to build SQL with SQLGlot, once, for every dialect the runners speak.

Templates are written in DuckDB's dialect and parsed by SQLGlot; the compiler builds its large
expressions as SQLGlot trees directly (parsing them would cost more than running them). Each
runner renders a tree in its own dialect (``duckdb`` or ``spark``).
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
    tree = parse(query) if isinstance(query, str) else query
    return tree.sql(dialect=dialect)


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
