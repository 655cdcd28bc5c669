"""The FastAPI application factory: ``create_app(settings)``.

Nothing is built at import time. ``create_app`` opens the database (applying migrations unless
told not to), compiles the knowledge base and protocol once, loads the questionnaire, and wires
the routers, security middleware and error handlers. ``app_from_env()`` is the factory uvicorn
calls (``uvicorn --factory ketascreen.web.app:app_from_env``), reading ``KETASCREEN_*``.

Mount point for the CDS Hooks service: when ``ketascreen.cds_hooks.service`` exists, its
``create_router(settings, *, feedback_store, screener)`` router is included at the site root
(its routes start with ``/cds-services``), with feedback stored in this database. See
:func:`_mount_cds_hooks` and docs/web.md.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from ketascreen import __version__
from ketascreen.core.model import Intake
from ketascreen.knowledge.questionnaire import load_questionnaire
from ketascreen.services import Screener, load_knowledge_base, load_protocol
from ketascreen.storage import Database, Drafts, Sessions
from ketascreen.web import api, clinician, patient
from ketascreen.web.context import (
    WEB_DIR,
    LoginRequired,
    WebContext,
    ctx,
    make_templates,
    optional_module,
    self_screening_protocol,
)
from ketascreen.web.errors import FaultBarrierMiddleware, install_error_handlers
from ketascreen.web.security import (
    BodyLimitMiddleware,
    RateLimiter,
    RequestLogMiddleware,
    SecurityHeadersMiddleware,
)
from ketascreen.web.settings import WebSettings

__all__ = ["app_from_env", "create_app"]

log = logging.getLogger("ketascreen.web")

API_DESCRIPTION = """\
ketascreen's REST API, version 1. `POST /api/v1/assessments` needs no login and stores nothing.
The screening endpoints need a bearer token (`ketascreen tokens create --email …` prints one).
Every error has the same shape: `{"error": {"status", "code", "message", "problems": [{"field",
"message"}]}}`. ketascreen supports a clinician's decision; it never replaces it.
"""


def create_app(settings: WebSettings, *, database: Database | None = None) -> FastAPI:
    """Build the application for these settings (and this database, when given)."""
    settings.check_production()
    db = database or Database(settings.database_url)
    if settings.migrate_on_start:
        db.upgrade()
    kb = load_knowledge_base()
    protocol = load_protocol(settings.protocol, kb) if settings.protocol else None
    contacts = settings.crisis_contacts or str(kb.texts.get("crisis_contacts", ""))
    screener = Screener(kb, protocol, crisis_contacts=settings.crisis_contacts)
    self_screener = Screener(kb, self_screening_protocol(protocol),
                             crisis_contacts=settings.crisis_contacts)
    context = WebContext(
        settings=settings, db=db, kb=kb, screener=screener, self_screener=self_screener,
        questionnaire=load_questionnaire(kb=kb), crisis_contacts=contacts,
        login_limiter=RateLimiter(settings.login_rate_per_minute),
        templates=make_templates(), pdf=optional_module("ketascreen.reports.pdf"))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        with db.write() as s:
            Drafts(s).purge_expired()
            Sessions(s).purge_expired()
        yield
        if database is None:
            db.dispose()

    app = FastAPI(
        title="ketascreen", version=__version__, description=API_DESCRIPTION,
        openapi_url="/api/v1/openapi.json", docs_url=None, redoc_url=None,
        lifespan=lifespan, separate_input_output_schemas=False,
    )
    app.state.ks = context
    install_error_handlers(app)

    @app.exception_handler(LoginRequired)
    async def _to_login(request: Request, _exc: LoginRequired) -> Response:
        nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={_quote(nxt)}", status_code=303)

    app.include_router(api.router)
    app.include_router(patient.router)
    app.include_router(clinician.router)
    _mount_cds_hooks(app, context)
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response((WEB_DIR / "static" / "favicon.svg").read_bytes(),
                        media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/api/v1/docs", include_in_schema=False)
    def api_docs(request: Request) -> HTMLResponse:
        return ctx(request).page(request, "api_docs.html", {"spec": app.openapi()})

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]

    # Added innermost first: headers wrap everything (even a 413 or a fault); the fault barrier
    # catches what the log and the body limit let through.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestLogMiddleware)
    app.add_middleware(FaultBarrierMiddleware)
    app.add_middleware(SecurityHeadersMiddleware,
                       hsts=settings.is_production or settings.base_url.startswith("https://"))
    return app


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")


def _mount_cds_hooks(app: FastAPI, context: WebContext) -> None:
    """Include the CDS Hooks service (``ketascreen.cds_hooks.service``) when it is installed.

    Its ``create_router(settings, *, feedback_store, screener)`` returns an ``APIRouter`` whose
    routes start with ``/cds-services``. It gets these settings (it reads its own
    ``KETASCREEN_CDS_*`` variables), the clinic's compiled screener, and a feedback store over
    this database (``cds_hooks.storage.DatabaseFeedbackStore``, which appends to the
    ``cds_feedback`` table through :class:`~ketascreen.storage.CdsFeedbackLog`: idempotent,
    append-only, audited).
    """
    service = optional_module("ketascreen.cds_hooks.service")
    create_router = getattr(service, "create_router", None)
    if create_router is None:
        return
    stores = optional_module("ketascreen.cds_hooks.storage")
    store_class = getattr(stores, "DatabaseFeedbackStore", None)
    kwargs: dict[str, Any] = {"screener": context.screener}
    if store_class is not None:
        kwargs["feedback_store"] = store_class(context.db)
    app.include_router(create_router(context.settings, **kwargs))


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    spec = get_openapi(title=app.title, version=app.version, description=app.description,
                       routes=app.routes)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    intake = Intake.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in intake.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    schemas.setdefault("Intake", intake)
    spec["components"]["securitySchemes"] = {
        "apiToken": {"type": "http", "scheme": "bearer",
                     "description": "`ketascreen tokens create --email …` prints one"}}
    for path, operations in spec.get("paths", {}).items():
        if path.startswith("/api/v1/screenings"):
            for operation in operations.values():
                operation["security"] = [{"apiToken": []}]
    app.openapi_schema = spec
    return spec


def app_from_env() -> FastAPI:
    """The application configured by the environment (for ``uvicorn --factory``)."""
    return create_app(WebSettings.from_env())
