"""Commands of the `ketascreen` CLI for FHIR (registered on the main app by `register`).

- ``ketascreen questionnaire --format fhir`` — the intake questionnaire as an SDC Questionnaire;
- ``ketascreen fhir read BUNDLE`` — what ketascreen reads from a Bundle: the intake, and every
  element it did not use, with its FHIR path;
- ``ketascreen fhir record INTAKE`` — an intake as the FHIR record an EHR would hold;
- ``ketascreen fhir validate FILE`` — check a resource against the FHIR R4 models.

``ketascreen screen`` reads FHIR Bundles too (detected by ``resourceType``), and
``--format fhir`` writes each assessment as a Bundle (see :func:`write_bundles`). Heavy imports
stay inside the functions: the CLI's cold start must stay short.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

if TYPE_CHECKING:
    from ketascreen.adapters.fhir_r4 import BundleIntake
    from ketascreen.core.model import Assessment, Intake
    from ketascreen.services import Screener


class QuestionnaireFormat(StrEnum):
    fhir = "fhir"
    json = "json"


fhir_app = typer.Typer(help="Read, write and check FHIR R4 resources.", no_args_is_help=True)


def _err(message: str) -> None:
    typer.echo(f"ketascreen: {message}", err=True)


def _load_json(path: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        _err(f"{path}: cannot read the file ({exc.strerror or exc})")
        raise typer.Exit(2) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        _err(f"{path}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")
        raise typer.Exit(2) from None


def _today(value: str | None) -> date:
    if value is None:
        return date.today()
    try:
        return date.fromisoformat(value)
    except ValueError:
        _err(f"--date: must be a date written YYYY-MM-DD (got {value!r})")
        raise typer.Exit(2) from None


# --------------------------------------------------------------------------------------------
# Used by `ketascreen screen`


def read_fhir_input(data: Any, *, screener: Screener, today: date, source: str,
                    route: str | None = None) -> tuple[Intake, BundleIntake]:
    """A FHIR Bundle read into an intake for ``screen``; InputError (with FHIR paths) when it
    cannot be. What was not used is reported on standard error, one line each."""
    from ketascreen.adapters.fhir_r4 import bundle_to_intake

    intake, mapped = bundle_to_intake(data, kb=screener.kb, today=today, source=source)
    for issue in mapped.issues:
        if issue.kind != "error":
            _err(f"{source}: {issue.kind}: {issue}")
    if route is not None:
        intake = screener.parse({**mapped.data, "route": route}, today=today, source=source)
    return intake, mapped


def annotate(assessment: Assessment, mapped: BundleIntake) -> Assessment:
    from ketascreen.adapters.fhir_r4 import annotate_assessment

    return annotate_assessment(assessment, mapped)


def write_bundles(outcomes: Iterable[Assessment | dict[str, Any]], sink: TextIO,
                  mapped: dict[int, BundleIntake]) -> None:
    """``screen --format fhir``: one Bundle per input. One input → that Bundle; several → a JSON
    array of Bundles in input order, where an invalid input is an OperationOutcome."""
    from ketascreen.adapters.fhir_out import assessment_bundle

    items: list[dict[str, Any]] = []
    for r in outcomes:
        if isinstance(r, dict):
            error = r.get("error") or {}
            problems = error.get("problems") or [{"field": error.get("field"),
                                                  "message": error.get("message")}]
            items.append({"resourceType": "OperationOutcome", "issue": [
                {"severity": "error", "code": "invalid",
                 "diagnostics": (f"{p['field']}: " if p.get("field") else "")
                 + str(p.get("message"))} for p in problems]})
            continue
        items.append(assessment_bundle(r, mapped=mapped.get(id(r))))
    if len(items) == 1 and items[0]["resourceType"] == "Bundle":
        sink.write(json.dumps(items[0], indent=2, ensure_ascii=False) + "\n")
    elif items:
        sink.write(json.dumps(items, indent=2, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------------------------
# Commands


def questionnaire(
    fmt: Annotated[QuestionnaireFormat, typer.Option(
        "--format", "-f", help="fhir: an SDC Questionnaire (FHIR R4); json: the definition.")
    ] = QuestionnaireFormat.fhir,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file.")
                      ] = None,
) -> None:
    """Print ketascreen's intake questionnaire (the one the web app asks)."""
    from ketascreen.config import Settings
    from ketascreen.knowledge.questionnaire import load_questionnaire

    q = load_questionnaire()
    if fmt is QuestionnaireFormat.fhir:
        from ketascreen.adapters.fhir_out import validate
        from ketascreen.adapters.sdc import questionnaire_resource

        settings = Settings.from_env()
        data = questionnaire_resource(q, crisis_contacts=settings.crisis_contacts)
        validate(data)
    else:
        # Defaults left out, as in the YAML (the sentinel "no when_disabled" is a default).
        data = q.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if output is not None:
        output.write_text(text, encoding="utf-8")
    else:
        typer.echo(text, nl=False)


@fhir_app.command("read")
def fhir_read(
    file: Annotated[str, typer.Argument(help="A FHIR R4 Bundle (.json); - for stdin.")],
    on_date: Annotated[str | None, typer.Option("--date", help="Screening date (YYYY-MM-DD).")
                       ] = None,
) -> None:
    """Show the intake ketascreen reads from a Bundle, and what it did not use (with paths)."""
    from ketascreen.adapters.fhir_r4 import read_bundle
    from ketascreen.services import load_knowledge_base

    mapped = read_bundle(_load_json(file), kb=load_knowledge_base(), today=_today(on_date))
    typer.echo(json.dumps({"intake": mapped.data, "issues": [
        {"path": i.path, "kind": i.kind, "message": i.message, **(
            {"value": i.value} if i.value else {})} for i in mapped.issues]},
        indent=2, ensure_ascii=False))
    if mapped.errors:
        for i in mapped.errors:
            _err(f"{file}: {i}")
        raise typer.Exit(2)


@fhir_app.command("record")
def fhir_record(
    file: Annotated[str, typer.Argument(help="An intake (.json); - for stdin.")],
    on_date: Annotated[str | None, typer.Option(
        "--date", help="Screening date for an intake without assessed_on.")] = None,
) -> None:
    """Write an intake as the FHIR R4 record an EHR would hold (with a QuestionnaireResponse)."""
    from ketascreen.adapters.fhir_out import intake_bundle, validate
    from ketascreen.errors import InputError
    from ketascreen.services import Screener

    today = _today(on_date)
    try:
        intake = Screener().parse(_load_json(file), today=today, source=file)
    except InputError as exc:
        _err(exc.describe())
        raise typer.Exit(2) from None
    bundle, lost = intake_bundle(intake, today=today)
    validate(bundle)
    for field in lost:
        _err(f"{file}: {field} cannot be expressed in the FHIR record and is left out")
    typer.echo(json.dumps(bundle, indent=2, ensure_ascii=False))


@fhir_app.command("validate")
def fhir_validate(
    file: Annotated[str, typer.Argument(help="A FHIR R4 resource (.json); - for stdin.")],
) -> None:
    """Check a resource (a Bundle with every entry) against the FHIR R4 models."""
    from ketascreen.adapters.fhir_out import validate

    data = _load_json(file)
    if not isinstance(data, dict):
        _err(f"{file}: a FHIR resource is a JSON object")
        raise typer.Exit(2)
    try:
        validate(data)
    except ValueError as exc:
        _err(f"{file}: {exc}")
        raise typer.Exit(2) from None
    typer.echo(f"{file}: valid FHIR R4 {data.get('resourceType')}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app (keep imports of heavy libraries inside the
    command functions: the CLI's cold start must stay short)."""
    app.command("questionnaire")(questionnaire)
    app.add_typer(fhir_app, name="fhir")
