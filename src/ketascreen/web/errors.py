"""One error shape everywhere, and the handlers that turn every failure into it.

API (``/api/…``, ``/health``, ``/cds-services…``) and any request that asks for JSON get::

    {"error": {"status": 422, "code": "invalid_intake", "message": "…",
               "problems": [{"field": "conditions[2].status", "message": "must be one of …"}]}}

Pages get a plain HTML page with the same message. Nothing ever answers with a traceback; an
unexpected fault is logged (type and stack frames, never the message, which may hold patient
data) and answered with a 500 in the same shape.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ketascreen.core.validation import format_loc
from ketascreen.errors import InputError, Problem

__all__ = ["ApiError", "FaultBarrierMiddleware", "error_body", "install_error_handlers", "wants_json"]

log = logging.getLogger("ketascreen.web")

_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 409: "conflict", 413: "body_too_large",
          415: "unsupported_media_type", 422: "invalid_request", 429: "too_many_requests",
          500: "internal_error", 503: "unavailable"}
_TITLES = {400: "That request could not be read", 401: "Please log in",
           403: "You do not have access to this", 404: "Page not found",
           405: "That action is not available here", 413: "That was too large to send",
           422: "Some answers need another look", 429: "Too many attempts",
           500: "Something went wrong on our side", 503: "The service is not available"}


class ApiError(Exception):
    """An error to answer with: status, a stable code, a message and optional problems."""

    def __init__(self, status: int, message: str, *, code: str | None = None,
                 problems: Sequence[Problem] = (), headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _CODES.get(status, "error")
        self.message = message
        self.problems = list(problems)
        self.headers = headers or {}


def error_body(status: int, code: str, message: str,
               problems: Sequence[Problem] = ()) -> dict[str, Any]:
    return {"error": {"status": status, "code": code, "message": message,
                      "problems": [{"field": p.field, "message": p.message} for p in problems]}}


def wants_json(request: Request) -> bool:
    path = request.url.path
    if path.startswith(("/api/", "/health", "/cds-services")):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _respond(request: Request, status: int, code: str, message: str,
             problems: Sequence[Problem] = (), headers: dict[str, str] | None = None) -> Response:
    if wants_json(request):
        return JSONResponse(error_body(status, code, message, problems), status_code=status,
                            headers=headers)
    return HTMLResponse(_html_page(status, message, problems), status_code=status,
                        headers=headers)


def _html_page(status: int, message: str, problems: Sequence[Problem]) -> str:
    from markupsafe import escape

    items = "".join(f"<li>{escape(p.field)}: {escape(p.message)}</li>" for p in problems)
    title = _TITLES.get(status, "Error")
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{escape(title)} · ketascreen</title>"
        "<link rel=\"stylesheet\" href=\"/static/app.css\"></head><body><main class=\"page\">"
        f"<h1>{escape(title)}</h1><p>{escape(message)}</p>"
        + (f"<ul>{items}</ul>" if items else "")
        + "<p><a href=\"/\">Go to the start page</a></p></main></body></html>")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return _respond(request, exc.status, exc.code, exc.message, exc.problems, exc.headers)

    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError) -> Response:
        return _respond(request, 422, "invalid_intake",
                        f"the intake has {len(exc.problems)} problem(s)", exc.problems)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for e in exc.errors():
            loc = [p for p in e.get("loc", ()) if p not in ("body",)]
            problems.append(Problem(format_loc(loc) or "(request)", str(e.get("msg", "invalid"))))
        return _respond(request, 422, "invalid_request", "the request is not valid", problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        status = exc.status_code
        message = exc.detail if isinstance(exc.detail, str) else _TITLES.get(status, "error")
        if status == 404:
            message = "there is nothing at this address"
        elif status == 405:
            message = f"{request.method} is not allowed here"
        return _respond(request, status, _CODES.get(status, "error"), message,
                        headers=dict(exc.headers or {}))


class FaultBarrierMiddleware:
    """Catches anything a route let escape: logs the type and stack frames (never the message,
    which may quote patient data) and answers 500 in the error shape. Nothing propagates further,
    so the server never prints a traceback with data in it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            frames = "".join(traceback.format_tb(exc.__traceback__))
            route = getattr(scope.get("route"), "path", "(no route)")
            log.error("internal error %s on %s %s\n%s", type(exc).__name__,
                      scope.get("method", "?"), route, frames)
            if started:
                return
            request = Request(scope)
            response = _respond(request, 500, "internal_error",
                                "ketascreen met an internal error; it has been logged")
            await response(scope, receive, send)
