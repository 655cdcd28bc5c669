"""REST API v1: stateless assessments, stored screenings and reviews, rules, health.

OpenAPI at ``/api/v1/openapi.json``, a readable page at ``/api/v1/docs``. Errors always use the
one shape of :mod:`ketascreen.web.errors`. Screenings need a bearer token (``ketascreen tokens
create --email …``); a viewer's token reads, a clinician's or admin's also writes and reviews.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response

from ketascreen import __version__
from ketascreen.core.model import Assessment, Decision, Intake
from ketascreen.errors import Problem
from ketascreen.storage import Actor, NewScreening, NotFound, ScreeningFilter, Screenings, UserRecord
from ketascreen.storage import audit as audit_log
from ketascreen.web.context import WebContext, ctx, optional_module
from ketascreen.web.errors import ApiError
from ketascreen.web.schemas import (
    ErrorResponse,
    HealthOut,
    ReviewIn,
    ReviewOut,
    RulesOut,
    ScreeningListOut,
    ScreeningOut,
    review_dict,
    screening_json,
    summary_dict,
)

__all__ = ["router"]

router = APIRouter()


def api_auth(request: Request) -> tuple[UserRecord, Actor]:
    """The account behind the bearer token (401 before anything else is looked at)."""
    return ctx(request).api_user(request)


Auth = Annotated[tuple[UserRecord, Actor], Depends(api_auth)]

INTAKE_BODY = {
    "requestBody": {
        "required": True,
        "description": "An intake (screening contract v1). `application/fhir+json` (a FHIR R4 "
                       "Bundle) is accepted too when the FHIR adapter is installed.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Intake"}}},
    }
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {400: "The body is not valid JSON", 401: "No valid API token",
            403: "The token's account may not do this", 404: "No such screening",
            413: "The body is over the size limit", 415: "Not JSON",
            422: "Invalid input: every problem, each with its path"}
    return {c: {"model": ErrorResponse, "description": text.get(c, "Error")} for c in codes}


_JSON_TYPES = ("application/json", "application/fhir+json")


def _read_json(request: Request, body: bytes) -> Any:
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if ctype not in _JSON_TYPES and not ctype.endswith("+json"):
        raise ApiError(415, "send the intake as JSON (Content-Type: application/json)")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        message = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        raise ApiError(400, f"the body is not valid JSON: {message}", code="invalid_json") from None


def _intake_from(k: WebContext, data: Any, today: date) -> tuple[Intake, Any]:
    """The validated intake (contract JSON or, with the FHIR adapter, a FHIR Bundle)."""
    if isinstance(data, dict) and "resourceType" in data:
        fhir = optional_module("ketascreen.adapters.fhir_r4")
        if fhir is None or not hasattr(fhir, "bundle_to_intake"):
            raise ApiError(415, "FHIR input is not available in this installation")
        intake, mapped = fhir.bundle_to_intake(data, kb=k.kb, today=today, source=None)
        return intake, mapped
    return k.screener.parse(data, today=today), None


def _annotate(assessment: Assessment, mapped: Any) -> Assessment:
    if mapped is None:
        return assessment
    fhir = optional_module("ketascreen.adapters.fhir_r4")
    annotate = getattr(fhir, "annotate_assessment", None)
    return annotate(assessment, mapped) if annotate is not None else assessment


@router.post(
    "/api/v1/assessments", tags=["assessments"], response_model=None,
    summary="Assess an intake without storing it",
    description="No login: nothing is stored. Returns the assessment (screening contract v1); "
                "with `Accept: application/fhir+json`, a FHIR R4 Bundle (RiskAssessment and "
                "DetectedIssues).",
    responses={200: {"model": Assessment, "description": "The assessment",
                     "content": {"application/fhir+json": {
                         "schema": {"type": "object", "description": "FHIR R4 Bundle"}}}},
               **_errors(400, 413, 415, 422)},
    openapi_extra=INTAKE_BODY,
)
async def assess(request: Request, explain: bool = Query(
        False, description="include the trace of every rule")) -> Response:
    k = ctx(request)
    data = _read_json(request, await request.body())
    today = k.today()
    intake, mapped = _intake_from(k, data, today)
    assessment = _annotate(k.screener.screen(intake, today=today, explain=explain), mapped)
    if "application/fhir+json" in request.headers.get("accept", ""):
        # An EHR asking for FHIR gets the assessment as an R4 Bundle (RiskAssessment and
        # DetectedIssues), the same one `ketascreen screen --format fhir` writes.
        fhir_out = optional_module("ketascreen.adapters.fhir_out")
        if fhir_out is None:
            raise ApiError(406, "FHIR output is not available in this installation")
        bundle = fhir_out.assessment_bundle(assessment, mapped=mapped)
        return Response(json.dumps(bundle, ensure_ascii=False),
                        media_type="application/fhir+json")
    return Response(assessment.model_dump_json(), media_type="application/json")


@router.post(
    "/api/v1/screenings", tags=["screenings"], response_model=None, status_code=201,
    summary="Assess an intake and store the screening",
    description="Needs a clinician's or admin's token. Send `Idempotency-Key` to make retries "
                "safe: the same key returns the screening already stored (200).",
    responses={201: {"model": ScreeningOut, "description": "Stored"},
               200: {"model": ScreeningOut, "description": "Already stored with this key"},
               **_errors(400, 401, 403, 413, 415, 422)},
    openapi_extra=INTAKE_BODY,
)
def create_screening(
    request: Request,
    auth: Auth,
    payload: Annotated[Any, Body()] = None,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    k = ctx(request)
    user, actor = auth
    if not user.can_review:
        raise ApiError(403, "a viewer's token can read screenings but not create them")
    today = k.today()
    intake, mapped = _intake_from(k, payload, today)
    assessment = _annotate(k.screener.screen(intake, today=today), mapped)
    new = NewScreening.from_assessment(intake, assessment, source="api", created_by=user.id,
                                       idempotency_key=idempotency_key or None)
    with k.db.write() as s:
        record, created = Screenings(s).create(new, actor=actor)
    return Response(screening_json(record), status_code=201 if created else 200,
                    media_type="application/json",
                    headers={"Location": f"/api/v1/screenings/{record.id}"})


@router.get(
    "/api/v1/screenings", tags=["screenings"], response_model=None,
    summary="List screenings the clinic can see",
    description="Urgent first, then newest. Self-screenings appear once the person sends them.",
    responses={200: {"model": ScreeningListOut, "description": "One page"},
               **_errors(401, 422)},
)
def list_screenings(
    request: Request,
    auth: Auth,
    decision: Annotated[list[Decision] | None, Query(
        description="only these decisions (repeat the parameter)")] = None,
    urgent: Annotated[bool | None, Query(description="only urgent (true) or non-urgent")] = None,
    status: Annotated[Literal["awaiting_review", "reviewed", "all"], Query()] = "all",
    created_from: Annotated[date | None, Query(description="created on or after (UTC date)")
                            ] = None,
    created_to: Annotated[date | None, Query(description="created on or before")] = None,
    q: Annotated[str | None, Query(max_length=200,
                                   description="reference contains, or id starts with")] = None,
    sort: Annotated[Literal["urgent_first", "newest", "oldest"], Query()] = "urgent_first",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    k = ctx(request)
    _user, actor = auth
    f = ScreeningFilter(decisions=tuple(decision or ()), urgent=urgent, status=status,
                        created_from=created_from, created_to=created_to, text=q, sort=sort,
                        limit=limit, offset=offset)
    with k.db.write() as s:
        page = Screenings(s).search(f)
        audit_log.append(s, actor, "list", target_type="screening",
                         detail={"results": len(page.items), "offset": offset,
                                 "text_filter": bool(q)})
    nxt = offset + limit if offset + limit < page.total else None
    return JSONResponse({"items": [summary_dict(r) for r in page.items], "total": page.total,
                         "limit": limit, "offset": offset, "next_offset": nxt})


def _screening_or_404(k: WebContext, s: Any, screening_id: str, *, private_ok: bool = False
                      ) -> Any:
    record = Screenings(s).get(screening_id)
    if record is None or (record.status == "private" and not private_ok):
        raise ApiError(404, f"no screening {screening_id!r}")
    return record


@router.get(
    "/api/v1/screenings/{screening_id}", tags=["screenings"], response_model=None,
    summary="One screening: intake, assessment and reviews",
    responses={200: {"model": ScreeningOut, "description": "The screening"},
               **_errors(401, 404)},
)
def get_screening(request: Request, screening_id: str, auth: Auth) -> Response:
    k = ctx(request)
    _user, actor = auth
    with k.db.write() as s:
        record = _screening_or_404(k, s, screening_id)
        audit_log.append(s, actor, "view", target_type="screening", target_id=record.id)
    return Response(screening_json(record), media_type="application/json")


@router.post(
    "/api/v1/screenings/{screening_id}/reviews", tags=["screenings"], response_model=None,
    status_code=201, summary="Review a screening (appended, never overwriting)",
    description="Accept the assessment, or record a different clinical decision with a reason. "
                "Needs a clinician's or admin's token.",
    responses={201: {"model": ReviewOut, "description": "The signed review"},
               **_errors(400, 401, 403, 404, 413, 422)},
)
def review_screening(request: Request, screening_id: str, auth: Auth,
                     review: ReviewIn) -> Response:
    k = ctx(request)
    user, actor = auth
    if not user.can_review:
        raise ApiError(403, "a viewer cannot review screenings")
    with k.db.write() as s:
        record = _screening_or_404(k, s, screening_id)
        decision, reason = _check_review(review.outcome, review.decision, review.reason,
                                         record.decision)
        try:
            saved = Screenings(s).add_review(record.id, user, outcome=review.outcome,
                                             decision=decision, reason=reason, actor=actor)
        except NotFound:
            raise ApiError(404, f"no screening {screening_id!r}") from None
    return JSONResponse(review_dict(saved), status_code=201)


def _check_review(outcome: str, decision: str | None, reason: str | None,
                  assessed: str) -> tuple[str, str | None]:
    problems = []
    reason = (reason or "").strip() or None
    if outcome == "changed":
        if decision is None:
            problems.append(Problem("decision", "give the clinical decision you are recording"))
        if reason is None:
            problems.append(Problem("reason", "a different decision needs a reason"))
    elif decision is not None and decision != assessed:
        problems.append(Problem("decision", f"accepting keeps the assessment's decision "
                                            f"({assessed}); use outcome 'changed' to differ"))
    if problems:
        raise ApiError(422, "the review is not complete", code="invalid_review",
                       problems=problems)
    return (decision or assessed), reason


@router.get(
    "/api/v1/rules", tags=["knowledge"], response_model=RulesOut,
    summary="The active knowledge base, protocol and rules catalogue",
)
def rules(request: Request) -> dict[str, Any]:
    k = ctx(request)
    info = k.screener.compiled.protocol_info
    return {
        "knowledge_base": {"name": k.kb.name, "version": k.kb.version, "sha256": k.kb.sha256},
        "protocol": {"name": info.name, "version": info.version, "sha256": info.sha256},
        "deviations": list(info.deviations),
        "rules": [{"id": r.id, "category": r.category, "severity": r.severity,
                   "urgent": r.urgent, "routes": list(r.routes), "title": r.title,
                   "sources": list(r.sources), "claims": list(r.claims)}
                  for r in sorted((c.rule for c in k.screener.compiled.rules), key=lambda r: r.id)],
    }


@router.get(
    "/api/v1/questionnaire", tags=["knowledge"], response_model=None,
    summary="The self-screening questionnaire definition (pages, items, conditions)",
    responses={200: {"description": "The questionnaire as JSON data",
                     "content": {"application/json": {"schema": {"type": "object"}}}}},
)
def questionnaire(request: Request) -> Response:
    k = ctx(request)
    return Response(k.questionnaire.model_dump_json(by_alias=True, exclude_defaults=True),
                    media_type="application/json")


@router.get(
    "/health", tags=["health"], response_model=None,
    summary="Liveness and database readiness",
    responses={200: {"model": HealthOut, "description": "Ready"},
               503: {"model": HealthOut, "description": "The database does not answer"}},
)
def health(request: Request) -> Response:
    k = ctx(request)
    ok = k.db.ping()
    body = {"status": "ok" if ok else "unavailable", "database": "ok" if ok else "unavailable",
            "version": __version__, "knowledge_base": k.kb.version}
    return JSONResponse(body, status_code=200 if ok else 503)
