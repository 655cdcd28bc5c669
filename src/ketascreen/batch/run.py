"""Screening a population: read the input, check it, run the compiled rules, write the results.

The output has one row per person: ``id``, ``as_of``, ``decision``, ``urgent``, ``route_iv`` …
``route_oral``, ``rules`` (the fired rule ids, worst first), ``missing`` (``{field, blocking}``
answers, in the engine's order), ``unrecognized`` (``{field, value}``), the knowledge base's
version and SHA-256, the protocol's name and SHA-256, and ``error`` for a person whose input is
invalid (whose decision is then empty). Parquet keeps the lists as lists; CSV writes them as
JSON text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from ketascreen.batch.compiler import Compiler
from ketascreen.batch.engines import DuckDBRunner, Runner, SparkRunner
from ketascreen.batch.inputs import open_input
from ketascreen.batch.normalise import Normalised, Normaliser
from ketascreen.batch.vocabulary import register_vocabularies
from ketascreen.core.engine import CompiledKnowledgeBase
from ketascreen.core.kb import KnowledgeBase, Protocol
from ketascreen.errors import InputError, Problem

OUTPUT_COLUMNS = ("id", "as_of", "decision", "urgent", "route_iv", "route_im", "route_intranasal",
                  "route_oral", "rules", "missing", "unrecognized", "kb_version", "kb_sha256",
                  "protocol", "protocol_sha256", "error")
LIST_COLUMNS = ("rules", "missing", "unrecognized")
STAGES = ("read", "check", "vocabulary", "compile", "screen", "write", "summary")

Progress = Callable[[str], None]


@dataclass
class BatchResult:
    """What a run did: counts, notes on the input, where the output went, and the timings."""

    people: int
    screened: int
    invalid: int
    output: str
    engine: str
    layout: str
    notes: list[str] = field(default_factory=list)  # input problems not tied to one person
    info: list[str] = field(default_factory=list)  # what the input layout cannot carry
    errors: list[tuple[str, str]] = field(default_factory=list)  # first few (id, message)
    timings: dict[str, float] = field(default_factory=dict)
    summary: Any = None

    @property
    def ok(self) -> bool:
        return self.invalid == 0 and not self.notes


def output_format(path: str) -> str:
    low = path.lower().rstrip("/")
    if low.endswith(".parquet"):
        return "parquet"
    if low.endswith(".csv"):
        return "csv"
    raise InputError([Problem("--out", "must end in .parquet or .csv (the format follows the "
                                       "extension)")], source=path)


def make_runner(engine: str, *, spark: Any = None, master: str | None = None,
                remote: str | None = None, threads: int | None = None,
                memory_limit: str | None = None) -> Runner:
    if engine == "duckdb":
        return DuckDBRunner(threads=threads, memory_limit=memory_limit)
    if engine == "spark":
        return SparkRunner(spark, master=master, remote=remote)
    raise InputError([Problem("--engine", "must be duckdb or spark")])


def prepare(runner: Runner, input_path: str, *, ckb: CompiledKnowledgeBase, today: date,
            layout: str = "auto", stage: Callable[[str], Any] | None = None,
            progress_lines: Callable[[int], None] | None = None) -> tuple[Normalised, Compiler]:
    """Compile the rules, register and check the input, resolve the vocabularies."""
    step = stage or (lambda _n: _null())
    compiler = Compiler(ckb)  # refuses before any data is read
    with step("read"):
        raw = open_input(runner, input_path, layout, today=today, progress=progress_lines)
    with step("check"):
        norm = Normaliser(runner, raw, today).run()
    with step("vocabulary"):
        register_vocabularies(runner, ckb.lexicon)
    return norm, compiler


def screen_tables(runner: Runner, compiler: Compiler, stage: Callable[[str], Any] | None = None
                  ) -> None:
    """Run the compiled rules over the registered tables, into ``kx_output`` (a view on DuckDB,
    a table elsewhere)."""
    step = stage or (lambda _n: _null())
    ckb = compiler.ckb
    with step("compile"):
        for name, query in compiler.dims().items():
            # Small tables (the vocabularies, the distinct row shapes), except the substance
            # rows with their date classes, read twice.
            runner.table(name, query)
        for name, query in compiler.rows().items():
            runner.view(name, query)
        values_sql = compiler.values_select()
        dense_sql = compiler.ranks_select()
        signature_sql = compiler.signature_select()
        output_sql = compiler.output_select(ckb.kb.version, ckb.kb.sha256, ckb.protocol_info.name,
                                            ckb.protocol_info.sha256)
    with step("screen"):
        made = []
        for name, query in compiler.person_tables():
            runner.table(name, query)
            made.append(name)
        runner.view("kx_features", compiler.features(made))
        runner.view("kx_values", values_sql)
        runner.table("kx_dense", dense_sql)
        runner.table("kx_signatures", signature_sql)
        if runner.dialect == "duckdb":
            # Read once, by the writer (the summary reads narrow columns): computed there,
            # straight into the file, rather than stored first.
            runner.view("kx_output", output_sql)
        else:
            runner.table("kx_output", output_sql)


@contextmanager
def _null() -> Iterator[None]:
    yield


def write_output(runner: Runner, path: str, fmt: str) -> None:
    cols = []
    for c in OUTPUT_COLUMNS:
        if fmt == "csv" and c in LIST_COLUMNS:
            cols.append(f"CAST(to_json({c}) AS VARCHAR) AS {c}")
        else:
            cols.append(c)
    runner.write(f"SELECT {', '.join(cols)} FROM kx_output ORDER BY _ord NULLS LAST, _key", path, fmt)


def screen_population(
    input_path: str,
    out: str,
    *,
    kb: KnowledgeBase,
    protocol: Protocol | None = None,
    today: date | None = None,
    engine: str = "duckdb",
    layout: str = "auto",
    runner: Runner | None = None,
    summary_html: str | None = None,
    stage: Callable[[str], Any] | None = None,
    progress_lines: Callable[[int], None] | None = None,
    spark_master: str | None = None,
    spark_remote: str | None = None,
    threads: int | None = None,
    memory_limit: str | None = None,
) -> BatchResult:
    """Screen everyone in ``input_path`` and write one row per person to ``out``."""
    fmt = output_format(out)
    day = today or date.today()
    ckb = CompiledKnowledgeBase(kb, protocol)
    own = runner is None
    r = runner or make_runner(engine, master=spark_master, remote=spark_remote, threads=threads,
                              memory_limit=memory_limit)
    timings: dict[str, float] = {}

    @contextmanager
    def timed(name: str) -> Iterator[None]:
        started = time.perf_counter()
        ctx = stage(name) if stage is not None else _null()
        with ctx:
            yield
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - started

    try:
        norm, compiler = prepare(r, input_path, ckb=ckb, today=day, layout=layout, stage=timed,
                                 progress_lines=progress_lines)
        screen_tables(r, compiler, stage=timed)
        with timed("write"):
            if "://" not in out:
                Path(out).parent.mkdir(parents=True, exist_ok=True)
            write_output(r, out, fmt)
        with timed("summary"):
            from ketascreen.batch.summary import summarise

            summary = summarise(r, compiler)
            summary.notes = [*norm.notes, *norm.raw.info]
            if summary_html:
                from ketascreen.batch.summary import write_html

                write_html(summary, summary_html)
        people, invalid = summary.total, summary.invalid
        errors = [(str(a), str(b)) for a, b in r.rows(
            "SELECT coalesce(id, CAST(_key AS VARCHAR)), error FROM kx_output WHERE error IS NOT NULL "
            "ORDER BY _ord NULLS LAST, _key LIMIT 20")]
        return BatchResult(people=int(people), screened=int(people) - int(invalid),
                           invalid=int(invalid), output=out, engine=r.dialect,
                           layout=norm.raw.layout, notes=norm.notes, info=norm.raw.info,
                           errors=errors,
                           timings=timings, summary=summary)
    finally:
        if own:
            r.close()
