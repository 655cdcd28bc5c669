"""Security plumbing: headers on every response, a body-size limit, CSRF tokens, cookies, login
rate limiting, and request logging that never holds patient data.

The middlewares are plain ASGI (no per-request task switching), so they cost little on the hot
API path.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import Request, Response

__all__ = [
    "CSRF_COOKIE",
    "DRAFT_COOKIE",
    "SESSION_COOKIE",
    "BodyLimitMiddleware",
    "RateLimiter",
    "RequestLogMiddleware",
    "SecurityHeadersMiddleware",
    "csrf_token_for",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SESSION_COOKIE = "ks_session"
CSRF_COOKIE = "ks_csrf"
DRAFT_COOKIE = "ks_draft"

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
# Printable reports come from the report renderer with their own <style>; they carry no script.
REPORT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
              "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

log = logging.getLogger("ketascreen.web")


class SecurityHeadersMiddleware:
    """Adds CSP, frame denial, nosniff, referrer and caching headers unless a route set them."""

    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        headers = [
            (b"content-security-policy", CSP.encode()),
            (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"cross-origin-resource-policy", b"same-origin"),
        ]
        if hsts:
            headers.append((b"strict-transport-security", b"max-age=31536000"))
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                existing = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.headers if k not in existing]
                if b"cache-control" not in existing:
                    extra.append((b"cache-control",
                                  b"public, max-age=3600" if static else b"no-store"))
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _TooLarge(Exception):
    pass


def _json_error(status: int, code: str, message: str) -> bytes:
    return json.dumps({"error": {"status": status, "code": code, "message": message,
                                 "problems": []}}).encode()


class BodyLimitMiddleware:
    """Refuses request bodies over ``max_bytes`` with 413, by Content-Length or while reading."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await self._reply(send, 400, "bad_request", "Content-Length is not a number")
                    return
                if declared > self.max_bytes:
                    await self._too_large(send)
                    return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        await self._reply(send, 413, "body_too_large",
                          f"the request body is larger than the limit of {self.max_bytes} bytes")

    @staticmethod
    async def _reply(send: Send, status: int, code: str, message: str) -> None:
        body = _json_error(status, code, message)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class RequestLogMiddleware:
    """One log line per request: method, route template (never the raw path, which may hold a
    patient's private token), status and time. No query strings, bodies or answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or (
                "/static/…" if str(scope.get("path", "")).startswith("/static/") else "(no route)")
            log.info("%s %s %d %.1fms", scope.get("method", "?"), template, status,
                     (time.perf_counter() - start) * 1000)


# --------------------------------------------------------------------------------------------
# CSRF: a signed double-submit cookie. The browser holds a random value in an HttpOnly cookie;
# every form carries HMAC(secret, value). A cross-site page can neither read the cookie nor
# compute the HMAC, and a value planted by a sibling site fails the signature.


def new_csrf_cookie() -> str:
    return secrets.token_urlsafe(32)


def csrf_token_for(secret: str, cookie_value: str) -> str:
    return hmac.new(secret.encode(), b"csrf:" + cookie_value.encode(), hashlib.sha256).hexdigest()


def csrf_valid(secret: str, cookie_value: str | None, token: str | None) -> bool:
    if not cookie_value or not token or len(token) != 64:
        return False
    return hmac.compare_digest(csrf_token_for(secret, cookie_value), token)


def same_origin(request: Request, extra_hosts: set[str] | None = None) -> bool:
    """False when the browser says the form came from another site (Origin or Referer)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        # "null" is what browsers send under some referrer policies and privacy modes: it says
        # nothing either way, so the CSRF token decides, as when there is no header at all.
        referer = request.headers.get("referer")
        if not referer:
            return True
        origin = "/".join(referer.split("/")[:3])
    host = request.headers.get("host", "")
    seen = origin.split("://", 1)[-1]
    return seen == host or seen in (extra_hosts or set())


def set_cookie(response: Response, name: str, value: str, *, secure: bool, max_age: int | None,
               samesite: str = "lax", path: str = "/") -> None:
    response.set_cookie(name, value, max_age=max_age, path=path, secure=secure, httponly=True,
                        samesite=samesite)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------


class RateLimiter:
    """A sliding-window limit per key (the client address) for login attempts, in memory.

    Per process: with several workers each keeps its own window, so the effective limit is
    ``limit × workers``; the per-account lockout in the database holds regardless."""

    def __init__(self, limit: int, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window = window_s
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            hits.append(now)
            if len(self._hits) > 10_000:  # forget idle addresses
                for k in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.window]:
                    del self._hits[k]
            return True

    def retry_after(self, key: str, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        with self._lock:
            hits = self._hits.get(key)
            if not hits:
                return 0
            return max(1, int(hits[0] + self.window - now) + 1)
