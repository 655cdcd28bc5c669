"""Finding the input: which layout a path holds, and its files, checked against the layout.

Three layouts: JSON Lines of intakes (a ``.jsonl`` / ``.ndjson`` file), a folder of normalised
tables (``people`` and friends, see :mod:`ketascreen.batch.layout`), and a folder of OMOP CDM
v5.4 tables (``person``, ``condition_occurrence`` …). A table is ``NAME.parquet``,
``NAME.csv`` (or ``.csv.gz``), or a folder ``NAME/`` of such files; names ignore case.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from ketascreen.batch.engines import BOOL, DATE, FLOAT, INT, OTHER, TEXT, TIMESTAMP, Runner
from ketascreen.batch.layout import ANSWER_BY_FIELD, ANSWERS_LONG, TABLES, Table
from ketascreen.errors import InputError, Problem

LAYOUTS = ("tables", "omop", "jsonl")

# Source column types each kind accepts (anything else is refused with the file and column).
ACCEPTS: dict[str, tuple[str, ...]] = {
    "key": (TEXT, INT),
    "text": (TEXT, INT),
    "enum": (TEXT,),
    "int": (INT, FLOAT, TEXT),
    "float": (FLOAT, INT, TEXT),
    "bool": (BOOL, TEXT),
    "date": (DATE, TIMESTAMP, TEXT),
    "pdate": (DATE, TIMESTAMP, TEXT, INT),
}
KIND_WORDS = {"key": "text or integer", "text": "text", "enum": "text", "int": "a whole number",
              "float": "a number", "bool": "true/false", "date": "a date", "pdate": "a date"}


@dataclass
class RawTable:
    """One table of the normalised layout as registered (view ``raw_<name>``)."""

    spec: Table
    view: str
    types: dict[str, str]
    source: str
    wide: bool = False  # answers given one column per field


@dataclass
class RawInput:
    layout: str
    path: str
    tables: dict[str, RawTable] = field(default_factory=dict)
    # Input problems found before SQL (invalid JSON Lines): (person key, id, message).
    pre_errors: list[tuple[str, str | None, str]] = field(default_factory=list)
    info: list[str] = field(default_factory=list)  # what the layout cannot carry, for the reader


def detect_layout(path: str) -> str:
    """``jsonl``, ``tables`` or ``omop`` for a path, or an InputError saying what was expected."""
    p = Path(path)
    if not p.exists():
        raise InputError([Problem("", "no such file or folder")], source=path)
    if p.is_file():
        name = p.name.lower()
        if name.endswith((".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")):
            return "jsonl"
        raise InputError([Problem("", "a file input must be JSON Lines (.jsonl or .ndjson); a "
                                      "folder holds normalised or OMOP tables")], source=path)
    if table_files(p, "people") is not None:
        return "tables"
    if table_files(p, "person") is not None:
        return "omop"
    raise InputError([Problem("", "cannot tell the layout of this folder: expected a `people` "
                                  "table (normalised layout) or a `person` table (OMOP CDM), as "
                                  ".parquet, .csv or a folder of them")], source=path)


def _kind_of(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".csv", ".csv.gz", ".tsv")):
        return "csv"
    return None


def table_files(folder: Path, name: str) -> tuple[list[Path], str] | None:
    """The files of table ``name`` in ``folder`` and their format, or None when absent."""
    found: list[tuple[list[Path], str]] = []
    for entry in sorted(folder.iterdir()):
        stem = entry.name.lower()
        if entry.is_dir() and stem == name:
            parts = sorted(f for f in entry.rglob("*") if f.is_file() and _kind_of(f))
            kinds = {_kind_of(f) for f in parts}
            if len(kinds) > 1:
                raise InputError([Problem("", "mixes Parquet and CSV files")], source=str(entry))
            if parts:
                found.append((parts, str(kinds.pop())))
            continue
        kind = _kind_of(entry)
        if kind is None or not entry.is_file():
            continue
        base = stem
        for suffix in (".parquet", ".csv.gz", ".csv", ".tsv"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
                break
        if base == name:
            found.append(([entry], kind))
    if len(found) > 1:
        raise InputError([Problem("", f"table {name!r} is given more than once: "
                                      + ", ".join(str(f[0][0]) for f in found))],
                         source=str(folder))
    return found[0] if found else None


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_columns(spec: Table, types: dict[str, str], source: str) -> bool:
    """Check a registered table's columns against the layout; True for a wide answers table.

    Unknown columns are refused (a typo must never be ignored); columns named ``x_…`` are
    the caller's own and are ignored. Every problem is reported at once.
    """
    problems: list[Problem] = []
    wide = False
    if spec is ANSWERS_LONG:
        cols = {c for c in types if not c.startswith("x_")}
        wide = not ({"field", "value"} <= cols)
        if wide:
            if "person_id" not in cols:
                problems.append(Problem("person_id", "is required"))
            for c in sorted(cols - {"person_id"}):
                spec_field = ANSWER_BY_FIELD.get(c)
                if spec_field is None:
                    problems.append(Problem(c, "unknown column: not an answer field"
                                               + _did_you_mean(c, ANSWER_BY_FIELD)))
                    continue
                accepted = ACCEPTS["text" if spec_field.kind == "text" else spec_field.kind]
                if types[c] not in accepted:
                    problems.append(Problem(c, f"has type {types[c]}, expected "
                                               f"{KIND_WORDS[spec_field.kind]}"))
            if problems:
                raise InputError(problems, source=source)
            return True
    for c in types:
        if c.startswith(("x_", "_")) or c in spec.names:
            continue
        problems.append(Problem(c, f"unknown column in {spec.name}" + _did_you_mean(c, spec.names)))
    for column in spec.columns:
        if column.required and column.name not in types:
            problems.append(Problem(column.name, "is required but the file has no such column"))
            continue
        kind = types.get(column.name)
        if kind is not None and kind not in ACCEPTS[column.kind]:
            word = "an unsupported type" if kind == OTHER else f"type {kind}"
            problems.append(Problem(column.name, f"has {word}, expected {KIND_WORDS[column.kind]}"))
    if problems:
        raise InputError(problems, source=source)
    return wide


def register_tables(runner: Runner, folder: str) -> RawInput:
    """Register every table of a normalised-layout folder as ``raw_<name>``."""
    root = Path(folder)
    raw = RawInput("tables", folder)
    for spec in TABLES:
        found = table_files(root, spec.name)
        if found is None:
            if spec.required:
                raise InputError([Problem("", f"the {spec.name} table is missing")], source=folder)
            continue
        files, fmt = found
        source = str(files[0]) if len(files) == 1 else str(files[0].parent)
        view = f"raw_{spec.name}"
        types = runner.read_files(view, files, fmt)
        wide = check_columns(spec, types, source)
        raw.tables[spec.name] = RawTable(spec, view, types, source, wide)
    return raw


def open_input(runner: Runner, path: str, layout: str = "auto", *, today: date | None = None,
               progress: Callable[[int], None] | None = None) -> RawInput:
    """Register the input at ``path`` (any layout) as the raw normalised tables."""
    chosen = detect_layout(path) if layout == "auto" else layout
    if chosen not in LAYOUTS:
        raise InputError([Problem("--layout", f"must be one of auto, {', '.join(LAYOUTS)}")])
    if chosen == "tables":
        return register_tables(runner, path)
    if chosen == "omop":
        from ketascreen.batch.omop import register_omop

        return register_omop(runner, path, today=today)
    from ketascreen.batch.jsonl import register_jsonl

    return register_jsonl(runner, path, today=today, progress=progress)
