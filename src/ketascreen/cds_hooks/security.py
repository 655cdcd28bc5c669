"""Trusting the EHR: the JWT every CDS Hooks call carries, verified as CDS Hooks 2.0 asks.

- ``alg`` must be RS384 or ES384 (asymmetric: no ``none``, no shared secret);
- ``iss`` must be on the allow-list (``KETASCREEN_CDS_TRUSTED_ISSUERS``: issuer → JWK Set URL);
  the key is the one with the token's ``kid`` in that issuer's JWK Set, fetched over HTTP(S) and
  cached; a ``jku`` header is followed only when it is one of that issuer's listed URLs;
- ``aud`` must be the URL of the service being called;
- ``exp``, ``iat`` and ``jti`` are required; a token lives at most five minutes, and a ``jti``
  seen before (from the same issuer, while the token is valid) is refused as a replay.

Every failure is an :class:`AuthError`, answered with 401 by the service.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import jwt

from ketascreen.cds_hooks.settings import CdsSettings

__all__ = ["ALGORITHMS", "AuthError", "InMemoryReplayGuard", "JwtVerifier", "ReplayGuard",
           "VerifiedCaller"]

ALGORITHMS = ("RS384", "ES384")
_JWKS_TTL = 600.0  # seconds a fetched JWK Set is trusted before it is fetched again
_JWKS_MIN_REFETCH = 30.0  # an unknown kid refetches the set at most this often


class AuthError(Exception):
    """The caller could not be trusted (answered with 401 and this message)."""


@dataclass(frozen=True, slots=True)
class VerifiedCaller:
    issuer: str
    subject: str | None
    jti: str | None
    verified: bool


class ReplayGuard(Protocol):
    def first_use(self, issuer: str, jti: str, expires_at: float) -> bool:
        """True the first time (issuer, jti) is seen; False for a replay."""


class InMemoryReplayGuard:
    """Remembers each (issuer, jti) until its token expires (one process)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def first_use(self, issuer: str, jti: str, expires_at: float) -> bool:
        now = time.time()
        with self._lock:
            if len(self._seen) > 1000:
                self._seen = {k: v for k, v in self._seen.items() if v >= now}
            key = (issuer, jti)
            if key in self._seen and self._seen[key] >= now:
                return False
            self._seen[key] = expires_at
            return True


class _JwksCache:
    def __init__(self, settings: CdsSettings) -> None:
        self.settings = settings
        self._sets: dict[str, tuple[float, jwt.PyJWKSet]] = {}

    async def key(self, url: str, kid: str) -> jwt.PyJWK:
        now = time.monotonic()
        cached = self._sets.get(url)
        if cached is None or now - cached[0] > _JWKS_TTL or (
                _find(cached[1], kid) is None and now - cached[0] > _JWKS_MIN_REFETCH):
            cached = await self._fetch(url)  # two concurrent fetches are harmless
        found = _find(cached[1], kid)
        if found is None:
            raise AuthError(f"no key with kid {kid!r} in the issuer's JWK Set")
        return found

    async def _fetch(self, url: str) -> tuple[float, jwt.PyJWKSet]:
        try:
            async with httpx.AsyncClient(transport=self.settings.transport,
                                         timeout=self.settings.jwks_timeout) as client:
                response = await client.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            keys = jwt.PyJWKSet.from_dict(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWKSetError) as exc:
            raise AuthError(f"the issuer's JWK Set could not be read ({type(exc).__name__})"
                            ) from exc
        entry = (time.monotonic(), keys)
        self._sets[url] = entry
        return entry


def _find(keys: jwt.PyJWKSet, kid: str) -> jwt.PyJWK | None:
    return next((k for k in keys.keys if k.key_id == kid), None)


def _norm(url: str) -> str:
    return url.rstrip("/")


class JwtVerifier:
    """Verifies the ``Authorization: Bearer <JWT>`` of each call (see the module docstring)."""

    def __init__(self, settings: CdsSettings, replay: ReplayGuard | None = None) -> None:
        self.settings = settings
        self.replay = replay or InMemoryReplayGuard()
        self.jwks = _JwksCache(settings)

    async def verify(self, authorization: str | None, audiences: Iterable[str]) -> VerifiedCaller:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise AuthError("an Authorization: Bearer JWT is required")
        token = authorization[7:].strip()
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise AuthError("the bearer token is not a JWT") from exc
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise AuthError(f"alg {alg!r} is not accepted (RS384 or ES384 only)")
        issuer = unverified.get("iss")
        if not isinstance(issuer, str) or issuer not in self.settings.trusted_issuers:
            raise AuthError(f"issuer {issuer!r} is not trusted")
        urls = self.settings.trusted_issuers[issuer]
        jku = header.get("jku")
        if jku is not None and jku not in urls:
            raise AuthError("the jku header is not one of the issuer's allowed JWK Set URLs")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError("the JWT header has no kid")
        key = await self.jwks.key(jku or urls[0], kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key.key, algorithms=[alg], issuer=issuer, leeway=self.settings.leeway,
                options={"require": ["iss", "aud", "exp", "iat", "jti"], "verify_aud": False})
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("the JWT has expired") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"the JWT has no {exc.claim} claim") from exc
        except jwt.PyJWTError as exc:
            raise AuthError(f"the JWT is not valid ({type(exc).__name__})") from exc
        aud = claims.get("aud")
        given = {_norm(a) for a in ([aud] if isinstance(aud, str) else aud or [])
                 if isinstance(a, str)}
        expected = {_norm(a) for a in audiences}
        if not given & expected:
            raise AuthError(f"aud must be this service's URL ({sorted(expected)[0]})")
        exp = float(claims["exp"])
        if exp - time.time() > self.settings.max_token_lifetime + self.settings.leeway:
            raise AuthError("the JWT lives longer than five minutes")
        jti = str(claims["jti"])
        if not self.replay.first_use(issuer, jti, exp + self.settings.leeway):
            raise AuthError("this JWT (jti) was already used")
        sub = claims.get("sub")
        return VerifiedCaller(issuer, sub if isinstance(sub, str) else None, jti, True)
