"""Commands of the `ketascreen` CLI for population screening: ``batch`` and ``synth``.

Heavy libraries (DuckDB, PySpark, PyArrow) are imported inside the commands: the command line's
cold start stays short.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer


class Engine(StrEnum):
    duckdb = "duckdb"
    spark = "spark"


class InputLayout(StrEnum):
    auto = "auto"
    tables = "tables"
    omop = "omop"
    jsonl = "jsonl"


class SynthLayout(StrEnum):
    tables = "tables"
    omop = "omop"
    jsonl = "jsonl"


class TableFormat(StrEnum):
    parquet = "parquet"
    csv = "csv"


def _err(message: str) -> None:
    typer.echo(f"ketascreen: {message}", err=True)


def _day(value: str | None, option: str = "--date") -> date:
    if value is None:
        return date.today()
    try:
        return date.fromisoformat(value)
    except ValueError:
        _err(f"{option}: must be a date written YYYY-MM-DD (got {value!r})")
        raise typer.Exit(2) from None


def register(app: typer.Typer) -> None:
    """Add ``batch`` and ``synth`` to the main app."""

    @app.command()
    def batch(
        input_path: Annotated[str, typer.Argument(
            metavar="INPUT",
            help="A JSON Lines file of intakes, a folder of normalised tables, or a folder of "
            "OMOP CDM tables (recognised by itself).")],
        out: Annotated[str, typer.Option(
            "--out", "-o", help="Results: one row per person, Parquet or CSV by the extension.")],
        engine: Annotated[Engine, typer.Option(help="Where the SQL runs.")] = Engine.duckdb,
        protocol: Annotated[Path | None, typer.Option(
            help="A clinic protocol file (YAML). Default: $KETASCREEN_PROTOCOL or the built-in.")
        ] = None,
        on_date: Annotated[str | None, typer.Option(
            "--date", help="Screening date (YYYY-MM-DD) for people without assessed_on; "
            "default today.")] = None,
        summary_html: Annotated[Path | None, typer.Option(
            "--summary-html", help="Also write the summary as an HTML page with charts.")] = None,
        layout: Annotated[InputLayout, typer.Option(
            help="The input's layout (auto: recognise it).")] = InputLayout.auto,
        spark_master: Annotated[str | None, typer.Option(
            help="Spark master URL (spark://host:7077, yarn, local[*]); default "
            "$KETASCREEN_SPARK_MASTER or local[*].")] = None,
        spark_remote: Annotated[str | None, typer.Option(
            help="A Spark Connect URL (sc://host:15002) instead of a master.")] = None,
        threads: Annotated[int | None, typer.Option(
            help="DuckDB: worker threads (default: every core).")] = None,
        memory_limit: Annotated[str | None, typer.Option(
            help="DuckDB: memory limit, e.g. 3GB (it spills to disk beyond).")] = None,
        quiet: Annotated[bool, typer.Option(help="No progress bar and no summary table.")
                         ] = False,
    ) -> None:
        """Screen a whole population with the compiled rules (DuckDB here, Spark at scale)."""
        from rich.console import Console

        from ketascreen.batch.run import STAGES, screen_population
        from ketascreen.config import Settings
        from ketascreen.errors import InputError
        from ketascreen.services import load_knowledge_base, load_protocol

        settings = Settings.from_env(protocol=protocol)
        day = _day(on_date)
        kb = load_knowledge_base()
        chosen = None
        if settings.protocol is not None:
            try:
                chosen = load_protocol(settings.protocol, kb)
            except InputError as exc:
                _err(f"protocol {exc.describe()}")
                raise typer.Exit(2) from None
        err = Console(stderr=True)
        progress, stage, lines = _progress(err, STAGES, quiet)
        try:
            with progress:
                result = screen_population(
                    input_path, out, kb=kb, protocol=chosen, today=day, engine=engine.value,
                    layout=layout.value, summary_html=str(summary_html) if summary_html else None,
                    stage=stage, progress_lines=lines, spark_master=spark_master,
                    spark_remote=spark_remote, threads=threads, memory_limit=memory_limit)
        except InputError as exc:
            _err(exc.describe())
            raise typer.Exit(2) from None
        if not quiet:
            from ketascreen.batch.summary import render_table

            Console().print(render_table(result.summary))
        for note in result.info:
            err.print(f"note: {note}", highlight=False)
        for note in result.notes:
            _err(note)
        for ident, message in result.errors:
            _err(f"{ident}: {message}")
        if result.invalid > len(result.errors):
            _err(f"... and {result.invalid - len(result.errors)} more invalid people (see the "
                 "error column of the output)")
        total = sum(result.timings.values())
        err.print(f"{result.people:,} people ({result.invalid:,} invalid) screened on "
                  f"{result.engine} in {total:.1f} s → {out}", highlight=False)
        if summary_html:
            err.print(f"summary page → {summary_html}", highlight=False)
        if not result.ok:
            raise typer.Exit(2)

    @app.command()
    def synth(
        people: Annotated[int, typer.Option("--people", "-n", min=1, max=100_000_000,
                                            help="How many people.")],
        out: Annotated[Path, typer.Option("--out", "-o", help="The folder to write.")],
        layout: Annotated[SynthLayout, typer.Option(help="The layout to write.")] = (
            SynthLayout.tables),
        seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same files."
                                          )] = 1,
        on_date: Annotated[str | None, typer.Option(
            "--date", help="The reference date every date counts back from (YYYY-MM-DD); "
            "screen with --date on or after it. Default today.")] = None,
        fmt: Annotated[TableFormat, typer.Option(
            "--format", help="Table files: parquet or csv (tables and omop layouts).")] = (
            TableFormat.parquet),
    ) -> None:
        """Write a realistic, seeded synthetic population (for tests, demos and benchmarks)."""
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        from ketascreen.batch.synth import write_population

        day = _day(on_date)
        err = Console(stderr=True)
        with Progress("[progress.description]{task.description}", BarColumn(),
                      MofNCompleteColumn(), TimeElapsedColumn(), console=err,
                      transient=True, disable=people < 50_000) as bar:
            task = bar.add_task("generating people", total=people)
            path = write_population(str(out), people, seed=seed, layout=layout.value, ref=day,
                                    fmt=fmt.value,
                                    progress=lambda n: bar.update(task, completed=n))
        err.print(f"{people:,} synthetic people ({layout.value}, seed {seed}, as of "
                  f"{day.isoformat()}) → {path}", highlight=False)


def _progress(console: Any, stages: tuple[str, ...], quiet: bool) -> tuple[Any, Any, Any]:
    """A Rich progress bar over the run's stages (and the lines of a JSON Lines input)."""
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    bar = Progress(SpinnerColumn(), TextColumn("[progress.description]{task.description}"),
                   BarColumn(), TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                   console=console, transient=True, disable=quiet)
    task = bar.add_task("starting", total=len(stages))
    words = {"read": "reading the input", "check": "checking every value",
             "vocabulary": "resolving codes and names", "compile": "compiling the rules",
             "screen": "screening", "write": "writing the results", "summary": "summarising"}

    @contextmanager
    def stage(name: str) -> Any:
        bar.update(task, description=words.get(name, name))
        yield
        bar.advance(task)

    def lines(n: int) -> None:
        bar.update(task, description=f"reading the input ({n:,} lines)")

    return bar, stage, lines
