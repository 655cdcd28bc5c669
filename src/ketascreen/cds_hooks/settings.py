"""The CDS Hooks service's settings: declared once, validated, read only when asked.

Every setting has a ``KETASCREEN_CDS_…`` environment variable, listed in :data:`CDS_SETTINGS_DOC`
(and in docs/integration.md). Nothing is read at import time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ketascreen.errors import InputError, Problem

__all__ = ["CDS_SETTINGS_DOC", "CdsSettings"]

CDS_SETTINGS_DOC: dict[str, str] = {
    "KETASCREEN_CDS_TRUSTED_ISSUERS": "the EHRs allowed to call the CDS Hooks service: a JSON "
    "object, issuer (the JWT's `iss`) → the URL of its JWK Set (or a list of URLs; a JWT's `jku` "
    "is followed only when it is one of them)",
    "KETASCREEN_CDS_VERIFY_JWT": "`true` (default) verifies every call's JWT; `false` is a "
    "development mode that accepts any caller and says so in the log and on every card",
    "KETASCREEN_CDS_BASE_URL": "the service's public base URL (the JWT `aud` is this plus "
    "`/cds-services/{id}`); default: taken from the request",
    "KETASCREEN_CDS_RULES_URL": "link to the rules catalogue shown as each card's source "
    "(default: BASE_URL/cds-services/rules, served by the service)",
    "KETASCREEN_CDS_FETCH_TIMEOUT": "seconds allowed for fetching data the EHR did not prefetch "
    "(default 0.3, so the service answers within 500 ms)",
    "KETASCREEN_CDS_FHIR_SERVERS": "optional: comma-separated URL prefixes of FHIR servers the "
    "service may fetch from (default: any https server named by a verified EHR)",
    "KETASCREEN_CDS_REPORT_MINUTES": "how long a card's link to the full report works (default "
    "30; 0 turns the links off)",
}


def _bool(value: str | None, default: bool, name: str) -> bool:
    if value is None or value.strip() == "":
        return default
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise InputError([Problem(name, f"must be true or false (got {value!r})")])


@dataclass(frozen=True, slots=True)
class CdsSettings:
    """What the CDS Hooks service needs to know. ``transport`` is for tests (an httpx
    ``MockTransport`` standing in for the EHR's FHIR server and JWK Sets)."""

    trusted_issuers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    verify_jwt: bool = True
    base_url: str | None = None
    rules_url: str | None = None
    fetch_timeout: float = 0.3
    fhir_servers: tuple[str, ...] = ()
    report_minutes: int = 30
    protocol: Path | None = None
    crisis_contacts: str | None = None
    transport: Any = None
    jwks_timeout: float = 2.0
    max_token_lifetime: int = 300
    leeway: int = 30

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> CdsSettings:
        """Read the ``KETASCREEN_CDS_*`` variables (and the protocol and crisis contacts);
        InputError naming every bad setting."""
        env = os.environ if env is None else env
        problems: list[Problem] = []
        issuers: dict[str, tuple[str, ...]] = {}
        raw = env.get("KETASCREEN_CDS_TRUSTED_ISSUERS", "").strip()
        if raw:
            try:
                parsed = json.loads(raw)
            except json.JSONDecodeError as exc:
                parsed = None
                problems.append(Problem("KETASCREEN_CDS_TRUSTED_ISSUERS",
                                        f"must be a JSON object: {exc.msg}"))
            if parsed is not None and not isinstance(parsed, dict):
                problems.append(Problem("KETASCREEN_CDS_TRUSTED_ISSUERS",
                                        "must be a JSON object: issuer → JWK Set URL"))
            for iss, urls in (parsed or {}).items() if isinstance(parsed, dict) else ():
                found = [urls] if isinstance(urls, str) else urls
                if not isinstance(found, list) or not found or not all(
                        isinstance(u, str) and u.startswith(("https://", "http://"))
                        for u in found):
                    problems.append(Problem(f"KETASCREEN_CDS_TRUSTED_ISSUERS.{iss}",
                                            "must be a JWK Set URL (or a list of URLs)"))
                    continue
                issuers[str(iss)] = tuple(found)
        verify = True
        try:
            verify = _bool(env.get("KETASCREEN_CDS_VERIFY_JWT"), True, "KETASCREEN_CDS_VERIFY_JWT")
        except InputError as exc:
            problems += exc.problems
        timeout = 0.3
        raw_timeout = env.get("KETASCREEN_CDS_FETCH_TIMEOUT", "").strip()
        if raw_timeout:
            try:
                timeout = float(raw_timeout)
                if not 0 < timeout <= 30:
                    raise ValueError
            except ValueError:
                problems.append(Problem("KETASCREEN_CDS_FETCH_TIMEOUT",
                                        "must be a number of seconds between 0 and 30"))
        minutes = 30
        raw_minutes = env.get("KETASCREEN_CDS_REPORT_MINUTES", "").strip()
        if raw_minutes:
            try:
                minutes = int(raw_minutes)
                if not 0 <= minutes <= 24 * 60:
                    raise ValueError
            except ValueError:
                problems.append(Problem("KETASCREEN_CDS_REPORT_MINUTES",
                                        "must be a whole number of minutes (0 to 1440)"))
        base = (env.get("KETASCREEN_CDS_BASE_URL") or "").strip().rstrip("/") or None
        rules = (env.get("KETASCREEN_CDS_RULES_URL") or "").strip() or None
        for name, value in (("KETASCREEN_CDS_BASE_URL", base), ("KETASCREEN_CDS_RULES_URL", rules)):
            if value and not value.startswith(("https://", "http://")):
                problems.append(Problem(name, "must be an absolute http(s) URL"))
        servers = tuple(s.strip().rstrip("/") for s in (env.get("KETASCREEN_CDS_FHIR_SERVERS")
                                                        or "").split(",") if s.strip())
        if problems:
            raise InputError(problems, "settings")
        protocol = env.get("KETASCREEN_PROTOCOL") or None
        values: dict[str, Any] = {
            "trusted_issuers": issuers, "verify_jwt": verify, "base_url": base,
            "rules_url": rules, "fetch_timeout": timeout, "fhir_servers": servers,
            "report_minutes": minutes, "protocol": Path(protocol) if protocol else None,
            "crisis_contacts": env.get("KETASCREEN_CRISIS_CONTACTS") or None,
        }
        values.update(overrides)
        return cls(**values)

    @classmethod
    def from_any(cls, settings: Any) -> CdsSettings:
        """These settings from a ``CdsSettings``, or from the application's settings object
        (its ``protocol`` and ``crisis_contacts``, plus the environment for the rest)."""
        if isinstance(settings, CdsSettings):
            return settings
        if settings is None:
            return cls.from_env()
        overrides: dict[str, Any] = {}
        for name in ("protocol", "crisis_contacts"):
            value = getattr(settings, name, None)
            if value is not None:
                overrides[name] = value
        public = getattr(settings, "public_url", None)
        env = dict(os.environ)
        if public and not env.get("KETASCREEN_CDS_BASE_URL"):
            env["KETASCREEN_CDS_BASE_URL"] = str(public)
        return cls.from_env(env, **overrides)
