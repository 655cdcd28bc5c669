"""The web application's settings: one validated model, flag > environment > default.

Every setting has a ``KETASCREEN_…`` environment variable (listed in ``WEB_SETTINGS_DOC`` and in
docs/web.md; a test keeps the two in step). Nothing is read at import time: call
:meth:`WebSettings.from_env` (the ``serve`` command does, with its flags).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ketascreen.errors import InputError, Problem
from ketascreen.knowledge.questionnaire import load_questionnaire
from ketascreen.services import load_knowledge_base
from ketascreen.storage.config import data_dir_from, database_url_from

__all__ = ["PLACEHOLDER_SECRETS", "WEB_SETTINGS_DOC", "WebSettings"]

# Values people copy from examples; never acceptable as a production secret.
PLACEHOLDER_SECRETS = frozenset({
    "", "change-me", "changeme", "change_me", "secret", "dev", "development", "test",
    "please-change-me", "replace-me", "your-secret-key", "ketascreen", "insecure",
})
# Every validated questionnaire the self-screening can ask: those whose licence allows shipping
# their questions (the C-SSRS screener, AUDIT-C, DAST-10 and MDQ are left to the clinic; a test
# keeps this in step with the questionnaire's instrument pages).
DEFAULT_INSTRUMENTS = ("phq9", "gad7", "pcl5")

WEB_SETTINGS_DOC: dict[str, str] = {
    "KETASCREEN_ENV": "`development` (default) or `production`; production refuses a "
    "missing or placeholder secret key",
    "KETASCREEN_HOST": "address to listen on (`--host`; default 127.0.0.1)",
    "KETASCREEN_PORT": "port to listen on (`--port`; default 8000)",
    "KETASCREEN_DATABASE_URL": "database URL (`--database-url`): `sqlite:///PATH` or "
    "`postgresql://USER@HOST/DB`; default SQLite in the data folder",
    "KETASCREEN_DATA_DIR": "the data folder (default `./data`): the SQLite database and, in "
    "development, the generated secret key",
    "KETASCREEN_SECRET_KEY": "secret for CSRF tokens (at least 32 characters); in development "
    "one is generated and kept in the data folder",
    "KETASCREEN_PUBLIC_URL": "the address people open, used in printed links (default "
    "http://HOST:PORT)",
    "KETASCREEN_COOKIE_SECURE": "`true` (default) sends cookies over HTTPS (and localhost) only",
    "KETASCREEN_SESSION_HOURS": "how long a clinician stays logged in (default 8)",
    "KETASCREEN_DRAFT_HOURS": "how long unfinished questionnaire answers are kept (default 24)",
    "KETASCREEN_MAX_BODY_BYTES": "largest request body accepted, in bytes (default 1000000); "
    "larger gets 413",
    "KETASCREEN_LOGIN_MAX_FAILURES": "wrong passwords in a row before an account is locked "
    "(default 5)",
    "KETASCREEN_LOCKOUT_MINUTES": "how long a locked account stays locked (default 15)",
    "KETASCREEN_LOGIN_RATE_PER_MINUTE": "login attempts allowed per address per minute "
    "(default 10); more get 429",
    "KETASCREEN_CLINIC_NAME": "the clinic's name, shown to patients (default \"the clinic\")",
    "KETASCREEN_SELF_SCREENING_INSTRUMENTS": "validated questionnaires the self-screening asks "
    "(comma-separated; default phq9,gad7,pcl5, the ones it can ask; `none` for none)",
    "KETASCREEN_PROTOCOL": "the clinic protocol file (see configuration.md)",
    "KETASCREEN_CRISIS_CONTACTS": "crisis contacts shown to patients (see configuration.md)",
    "KETASCREEN_MIGRATE_ON_START": "`true` (default) applies database migrations when the "
    "server starts",
}


class WebSettings(BaseModel):
    """Every setting of the server, validated. Build it with :meth:`from_env`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    database_url: str
    data_dir: Path
    secret_key: str = Field(repr=False)
    secret_source: Literal["setting", "generated"] = "setting"
    public_url: str | None = None
    cookie_secure: bool = True
    session_hours: float = Field(8, gt=0, le=24 * 30)
    draft_hours: float = Field(24, gt=0, le=24 * 30)
    max_body_bytes: int = Field(1_000_000, ge=1024, le=100_000_000)
    login_max_failures: int = Field(5, ge=1, le=100)
    lockout_minutes: float = Field(15, ge=0, le=24 * 60)
    login_rate_per_minute: int = Field(10, ge=1, le=10_000)
    clinic_name: str = Field("the clinic", min_length=1, max_length=200)
    self_screening_instruments: tuple[str, ...] = DEFAULT_INSTRUMENTS
    protocol: Path | None = None
    crisis_contacts: str | None = None
    migrate_on_start: bool = True

    @field_validator("self_screening_instruments")
    @classmethod
    def _askable_instruments(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Only questionnaires with a page in the self-screening (so, licensed to ship)."""
        if not value:
            return value
        kb = load_knowledge_base()
        q = load_questionnaire(kb=kb)
        problems = q.instrument_problems(value, kb.instruments)
        if problems:
            problems.append(f"The self-screening can ask: {', '.join(q.instrument_ids())}.")
            raise ValueError("\n".join(problems))  # one Problem a line (from_env)
        return value

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, value: str) -> str:
        if value.strip().lower() not in PLACEHOLDER_SECRETS and len(value) < 32:
            raise ValueError("must be at least 32 characters (generate one with "
                             "`python -c \"import secrets; print(secrets.token_urlsafe(48))\"`)")
        return value

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    def check_production(self) -> None:
        """Refuse to run in production with a placeholder or generated secret."""
        if not self.is_production:
            return
        if self.secret_source != "setting" or self.secret_key.strip().lower() in (
                PLACEHOLDER_SECRETS):
            raise InputError([Problem(
                "KETASCREEN_SECRET_KEY",
                "production mode needs a real secret key: set KETASCREEN_SECRET_KEY to a random "
                "value of at least 32 characters (not a placeholder)")])
        if not self.cookie_secure:
            raise InputError([Problem("KETASCREEN_COOKIE_SECURE",
                                      "production mode sends cookies over HTTPS only")])

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **flags: Any) -> WebSettings:
        """Settings from flags (given, not None), then ``KETASCREEN_*`` variables, then defaults.

        Raises ``InputError`` naming every setting that is wrong.
        """
        env = os.environ if env is None else env
        problems: list[Problem] = []

        def pick(name: str, var: str) -> Any:
            value = flags.get(name)
            if value is not None:
                return value
            return env.get(var) or None

        data_dir = data_dir_from(pick("data_dir", "KETASCREEN_DATA_DIR"), env)
        raw: dict[str, Any] = {
            "data_dir": data_dir,
            "database_url": database_url_from(flags.get("database_url"), env, data_dir=data_dir),
        }
        simple = {
            "env": "KETASCREEN_ENV", "host": "KETASCREEN_HOST", "port": "KETASCREEN_PORT",
            "public_url": "KETASCREEN_PUBLIC_URL", "cookie_secure": "KETASCREEN_COOKIE_SECURE",
            "session_hours": "KETASCREEN_SESSION_HOURS", "draft_hours": "KETASCREEN_DRAFT_HOURS",
            "max_body_bytes": "KETASCREEN_MAX_BODY_BYTES",
            "login_max_failures": "KETASCREEN_LOGIN_MAX_FAILURES",
            "lockout_minutes": "KETASCREEN_LOCKOUT_MINUTES",
            "login_rate_per_minute": "KETASCREEN_LOGIN_RATE_PER_MINUTE",
            "clinic_name": "KETASCREEN_CLINIC_NAME", "protocol": "KETASCREEN_PROTOCOL",
            "crisis_contacts": "KETASCREEN_CRISIS_CONTACTS",
            "migrate_on_start": "KETASCREEN_MIGRATE_ON_START",
        }
        for name, var in simple.items():
            value = pick(name, var)
            if value is not None:
                raw[name] = value
        instruments = pick("self_screening_instruments", "KETASCREEN_SELF_SCREENING_INSTRUMENTS")
        if instruments is not None:
            if isinstance(instruments, str):
                parts = [p.strip() for p in instruments.split(",") if p.strip()]
                instruments = () if parts == ["none"] else tuple(parts)
            raw["self_screening_instruments"] = tuple(instruments)
        secret = pick("secret_key", "KETASCREEN_SECRET_KEY")
        if secret is not None:
            raw["secret_key"] = str(secret)
        elif str(raw.get("env", "development")) == "production":
            raw["secret_key"] = ""
            raw["secret_source"] = "generated"
        else:
            try:
                raw["secret_key"] = _development_secret(data_dir)
            except OSError as exc:
                problems.append(Problem("KETASCREEN_DATA_DIR",
                                        f"cannot keep a secret key in {data_dir}: {exc.strerror}"))
                raw["secret_key"] = secrets.token_urlsafe(48)
            raw["secret_source"] = "generated"
        try:
            settings = cls.model_validate(raw)
        except ValidationError as exc:
            by_field = {**simple, "secret_key": "KETASCREEN_SECRET_KEY",
                        "self_screening_instruments": "KETASCREEN_SELF_SCREENING_INSTRUMENTS",
                        "database_url": "KETASCREEN_DATABASE_URL",
                        "data_dir": "KETASCREEN_DATA_DIR"}
            for e in exc.errors():
                name = str(e["loc"][0]) if e["loc"] else ""
                message = str(e["msg"]).removeprefix("Value error, ")
                problems += [Problem(by_field.get(name, name), line)
                             for line in message.splitlines()]
            raise InputError(problems) from None
        if problems:
            raise InputError(problems)
        settings.check_production()
        return settings


def _development_secret(data_dir: Path) -> str:
    """A random secret kept in the data folder, so sessions survive a restart in development."""
    path = data_dir / "secret_key"
    if path.exists():
        value = path.read_text(encoding="utf-8").strip()
        if len(value) >= 32:
            return value
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value + "\n")
    return value
