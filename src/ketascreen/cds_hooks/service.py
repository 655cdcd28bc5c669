"""The CDS Hooks 2.0 service as a FastAPI router: discovery, three services, feedback, reports.

- ``GET /cds-services`` — discovery: ``ketascreen-patient-view`` (a ketamine candidacy summary
  when a chart is opened), ``ketascreen-order-select`` and ``ketascreen-order-sign`` (only when the
  draft orders hold ketamine or esketamine), each with its prefetch templates.
- ``POST /cds-services/{id}`` — one call: verify the EHR's JWT, resolve the prefetch (fetching
  what is missing from ``fhirServer``; 412 when data is neither prefetched nor fetchable), read
  the record with the FHIR adapter, screen, answer ``{"cards": [...]}``.
- ``POST /cds-services/{id}/feedback`` — accepted / overridden cards, stored idempotently in the
  injected :class:`~ketascreen.cds_hooks.storage.FeedbackStore`.
- ``GET /cds-services/reports/{token}`` — the full clinician report a card links to (an
  unguessable link that works for ``KETASCREEN_CDS_REPORT_MINUTES``).
- ``GET /cds-services/rules`` — the rules catalogue each card's source links to.

Mount it with ``app.include_router(create_router(settings))``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ketascreen.adapters.fhir_out import contraindication_level
from ketascreen.adapters.fhir_r4 import annotate_assessment, read_bundle
from ketascreen.adapters.sdc import questionnaire_url
from ketascreen.cds_hooks.cards import assessment_card
from ketascreen.cds_hooks.orders import DraftOrder, draft_orders
from ketascreen.cds_hooks.record import PREFETCH, PatientRecord, RecordUnavailable, gather_record
from ketascreen.cds_hooks.security import AuthError, JwtVerifier, ReplayGuard, VerifiedCaller
from ketascreen.cds_hooks.settings import CdsSettings
from ketascreen.cds_hooks.storage import (
    CardCache,
    FeedbackEvent,
    FeedbackStore,
    InMemoryFeedbackStore,
    feedback_key,
)
from ketascreen.core.validation import format_loc
from ketascreen.core.vocab import Lexicon
from ketascreen.errors import IntakeError
from ketascreen.services import Screener, load_knowledge_base, load_protocol

__all__ = ["SERVICES", "create_router"]

log = logging.getLogger("ketascreen.cds_hooks")

SERVICES: dict[str, dict[str, str]] = {
    "ketascreen-patient-view": {
        "hook": "patient-view",
        "title": "Ketamine therapy screening",
        "description": "Summarises whether ketamine or esketamine treatment could be safe for "
        "this patient, from the record: contraindications, precautions, and what is still to "
        "ask.",
    },
    "ketascreen-order-select": {
        "hook": "order-select",
        "title": "Ketamine order screening (select)",
        "description": "When a ketamine or esketamine order is selected, screens the patient "
        "against ketascreen's rules and shows contraindications and precautions.",
    },
    "ketascreen-order-sign": {
        "hook": "order-sign",
        "title": "Ketamine order screening (sign)",
        "description": "Before a ketamine or esketamine order is signed, screens the patient "
        "against ketascreen's rules; not recommended or urgent findings are critical cards.",
    },
}
USAGE = ("Send the prefetch keys you can (a null value means you looked and found nothing); "
         "ketascreen fetches any missing key from fhirServer with fhirAuthorization. Calls "
         "must carry a JWT signed with RS384 or ES384 by a trusted issuer.")
DEV_WARNING = ("CDS Hooks JWT verification is OFF (KETASCREEN_CDS_VERIFY_JWT=false): any caller "
               "can get cards. Development only; never in production.")


class FhirAuthorization(BaseModel):
    model_config = ConfigDict(extra="allow")
    access_token: str = Field(min_length=1)
    token_type: str = "Bearer"
    expires_in: int | None = None
    scope: str | None = None
    subject: str | None = None


class HookRequest(BaseModel):
    """A CDS Hooks 2.0 service request (unknown members are allowed, as the spec says)."""

    model_config = ConfigDict(extra="allow")
    hook: str = Field(min_length=1)
    hookInstance: str = Field(min_length=1)
    fhirServer: str | None = None
    fhirAuthorization: FhirAuthorization | None = None
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None


class OverrideReason(BaseModel):
    model_config = ConfigDict(extra="allow")
    reason: dict[str, Any] | None = None
    userComment: str | None = Field(None, max_length=2000)


class FeedbackItem(BaseModel):
    model_config = ConfigDict(extra="allow")
    card: str = Field(min_length=1, max_length=200)
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[dict[str, Any]] | None = None
    overrideReason: OverrideReason | None = None
    outcomeTimestamp: str = Field(min_length=10, max_length=40)


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    feedback: list[FeedbackItem] = Field(min_length=1, max_length=100)


def _problem(status: int, message: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if status == 401 else None
    return JSONResponse({"error": {"status": status, "message": message, **extra}},
                        status_code=status, headers=headers)


def _validation(exc: ValidationError) -> JSONResponse:
    problems = [{"field": format_loc([p for p in e["loc"] if isinstance(p, str | int)]),
                 "message": e["msg"]} for e in exc.errors()]
    return _problem(422, "the request does not follow CDS Hooks 2.0", problems=problems)


def create_router(
    settings: Any = None,
    *,
    feedback_store: FeedbackStore | None = None,
    replay_guard: ReplayGuard | None = None,
    screener: Screener | None = None,
    today: Callable[[], date] = date.today,
) -> APIRouter:
    """The CDS Hooks router. ``settings``: a :class:`CdsSettings` or the application's settings
    (the ``KETASCREEN_CDS_*`` variables are then read from the environment). ``feedback_store``
    defaults to an in-memory store (said in the log): the web app passes its database's."""
    cfg = CdsSettings.from_any(settings)
    if screener is None:
        kb = load_knowledge_base()
        protocol = load_protocol(cfg.protocol, kb) if cfg.protocol else None
        screener = Screener(kb, protocol, crisis_contacts=cfg.crisis_contacts)
    lex = Lexicon(screener.kb.vocabulary)
    verifier = JwtVerifier(cfg, replay_guard)
    store: FeedbackStore = feedback_store or InMemoryFeedbackStore()
    cards = CardCache(cfg.report_minutes)
    qurl = questionnaire_url()
    templates = {k: v.replace("{questionnaire}", qurl) for k, v in PREFETCH.items()}
    if not cfg.verify_jwt:
        log.warning(DEV_WARNING)
    elif not cfg.trusted_issuers:
        # Not an error: a clinic that does not use CDS Hooks never sets it. Said once, plainly.
        log.warning("CDS Hooks: no trusted EHR issuers configured "
                    "(KETASCREEN_CDS_TRUSTED_ISSUERS), so CDS Hooks calls are refused (401)")
    if feedback_store is None:
        log.info("CDS Hooks feedback is kept in memory only (no feedback store was given)")
    source_label = f"ketascreen (knowledge base {screener.kb.version})"
    if not cfg.verify_jwt:
        source_label += " — DEVELOPMENT MODE, EHR NOT VERIFIED"

    router = APIRouter(tags=["CDS Hooks"])

    def base_url(request: Request) -> str:
        return cfg.base_url or str(request.base_url).rstrip("/")

    def rules_url(request: Request) -> str:
        return cfg.rules_url or f"{base_url(request)}/cds-services/rules"

    async def authenticate(request: Request, audiences: list[str]) -> VerifiedCaller:
        if not cfg.verify_jwt:
            log.warning(DEV_WARNING)
            return VerifiedCaller("unverified", None, None, False)
        return await verifier.verify(request.headers.get("authorization"), audiences)

    @router.get("/cds-services", summary="CDS Hooks discovery")
    async def discovery() -> dict[str, Any]:
        return {"services": [
            {"hook": s["hook"], "title": s["title"], "description": s["description"],
             "id": sid, "prefetch": dict(templates), "usageRequirements": USAGE}
            for sid, s in SERVICES.items()]}

    catalogue: list[str] = []

    @router.get("/cds-services/rules", response_class=HTMLResponse, include_in_schema=False)
    async def rules_catalogue() -> HTMLResponse:
        """The rules catalogue each card's source links to (public: rules hold no patient
        data); each rule is anchored by its id, as DetectedIssue.reference links it."""
        if not catalogue:
            catalogue.append(_catalogue_html(screener))
        return HTMLResponse(catalogue[0])

    @router.get("/cds-services/reports/{token}", response_class=HTMLResponse,
                include_in_schema=False)
    async def report(token: str) -> HTMLResponse:
        issued = cards.report(token)
        if issued is None:
            return HTMLResponse("<!doctype html><title>Link expired</title><p>This report link "
                                "has expired. Open the chart again to get a new card.</p>",
                                status_code=404, headers=_private())
        from ketascreen.reports.render import render

        html = render(issued.assessment, "html", "clinician",
                      disclaimer=screener.kb.texts.get("disclaimer", ""),
                      crisis_contacts=cfg.crisis_contacts)
        return HTMLResponse(html, headers=_private())

    @router.post("/cds-services/{service_id}", summary="Call a CDS Hooks service")
    async def call(service_id: str, request: Request) -> JSONResponse:
        started = time.perf_counter()
        service = SERVICES.get(service_id)
        if service is None:
            return _problem(404, f"no CDS service {service_id!r}")
        service_url = f"{base_url(request)}/cds-services/{service_id}"
        try:
            caller = await authenticate(request, [service_url])
        except AuthError as exc:
            log.warning("CDS Hooks call to %s refused: %s", service_id, exc)
            return _problem(401, str(exc))
        try:
            body = HookRequest.model_validate(await _json(request))
        except ValidationError as exc:
            return _validation(exc)
        except ValueError as exc:
            return _problem(422, str(exc))
        if body.hook != service["hook"]:
            return _problem(422, f"this service answers the {service['hook']} hook, not "
                            f"{body.hook!r}")
        if not isinstance(body.context.get("patientId"), str):
            return _problem(422, "context.patientId is required")
        orders: list[DraftOrder] = []
        if service["hook"] != "patient-view":
            selections = body.context.get("selections") if service["hook"] == "order-select" \
                else None
            everything = draft_orders(body.context, lex)
            chosen = draft_orders(body.context, lex, only=selections) if isinstance(
                selections, list) else everything
            orders = [o for o in chosen if o.ketamine]
            if not orders:
                return JSONResponse({"cards": []})
        raw = body.model_dump(mode="json", exclude_none=True)
        try:
            record = await gather_record(raw, templates=templates, settings=cfg,
                                         questionnaire=qurl)
        except RecordUnavailable as exc:
            log.info("CDS Hooks %s: 412 (%s)", service_id, exc)
            return _problem(412, exc.reason, prefetch=exc.keys)
        notes = list(record.notes)
        if orders:
            notes += _add_other_orders(record, everything)
        card = _screen(record, orders, service_id, caller, notes, request)
        elapsed = (time.perf_counter() - started) * 1000
        log.info("CDS Hooks %s answered in %.0f ms (%d key(s) fetched)", service_id, elapsed,
                 len(record.fetched))
        return JSONResponse({"cards": [card]})

    def _screen(record: PatientRecord, orders: list[DraftOrder], service_id: str,
                caller: VerifiedCaller, notes: list[str], request: Request) -> dict[str, Any]:
        day = today()
        mapped = read_bundle(record.bundle, kb=screener.kb, today=day, searched=record.searched)
        routes = {o.route for o in orders}
        route = next(iter(routes)) if len(routes) == 1 and None not in routes else None
        data = dict(mapped.data)
        if orders:
            data["route"] = route
        where = record.label_path
        what = "Ketamine order" if orders else "Ketamine screening"
        try:
            intake = screener.parse(data, today=day)
        except IntakeError as exc:
            problems = [f"{where(mapped.fhir_path(p.field) or p.field)}: {p.message}"
                        for p in exc.problems]
            return _unreadable(problems, what)
        assessment = annotate_assessment(screener.screen(intake, today=day), mapped)
        route_note = None
        if orders and route is None:
            route_note = ("The order does not say the route (or the orders differ): the card "
                          "shows the most cautious route's decision.")
        suggestions = _remove_suggestions(orders, assessment) if service_id.endswith(
            "order-sign") else None
        card = assessment_card(
            assessment, what=what, route_known=not orders or route is not None,
            route_note=route_note, source_label=source_label, source_url=rules_url(request),
            report_url=None, issues=mapped.issues, where=where, notes=notes,
            dev_mode=not caller.verified, suggestions=suggestions)
        issued = cards.add(card_id=card["uuid"], service_id=service_id, assessment=assessment,
                           patient=mapped.patient_reference, with_report=cfg.report_minutes > 0)
        if issued.report_token:
            card["links"] = [{"label": "Full ketascreen report", "type": "absolute",
                              "url": f"{base_url(request)}/cds-services/reports/"
                                     f"{issued.report_token}"}]
        return card

    def _unreadable(problems: list[str], what: str) -> dict[str, Any]:
        import uuid

        detail = "\n".join(["**ketascreen could not read this record**, so it cannot screen it:",
                            "", *[f"- {p}" for p in problems], "",
                            "Screen the patient by hand or correct the record."])
        return {"uuid": str(uuid.uuid4()), "summary": f"{what}: the record could not be read",
                "indicator": "warning", "detail": detail,
                "source": {"label": source_label}}

    @router.post("/cds-services/{service_id}/feedback", summary="Feedback on cards")
    async def feedback(service_id: str, request: Request) -> JSONResponse:
        if service_id not in SERVICES:
            return _problem(404, f"no CDS service {service_id!r}")
        service_url = f"{base_url(request)}/cds-services/{service_id}"
        try:
            caller = await authenticate(request, [service_url, service_url + "/feedback"])
        except AuthError as exc:
            log.warning("CDS Hooks feedback to %s refused: %s", service_id, exc)
            return _problem(401, str(exc))
        try:
            body = FeedbackRequest.model_validate(await _json(request))
        except ValidationError as exc:
            return _validation(exc)
        except ValueError as exc:
            return _problem(422, str(exc))
        stored = 0
        for item in body.feedback:
            raw = item.model_dump(mode="json", exclude_none=True)
            issued = cards.card(item.card)
            payload = {"feedback": raw, "issuer": caller.issuer, "verified": caller.verified,
                       "card_known": issued is not None}
            if issued is not None:
                payload.update({"decision": issued.decision, "rules": issued.rules,
                                "patient": issued.patient})
            event = FeedbackEvent(feedback_key(service_id, raw), service_id, item.card,
                                  item.outcome, payload)
            if store.add(event, actor=f"cds:{caller.issuer}"):
                stored += 1
        return JSONResponse({"received": len(body.feedback), "stored": stored})

    return router


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise ValueError("the body is not JSON") from exc


def _private() -> dict[str, str]:
    return {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
            "X-Robots-Tag": "noindex"}


def _add_other_orders(record: PatientRecord, orders: list[DraftOrder]) -> list[str]:
    """Draft orders other than ketamine count as current medicines (about to be given)."""
    added = []
    for o in orders:
        if o.ketamine:
            continue
        res = dict(o.resource)
        res["status"] = "active"
        record.bundle["entry"].append({"resource": res})
        record.labels.append(f"draft order {o.reference or o.name}")
        added.append(o.name)
    if added:
        return ["Counted as current medicines (draft orders): " + ", ".join(added)]
    return []


def _remove_suggestions(orders: list[DraftOrder], assessment: Any) -> list[dict[str, Any]]:
    if assessment.decision not in ("not_recommended", "defer") and not assessment.urgent:
        return []
    if not any(contraindication_level(f) for f in assessment.findings):
        return []
    ids = [o.reference for o in orders if o.reference]
    if not ids:
        return []
    import uuid

    return [{"label": "Remove the ketamine order", "uuid": str(uuid.uuid4()),
             "actions": [{"type": "delete", "description": "Remove the draft ketamine or "
                          "esketamine order.", "resourceId": ids}]}]


def _catalogue_html(screener: Screener) -> str:
    from html import escape

    kb = screener.kb
    rows: list[str] = []
    for rule in sorted(kb.rules, key=lambda r: (r.category, r.id)):
        anchor = "".join(ch for ch in rule.id.lower() if ch.isalnum() or ch in "_-")
        sources = "; ".join(escape(kb.sources[s].citation) if s in kb.sources else escape(s)
                            for s in rule.sources)
        rows.append(
            f'<section id="{anchor}"><h2>{escape(rule.title)}</h2>'
            f"<p><code>{escape(rule.id)}</code> · {escape(rule.category)} · "
            f"{escape(rule.severity)}{' · urgent' if rule.urgent else ''} · routes: "
            f"{escape(', '.join(rule.routes))}</p><p>{escape(rule.clinician)}</p>"
            f"<ul>{''.join(f'<li>{escape(a)}</li>' for a in rule.actions)}</ul>"
            f"<p><small>Sources: {sources}</small></p></section>")
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>ketascreen rules catalogue {escape(kb.version)}</title></head><body><main>"
            f"<h1>ketascreen rules catalogue</h1><p>Knowledge base {escape(kb.name)} "
            f"v{escape(kb.version)}: {len(kb.rules)} rules. ketascreen supports a clinician's "
            "decision; it never replaces it.</p>" + "".join(rows) + "</main></body></html>")
