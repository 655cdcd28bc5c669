"""The clinician workspace (login required): screenings list, detail, review, intake entry,
printable report and PDF, the knowledge base page, and the audit log for administrators.

Roles: ``viewer`` reads; ``clinician`` also enters intakes and reviews; ``admin`` also sees the
audit log and the accounts. Every page checks the role itself; every view, review, export and
login is audited.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ketascreen.core.model import DECISION_RANK, Assessment
from ketascreen.errors import InputError
from ketascreen.reports.render import DECISION_LABEL
from ketascreen.storage import (
    Actor,
    CdsFeedbackLog,
    NewScreening,
    ScreeningFilter,
    Screenings,
    Sessions,
    Tokens,
    UserRecord,
    Users,
)
from ketascreen.storage import audit as audit_log
from ketascreen.web.context import DECISIONS, WebContext, client_ip, ctx, report_fragment
from ketascreen.web.errors import ApiError
from ketascreen.web.questionnaire_views import item_views, read_form
from ketascreen.web.security import (
    CSRF_COOKIE,
    REPORT_CSP,
    SESSION_COOKIE,
    new_csrf_cookie,
    set_cookie,
)

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


def _actor(user: UserRecord, request: Request) -> Actor:
    return Actor(f"user:{user.email}", user.id, client_ip(request))


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/clinic") and not value.startswith("//") and "\\" not in value:
        return value
    return "/clinic"


# --------------------------------------------------------------------------------------------
# Login


@router.get("/login")
def login_page(request: Request) -> Response:
    k = ctx(request)
    return k.page(request, "login.html", {"next": _safe_next(request.query_params.get("next")),
                                          "error": None, "email": ""})


@router.post("/login")
async def login(request: Request) -> Response:
    k = ctx(request)
    form = await k.check_csrf(request)
    email = (form.get("email") or [""])[0].strip()[:320]
    password = (form.get("password") or [""])[0][:1000]
    nxt = _safe_next((form.get("next") or [""])[0])
    ip = client_ip(request) or "unknown"
    if not k.login_limiter.allow(ip):
        wait = k.login_limiter.retry_after(ip)
        return k.page(request, "login.html", {
            "next": nxt, "email": email,
            "error": f"Too many attempts from this address. Please wait {wait} seconds."},
            status=429, headers={"Retry-After": str(wait)})
    with k.db.write() as s:
        result = Users(s).authenticate(
            email, password, actor=Actor(f"login:{email.lower()}", None, ip),
            max_failures=k.settings.login_max_failures,
            lockout=_minutes(k.settings.lockout_minutes))
        token = Sessions(s).create(result.user, hours=k.settings.session_hours) if (
            result.user is not None) else None
    if result.user is None or token is None:
        message = {
            "locked": "This account is locked for a while after too many wrong passwords. "
                      "Try again later, or ask an administrator.",
            "disabled": "This account is switched off. Ask an administrator.",
        }.get(result.reason, "That e-mail address and password do not match an account.")
        return k.page(request, "login.html", {"next": nxt, "email": email, "error": message},
                      status=401 if result.reason == "bad_credentials" else 403)
    response = _redirect(nxt)
    set_cookie(response, SESSION_COOKIE, token, secure=k.settings.cookie_secure,
               max_age=int(k.settings.session_hours * 3600))
    # A new CSRF secret for the logged-in browser (no token from before the login stays valid).
    set_cookie(response, CSRF_COOKIE, new_csrf_cookie(), secure=k.settings.cookie_secure,
               max_age=None, samesite="strict")
    return response


def _minutes(value: float) -> Any:
    from datetime import timedelta

    return timedelta(minutes=value)


@router.post("/logout")
async def logout(request: Request) -> Response:
    k = ctx(request)
    await k.check_csrf(request)
    token = request.cookies.get(SESSION_COOKIE)
    user = k.session_user(request)
    if token:
        with k.db.write() as s:
            Sessions(s).end(token)
            if user is not None:
                audit_log.append(s, _actor(user, request), "logout", target_type="user",
                                 target_id=str(user.id))
    response = _redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/", secure=k.settings.cookie_secure,
                           httponly=True, samesite="lax")
    return response


# --------------------------------------------------------------------------------------------
# Screenings


def _date(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError(422, f"{name}: write the date as YYYY-MM-DD") from None


@router.get("/clinic")
def screenings(request: Request) -> Response:
    k = ctx(request)
    user = k.require_user(request)
    qp = request.query_params
    decisions = tuple(d for d in qp.getlist("decision") if d in DECISIONS)
    urgent = {"yes": True, "no": False}.get(qp.get("urgent", ""))
    status = qp.get("status", "awaiting_review")
    if status not in ("awaiting_review", "reviewed", "all"):
        status = "awaiting_review"
    sort = qp.get("sort", "urgent_first")
    if sort not in ("urgent_first", "newest", "oldest"):
        sort = "urgent_first"
    try:
        page_no = max(1, min(int(qp.get("page", "1")), 100_000))
    except ValueError:
        page_no = 1
    per_page = 25
    f = ScreeningFilter(decisions=decisions, urgent=urgent, status=status,  # type: ignore[arg-type]
                        created_from=_date(qp.get("from"), "from"),
                        created_to=_date(qp.get("to"), "to"),
                        text=(qp.get("q") or "").strip()[:200] or None,
                        sort=sort, limit=per_page,  # type: ignore[arg-type]
                        offset=(page_no - 1) * per_page)
    with k.db.write() as s:
        found = Screenings(s).search(f)
        audit_log.append(s, _actor(user, request), "list", target_type="screening",
                         detail={"results": len(found.items), "page": page_no,
                                 "text_filter": bool(f.text)})
    params = [(key, v) for key, v in qp.multi_items() if key != "page"]
    pages = max(1, (found.total + per_page - 1) // per_page)
    return k.page(request, "clinic_list.html", {
        "items": found.items, "total": found.total, "page_no": page_no, "pages": pages,
        "prev_url": f"/clinic?{urlencode([*params, ('page', page_no - 1)])}"
        if page_no > 1 else None,
        "next_url": f"/clinic?{urlencode([*params, ('page', page_no + 1)])}"
        if page_no < pages else None,
        "filters": {"decisions": decisions, "urgent": qp.get("urgent", ""), "status": status,
                    "from": qp.get("from", ""), "to": qp.get("to", ""), "q": qp.get("q", ""),
                    "sort": sort},
    }, user=user)


def _record_or_404(k: WebContext, s: Any, screening_id: str) -> Any:
    record = Screenings(s).get(screening_id)
    if record is None or record.status == "private":
        raise ApiError(404, "there is no screening with this id (a self-screening appears once "
                       "the person sends it)")
    return record


def _trace(k: WebContext, record: Any) -> list[Any] | None:
    """The --explain trace, recomputed: the same intake, knowledge base and protocol always give
    the same assessment, so it is exact when both are still the ones in use."""
    if record.kb_sha256 != k.kb.sha256:
        return None
    screener = k.screener_for(record.protocol_sha256)
    if screener is None:
        return None
    try:
        intake = screener.parse(record.intake(), today=record.as_of)
    except InputError:
        return None
    again = screener.screen(intake, today=record.as_of, explain=True)
    return [t.model_dump() for t in again.trace or []]


@router.get("/clinic/screenings/new")
def new_form(request: Request) -> Response:
    k = ctx(request)
    user = k.require_user(request, review=True)
    mode = "json" if request.query_params.get("mode") == "json" else "form"
    return _render_form(k, request, user, answers={}, mode=mode,
                        intake_text=json.dumps({"assessed_on": k.today().isoformat()}, indent=2)
                        if mode == "json" else "")


@router.get("/clinic/screenings/{screening_id}")
def detail(request: Request, screening_id: str) -> Response:
    k = ctx(request)
    user = k.require_user(request)
    with k.db.write() as s:
        record = _record_or_404(k, s, screening_id)
        audit_log.append(s, _actor(user, request), "view", target_type="screening",
                         target_id=record.id)
        history = audit_log.records(s, target_type="screening", target_id=record.id, limit=50)
    return _render_detail(k, request, user, record, history)


def _render_detail(k: WebContext, request: Request, user: UserRecord, record: Any,
                   history: list[Any], *, errors: dict[str, str] | None = None,
                   form: dict[str, str] | None = None, status: int = 200) -> Response:
    a = Assessment.model_validate_json(record.assessment_json)
    report = report_fragment(k.report_html(a, "clinician"))
    latest = record.latest_review
    return k.page(request, "clinic_detail.html", {
        "record": record, "a": a, "report": report, "trace": _trace(k, record),
        "history": history, "latest": latest,
        "decision_label": DECISION_LABEL.get(a.decision, a.decision),
        "clinical_label": DECISION_LABEL.get(latest.decision, latest.decision) if latest
        else None,
        "pdf": k.pdf is not None, "errors": errors or {}, "form": form or {},
        "decision_options": sorted(DECISIONS, key=lambda d: DECISION_RANK[d]),
        "intake_json": json.dumps(record.intake(), indent=2, ensure_ascii=False),
    }, user=user, status=status)


@router.post("/clinic/screenings/{screening_id}/review")
async def add_review(request: Request, screening_id: str) -> Response:
    k = ctx(request)
    user = k.require_user(request, review=True)
    form = await k.check_csrf(request)
    outcome = (form.get("outcome") or [""])[0]
    decision = (form.get("decision") or [""])[0] or None
    reason = (form.get("reason") or [""])[0].strip()[:5000] or None
    signed = bool(form.get("signed"))
    errors: dict[str, str] = {}
    with k.db.write() as s:
        record = _record_or_404(k, s, screening_id)
        if outcome not in ("accepted", "changed"):
            errors["outcome"] = "Choose whether you accept the assessment or record a different " \
                                "decision."
        if outcome == "changed":
            if decision not in DECISIONS:
                errors["decision"] = "Choose the clinical decision you are recording."
            if reason is None:
                errors["reason"] = "Give the reason for a different decision."
        if not signed:
            errors["signed"] = "Confirm that you sign this review."
        if not errors:
            Screenings(s).add_review(
                record.id, user, outcome=outcome,
                decision=record.decision if outcome == "accepted" else str(decision),
                reason=reason, actor=_actor(user, request))
    if errors:
        with k.db.read() as s:
            history = audit_log.records(s, target_type="screening", target_id=record.id)
        return _render_detail(k, request, user, record, history, errors=errors, status=422,
                              form={"outcome": outcome, "decision": decision or "",
                                    "reason": reason or ""})
    return _redirect(f"/clinic/screenings/{record.id}#reviews")


@router.get("/clinic/screenings/{screening_id}/report")
def report(request: Request, screening_id: str) -> Response:
    k = ctx(request)
    user = k.require_user(request)
    with k.db.write() as s:
        record = _record_or_404(k, s, screening_id)
        audit_log.append(s, _actor(user, request), "export", target_type="screening",
                         target_id=record.id, detail={"format": "html"})
    a = Assessment.model_validate_json(record.assessment_json)
    return Response(k.report_html(a, "clinician"), media_type="text/html",
                    headers={"Content-Security-Policy": REPORT_CSP})


@router.get("/clinic/screenings/{screening_id}/report.pdf")
def report_pdf(request: Request, screening_id: str) -> Response:
    k = ctx(request)
    user = k.require_user(request)
    if k.pdf is None:
        raise ApiError(404, "PDF reports are not available in this installation")
    with k.db.write() as s:
        record = _record_or_404(k, s, screening_id)
        audit_log.append(s, _actor(user, request), "export", target_type="screening",
                         target_id=record.id, detail={"format": "pdf"})
    a = Assessment.model_validate_json(record.assessment_json)
    return Response(k.pdf_bytes(a, "clinician"), media_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="ketascreen-{record.id[:12]}.pdf"'})


# --------------------------------------------------------------------------------------------
# Entering an intake for a patient seen in person (a re-screen appends; nothing is replaced)


def _form_pages(k: WebContext) -> list[Any]:
    return [p for p in k.questionnaire.pages if "clinician" in p.audience]


def _render_form(k: WebContext, request: Request, user: UserRecord, *, answers: dict[str, Any],
                 previous: Any = None, mode: str = "form", errors: dict[str, str] | None = None,
                 raw: dict[str, list[str]] | None = None, problems: list[str] | None = None,
                 intake_text: str = "", status: int = 200) -> Response:
    q = k.questionnaire
    sections = []
    for page in _form_pages(k):
        views = item_views(q, page.items, answers, errors=errors, raw=raw, audience="clinician")
        if views:
            sections.append({"page": page, "views": views})
    return k.page(request, "clinic_form.html", {
        "sections": sections, "previous": previous, "mode": mode,
        "errors": errors or {}, "problems": problems or [], "intake_text": intake_text,
        "action": f"/clinic/screenings/{previous.id}/edit" if previous else
        "/clinic/screenings/new",
    }, user=user, status=status)


@router.get("/clinic/screenings/{screening_id}/edit")
def edit_form(request: Request, screening_id: str) -> Response:
    k = ctx(request)
    user = k.require_user(request, review=True)
    with k.db.read() as s:
        record = _record_or_404(k, s, screening_id)
    answers = record.answers()
    mode = request.query_params.get("mode") or ("form" if answers is not None else "json")
    intake = record.intake()
    intake.pop("assessed_on", None)
    return _render_form(k, request, user, answers=answers or {}, previous=record,
                        mode="json" if mode == "json" else "form",
                        intake_text=json.dumps(intake, indent=2, ensure_ascii=False))


@router.post("/clinic/screenings/new")
async def create(request: Request) -> Response:
    return await _save(request, None)


@router.post("/clinic/screenings/{screening_id}/edit")
async def rescreen(request: Request, screening_id: str) -> Response:
    return await _save(request, screening_id)


async def _save(request: Request, previous_id: str | None) -> Response:
    k = ctx(request)
    user = k.require_user(request, review=True)
    form = await k.check_csrf(request)
    q = k.questionnaire
    previous = None
    if previous_id is not None:
        with k.db.read() as s:
            previous = _record_or_404(k, s, previous_id)
    today = k.today()
    mode = (form.get("_mode") or ["form"])[0]
    answers: dict[str, Any] | None = None
    if mode == "json":
        text = (form.get("intake") or [""])[0]
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            return _render_form(k, request, user, answers={}, previous=previous, mode="json",
                                problems=[f"Not valid JSON: {exc.msg} (line {exc.lineno})"],
                                intake_text=text, status=422)
        if isinstance(data, dict):
            data.setdefault("assessed_on", today.isoformat())
    else:
        items = [i for p in _form_pages(k) for i in p.items]
        result = read_form(q, items, form, {})
        answers = result.answers
        if result.errors or (form.get("_nav") or [""])[0] == "refresh":
            return _render_form(k, request, user, answers=answers, previous=previous,
                                errors=result.errors, raw=result.raw,
                                status=422 if result.errors else 200)
        data = q.to_intake(answers, audience="clinician")
        data["assessed_on"] = today.isoformat()
    try:
        intake = k.screener.parse(data, today=today)
    except InputError as exc:
        problems = [str(p) for p in exc.problems]
        if mode == "json":
            return _render_form(k, request, user, answers={}, previous=previous, mode="json",
                                problems=problems, intake_text=(form.get("intake") or [""])[0],
                                status=422)
        return _render_form(k, request, user, answers=answers or {}, previous=previous,
                            problems=problems, status=422)
    assessment = k.screener.screen(intake, today=today)
    new = NewScreening.from_assessment(
        intake, assessment, source="clinician", created_by=user.id,
        previous_id=previous.id if previous else None, shared=True,
        questionnaire_version=f"{q.id}/{q.version}" if answers is not None else None,
        answers_json=json.dumps(answers, sort_keys=True) if answers is not None else None)
    with k.db.write() as s:
        record, _created = Screenings(s).create(new, actor=_actor(user, request))
    return _redirect(f"/clinic/screenings/{record.id}")


# --------------------------------------------------------------------------------------------
# Knowledge base, audit log, accounts


@router.get("/clinic/knowledge")
def knowledge(request: Request) -> Response:
    k = ctx(request)
    user = k.require_user(request)
    compiled = k.screener.compiled
    return k.page(request, "clinic_knowledge.html", {
        "kb": k.kb, "protocol": compiled.protocol_info,
        "confirm": list(compiled.protocol.confirm_at_first_visit),
        "self_protocol": k.self_screener.compiled.protocol_info,
        "rules": sorted((c.rule for c in compiled.rules), key=lambda r: r.id),
        "questionnaire": k.questionnaire, "instruments": sorted(k.instruments),
    }, user=user)


@router.get("/clinic/audit")
def audit_page(request: Request) -> Response:
    k = ctx(request)
    user = k.require_user(request, admin=True)
    with k.db.read() as s:
        entries = audit_log.records(s, limit=200)
        report = audit_log.verify(s) if request.query_params.get("verify") == "1" else None
    return k.page(request, "clinic_audit.html", {"entries": entries, "report": report},
                  user=user)


@router.get("/clinic/users")
def users_page(request: Request) -> Response:
    k = ctx(request)
    user = k.require_user(request, admin=True)
    with k.db.read() as s:
        accounts = Users(s).all()
        tokens = {u.id: Tokens(s).for_user(u) for u in accounts}
    return k.page(request, "clinic_users.html", {"accounts": accounts, "tokens": tokens},
                  user=user)


@router.get("/clinic/cds-feedback")
def cds_feedback(request: Request) -> Response:
    """What EHR users did with ketascreen's CDS Hooks cards (accepted, overridden and why)."""
    k = ctx(request)
    user = k.require_user(request)
    with k.db.read() as s:
        events = CdsFeedbackLog(s).recent(limit=200)
    return k.page(request, "clinic_cds_feedback.html", {"events": events}, user=user)
