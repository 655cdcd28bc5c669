"""What every request handler needs, built once in ``create_app``: settings, database, the
compiled screeners, the questionnaire, templates; and the per-request helpers (who is asking,
CSRF checks, page rendering)."""

from __future__ import annotations

import importlib
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from ketascreen.core.kb import KnowledgeBase, Protocol
from ketascreen.core.protocols import DEFAULT_PROTOCOL, protocol_hash
from ketascreen.knowledge.questionnaire import Questionnaire
from ketascreen.services import Screener
from ketascreen.storage import Actor, Database, Sessions, Tokens, UserRecord
from ketascreen.web.errors import ApiError
from ketascreen.web.security import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    RateLimiter,
    csrf_token_for,
    csrf_valid,
    new_csrf_cookie,
    same_origin,
    set_cookie,
)
from ketascreen.web.settings import WebSettings

__all__ = ["WebContext", "ctx", "self_screening_protocol"]

WEB_DIR = Path(__file__).resolve().parent
log = logging.getLogger("ketascreen.web")

DECISIONS = ("eligible", "eligible_with_precautions", "needs_evaluation", "incomplete", "defer",
             "not_recommended")


def self_screening_protocol(base: Protocol | None) -> Protocol:
    """The clinic's protocol for people screening themselves: blood pressure becomes "confirm at
    the first visit" (a self-screening person rarely knows a recent reading; one they give still
    counts). Everything else, including the safety floor, is the clinic's."""
    base = base or DEFAULT_PROTOCOL
    confirm = list(base.confirm_at_first_visit)
    if "vitals" not in confirm:
        confirm.append("vitals")
    variant = base.model_copy(update={"name": f"{base.name}+self-screening",
                                      "confirm_at_first_visit": confirm, "sha256": ""})
    return variant.model_copy(update={"sha256": protocol_hash(variant)})


@dataclass
class WebContext:
    settings: WebSettings
    db: Database
    kb: KnowledgeBase
    screener: Screener
    self_screener: Screener
    questionnaire: Questionnaire
    crisis_contacts: str
    login_limiter: RateLimiter
    templates: Any
    pdf: Any = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def instruments(self) -> frozenset[str]:
        return frozenset(self.settings.self_screening_instruments)

    @property
    def disclaimer(self) -> str:
        return str(self.kb.texts.get("disclaimer", ""))

    def screener_for(self, protocol_sha256: str) -> Screener | None:
        """The screener that produced a stored assessment, when it is still the one in use."""
        for s in (self.screener, self.self_screener):
            if s.compiled.protocol_info.sha256 == protocol_sha256:
                return s
        return None

    def today(self) -> date:
        return date.today()

    def pdf_bytes(self, a: Any, audience: str) -> bytes:
        """The report as PDF, from ``ketascreen.reports.pdf`` (WeasyPrint)."""
        render_pdf = getattr(self.pdf, "render_pdf", None)
        if render_pdf is None:
            raise ApiError(404, "PDF reports are not available in this installation")
        try:
            return bytes(render_pdf([a], audience, self.disclaimer,
                                    crisis_contacts=self.settings.crisis_contacts))
        except RuntimeError as exc:  # PdfUnavailableError: the system libraries are missing
            if type(exc).__name__ != "PdfUnavailableError":
                raise
            raise ApiError(503, "PDF reports need system libraries that are not installed on "
                           "the server; use the printable report") from None

    def report_html(self, a: Any, audience: str) -> str:
        """The patient letter or clinician report as a complete HTML document."""
        from ketascreen.reports.render import render

        return render(a, "html", audience, self.disclaimer,
                      crisis_contacts=self.settings.crisis_contacts)

    # -- rendering -------------------------------------------------------------------------

    def page(self, request: Request, template: str, context: dict[str, Any] | None = None, *,
             status: int = 200, user: UserRecord | None = None,
             headers: dict[str, str] | None = None) -> HTMLResponse:
        """Render a page with the CSRF token (setting the CSRF cookie when the browser has none)."""
        cookie = request.cookies.get(CSRF_COOKIE)
        fresh = None
        if not cookie or len(cookie) > 100:
            fresh = cookie = new_csrf_cookie()
        base = {
            "request": request,
            "csrf_token": csrf_token_for(self.settings.secret_key, cookie),
            "clinic_name": self.settings.clinic_name,
            "user": user,
            "crisis_contacts": self.crisis_contacts,
            "decisions": DECISIONS,
        }
        body = self.templates.get_template(template).render({**base, **(context or {})})
        response = HTMLResponse(body, status_code=status, headers=headers)
        if fresh is not None:
            set_cookie(response, CSRF_COOKIE, fresh, secure=self.settings.cookie_secure,
                       max_age=None, samesite="strict")
        return response

    # -- who is asking ---------------------------------------------------------------------

    def session_user(self, request: Request) -> UserRecord | None:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        with self.db.read() as s:
            return Sessions(s).user_for(token)

    def require_user(self, request: Request, *, review: bool = False,
                     admin: bool = False) -> UserRecord:
        user = self.session_user(request)
        if user is None:
            raise LoginRequired()
        if admin and not user.is_admin:
            raise ApiError(403, "this page is for administrators")
        if review and not user.can_review:
            raise ApiError(403, "viewers can read screenings but not review or enter them")
        return user

    def api_user(self, request: Request) -> tuple[UserRecord, Actor]:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "send an API token: Authorization: Bearer ks_…",
                           headers={"WWW-Authenticate": "Bearer"})
        with self.db.read() as s:
            found = Tokens(s).authenticate(token.strip())
        if found is None:
            raise ApiError(401, "the API token is not valid (unknown or revoked)",
                           headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        user, prefix = found
        return user, Actor(f"api:{prefix}:{user.email}", user.id, client_ip(request))

    async def check_csrf(self, request: Request) -> dict[str, Any]:
        """The submitted form, after checking its CSRF token and origin (403 otherwise)."""
        form = await request.form()
        token = form.get("csrf_token")
        if not same_origin(request, self.allowed_hosts()) or not csrf_valid(
                self.settings.secret_key, request.cookies.get(CSRF_COOKIE),
                token if isinstance(token, str) else None):
            raise ApiError(403, "this form has expired or did not come from this site: go back, "
                           "reload the page and try again", code="csrf_failed")
        return {k: form.getlist(k) for k in form}

    def allowed_hosts(self) -> set[str]:
        hosts = set()
        if self.settings.public_url:
            hosts.add(self.settings.public_url.split("://", 1)[-1].rstrip("/"))
        return hosts


class LoginRequired(Exception):
    """Raised by ``require_user`` for a page that needs a login; answered with a redirect."""


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def ctx(request: Request) -> WebContext:
    found = getattr(request.app.state, "ks", None)
    assert isinstance(found, WebContext)
    return found


_HEADING = re.compile(r"<(/?)h([1-5])\b", re.IGNORECASE)
_STYLE_ATTR = re.compile(r"""\s+style=("[^"]*"|'[^']*')""", re.IGNORECASE)


def report_fragment(html: str, *, demote: int = 1) -> Markup:
    """The inside of a rendered report's <main> (or <body>), to embed in one of our pages.

    The report renderer escapes everything it inserts, so its markup is safe to embed; its own
    <style> stays behind (our CSP allows no inline styles; app.css styles the same classes), and
    its headings move ``demote`` levels down under the page's own <h1>, and inline ``style``
    attributes (column widths for print) are dropped, as the CSP would refuse them anyway.
    """
    lower = html.lower()
    fragment = html
    for open_tag, close_tag in (("<main", "</main>"), ("<body", "</body>")):
        start = lower.find(open_tag)
        end = lower.rfind(close_tag)
        if start != -1 and end != -1:
            fragment = html[lower.find(">", start) + 1:end]
            break
    fragment = _STYLE_ATTR.sub("", fragment)
    if demote:
        fragment = _HEADING.sub(lambda m: f"<{m.group(1)}h{min(int(m.group(2)) + demote, 6)}",
                                fragment)
    return Markup(fragment)


def optional_module(name: str) -> Any:
    """A module that another part of ketascreen may not provide yet (PDF, CDS Hooks)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.startswith(exc.name):
            return None
        raise


def make_templates() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("ketascreen.web", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "j2"),
                                            default_for_string=True, default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["label"] = _label
    env.filters["crisis"] = lambda text, contacts: str(text).replace("{crisis_contacts}",
                                                                     contacts)
    return env


def _when(value: datetime | date | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return value.isoformat()


_LABELS = {
    "eligible": "Eligible",
    "eligible_with_precautions": "Eligible with precautions",
    "needs_evaluation": "Needs evaluation",
    "incomplete": "Incomplete",
    "defer": "Defer",
    "not_recommended": "Not recommended",
    "awaiting_review": "Awaiting review",
    "reviewed": "Reviewed",
    "private": "Not sent",
    "self": "Self-screening",
    "clinician": "Entered by clinician",
    "api": "API",
    "accepted": "Accepted",
    "changed": "Different decision",
}


def _label(value: Any) -> str:
    return _LABELS.get(str(value), str(value).replace("_", " "))

