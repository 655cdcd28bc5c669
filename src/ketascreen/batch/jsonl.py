"""JSON Lines of intakes → the normalised tables, validated by the contract's own validator.

Each line is checked by ``parse_intake`` exactly as ``ketascreen screen`` checks it; a line that
is not a valid intake gets an output row naming the line, the field and what is wrong, and the
other lines are still screened. Valid intakes are flattened into the normalised layout as Arrow
tables (``person_id`` is the line number; ``id`` echoes the intake's own ``id``).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

from ketascreen.batch import layout as L
from ketascreen.batch.engines import BOOL, DATE, FLOAT, INT, TEXT, Runner
from ketascreen.batch.inputs import RawInput, RawTable
from ketascreen.core.facts import prior_ketamine_answers
from ketascreen.core.model import Intake
from ketascreen.core.validation import parse_intake
from ketascreen.errors import InputError, Problem

_ARROW_KIND = {"key": INT, "int": INT, "float": FLOAT, "bool": BOOL, "date": DATE}


def _lines(path: str) -> Iterator[tuple[int, str]]:
    opener: Any = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for n, line in enumerate(fh, start=1):
                if line.strip():
                    yield n, line
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError([Problem("", f"cannot read the file: {exc}")], source=path) from None


class Flattener:
    """Collects intakes as columns of the normalised tables."""

    def __init__(self) -> None:
        self.cols: dict[str, dict[str, list[Any]]] = {}
        for t in L.TABLES:
            if t is L.ANSWERS_LONG:
                continue
            self.cols[t.name] = {c.name: [] for c in t.columns}
        self.cols["people"]["_id"] = []
        self.cols["people"]["_ord"] = []
        # An empty "pregnancy": {} object: asked, nothing answered (missing names each answer).
        self.cols["people"]["_pregnancy"] = []
        self.answers: list[tuple[int, dict[str, Any]]] = []
        self.errors: list[tuple[int, str | None, str]] = []
        self.count = 0

    def _row(self, table: str, **values: Any) -> None:
        cols = self.cols[table]
        for name, lst in cols.items():
            lst.append(values.get(name))

    def add_error(self, key: int, ident: str | None, message: str) -> None:
        self._row("people", person_id=key, _id=ident, _ord=key)
        self.errors.append((key, ident, message))

    def add(self, key: int, intake: Intake) -> None:
        self.count += 1
        self._row("people", person_id=key, _id=intake.id, _ord=key, assessed_on=intake.assessed_on,
                  _pregnancy=intake.pregnancy is not None,
                  age=intake.age, sex=intake.sex, route=intake.route, setting=intake.setting,
                  conditions_asked=intake.conditions is not None,
                  family_history_asked=intake.family_history is not None,
                  medications_asked=intake.medications is not None,
                  allergies_asked=intake.allergies is not None,
                  substances_asked=intake.substances is not None)
        for i, c in enumerate(intake.conditions or ()):
            self._row("conditions", person_id=key, seq=i, **c.model_dump())
        for i, f in enumerate(intake.family_history or ()):
            self._row("family_history", person_id=key, seq=i, **f.model_dump())
        for i, m in enumerate(intake.medications or ()):
            self._row("medications", person_id=key, seq=i, **m.model_dump())
        for i, a in enumerate(intake.allergies or ()):
            self._row("allergies", person_id=key, seq=i, **a.model_dump())
        for i, s in enumerate(intake.substances or ()):
            self._row("substances", person_id=key, seq=i, **s.model_dump())
        if intake.vitals is not None:
            self._row("vitals", person_id=key, **intake.vitals.model_dump())
        answers = flatten_answers(intake)
        if answers:
            self.answers.append((key, answers))

    def tables(self) -> dict[str, Any]:
        import pyarrow as pa  # type: ignore[import-untyped]

        out: dict[str, Any] = {}
        for t in L.TABLES:
            if t is L.ANSWERS_LONG:
                continue
            arrays = {}
            for c in t.columns:
                arrays[c.name] = pa.array(self.cols[t.name][c.name], type=_arrow_type(c.kind))
            if t is L.PEOPLE:
                arrays["_id"] = pa.array(self.cols["people"]["_id"], type=pa.string())
                arrays["_ord"] = pa.array(self.cols["people"]["_ord"], type=pa.int64())
                arrays["_pregnancy"] = pa.array(self.cols["people"]["_pregnancy"], type=pa.bool_())
            out[t.name] = pa.table(arrays)
        arrays = {"person_id": pa.array([k for k, _ in self.answers], type=pa.int64())}
        names = sorted({name for _, a in self.answers for name in a},
                       key=lambda n: list(L.ANSWER_BY_FIELD).index(n))
        for name in names:
            spec = L.ANSWER_BY_FIELD[name]
            kind = "text" if spec.multi else spec.kind
            arrays[name] = pa.array([a.get(name) for _, a in self.answers], type=_arrow_type(kind))
        out["answers"] = pa.table(arrays)
        return out


def _arrow_type(kind: str) -> Any:
    import pyarrow as pa

    return {"key": pa.int64(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(),
            "date": pa.date32()}.get(kind, pa.string())


def flatten_answers(intake: Intake) -> dict[str, Any]:
    """The intake's scalar answers by contract path (the answers table's fields)."""
    out: dict[str, Any] = {}
    if intake.indications:
        out["indications"] = ";".join(dict.fromkeys(intake.indications))
    for group in ("symptoms", "readiness", "pregnancy", "labs"):
        obj = getattr(intake, group)
        if obj is not None:
            for key, value in obj.model_dump().items():
                if value is not None:
                    out[f"{group}.{key}"] = value
    out.update(prior_ketamine_answers(intake))
    inst = intake.instruments
    if inst is not None:
        for name in L.INSTRUMENT_ITEMS:
            values = getattr(inst, name)
            if values is not None:
                for i, v in enumerate(values):
                    out[f"instruments.{name}[{i}]"] = v
        if inst.mdq is not None:
            for i, v in enumerate(inst.mdq.items):
                out[f"instruments.mdq.items[{i}]"] = v
            out["instruments.mdq.clustered"] = inst.mdq.clustered
            out["instruments.mdq.impairment"] = inst.mdq.impairment
        if inst.cssrs_screen is not None:
            for key, value in inst.cssrs_screen.model_dump().items():
                out[f"instruments.cssrs_screen.{key}"] = value
    return out


def register_jsonl(runner: Runner, path: str, *, today: object = None,
                   progress: Callable[[int], None] | None = None) -> RawInput:
    day = today if isinstance(today, date) else date.today()
    flat = Flattener()
    for n, line in _lines(path):
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            flat.add_error(n, None, f"{path}:{n}: not valid JSON: {exc.msg} (column {exc.colno})")
            continue
        ident = data.get("id") if isinstance(data, dict) and isinstance(data.get("id"), str) else None
        try:
            intake = parse_intake(data, today=day, source=f"{path}:{n}")
        except InputError as exc:
            flat.add_error(n, ident, exc.describe())
            continue
        flat.add(n, intake)
        if progress is not None and n % 5000 == 0:
            progress(n)
    raw = RawInput("jsonl", path)
    for name, table in flat.tables().items():
        view = f"raw_{name}"
        spec = L.TABLE_BY_NAME[name]
        runner.register_arrow(view, table)
        types = {f.name: _kind_of_arrow(f.type) for f in table.schema}
        raw.tables[name] = RawTable(spec, view, types, path, wide=name == "answers")
    if flat.errors:
        import pyarrow as pa

        runner.register_arrow("raw_pre_errors", pa.table({
            "person_id": pa.array([e[0] for e in flat.errors], type=pa.int64()),
            "message": pa.array([e[2] for e in flat.errors], type=pa.string())}))
        raw.pre_errors = [(str(e[0]), e[1], e[2]) for e in flat.errors]
    return raw


def _kind_of_arrow(t: Any) -> str:
    import pyarrow as pa

    if pa.types.is_integer(t):
        return INT
    if pa.types.is_floating(t):
        return FLOAT
    if pa.types.is_boolean(t):
        return BOOL
    if pa.types.is_date(t):
        return DATE
    return TEXT
