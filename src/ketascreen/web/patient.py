"""Patient self-screening: no account, one topic per page, a review page, a private result link.

Answers live in a server-side draft (the browser holds only a random token in a cookie) until
the person submits; then the screening is stored with a private link token (256 bits, stored as
a digest) and the draft forgets the answers. Nothing reaches the clinic until the person sends
it from the result page.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ketascreen.core.model import Assessment
from ketascreen.errors import InputError
from ketascreen.knowledge.questionnaire import AnswerValue, Page
from ketascreen.reports.render import PATIENT_DECISION_LABEL
from ketascreen.storage import Actor, Drafts, NewScreening, Screenings
from ketascreen.storage import audit as audit_log
from ketascreen.storage.credentials import new_token, token_digest
from ketascreen.web.context import WebContext, client_ip, ctx, report_fragment
from ketascreen.web.errors import ApiError
from ketascreen.web.questionnaire_views import (
    alert_views,
    answer_label,
    item_views,
    known_answers,
    page_items,
    read_form,
)
from ketascreen.web.security import DRAFT_COOKIE, REPORT_CSP, set_cookie

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


def _patient(request: Request) -> Actor:
    return Actor("patient", None, client_ip(request))


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


@router.get("/")
def home(request: Request) -> Response:
    k = ctx(request)
    return k.page(request, "home.html", {"has_draft": bool(request.cookies.get(DRAFT_COOKIE))})


@router.post("/screening/start")
async def start(request: Request) -> Response:
    k = ctx(request)
    await k.check_csrf(request)
    with k.db.write() as s:
        token = Drafts(s).create(hours=k.settings.draft_hours)
    first = k.questionnaire.pages_for({}, instruments=k.instruments)[0]
    response = _redirect(f"/screening/page/{first.id}")
    set_cookie(response, DRAFT_COOKIE, token, secure=k.settings.cookie_secure,
               max_age=int(k.settings.draft_hours * 3600), path="/screening")
    return response


def _draft(k: WebContext, request: Request) -> tuple[str, Any]:
    token = request.cookies.get(DRAFT_COOKIE, "")
    with k.db.read() as s:
        draft = Drafts(s).get(token) if token else None
    if draft is None:
        raise _NoDraft()
    return token, draft


class _NoDraft(Exception):
    """No questionnaire in progress in this browser (expired, or never started)."""


def _open_draft(k: WebContext, request: Request) -> tuple[str, Any] | Response:
    """The browser's questionnaire in progress, or the page to show instead: "expired" when
    there is none, the result when it was already submitted."""
    try:
        token, draft = _draft(k, request)
    except _NoDraft:
        return k.page(request, "expired.html", status=410)
    if draft.result_token:
        return _redirect(f"/r/{draft.result_token}")
    return token, draft


def _pages(k: WebContext, answers: dict[str, AnswerValue]) -> list[Page]:
    return k.questionnaire.pages_for(answers, instruments=k.instruments)


@router.get("/screening")
def resume(request: Request) -> Response:
    k = ctx(request)
    try:
        _token, draft = _draft(k, request)
    except _NoDraft:
        return _redirect("/")
    if draft.result_token:
        return _redirect(f"/r/{draft.result_token}")
    for page in _pages(k, draft.answers):
        if k.questionnaire.unanswered(page, draft.answers):
            return _redirect(f"/screening/page/{page.id}")
    return _redirect("/screening/review")


def _render_page(k: WebContext, request: Request, page: Page, answers: dict[str, AnswerValue],
                 *, errors: dict[str, str] | None = None, raw: dict[str, list[str]] | None = None,
                 new: set[str] | None = None, notice: str | None = None,
                 from_review: bool = False, status: int = 200) -> Response:
    q = k.questionnaire
    pages = _pages(k, answers)
    ids = [p.id for p in pages]
    index = ids.index(page.id) if page.id in ids else 0
    items = page_items(page, "patient")
    on_page = {i.id for i in items}
    referenced = {c.item for i in items for c in i.enable_when if c.item not in on_page}
    local_alerts, earlier_alerts = alert_views(q, answers, k.crisis_contacts, on_items=on_page)
    for a in local_alerts:
        referenced |= {c["item"] for c in json.loads(a["when"])["when"]
                       if c["item"] not in on_page}
    views = item_views(q, items, answers, errors=errors, raw=raw, new=new or ())
    return k.page(request, "question_page.html", {
        "page": page,
        "intro": (page.intro or "").replace("{crisis_contacts}", k.crisis_contacts),
        "items": views,
        "errors": [(v["id"], v["text"], v["error"]) for v in views if v["error"]],
        "notice": notice,
        "step": index + 1,
        "steps": len(pages) + 1,
        "first": index == 0,
        "from_review": from_review,
        "known": known_answers(q, answers, referenced),
        "alerts": local_alerts,
        "earlier_alerts": earlier_alerts,
        "focus": next(iter(sorted(new or ())), None),
    }, status=status)


@router.get("/screening/page/{page_id}")
def show_page(request: Request, page_id: str) -> Response:
    k = ctx(request)
    opened = _open_draft(k, request)
    if isinstance(opened, Response):
        return opened
    _token, draft = opened
    page = _applicable_page(k, page_id, draft.answers)
    return _render_page(k, request, page, draft.answers,
                        from_review=request.query_params.get("from") == "review")


def _applicable_page(k: WebContext, page_id: str, answers: dict[str, AnswerValue]) -> Page:
    for p in _pages(k, answers):
        if p.id == page_id:
            return p
    raise ApiError(404, "this question page does not apply to your answers")


@router.post("/screening/page/{page_id}")
async def answer_page(request: Request, page_id: str) -> Response:
    k = ctx(request)
    q = k.questionnaire
    form = await k.check_csrf(request)
    opened = _open_draft(k, request)
    if isinstance(opened, Response):
        return opened
    token, draft = opened
    page = _applicable_page(k, page_id, draft.answers)
    items = page_items(page, "patient")
    result = read_form(q, items, form, draft.answers)
    answers = result.answers
    nav = (form.get("_nav") or ["next"])[0]
    from_review = (form.get("_from") or [""])[0] == "review"
    seen = set(draft.alerts_seen) | set(form.get("_ack", []))

    def save() -> None:
        with k.db.write() as s:
            Drafts(s).save(token, answers, frozenset(seen))

    pages = _pages(k, answers)
    ids = [p.id for p in pages]
    if nav == "back":
        save()
        index = ids.index(page.id) if page.id in ids else 0
        return _redirect(f"/screening/page/{pages[max(index - 1, 0)].id}")

    missing = [i for i in q.unanswered(page, answers) if i.id not in result.errors]
    not_shown = [i.id for i in missing if i.id not in result.shown]
    for i in missing:
        if i.id in result.shown:
            result.errors[i.id] = ("Please choose at least one answer (or the one that says none)."
                                   if i.type == "multi_choice" else "Please answer this question.")
    if result.errors:
        save()
        return _render_page(k, request, page, answers, errors=result.errors, raw=result.raw,
                            from_review=from_review, status=422)
    if not_shown:
        save()
        return _render_page(k, request, page, answers, new=set(not_shown),
                            from_review=from_review,
                            notice="Thank you. Your answer opened a follow-up question below.")
    on_page = {i.id for i in items}
    fresh_alerts = [a for a in q.active_alerts(answers)
                    if a.id not in seen and any(c.item in on_page for c in a.when)]
    if fresh_alerts:
        seen |= {a.id for a in fresh_alerts}
        save()
        return _render_page(k, request, page, answers, from_review=from_review,
                            notice="Please read the message below before you go on.")
    save()
    if from_review:
        return _redirect("/screening/review")
    if page.id in ids and ids.index(page.id) + 1 < len(ids):
        return _redirect(f"/screening/page/{ids[ids.index(page.id) + 1]}")
    return _redirect("/screening/review")


@router.get("/screening/review")
def review(request: Request) -> Response:
    k = ctx(request)
    opened = _open_draft(k, request)
    if isinstance(opened, Response):
        return opened
    _token, draft = opened
    return _render_review(k, request, draft.answers)


def _render_review(k: WebContext, request: Request, answers: dict[str, AnswerValue], *,
                   status: int = 200, problems: list[str] | None = None) -> Response:
    q = k.questionnaire
    sections = []
    incomplete = []
    for page in _pages(k, answers):
        rows = []
        for item in q.visible_items(page, answers):
            if item.type == "display":
                continue
            value = answers.get(item.id)
            rows.append({"text": item.text, "answer": answer_label(item, value)
                         if value is not None and value != "" else None,
                         "required": item.required})
        missing = q.unanswered(page, answers)
        if missing:
            incomplete.append(page)
        sections.append({"page": page, "rows": rows, "missing": len(missing)})
    pages = _pages(k, answers)
    _local, earlier = alert_views(q, answers, k.crisis_contacts, on_items=set())
    return k.page(request, "review.html", {
        "sections": sections, "incomplete": incomplete, "steps": len(pages) + 1,
        "earlier_alerts": earlier, "problems": problems or [],
    }, status=status)


@router.post("/screening/submit")
async def submit(request: Request) -> Response:
    k = ctx(request)
    q = k.questionnaire
    await k.check_csrf(request)
    opened = _open_draft(k, request)
    if isinstance(opened, Response):
        return opened
    token, draft = opened
    answers = draft.answers
    for page in _pages(k, answers):
        if q.unanswered(page, answers):
            return _redirect(f"/screening/page/{page.id}")
    today = k.today()
    data = q.to_intake(answers, instruments=k.instruments)
    data["assessed_on"] = today.isoformat()
    try:
        intake = k.self_screener.parse(data, today=today)
    except InputError as exc:
        return _render_review(k, request, answers, status=422,
                              problems=[str(p) for p in exc.problems])
    assessment = k.self_screener.screen(intake, today=today)
    result_token = new_token()
    new = NewScreening.from_assessment(
        intake, assessment, source="self", shared=False,
        patient_token_hash=token_digest(result_token),
        idempotency_key=f"draft:{token_digest(token)}",
        questionnaire_version=f"{q.id}/{q.version}",
        answers_json=json.dumps(answers, sort_keys=True))
    with k.db.write() as s:
        record, created = Screenings(s).create(new, actor=_patient(request))
        if created:
            Drafts(s).complete(token, record.id, result_token)
    if not created:  # a second click raced the first: follow the draft to the stored result
        _token, again = _draft(k, request)
        return _redirect(f"/r/{again.result_token}") if again.result_token else _redirect("/")
    return _redirect(f"/r/{result_token}")


# --------------------------------------------------------------------------------------------
# The result, by private link


def _by_token(k: WebContext, request: Request, token: str, *, action: str = "view") -> Any:
    with k.db.write() as s:
        record = Screenings(s).by_patient_token(token)
        if record is None:
            raise ApiError(404, "this link does not open a screening: check that it was copied "
                           "in full")
        audit_log.append(s, _patient(request), action, target_type="screening",
                         target_id=record.id, detail={"via": "private link"})
    return record


def _site(k: WebContext, request: Request) -> str:
    """Where people open the site: the configured public address, else this request's."""
    return (k.settings.public_url or str(request.base_url)).rstrip("/")


@router.get("/r/{token}")
def result(request: Request, token: str) -> Response:
    k = ctx(request)
    record = _by_token(k, request, token)
    a = Assessment.model_validate_json(record.assessment_json)
    letter = report_fragment(k.report_html(a, "patient"))
    return k.page(request, "result.html", {
        "record": record,
        "a": a,
        "headline": PATIENT_DECISION_LABEL.get(a.decision, a.decision),
        "letter": letter,
        "link": f"{_site(k, request)}/r/{token}",
        "token": token,
        "pdf": k.pdf is not None,
        "just_shared": request.query_params.get("sent") == "1",
    })


@router.post("/r/{token}/share")
async def share(request: Request, token: str) -> Response:
    k = ctx(request)
    form = await k.check_csrf(request)

    def field(name: str, limit: int) -> str | None:
        value = (form.get(name) or [""])[0].strip()
        return value[:limit] or None

    if not form.get("consent"):
        record = _by_token(k, request, token)
        a = Assessment.model_validate_json(record.assessment_json)
        return k.page(request, "result.html", {
            "record": record, "a": a,
            "headline": PATIENT_DECISION_LABEL.get(a.decision, a.decision),
            "letter": report_fragment(k.report_html(a, "patient")),
            "link": f"{_site(k, request)}/r/{token}", "token": token,
            "pdf": k.pdf is not None, "just_shared": False,
            "share_error": "Please tick the box to agree to send your answers to the clinic.",
        }, status=422)
    with k.db.write() as s:
        record = Screenings(s).by_patient_token(token)
        if record is None:
            raise ApiError(404, "this link does not open a screening")
        if not record.shares:
            Screenings(s).share(record.id, contact_name=field("contact_name", 200),
                                contact=field("contact", 320), message=field("message", 2000),
                                actor=_patient(request))
    return _redirect(f"/r/{token}?sent=1")


@router.get("/r/{token}/letter")
def letter_html(request: Request, token: str) -> Response:
    k = ctx(request)
    record = _by_token(k, request, token, action="export")
    a = Assessment.model_validate_json(record.assessment_json)
    return Response(k.report_html(a, "patient"), media_type="text/html",
                    headers={"Content-Security-Policy": REPORT_CSP})


@router.get("/r/{token}/letter.pdf")
def letter_pdf(request: Request, token: str) -> Response:
    k = ctx(request)
    if k.pdf is None:
        raise ApiError(404, "PDF letters are not available in this installation")
    record = _by_token(k, request, token, action="export")
    a = Assessment.model_validate_json(record.assessment_json)
    pdf = k.pdf_bytes(a, "patient")
    return Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": 'attachment; filename="ketamine-screening-letter.pdf"'})
