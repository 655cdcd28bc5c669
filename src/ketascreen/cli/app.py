"""The ``ketascreen`` command line (Typer). Thin: parse, call services, render.

Exit status: 0 when every input was assessed, 2 when an input is invalid (the others are still
assessed), 1 only for a fault of ketascreen itself. Errors are one clear line, never a traceback
(set KETASCREEN_DEBUG=1 to see one).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from ketascreen.core.model import Assessment
    from ketascreen.errors import InputError

app = typer.Typer(
    name="ketascreen",
    help="Screen people for ketamine therapy with an open, cited knowledge base. "
    "Supports a clinician's decision; never replaces it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
rules_app = typer.Typer(help="Browse and check the knowledge base's rules.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")


class OutputFormat(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"
    jsonl = "jsonl"
    html = "html"
    pdf = "pdf"
    fhir = "fhir"


class Audience(StrEnum):
    clinician = "clinician"
    patient = "patient"


class Paper(StrEnum):
    letter = "letter"
    a4 = "a4"


class RouteOption(StrEnum):
    iv = "iv"
    im = "im"
    intranasal = "intranasal"
    oral = "oral"


class SchemaName(StrEnum):
    intake = "intake"
    assessment = "assessment"


def _err(message: str) -> None:
    typer.echo(f"ketascreen: {message}", err=True)


@dataclass
class _Input:
    label: str
    data: Any = None
    error: str | None = None


def _read_inputs(files: list[str]) -> Iterator[_Input]:
    for name in files:
        if name == "-":
            text = sys.stdin.read()
            label = "<stdin>"
            jsonl = False
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                jsonl = True
            if not jsonl:
                yield from _expand(label, parsed)
                continue
            yield from _lines(label, text)
            continue
        path = Path(name)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            yield _Input(name, error="file not found")
            continue
        except (OSError, UnicodeDecodeError) as exc:
            yield _Input(name, error=f"cannot read the file ({exc})")
            continue
        if path.suffix == ".jsonl":
            yield from _lines(name, text)
            continue
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            yield _Input(name, error=f"not valid JSON: {exc.msg} (line {exc.lineno}, column "
                                     f"{exc.colno})")
            continue
        yield from _expand(name, parsed)


def _expand(label: str, parsed: Any) -> Iterator[_Input]:
    if isinstance(parsed, list):
        for i, item in enumerate(parsed):
            yield _Input(f"{label}[{i}]", item)
    else:
        yield _Input(label, parsed)


def _lines(label: str, text: str) -> Iterator[_Input]:
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{label}:{n}"
        try:
            yield _Input(where, json.loads(line))
        except json.JSONDecodeError as exc:
            yield _Input(where, error=f"not valid JSON: {exc.msg} (column {exc.colno})")


def _error_record(inp: _Input, exc: InputError | None) -> dict[str, Any]:
    ident = inp.data.get("id") if isinstance(inp.data, dict) else None
    if exc is None:
        return {"id": ident, "error": {"field": None, "message": inp.error}}
    first = exc.problems[0]
    return {
        "id": ident,
        "error": {
            "field": first.field,
            "message": "; ".join(str(p) for p in exc.problems) if len(exc.problems) > 1
            else first.message,
            "problems": [{"field": p.field, "message": p.message} for p in exc.problems],
        },
    }


def _parse_date(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        _err(f"--date: must be a date written YYYY-MM-DD (got {value!r})")
        raise typer.Exit(2) from None


@app.command()
def screen(
    files: Annotated[list[str], typer.Argument(help="Intake files (.json, .jsonl); - for stdin.")],
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")] = (
        OutputFormat.text),
    route: Annotated[RouteOption | None, typer.Option(
        help="Assess this route (overrides the intake's route).")] = None,
    protocol: Annotated[Path | None, typer.Option(
        help="A clinic protocol file (YAML). Default: $KETASCREEN_PROTOCOL or the built-in.")
    ] = None,
    audience: Annotated[Audience, typer.Option(help="Who reads the report.")] = (
        Audience.clinician),
    explain: Annotated[bool, typer.Option(help="Show every rule: fired, not fired or unknown.")
                       ] = False,
    on_date: Annotated[str | None, typer.Option(
        "--date", help="Screening date (YYYY-MM-DD) for intakes without assessed_on.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file.")
                      ] = None,
    paper: Annotated[Paper, typer.Option(help="Page size for --format pdf.")] = Paper.letter,
) -> None:
    """Screen one or more intakes and print their assessments."""
    if fmt is OutputFormat.pdf and output is None:
        _err("--format pdf writes a file: add --output FILE (for example --output report.pdf)")
        raise typer.Exit(2)
    from ketascreen.config import Settings
    from ketascreen.errors import InputError
    from ketascreen.services import Screener, load_knowledge_base, load_protocol

    settings = Settings.from_env(protocol=protocol)
    today = _parse_date(on_date) or date.today()
    kb = load_knowledge_base()
    chosen = None
    if settings.protocol is not None:
        try:
            chosen = load_protocol(settings.protocol, kb)
        except InputError as exc:
            _err(f"protocol {exc.describe()}")
            raise typer.Exit(2) from None
    screener = Screener(kb, chosen, crisis_contacts=settings.crisis_contacts)

    failed = False
    fhir_read: dict[int, Any] = {}  # id(assessment) → how its FHIR input was read

    def outcomes() -> Iterator[Assessment | dict[str, Any]]:
        nonlocal failed
        for inp in _read_inputs(files):
            if inp.error is not None:
                _err(f"{inp.label}: {inp.error}")
                failed = True
                yield _error_record(inp, None)
                continue
            data = inp.data
            is_fhir = isinstance(data, dict) and "resourceType" in data
            if isinstance(data, dict) and route is not None and not is_fhir:
                data = {**data, "route": route.value}
            try:
                if is_fhir:  # a FHIR R4 Bundle: read through the FHIR adapter
                    from ketascreen.cli import fhir

                    intake, mapped = fhir.read_fhir_input(
                        data, screener=screener, today=today, source=inp.label,
                        route=route.value if route is not None else None)
                else:
                    intake = screener.parse(data, today=today, source=inp.label)
            except InputError as exc:
                _err(exc.describe())
                failed = True
                yield _error_record(inp, exc)
                continue
            assessment = screener.screen(intake, today=today, explain=explain)
            if is_fhir:
                assessment = fhir.annotate(assessment, mapped)
                fhir_read[id(assessment)] = mapped
            yield assessment

    crisis = settings.crisis_contacts or kb.texts.get("crisis_contacts")
    if fmt is OutputFormat.pdf and output is not None:  # binary: the whole file at once
        _write_pdf([r for r in outcomes() if not isinstance(r, dict)], output,
                   audience.value, kb.texts.get("disclaimer", ""), crisis, paper.value)
        if failed:
            raise typer.Exit(2)
        return
    sink = output.open("w", encoding="utf-8") if output is not None else sys.stdout
    try:
        if fmt is OutputFormat.jsonl:
            # Streamed, one line per input in input order: memory stays flat on large files.
            for r in outcomes():
                sink.write(json.dumps(r, ensure_ascii=False) if isinstance(r, dict)
                           else r.model_dump_json())
                sink.write("\n")
        elif fmt is OutputFormat.fhir:  # one Bundle per input; several → a JSON array
            from ketascreen.cli import fhir as fhir_out

            fhir_out.write_bundles(outcomes(), sink, fhir_read)
        elif fmt is OutputFormat.json:
            items = [r if isinstance(r, dict) else r.model_dump(mode="json") for r in outcomes()]
            if len(items) == 1 and "error" not in items[0]:
                sink.write(json.dumps(items[0], indent=2, ensure_ascii=False) + "\n")
            elif items:
                sink.write(json.dumps(items, indent=2, ensure_ascii=False) + "\n")
        else:
            from ketascreen.reports.render import render_many

            assessed = [r for r in outcomes() if not isinstance(r, dict)]
            if assessed:
                text = render_many(assessed, fmt.value, audience.value,
                                   disclaimer=kb.texts.get("disclaimer", ""),
                                   crisis_contacts=crisis)
                sink.write(text if text.endswith("\n") else text + "\n")
    finally:
        if output is not None:
            sink.close()
    if failed:
        raise typer.Exit(2)


def _write_pdf(assessed: list[Assessment], output: Path, audience: str, disclaimer: str,
               crisis: str | None, paper: str) -> None:
    """The PDF report of every assessed input (WeasyPrint is imported only here)."""
    if not assessed:
        return
    from ketascreen.reports.pdf import PdfUnavailableError, render_pdf

    try:
        data = render_pdf(assessed, audience, disclaimer, crisis_contacts=crisis,
                          paper="a4" if paper == "a4" else "letter")
    except PdfUnavailableError as exc:
        _err(str(exc))
        raise typer.Exit(1) from None
    try:
        output.write_bytes(data)
    except OSError as exc:
        _err(f"--output: cannot write {output} ({exc.strerror or exc})")
        raise typer.Exit(2) from None


@rules_app.command("list")
def rules_list(
    category: Annotated[str | None, typer.Option(help="Only this category.")] = None,
) -> None:
    """List every rule: id, severity, category, routes and title."""
    from rich.console import Console
    from rich.table import Table

    from ketascreen.services import load_knowledge_base

    kb = load_knowledge_base()
    table = Table(title=f"{kb.name} v{kb.version}: {len(kb.rules)} rules")
    widest = max(len(r.id) for r in kb.rules)
    table.add_column("id", no_wrap=True, min_width=widest)
    for col in ("severity", "urgent", "category", "routes", "title"):
        table.add_column(col)
    for r in sorted(kb.rules, key=lambda r: r.id):
        if category and r.category != category:
            continue
        table.add_row(r.id, r.severity, "yes" if r.urgent else "", r.category,
                      ",".join(r.routes), r.title)
    Console(width=max(120, Console().width)).print(table)


@rules_app.command("show")
def rules_show(rule_id: Annotated[str, typer.Argument(help="A rule id.")]) -> None:
    """Show one rule in full: when, texts, actions, sources and examples."""
    import yaml

    from ketascreen.services import load_knowledge_base

    kb = load_knowledge_base()
    try:
        rule = kb.rule(rule_id)
    except KeyError:
        close = [r.id for r in kb.rules if rule_id.split(".")[-1] in r.id][:5]
        _err(f"no rule {rule_id!r}" + (f" (similar: {', '.join(close)})" if close else ""))
        raise typer.Exit(2) from None
    data = rule.model_dump(mode="json", exclude_none=True, by_alias=True)
    data["sources"] = {s: kb.sources[s].citation for s in rule.sources if s in kb.sources}
    typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100))


@rules_app.command("lint")
def rules_lint() -> None:
    """Validate and lint the knowledge base and run every rule's examples."""
    from ketascreen.knowledge.check import run_checks

    n, diags = run_checks()
    for d in diags:
        typer.echo(str(d))
    if diags:
        _err(f"{len(diags)} problem(s) in the knowledge base")
        raise typer.Exit(1)
    typer.echo(f"knowledge base OK: {n} rules, every example behaves as declared")


@app.command()
def lookup(text: Annotated[str, typer.Argument(help="A code, condition, drug or allergen.")]
           ) -> None:
    """Show what a code or name resolves to in the vocabularies."""
    from ketascreen.core.vocab import Lexicon, display_code, normalize_code
    from ketascreen.services import load_knowledge_base

    kb = load_knowledge_base()
    lex = Lexicon(kb.vocabulary)
    found = False
    cond = lex.condition(text if lex.is_valid_code(text) else None,
                         None if lex.is_valid_code(text) else text)
    if cond is not None:
        found = True
        names = [t.names[0] for t in kb.vocabulary.conditions
                 if normalize_code(t.code) == cond.code]
        label = f" ({names[0]})" if names else ""
        typer.echo(f"condition: ICD-10-CM {display_code(cond.code)}{label}, resolved by "
                   f"{cond.via}")
        rules = _rules_for_code(kb, cond.code)
        typer.echo("  rules that look at it: " + (", ".join(rules) if rules else "none"))
    drug = lex.drug(text)
    if drug is not None:
        found = True
        typer.echo(f"medication: {drug.name}" + (f" (RxNorm {drug.rxnorm})" if drug.rxnorm
                                                   else ""))
        typer.echo("  classes: " + (", ".join(sorted(drug.classes)) or "none (no rule concerns it)"))
        if drug.diazepam_equivalent:
            typer.echo(f"  1 mg = {drug.diazepam_equivalent:g} mg diazepam")
    allergy = lex.allergens.get(text.strip().lower())
    if allergy is not None:
        found = True
        typer.echo("allergen classes: " + ", ".join(sorted(allergy)))
    if not found:
        typer.echo(f"{text!r} is not recognised: in an intake it would be reported as "
                   "unrecognized and reviewed by a clinician")
        raise typer.Exit(1)


def _rules_for_code(kb: Any, code: str) -> list[str]:
    from ketascreen.core.lint import walk
    from ketascreen.core.vocab import code_matcher, code_matches

    hits = []
    for r in kb.rules:
        for p in walk(r.when):
            if p.kind == "condition" and any(code_matches(code, code_matcher(c))
                                             for c in p.codes):
                hits.append(r.id)
                break
    return hits


@app.command()
def schema(name: Annotated[SchemaName, typer.Argument(help="intake or assessment")]) -> None:
    """Print the JSON Schema of the intake or the assessment."""
    from ketascreen.core.model import Assessment, Intake

    model = Intake if name is SchemaName.intake else Assessment
    typer.echo(json.dumps(model.model_json_schema(), indent=2))


@app.command()
def version() -> None:
    """Print the versions of ketascreen, the contract and the knowledge base."""
    from ketascreen import __version__
    from ketascreen.core.model import CONTRACT_VERSION
    from ketascreen.services import load_knowledge_base

    kb = load_knowledge_base()
    typer.echo(f"ketascreen {__version__}")
    typer.echo(f"screening contract v{CONTRACT_VERSION}")
    typer.echo(f"knowledge base {kb.name} v{kb.version} sha256 {kb.sha256}")
    typer.echo(f"rules {len(kb.rules)}, ICD-10-CM {kb.vocabulary.icd10cm_release}")


def _register_front_ends() -> None:
    from ketascreen.cli import batch, fhir, server

    batch.register(app)
    server.register(app)
    fhir.register(app)


_register_front_ends()


def main() -> None:
    """Entry point: run the app, turning any unexpected fault into one line and exit 1."""
    from ketascreen.errors import KetascreenError, KnowledgeBaseError

    try:
        app()
    except KnowledgeBaseError as exc:
        _err(f"the installed knowledge base is broken: {exc}")
        sys.exit(1)
    except KetascreenError as exc:
        _err(str(exc))
        sys.exit(2)
    except Exception as exc:  # the edge of the program: a bug must not print a traceback
        if os.environ.get("KETASCREEN_DEBUG"):
            raise
        _err(f"internal error ({type(exc).__name__}: {exc}); please report it. "
             "Set KETASCREEN_DEBUG=1 for details.")
        sys.exit(1)
