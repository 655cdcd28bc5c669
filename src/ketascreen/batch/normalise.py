"""From the raw tables to checked, typed, canonical tables the compiled rules read.

Every value is checked as the screening contract checks an intake (ranges, enumerations, dates
not after the screening date…). A person with a bad value gets an output row naming the table,
column and value instead of a decision; every other person is still screened. Identical rows
count once. Text is trimmed of spaces; empty cells are absent.

Views and tables created (``kt_`` typed, ``ks_`` canonical):

- ``kt_people`` one row per person; ``kt_<list>`` typed list rows with the person's ``as_of``;
- ``kt_vitals`` typed readings; ``ks_people`` the canonical person row: demographics, the
  chosen blood-pressure reading, every answer as a typed column, and whether each list was asked;
- ``ks_problems`` (person_id, message); ``kv_*`` vocabulary look-ups of the distinct names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from ketascreen.batch import layout as L
from ketascreen.batch.engines import BOOL, DATE, FLOAT, INT, TEXT, TIMESTAMP, Runner
from ketascreen.batch.inputs import RawInput, RawTable
from ketascreen.batch.sql import ident, lit, quote
from ketascreen.core.facts import STALE_DAYS

PDATE_RE = "^[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?$"  # only for the message; the test is cheaper
INT_RE = r"^[-+]?[0-9]+(\.0*)?$"
FLOAT_RE = r"^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$"
DATE_RE = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def _got(value_sql: str) -> str:
    return f"' (got ''' || CAST({value_sql} AS VARCHAR) || ''')'"


def _msg(where: str, text: str, value_sql: str | None = None) -> str:
    head = quote(f"{where}: {text}")
    return head if value_sql is None else f"{head} || {_got(value_sql)}"


@dataclass
class Typed:
    """A column's typed expression, extra derived columns and the checks on its value."""

    expr: str
    extra: list[tuple[str, str]] = field(default_factory=list)  # (sql, name)
    checks: list[tuple[str, str]] = field(default_factory=list)  # (bad condition, message sql)
    # Checks that read the screening date too (``as_of``): per row when it varies by person.
    dated_checks: list[tuple[str, str]] = field(default_factory=list)


def _sql_type(kind: str) -> str:
    return {"int": "BIGINT", "float": "DOUBLE", "bool": "BOOLEAN", "date": "DATE"}.get(kind, "VARCHAR")


def typed_value(where: str, name: str, kind: str, src: str | None, *, values: tuple[str, ...] = (),
                lo: float | None = None, hi: float | None = None, max_len: int | None = None,
                pattern: str | None = None, as_of: str | None = None, raw: str | None = None
                ) -> Typed:
    """SQL (DuckDB dialect) for one input value of a layout ``kind`` read from type ``src``."""
    ref = raw or ident(name)
    if src is None:
        t = Typed(f"CAST(NULL AS {_sql_type(kind)})")
        if kind == "pdate":
            t.extra = [("CAST(NULL AS DATE)", f"{name}_lo"), ("CAST(NULL AS DATE)", f"{name}_hi")]
        return t
    if kind in ("text", "enum", "key"):
        s = f"CAST({ref} AS VARCHAR)" if src != TEXT else f"NULLIF(trim({ref}), '')"
        if kind == "key":
            return Typed(ref)
        t = Typed(s)
        if kind == "enum":
            allowed = ", ".join(quote(v) for v in values)
            t.checks.append((f"{s} IS NOT NULL AND {s} NOT IN ({allowed})",
                             _msg(where, "must be one of " + ", ".join(values), s)))
        if max_len is not None:
            t.checks.append((f"length({s}) > {max_len}",
                             _msg(where, f"must be at most {max_len} characters long", s)))
        if pattern is not None:
            t.checks.append((f"{s} IS NOT NULL AND NOT regexp_matches({s}, {quote('^(' + pattern + ')$')})",
                             _msg(where, "is not of the expected form", s)))
        return t
    if kind == "int":
        if src == INT:
            v = f"CAST({ref} AS BIGINT)"
            t = Typed(v)
        elif src == FLOAT:
            v = f"CASE WHEN {ref} = floor({ref}) AND abs({ref}) < 1e15 THEN CAST({ref} AS BIGINT) END"
            t = Typed(v)
            t.checks.append((f"{ref} IS NOT NULL AND {v} IS NULL",
                             _msg(where, "must be a whole number", ref)))
        else:
            s = f"NULLIF(trim({ref}), '')"
            v = (f"CASE WHEN regexp_matches({s}, {quote(INT_RE)}) THEN "
                 f"TRY_CAST(regexp_extract({s}, '^([-+]?[0-9]+)', 1) AS BIGINT) END")
            t = Typed(v)
            t.checks.append((f"{s} IS NOT NULL AND {v} IS NULL",
                             _msg(where, "must be a whole number", s)))
        _range(t, where, v, lo, hi)
        return t
    if kind == "float":
        if src in (INT, FLOAT):
            v = f"CAST({ref} AS DOUBLE)"
            t = Typed(v)
        else:
            s = f"NULLIF(trim({ref}), '')"
            v = f"CASE WHEN regexp_matches({s}, {quote(FLOAT_RE)}) THEN TRY_CAST({s} AS DOUBLE) END"
            t = Typed(v)
            t.checks.append((f"{s} IS NOT NULL AND {v} IS NULL", _msg(where, "must be a number", s)))
        _range(t, where, v, lo, hi)
        return t
    if kind == "bool":
        if src == BOOL:
            return Typed(ref)
        s = f"lower(NULLIF(trim({ref}), ''))"
        t = Typed(f"CASE WHEN {s} = 'true' THEN TRUE WHEN {s} = 'false' THEN FALSE END")
        t.checks.append((f"{s} IS NOT NULL AND {s} NOT IN ('true', 'false')",
                         _msg(where, "must be true or false", ref)))
        return t
    if kind == "date":
        if src == DATE:
            return Typed(ref)
        if src == TIMESTAMP:
            return Typed(f"CAST({ref} AS DATE)")
        s = f"NULLIF(trim({ref}), '')"
        v = f"CASE WHEN regexp_matches({s}, {quote(DATE_RE)}) THEN TRY_CAST({s} AS DATE) END"
        t = Typed(v)
        t.checks.append((f"{s} IS NOT NULL AND {v} IS NULL",
                         _msg(where, "must be a date written YYYY-MM-DD", s)))
        return t
    if kind == "pdate":
        if src in (DATE, TIMESTAMP):
            s = f"CAST(CAST({ref} AS DATE) AS VARCHAR)"
        elif src == INT:
            s = f"CAST({ref} AS VARCHAR)"
        else:
            s = f"NULLIF(trim({ref}), '')"
        return _partial_date(where, name, s, as_of)
    raise ValueError(f"unknown column kind {kind!r}")  # pragma: no cover - the layout is fixed


def _range(t: Typed, where: str, v: str, lo: float | None, hi: float | None) -> None:
    if lo is not None:
        t.checks.append((f"{v} < {lit(lo)}", _msg(where, f"must be at least {lit(lo)}", v)))
    if hi is not None:
        t.checks.append((f"{v} > {lit(hi)}", _msg(where, f"must be at most {lit(hi)}", v)))


def _partial_date(where: str, name: str, s: str, as_of: str | None) -> Typed:
    """A partial date (YYYY, YYYY-MM, YYYY-MM-DD): its bounds, and one cheap validity test with
    a detailed message for the (few) values that fail it."""
    full = (f"CASE length({s}) WHEN 4 THEN {s} || '-01-01' WHEN 7 THEN {s} || '-01' "
            f"WHEN 10 THEN {s} END")
    shape = (f"(substr({s}, 1, 4) >= '1900' AND (length({s}) = 4 OR substr({s}, 5, 1) = '-') "
             f"AND (length({s}) < 10 OR substr({s}, 8, 1) = '-'))")
    lo = f"CASE WHEN {shape} THEN TRY_CAST({full} AS DATE) END"
    hi = (f"CASE WHEN {shape} THEN CASE length({s}) WHEN 4 THEN TRY_CAST({s} || '-12-31' AS DATE) "
          f"WHEN 7 THEN last_day(TRY_CAST({s} || '-01' AS DATE)) ELSE TRY_CAST({s} AS DATE) END END")
    t = Typed(s, extra=[(lo, f"{name}_lo"), (hi, f"{name}_hi")])
    year = f"TRY_CAST(substr({s}, 1, 4) AS INTEGER)"
    month = f"TRY_CAST(substr({s}, 6, 2) AS INTEGER)"
    fmt_ok = f"regexp_matches({s}, {quote(PDATE_RE)})"
    last = (f"lpad(CAST(day(last_day(TRY_CAST(substr({s}, 1, 7) || '-01' AS DATE))) AS VARCHAR), "
            "2, '0')")
    message = (
        f"CASE WHEN NOT {fmt_ok} THEN "
        + _msg(where, "must be a date written YYYY, YYYY-MM or YYYY-MM-DD", s)
        + f" WHEN {year} < 1900 THEN " + _msg(where, "year must be 1900 or later", s)
        + f" WHEN length({s}) >= 7 AND {month} NOT BETWEEN 1 AND 12 THEN "
        + _msg(where, "month must be 01 to 12", s)
        + f" ELSE {quote(where + ': day must be 01 to ')} || {last} || ' in that month' || "
        f"{_got(s)} END")
    t.checks.append((f"{s} IS NOT NULL AND ({lo}) IS NULL", message))
    if as_of is not None:
        t.dated_checks.append((f"({lo}) > {as_of}",
                         f"{quote(where + ': ')} || {s} || ' is after the screening date ' || "
                         f"CAST({as_of} AS VARCHAR)"))
    return t


def days_before(lo: str, hi: str, as_of: str) -> str:
    """Whole days from a partial date (its bounds) to ``as_of``, on the safe reading: the day
    nearest to ``as_of`` that the date could mean (``ketascreen.core.dates.days_before``)."""
    nearest = f"CASE WHEN {hi} <= {as_of} THEN {hi} ELSE greatest({lo}, {as_of}) END"
    return f"CASE WHEN {lo} IS NOT NULL THEN date_diff('day', {nearest}, {as_of}) END"


# ============================================================================================




def _safe(name: str) -> str:
    """A column name as part of a table name."""
    return "".join(ch if ch.isalnum() else "_" for ch in name)


def _absent(src: str | None, ref: str) -> str:
    if src is None:
        return "TRUE"
    if src == TEXT:
        return f"NULLIF(trim({ref}), '') IS NULL"
    return f"{ref} IS NULL"


@dataclass
class Normalised:
    """What the normaliser registered, for the compiler and the runner."""

    runner: Runner
    raw: RawInput
    today: date
    lists: dict[str, bool]  # list table present?
    notes: list[str] = field(default_factory=list)  # input problems not tied to one person
    key_type: str = "VARCHAR"
    constant_as_of: bool = True


class Normaliser:
    """Registers the typed and canonical tables for one raw input (see the module docstring)."""

    def __init__(self, runner: Runner, raw: RawInput, today: date) -> None:
        self.r = runner
        self.raw = raw
        self.today = today
        self.problem_views: list[str] = []
        self.notes: list[str] = []
        kinds = {t.types.get("person_id") for t in raw.tables.values()}
        self.key_kind = INT if kinds == {INT} else TEXT
        self.key_type = "BIGINT" if self.key_kind == INT else "VARCHAR"
        self.constant_as_of = True
        self.orphan_checks: list[tuple[str, str]] = []

    # ------------------------------------------------------------------ helpers

    def _key(self, t: RawTable, ref: str = "person_id") -> str:
        return ref if t.types.get("person_id") == self.key_kind and self.key_kind == TEXT else \
            f"CAST({ref} AS {self.key_type})"

    def _source(self, t: RawTable, *, as_of: bool) -> str:
        """A subquery over a raw table: keyed ``person_id``, the raw columns, and ``as_of``."""
        raw_cols = ", ".join(f"src.{ident(c)}" for c in t.types if c != "person_id")
        raw_cols = (", " + raw_cols) if raw_cols else ""
        key = self._key(t, "src.person_id")
        if not as_of:
            return (f"(SELECT {key} AS person_id{raw_cols} FROM {t.view} AS src "
                    "WHERE src.person_id IS NOT NULL)")
        if self.constant_as_of:
            return (f"(SELECT {key} AS person_id, {lit(self.today)} AS as_of{raw_cols} "
                    f"FROM {t.view} AS src WHERE src.person_id IS NOT NULL)")
        return (f"(SELECT {key} AS person_id, kp.as_of AS as_of{raw_cols} FROM {t.view} AS src "
                f"JOIN (SELECT person_id AS kp_id, as_of FROM kt_people) AS kp ON {key} = kp.kp_id)")

    def _checks(self, name: str, source: str, checks: list[tuple[str, str]]) -> None:
        """Record the problems of ``source``'s rows as a (person_id, message) view."""
        if not checks:
            return
        # One pass: every problem of a row, joined into one message.
        messages = ", ".join(f"CASE WHEN {cond} THEN {msg} END" for cond, msg in checks)
        any_bad = " OR ".join(f"coalesce({cond}, FALSE)" for cond, _ in checks)
        self._problem_view(name, f"SELECT person_id, concat_ws('; ', {messages}) AS message "
                                 f"FROM {source} AS s WHERE {any_bad}")

    def _value_checks(self, name: str, view: str, key: str,
                      by_column: dict[str, list[tuple[str, str]]], as_of: str | None = None) -> None:
        """Checks that read one column's value: run on the column's distinct values (a population
        repeats the same few thousand codes, dates and names millions of times), then, only for
        a column that has bad values, find the rows that hold them.

        ``view`` is the raw table, ``key`` its person_id as the key type, ``as_of`` the constant
        screening date the checks may read."""
        parts = []
        for column, checks in by_column.items():
            if not checks:
                continue
            col = ident(column)
            messages = ", ".join(f"CASE WHEN {cond} THEN {msg} END" for cond, msg in checks)
            any_bad = " OR ".join(f"coalesce({cond}, FALSE)" for cond, _ in checks)
            dated = f", {as_of} AS as_of" if as_of is not None else ""
            parts.append(f"SELECT {quote(column)} AS col_, CAST({col} AS VARCHAR) AS v_, "
                         f"concat_ws('; ', {messages}) AS message FROM (SELECT DISTINCT {col}{dated} "
                         f"FROM {view} WHERE {col} IS NOT NULL) AS s WHERE {any_bad}")
        if not parts:
            return
        bad = f"kb_{name}"
        self.r.table(bad, " UNION ALL ".join(parts))
        columns = sorted(str(c) for (c,) in self.r.rows(f"SELECT DISTINCT col_ FROM {bad}"))
        for column in columns:
            self._problem_view(f"{name}_{_safe(column)}", (
                f"SELECT {key} AS person_id, b.message FROM {view} AS src JOIN {bad} AS b ON "
                f"b.col_ = {quote(column)} AND CAST(src.{ident(column)} AS VARCHAR) = b.v_"))

    def _problem_view(self, name: str, query: str) -> None:
        self.r.view(f"kp_{name}", query)
        self.problem_views.append(f"kp_{name}")

    def _columns(self, t: RawTable, *, as_of: str | None
                 ) -> tuple[list[str], list[tuple[str, str]], dict[str, list[tuple[str, str]]]]:
        """Each column's typed expression; the checks per row (those that read several columns,
        or a screening date that varies by person); the checks of each column's own value."""
        cols: list[str] = []
        row_checks: list[tuple[str, str]] = []
        by_column: dict[str, list[tuple[str, str]]] = {}
        for c in t.spec.columns[1:]:
            src = t.types.get(c.name)
            typed = typed_value(f"{t.spec.name}.{c.name}", c.name, c.kind, src, values=c.values,
                                lo=c.lo, hi=c.hi, max_len=c.max_len, pattern=c.pattern, as_of=as_of)
            expr = typed.expr
            if c.name == "status" and t.spec.name == "conditions":
                expr = f"coalesce({expr}, 'active')"
            elif c.name == "schedule":
                expr = f"coalesce({expr}, 'daily')"
            cols.append(f"{expr} AS {ident(c.name)}")
            cols += [f"{e} AS {ident(n)}" for e, n in typed.extra]
            if typed.checks or (typed.dated_checks and self.constant_as_of):
                by_column[c.name] = [*typed.checks,
                                     *(typed.dated_checks if self.constant_as_of else [])]
            if not self.constant_as_of:
                row_checks += typed.dated_checks
            if c.required and src is not None:
                row_checks.append((_absent(src, ident(c.name)),
                                   _msg(f"{t.spec.name}.{c.name}", "is required")))
        return cols, row_checks, by_column

    # ------------------------------------------------------------------ steps

    def run(self) -> Normalised:
        self._people()
        self._lists()
        self._vitals()
        self._answers()
        self._canonical_people()
        self._cross_checks()
        if self.raw.pre_errors:
            self._problem_view("pre", f"SELECT CAST(person_id AS {self.key_type}) AS person_id, "
                               "message FROM raw_pre_errors")
        union = " UNION ALL ".join(f"SELECT person_id, message FROM {v}" for v in self.problem_views)
        # Every distinct problem of a person, in a stable order.
        self.r.table("ks_problems", "SELECT person_id, array_to_string(list_sort(list_distinct("
                     f"list(message))), '; ') AS message FROM ({union}) AS u "
                     "WHERE person_id IS NOT NULL GROUP BY person_id")
        if self.orphan_checks:
            found = self.r.rows(" UNION ALL ".join(q for _s, q in self.orphan_checks))
            for source, nulls, orphans, example in sorted(found, key=lambda x: str(x[0])):
                if nulls:
                    self.notes.append(f"{source}: {nulls} row(s) without a person_id were left out")
                if orphans:
                    self.notes.append(f"{source}: rows for {orphans} person_id(s) that are not in "
                                      f"people were left out (for example {example!r})")
        return Normalised(self.r, self.raw, self.today,
                          {t.name: t.name in self.raw.tables for t in L.LIST_TABLES},
                          self.notes, self.key_type, self.constant_as_of)

    def _people(self) -> None:
        t = self.raw.tables["people"]
        cols, checks, by_column = self._columns(t, as_of=None)
        ident_col = "CAST(_id AS VARCHAR)" if "_id" in t.types else "CAST(person_id AS VARCHAR)"
        order_col = "CAST(_ord AS BIGINT)" if "_ord" in t.types else "CAST(NULL AS BIGINT)"
        preg_col = "coalesce(_pregnancy, FALSE)" if "_pregnancy" in t.types else "FALSE"
        source = self._source(t, as_of=False)
        self.r.view("kt_people_all", f"SELECT person_id, {ident_col} AS id, {order_col} AS ord, "
                    f"{preg_col} AS pregnancy_asked, {', '.join(cols)} FROM {source} AS s")
        self._checks("people", source, checks)
        self._value_checks("people", t.view, self._key(t, "src.person_id"), by_column)
        dated_sql = ("count(assessed_on)" if "assessed_on" in t.types else "0")
        n, distinct, nulls, dated_n = self.r.rows(
            f"SELECT count(*), count(DISTINCT person_id), count(*) - count(person_id), {dated_sql} "
            f"FROM {t.view}")[0]
        if nulls:
            self.notes.append(f"{t.source}: {nulls} row(s) without a person_id were not screened")
        base = "kt_people_all"
        if distinct != n - nulls:
            # Identical rows count once; a person_id on rows that differ is a problem.
            self.r.table("kt_people_distinct", "SELECT DISTINCT * FROM kt_people_all")
            self._problem_view("people_dup", "SELECT person_id, "
                               + quote("people.person_id: appears on several rows that differ")
                               + " AS message FROM kt_people_distinct GROUP BY person_id "
                                 "HAVING count(*) > 1")
            base = ("(SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY person_id ORDER BY "
                    "id) AS rn_ FROM kt_people_distinct) AS d WHERE rn_ = 1)")
        dated = bool(dated_n)
        self.constant_as_of = not dated
        as_of = f"coalesce(assessed_on, {lit(self.today)})" if dated else lit(self.today)
        cols_out = ", ".join(["person_id", "id", "ord", "pregnancy_asked",
                              *(ident(c.name) for c in L.PEOPLE.columns[1:])])
        self.r.table("kt_people", f"SELECT {cols_out}, {as_of} AS as_of FROM {base} AS b")

    def _typed_table(self, t: RawTable) -> None:
        name = t.spec.name
        cols, checks, by_column = self._columns(t, as_of="as_of")
        if name in ("conditions", "family_history"):
            checks.append(("NULLIF(trim(CAST(code AS VARCHAR)), '') IS NULL AND "
                           "NULLIF(trim(CAST(name AS VARCHAR)), '') IS NULL"
                           if "code" in t.types and "name" in t.types else
                           _absent(t.types.get("code") or t.types.get("name"),
                                   "code" if "code" in t.types else "name"),
                           _msg(name, "a row needs a code or a name (or both)")))
        source = self._source(t, as_of=True)
        self.r.view(f"kt_{name}", f"SELECT person_id, as_of, {', '.join(cols)} FROM {source} AS s")
        self._checks(name, source, checks)
        self._value_checks(name, t.view, self._key(t, "src.person_id"), by_column,
                           lit(self.today) if self.constant_as_of else None)
        self.orphan_checks.append((t.source, (
            # Probe every row (cheap: few are orphans), then count the distinct ones left.
            f"SELECT {quote(t.source)} AS src, (SELECT count(*) - count(person_id) FROM {t.view}) "
            f"AS nulls, count(DISTINCT person_id) AS orphans, min(CAST(person_id AS VARCHAR)) AS "
            f"example FROM (SELECT {self._key(t)} AS person_id FROM {t.view} WHERE person_id IS NOT "
            "NULL) AS f ANTI JOIN kt_people USING (person_id)")))

    def _lists(self) -> None:
        people = self.raw.tables["people"]
        for spec in L.LIST_TABLES:
            t = self.raw.tables.get(spec.name)
            if t is None:
                cols = [f"CAST(NULL AS {self.key_type}) AS person_id", "CAST(NULL AS DATE) AS as_of"]
                for c in spec.columns[1:]:
                    cols.append(f"CAST(NULL AS {_sql_type(c.kind)}) AS {ident(c.name)}")
                    if c.kind == "pdate":
                        cols += [f"CAST(NULL AS DATE) AS {ident(c.name + s)}" for s in ("_lo", "_hi")]
                self.r.view(f"kt_{spec.name}", f"SELECT {', '.join(cols)} WHERE FALSE")
                continue
            self._typed_table(t)
            flag = f"{spec.name}_asked"
            if flag in people.types:
                self._problem_view(f"{spec.name}_asked", "SELECT DISTINCT person_id, "
                                   + quote(f"people.{flag}: is false but the person has rows in "
                                           f"{spec.name}")
                                   + f" AS message FROM kt_{spec.name} SEMI JOIN (SELECT person_id "
                                   f"FROM kt_people WHERE {ident(flag)} = FALSE) AS f USING (person_id)")

    def _vitals(self) -> None:
        t = self.raw.tables.get("vitals")
        if t is None:
            self.r.view("kt_vitals1", f"SELECT CAST(NULL AS {self.key_type}) AS person_id, "
                        "CAST(NULL AS BIGINT) AS systolic, CAST(NULL AS BIGINT) AS diastolic, "
                        "CAST(NULL AS BIGINT) AS heart_rate, CAST(NULL AS VARCHAR) AS taken_on, "
                        "CAST(NULL AS INTEGER) AS taken_days WHERE FALSE")
            return
        self._typed_table(t)
        self._problem_view("vitals_order", "SELECT DISTINCT person_id, 'vitals.diastolic: ' || "
                           "CAST(diastolic AS VARCHAR) || ' must be below the systolic ' || "
                           "CAST(systolic AS VARCHAR) AS message FROM kt_vitals "
                           "WHERE diastolic >= systolic")
        days = days_before("taken_on_lo", "taken_on_hi", "as_of")
        near = ("CASE WHEN taken_on_lo IS NULL THEN NULL WHEN taken_on_hi <= as_of THEN taken_on_hi "
                "ELSE greatest(taken_on_lo, as_of) END")
        n, distinct = self.r.rows("SELECT count(*), count(DISTINCT person_id) FROM kt_vitals")[0]
        cols = f"person_id, systolic, diastolic, heart_rate, taken_on, {days} AS taken_days"
        if n == distinct:
            self.r.view("kt_vitals1", f"SELECT {cols} FROM kt_vitals")
            return
        # Several readings: the latest counts (undated ones are the oldest); on the same day the
        # highest reading counts (the safe reading).
        self.r.view("kt_vitals1", f"SELECT {cols} FROM (SELECT *, row_number() OVER (PARTITION BY "
                    f"person_id ORDER BY {near} DESC NULLS LAST, systolic DESC, diastolic DESC, "
                    "heart_rate DESC NULLS LAST, taken_on DESC NULLS LAST) AS rn_ FROM kt_vitals) "
                    "AS v WHERE rn_ = 1")

    def _answers(self) -> None:
        t = self.raw.tables.get("answers")
        fields = L.ANSWER_FIELDS
        if t is None:
            cols = [f"CAST(NULL AS {self.key_type}) AS person_id"]
            cols += [f"FALSE AS {ident('ind_' + v)}" for v in L.INDICATIONS]
            cols += [f"CAST(NULL AS {_sql_type(a.kind)}) AS {ident(a.column)}"
                     for a in fields if not a.multi]
            self.r.view("kt_answers", f"SELECT {', '.join(cols)} WHERE FALSE")
            return
        if t.wide:
            value_view, value_key = t.view, self._key(t, "src.person_id")
            types = {c: k for c, k in t.types.items() if c == "person_id" or c in L.ANSWER_BY_FIELD}
            source = self._source(RawTable(t.spec, t.view, types, t.source, True), as_of=False)
            n, distinct = self.r.rows(f"SELECT count(*), count(DISTINCT person_id) FROM {t.view}")[0]
            if n != distinct:
                self.r.table("kt_answers_distinct", f"SELECT DISTINCT * FROM {source} AS s")
                self._problem_view("answers_dup", "SELECT person_id, "
                                   + quote("answers.person_id: appears on several rows that differ")
                                   + " AS message FROM kt_answers_distinct GROUP BY person_id "
                                     "HAVING count(*) > 1")
                source = ("(SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY person_id "
                          "ORDER BY person_id) AS rn_ FROM kt_answers_distinct) AS d WHERE rn_ = 1)")
        else:
            key = self._key(t)
            found = [r[0] for r in self.r.rows(
                f"SELECT DISTINCT field FROM {t.view} WHERE field IS NOT NULL")]
            known = sorted(f for f in found if f in L.ANSWER_BY_FIELD)
            unknown = sorted(f for f in found if f not in L.ANSWER_BY_FIELD)
            if unknown:
                from ketascreen.batch.inputs import _did_you_mean

                cases = " ".join(
                    f"WHEN field = {quote(u)} THEN "
                    + quote(f"answers.field: unknown answer field {u!r}"
                            + _did_you_mean(u, L.ANSWER_BY_FIELD))
                    for u in unknown)
                self._problem_view("answers_field", f"SELECT DISTINCT {key} AS person_id, "
                                   f"CASE {cases} END AS message FROM {t.view} WHERE field IN "
                                   f"({', '.join(quote(u) for u in unknown)})")
            self._problem_view("answers_conflict", f"SELECT {key} AS person_id, "
                               "min('answers.' || field || ': has several different values') "
                               f"AS message FROM {t.view} WHERE field IS NOT NULL AND "
                               "field <> 'indications' GROUP BY person_id, field "
                               "HAVING count(DISTINCT value) > 1")
            self._problem_view("answers_value", f"SELECT DISTINCT {key} AS person_id, "
                               "'answers.value: is required (field ' || field || ')' AS message "
                               f"FROM {t.view} WHERE field IS NOT NULL AND value IS NULL")
            pivots = []
            for f in known:
                if f == "indications":
                    pivots.append("array_to_string(list_distinct(list(trim(value)) FILTER "
                                  "(WHERE field = 'indications')), ';') AS indications")
                else:
                    pivots.append(f"max(value) FILTER (WHERE field = {quote(f)}) AS {ident(f)}")
            self.r.table("kt_answers_long", f"SELECT {key} AS person_id"
                         + "".join(", " + p for p in pivots)
                         + f" FROM {t.view} WHERE person_id IS NOT NULL GROUP BY {key}")
            types = dict.fromkeys(known, TEXT)
            source = "kt_answers_long"
            value_view, value_key = source, "src.person_id"
        cols = ["s.person_id"]
        by_column: dict[str, list[tuple[str, str]]] = {}
        ind_join = False
        for a in fields:
            src_kind = types.get(a.field)
            where = f"answers.{a.field}"
            if a.multi:
                if src_kind is None:
                    cols += [f"FALSE AS {ident('ind_' + v)}" for v in a.values]
                    continue
                # Indications are few distinct strings: parse each once.
                allowed = ", ".join(quote(v) for v in a.values)
                parts = ("list_filter(list_transform(string_split(raw_, ';'), lambda x: trim(x)), "
                         "lambda x: x <> '')")
                bad = f"list_filter({parts}, lambda x: x NOT IN ({allowed}))"
                flags = ", ".join(f"array_contains({parts}, {quote(v)}) AS {ident('ind_' + v)}"
                                  for v in a.values)
                self.r.table("kt_indications", f"SELECT raw_, {flags}, CASE WHEN array_length({bad}) "
                             f"> 0 THEN {quote(where + ': must be one of ' + ', '.join(a.values))} "
                             f"|| ' (got ' || array_to_string({bad}, ', ') || ')' END AS bad_ FROM "
                             f"(SELECT DISTINCT CAST(indications AS VARCHAR) AS raw_ FROM {source} "
                             "AS s WHERE indications IS NOT NULL) AS d")
                cols += [f"coalesce(ki.{ident('ind_' + v)}, FALSE) AS {ident('ind_' + v)}"
                         for v in a.values]
                ind_join = True
                if self.r.scalar("SELECT count(*) FROM kt_indications WHERE bad_ IS NOT NULL"):
                    self._problem_view("answers_indications", (
                        f"SELECT s.person_id, ki.bad_ AS message FROM {source} AS s JOIN "
                        "kt_indications AS ki ON CAST(s.indications AS VARCHAR) = ki.raw_ "
                        "WHERE ki.bad_ IS NOT NULL"))
                continue
            typed = typed_value(where, a.field, a.kind, src_kind, values=a.values, lo=a.lo,
                                hi=a.hi, max_len=a.max_len)
            cols.append(f"{typed.expr} AS {ident(a.column)}")
            if typed.checks:
                by_column[a.field] = typed.checks
        self.r.view("kt_answers", f"SELECT {', '.join(cols)} FROM {source} AS s"
                    + (" LEFT JOIN kt_indications AS ki ON CAST(s.indications AS VARCHAR) = ki.raw_"
                       if ind_join else ""))
        self._value_checks("answers", value_view, value_key, by_column)

    def _canonical_people(self) -> None:
        a = L.ANSWER_BY_FIELD
        cols = ["p.person_id", "p.id", "p.ord", "p.as_of", "p.age",
                "coalesce(p.sex, 'unknown') AS sex", "p.route", "p.setting"]
        for spec in L.LIST_TABLES:
            flag = f"{spec.name}_asked"
            default = "TRUE" if spec.name in self.raw.tables else "FALSE"
            cols.append(f"coalesce(p.{ident(flag)}, {default}) AS {ident(flag)}")
        stale = f"coalesce(v.taken_days > {STALE_DAYS}, FALSE)"
        cols += ["v.person_id IS NOT NULL AS vitals_given", "v.taken_on IS NOT NULL AS vitals_dated",
                 f"{stale} AS vitals_stale"]
        for name in ("systolic", "diastolic", "heart_rate"):
            cols.append(f"CASE WHEN {stale} THEN NULL ELSE CAST(v.{name} AS INTEGER) END AS {name}")
        for f in L.ANSWER_FIELDS:
            if f.multi:
                cols += [f"coalesce(ans.{ident('ind_' + v)}, FALSE) AS {ident('ind_' + v)}"
                         for v in f.values]
            else:
                cols.append(f"ans.{ident(f.column)}")
        preg = [a[f"pregnancy.{k}"].column for k in ("pregnant", "breastfeeding", "planning")]
        cols.append("(p.pregnancy_asked OR " + " OR ".join(f"ans.{c} IS NOT NULL" for c in preg)
                    + ") AS pregnancy_given")
        pk = [a[f"prior_ketamine.{k}"].column for k in ("received", "misuse", "adverse_reaction")]
        cols.append("(" + " OR ".join(f"ans.{c} IS NOT NULL" for c in pk)
                    + ") AS prior_ketamine_given")
        # A view: read once, by the compiled rules (materialising its ~80 columns costs more).
        self.r.view("ks_people", f"SELECT {', '.join(cols)} FROM kt_people AS p "
                     "LEFT JOIN kt_answers AS ans ON p.person_id = ans.person_id "
                     "LEFT JOIN kt_vitals1 AS v ON p.person_id = v.person_id")

    def _cross_checks(self) -> None:
        """Answers that come together: whole questionnaires; prior_ketamine.received."""
        checks: list[tuple[str, str]] = []

        def count(columns: list[str]) -> str:
            return "(" + " + ".join(f"CASE WHEN {c} IS NULL THEN 0 ELSE 1 END" for c in columns) + ")"

        for name, (n, _kind, _top) in L.INSTRUMENT_ITEMS.items():
            items = [L.answer_column(f"instruments.{name}[{i}]") for i in range(n)]
            checks.append((f"{count(items)} NOT IN (0, {n})",
                           f"'instruments.{name}: must have exactly {n} items (got ' || "
                           f"CAST({count(items)} AS VARCHAR) || ')'"))
        mdq = [L.answer_column(f"instruments.mdq.items[{i}]") for i in range(13)]
        mdq += [L.answer_column("instruments.mdq.clustered"),
                L.answer_column("instruments.mdq.impairment")]
        checks.append((f"{count(mdq)} NOT IN (0, {len(mdq)})",
                       quote("instruments.mdq: needs all 13 items, clustered and impairment")))
        cs = [L.answer_column(f"instruments.cssrs_screen.{k}") for k in L.CSSRS_KEYS]
        checks.append((f"{count(cs)} NOT IN (0, 6)",
                       quote("instruments.cssrs_screen: needs all six answers")))
        pk = {k: L.ANSWER_BY_FIELD[f"prior_ketamine.{k}"].column
              for k in ("received", "misuse", "adverse_reaction")}
        checks.append((f"({pk['misuse']} IS NOT NULL OR {pk['adverse_reaction']} IS NOT NULL) AND "
                       f"{pk['received']} IS NULL", quote("prior_ketamine.received: is required")))
        # The answers alone (a person without answers has none of these problems).
        self._checks("cross", "kt_answers", checks)
