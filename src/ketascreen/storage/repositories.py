"""Repositories: the only way the rest of ketascreen reads and writes the database.

Each takes an open ``Session`` (from ``Database.read()`` or ``Database.write()``) and hands out
plain frozen records, never ORM rows. Screenings, shares and reviews are only ever added; every
change worth recording is written to the audit log in the same transaction.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import (
    Table,
    bindparam,
    delete,
    exists,
    false,
    func,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from ketascreen.storage import audit
from ketascreen.storage.audit import Actor
from ketascreen.storage.credentials import (
    dummy_verify,
    hash_password,
    new_token,
    token_digest,
    verify_password,
)
from ketascreen.storage.models import (
    ApiToken,
    CdsFeedback,
    Draft,
    LoginSession,
    Review,
    Screening,
    Share,
    User,
)

__all__ = [
    "ROLES",
    "CdsFeedbackLog",
    "CdsFeedbackRecord",
    "Conflict",
    "DraftRecord",
    "Drafts",
    "LoginResult",
    "NewScreening",
    "NotFound",
    "ReviewRecord",
    "ScreeningFilter",
    "ScreeningRecord",
    "Screenings",
    "Sessions",
    "Tokens",
    "UserRecord",
    "Users",
    "review_digest",
    "screening_digest",
]

Role = Literal["admin", "clinician", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "clinician", "viewer")
Status = Literal["private", "awaiting_review", "reviewed"]


class NotFound(LookupError):
    """The record does not exist (or the caller may not know that it does)."""


class Conflict(ValueError):
    """The change conflicts with what is stored (a duplicate e-mail, for instance)."""


def _now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------------
# Users, API tokens and login sessions


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    email: str
    role: str
    disabled: bool
    created_at: datetime
    locked_until: datetime | None = None

    @property
    def can_review(self) -> bool:
        return self.role in ("admin", "clinician")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _user(u: User) -> UserRecord:
    return UserRecord(u.id, u.email, u.role, u.disabled, u.created_at, u.locked_until)


def normalize_email(email: str) -> str:
    return email.strip().lower()


@dataclass(frozen=True, slots=True)
class LoginResult:
    user: UserRecord | None
    reason: Literal["ok", "bad_credentials", "locked", "disabled"]


class Users:
    def __init__(self, session: Session) -> None:
        self.s = session

    def create(self, email: str, role: str, password: str, *, actor: Actor) -> UserRecord:
        email = normalize_email(email)
        if "@" not in email or len(email) > 320:
            raise ValueError("an e-mail address is needed (name@example.org)")
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if self.s.execute(select(User.id).where(User.email == email)).first() is not None:
            raise Conflict(f"an account for {email} already exists")
        user = User(email=email, role=role, password_hash=hash_password(password),
                    created_at=_now(), disabled=False, failed_logins=0)
        self.s.add(user)
        self.s.flush()
        audit.append(self.s, actor, "user_create", target_type="user", target_id=str(user.id),
                     detail={"role": role})
        return _user(user)

    def get(self, user_id: int) -> UserRecord | None:
        u = self.s.get(User, user_id)
        return _user(u) if u is not None else None

    def by_email(self, email: str) -> UserRecord | None:
        u = self.s.execute(select(User).where(User.email == normalize_email(email))
                           ).scalar_one_or_none()
        return _user(u) if u is not None else None

    def all(self) -> list[UserRecord]:
        return [_user(u) for u in self.s.execute(select(User).order_by(User.email)).scalars()]

    def count(self) -> int:
        return int(self.s.execute(select(func.count(User.id))).scalar_one())

    def set_password(self, email: str, password: str, *, actor: Actor) -> UserRecord:
        u = self._row(email)
        u.password_hash = hash_password(password)
        u.failed_logins = 0
        u.locked_until = None
        audit.append(self.s, actor, "password_set", target_type="user", target_id=str(u.id))
        return _user(u)

    def set_disabled(self, email: str, disabled: bool, *, actor: Actor) -> UserRecord:
        u = self._row(email)
        u.disabled = disabled
        if disabled:
            self.s.execute(delete(LoginSession).where(LoginSession.user_id == u.id))
        audit.append(self.s, actor, "user_disable" if disabled else "user_enable",
                     target_type="user", target_id=str(u.id))
        return _user(u)

    def _row(self, email: str) -> User:
        u = self.s.execute(select(User).where(User.email == normalize_email(email))
                           ).scalar_one_or_none()
        if u is None:
            raise NotFound(f"no account for {normalize_email(email)}")
        return u

    def authenticate(self, email: str, password: str, *, actor: Actor, max_failures: int = 5,
                     lockout: timedelta = timedelta(minutes=15),
                     now: datetime | None = None) -> LoginResult:
        """Check a password; count failures and lock the account after ``max_failures``.

        Every attempt is audited. An unknown e-mail costs as much time as a wrong password.
        """
        now = now or _now()
        u = self.s.execute(select(User).where(User.email == normalize_email(email))
                           .with_for_update()).scalar_one_or_none()
        if u is None:
            dummy_verify(password)
            audit.append(self.s, actor, "login_failed", detail={"reason": "unknown account"})
            return LoginResult(None, "bad_credentials")
        if u.locked_until is not None and u.locked_until > now:
            audit.append(self.s, actor, "login_failed", target_type="user",
                         target_id=str(u.id), detail={"reason": "locked"})
            return LoginResult(None, "locked")
        if not verify_password(u.password_hash, password):
            u.failed_logins += 1
            reason = "bad password"
            if u.failed_logins >= max_failures:
                u.locked_until = now + lockout
                u.failed_logins = 0
                reason = "bad password; account locked"
            audit.append(self.s, actor, "login_failed", target_type="user",
                         target_id=str(u.id), detail={"reason": reason})
            return LoginResult(None, "locked" if u.locked_until and u.locked_until > now
                               else "bad_credentials")
        if u.disabled:
            audit.append(self.s, actor, "login_failed", target_type="user",
                         target_id=str(u.id), detail={"reason": "disabled"})
            return LoginResult(None, "disabled")
        u.failed_logins = 0
        u.locked_until = None
        audit.append(self.s, Actor(f"user:{u.email}", u.id, actor.ip), "login",
                     target_type="user", target_id=str(u.id))
        return LoginResult(_user(u), "ok")


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: int
    user_id: int
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


_TOKEN_LOOKUP = (
    select(User.id, User.email, User.role, User.disabled, User.created_at, User.locked_until,
           ApiToken.prefix, ApiToken.revoked_at)
    .join(User, User.id == ApiToken.user_id)
    .where(ApiToken.token_hash == bindparam("digest")))


class Tokens:
    """Bearer tokens for the REST API: shown once, stored as a digest, revocable."""

    PREFIX = "ks_"

    def __init__(self, session: Session) -> None:
        self.s = session

    def create(self, user: UserRecord, *, actor: Actor) -> tuple[str, TokenRecord]:
        token = new_token(self.PREFIX)
        row = ApiToken(user_id=user.id, token_hash=token_digest(token), prefix=token[:10],
                       created_at=_now())
        self.s.add(row)
        self.s.flush()
        audit.append(self.s, actor, "token_create", target_type="user",
                     target_id=str(user.id), detail={"token": row.prefix})
        return token, TokenRecord(row.id, row.user_id, row.prefix, row.created_at, None)

    def revoke_all(self, user: UserRecord, *, actor: Actor) -> int:
        rows = list(self.s.execute(select(ApiToken).where(
            ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))).scalars())
        now = _now()
        for r in rows:
            r.revoked_at = now
        audit.append(self.s, actor, "token_revoke", target_type="user",
                     target_id=str(user.id), detail={"tokens": [r.prefix for r in rows]})
        return len(rows)

    def for_user(self, user: UserRecord) -> list[TokenRecord]:
        return [TokenRecord(r.id, r.user_id, r.prefix, r.created_at, r.revoked_at)
                for r in self.s.execute(select(ApiToken).where(ApiToken.user_id == user.id)
                                        .order_by(ApiToken.id)).scalars()]

    def authenticate(self, token: str) -> tuple[UserRecord, str] | None:
        """The active account a token belongs to (and the token's display prefix)."""
        if not token.startswith(self.PREFIX) or len(token) > 200:
            return None
        row = self.s.execute(_TOKEN_LOOKUP, {"digest": token_digest(token)}).first()
        if row is None or row.revoked_at is not None or row.disabled:
            return None
        return UserRecord(row.id, row.email, row.role, row.disabled, row.created_at,
                          row.locked_until), row.prefix


class Sessions:
    """Server-side login sessions; the browser holds only a random token."""

    def __init__(self, session: Session) -> None:
        self.s = session

    def create(self, user: UserRecord, *, hours: float = 8) -> str:
        token = new_token()
        now = _now()
        self.s.add(LoginSession(token_hash=token_digest(token), user_id=user.id, created_at=now,
                                expires_at=now + timedelta(hours=hours)))
        return token

    def user_for(self, token: str, *, now: datetime | None = None) -> UserRecord | None:
        if not token or len(token) > 200:
            return None
        row = self.s.execute(
            select(LoginSession, User).join(User, User.id == LoginSession.user_id)
            .where(LoginSession.token_hash == token_digest(token))).first()
        if row is None:
            return None
        sess, user = row
        if sess.expires_at <= (now or _now()) or user.disabled:
            return None
        return _user(user)

    def end(self, token: str) -> None:
        self.s.execute(delete(LoginSession).where(LoginSession.token_hash == token_digest(token)))

    def purge_expired(self, now: datetime | None = None) -> int:
        result = self.s.execute(delete(LoginSession).where(LoginSession.expires_at <= (now or _now())))
        return int(getattr(result, "rowcount", 0) or 0)


# --------------------------------------------------------------------------------------------
# Questionnaire drafts


@dataclass(frozen=True, slots=True)
class DraftRecord:
    answers: dict[str, Any]
    alerts_seen: frozenset[str]
    created_at: datetime
    expires_at: datetime
    screening_id: str | None
    result_token: str | None


class Drafts:
    """Answers kept between the pages of a questionnaire; gone once submitted or expired."""

    def __init__(self, session: Session) -> None:
        self.s = session

    def create(self, *, hours: float = 24, now: datetime | None = None) -> str:
        token = new_token()
        now = now or _now()
        self.s.add(Draft(token_hash=token_digest(token), answers_json="{}", alerts_seen="",
                         created_at=now, updated_at=now, expires_at=now + timedelta(hours=hours)))
        return token

    def get(self, token: str, *, now: datetime | None = None) -> DraftRecord | None:
        if not token or len(token) > 200:
            return None
        d = self.s.execute(select(Draft).where(Draft.token_hash == token_digest(token))
                           ).scalar_one_or_none()
        if d is None or d.expires_at <= (now or _now()):
            return None
        return DraftRecord(json.loads(d.answers_json), frozenset(filter(None, d.alerts_seen.split(","))),
                           d.created_at, d.expires_at, d.screening_id, d.result_token)

    def save(self, token: str, answers: dict[str, Any], alerts_seen: frozenset[str]) -> None:
        self.s.execute(update(Draft).where(Draft.token_hash == token_digest(token)).values(
            answers_json=json.dumps(answers, sort_keys=True), alerts_seen=",".join(sorted(alerts_seen)),
            updated_at=_now()))

    def complete(self, token: str, screening_id: str, result_token: str) -> None:
        """Forget the answers (they now live in the screening) but remember where they went,
        so that submitting twice leads to the same result."""
        self.s.execute(update(Draft).where(Draft.token_hash == token_digest(token)).values(
            answers_json="{}", screening_id=screening_id, result_token=result_token,
            updated_at=_now()))

    def purge_expired(self, now: datetime | None = None) -> int:
        result = self.s.execute(delete(Draft).where(Draft.expires_at <= (now or _now())))
        return int(getattr(result, "rowcount", 0) or 0)


# --------------------------------------------------------------------------------------------
# Screenings, shares and reviews


def screening_digest(intake_json: str, assessment_json: str, answers_json: str | None) -> str:
    h = hashlib.sha256()
    for part in (intake_json, assessment_json, answers_json or ""):
        h.update(part.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def review_digest(screening_id: str, created_at: datetime, reviewer_email: str, outcome: str,
                  decision: str, reason: str | None, screening_sha256: str) -> str:
    body = {
        "screening": screening_id,
        "at": created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "reviewer": reviewer_email,
        "outcome": outcome,
        "decision": decision,
        "reason": reason or "",
        "screening_sha256": screening_sha256,
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class NewScreening:
    """Everything a screening stores (the caller validated the intake and assessed it)."""

    intake_json: str
    assessment_json: str
    decision: str
    urgent: bool
    as_of: date
    contract_version: str
    kb_version: str
    kb_sha256: str
    protocol_name: str
    protocol_version: str
    protocol_sha256: str
    source: Literal["self", "clinician", "api"]
    reference: str | None = None
    created_by: int | None = None
    previous_id: str | None = None
    idempotency_key: str | None = None
    patient_token_hash: str | None = None
    shared: bool = True
    questionnaire_version: str | None = None
    answers_json: str | None = None

    @classmethod
    def from_assessment(cls, intake: Any, assessment: Any, **kwargs: Any) -> NewScreening:
        """Build from a core ``Intake`` and its ``Assessment``."""
        return cls(
            intake_json=intake.model_dump_json(exclude_none=True),
            assessment_json=assessment.model_dump_json(),
            decision=assessment.decision,
            urgent=assessment.urgent,
            as_of=assessment.as_of,
            contract_version=assessment.contract_version,
            kb_version=assessment.knowledge_base.version,
            kb_sha256=assessment.knowledge_base.sha256,
            protocol_name=assessment.protocol.name,
            protocol_version=assessment.protocol.version,
            protocol_sha256=assessment.protocol.sha256,
            reference=(intake.id or None),
            **kwargs,
        )


@dataclass(frozen=True, slots=True)
class ReviewRecord:
    id: int
    screening_id: str
    created_at: datetime
    reviewer_email: str
    outcome: str
    decision: str
    reason: str | None
    content_sha256: str


@dataclass(frozen=True, slots=True)
class ShareRecord:
    id: int
    created_at: datetime
    contact_name: str | None
    contact: str | None
    message: str | None


@dataclass(frozen=True, slots=True)
class ScreeningRecord:
    id: str
    created_at: datetime
    source: str
    created_by: int | None
    previous_id: str | None
    reference: str | None
    decision: str
    urgent: bool
    as_of: date
    contract_version: str
    kb_version: str
    kb_sha256: str
    protocol_name: str
    protocol_version: str
    protocol_sha256: str
    questionnaire_version: str | None
    content_sha256: str
    shared: bool
    reviewed: bool
    intake_json: str = ""
    assessment_json: str = ""
    answers_json: str | None = None
    reviews: tuple[ReviewRecord, ...] = ()
    shares: tuple[ShareRecord, ...] = ()
    later_ids: tuple[str, ...] = ()

    @property
    def status(self) -> Status:
        if self.reviewed:
            return "reviewed"
        return "awaiting_review" if self.shared else "private"

    @property
    def latest_review(self) -> ReviewRecord | None:
        return self.reviews[-1] if self.reviews else None

    def intake(self) -> dict[str, Any]:
        return dict(json.loads(self.intake_json)) if self.intake_json else {}

    def assessment(self) -> dict[str, Any]:
        return dict(json.loads(self.assessment_json)) if self.assessment_json else {}

    def answers(self) -> dict[str, Any] | None:
        return dict(json.loads(self.answers_json)) if self.answers_json else None


@dataclass(frozen=True, slots=True)
class ScreeningFilter:
    decisions: Sequence[str] = ()
    urgent: bool | None = None
    status: Literal["awaiting_review", "reviewed", "all"] = "all"
    created_from: date | None = None
    created_to: date | None = None
    text: str | None = None
    include_private: bool = False
    sort: Literal["urgent_first", "newest", "oldest"] = "urgent_first"
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True, slots=True)
class ScreeningPage:
    items: list[ScreeningRecord]
    total: int
    limit: int
    offset: int
    counts: dict[str, int] = field(default_factory=dict)


_INSERT_SCREENING = insert(cast(Table, Screening.__table__))


class Screenings:
    def __init__(self, session: Session) -> None:
        self.s = session

    # -- writing ---------------------------------------------------------------------------

    def create(self, new: NewScreening, *, actor: Actor,
               now: datetime | None = None) -> tuple[ScreeningRecord, bool]:
        """Store a screening (idempotent by ``idempotency_key``): ``(record, created)``."""
        if new.idempotency_key is not None:
            found = self._by_key(new.idempotency_key)
            if found is not None:
                return found, False
        if new.previous_id is not None and self.s.get(Screening, new.previous_id) is None:
            raise NotFound(f"no screening {new.previous_id}")
        values: dict[str, Any] = {
            "id": uuid.uuid4().hex, "created_at": (now or _now()), "source": new.source,
            "created_by": new.created_by, "previous_id": new.previous_id,
            "reference": (new.reference or None), "idempotency_key": new.idempotency_key,
            "patient_token_hash": new.patient_token_hash, "shared_at_creation": new.shared,
            "decision": new.decision, "urgent": new.urgent, "as_of": new.as_of,
            "contract_version": new.contract_version, "kb_version": new.kb_version,
            "kb_sha256": new.kb_sha256, "protocol_name": new.protocol_name,
            "protocol_version": new.protocol_version, "protocol_sha256": new.protocol_sha256,
            "questionnaire_version": new.questionnaire_version, "intake_json": new.intake_json,
            "assessment_json": new.assessment_json, "answers_json": new.answers_json,
            "content_sha256": screening_digest(new.intake_json, new.assessment_json,
                                               new.answers_json),
        }
        if new.idempotency_key is None:
            self.s.execute(_INSERT_SCREENING, values)
        else:
            try:  # a concurrent request with the same key may win: then return its screening
                with self.s.begin_nested():
                    self.s.execute(_INSERT_SCREENING, values)
            except IntegrityError:
                found = self._by_key(new.idempotency_key)
                if found is None:
                    raise
                return found, False
        row = Screening(**values)
        audit.append(self.s, actor, "create", target_type="screening", target_id=row.id,
                     detail={"source": new.source, "decision": new.decision,
                             "urgent": new.urgent, "content_sha256": row.content_sha256,
                             "previous_id": new.previous_id,
                             "kb_sha256": new.kb_sha256, "protocol_sha256": new.protocol_sha256})
        return self._record(row, detail=True, reviews=(), shares=()), True

    def share(self, screening_id: str, *, contact_name: str | None, contact: str | None,
              message: str | None, actor: Actor) -> ShareRecord:
        if self.s.get(Screening, screening_id) is None:
            raise NotFound(f"no screening {screening_id}")
        row = Share(screening_id=screening_id, created_at=_now(),
                    contact_name=contact_name or None, contact=contact or None,
                    message=message or None)
        self.s.add(row)
        self.s.flush()
        audit.append(self.s, actor, "share", target_type="screening", target_id=screening_id,
                     detail={"share_id": row.id})
        return ShareRecord(row.id, row.created_at, row.contact_name, row.contact, row.message)

    def add_review(self, screening_id: str, reviewer: UserRecord, *,
                   outcome: Literal["accepted", "changed"], decision: str,
                   reason: str | None, actor: Actor) -> ReviewRecord:
        if not reviewer.can_review:
            raise PermissionError("this account may not review screenings")
        s = self.s.get(Screening, screening_id)
        if s is None:
            raise NotFound(f"no screening {screening_id}")
        reason = (reason or "").strip() or None
        if outcome == "changed" and reason is None:
            raise ValueError("a different decision needs a reason")
        if outcome == "accepted" and decision != s.decision:
            raise ValueError("accepting keeps the assessment's decision")
        now = _now()
        digest = review_digest(screening_id, now, reviewer.email, outcome, decision, reason,
                               s.content_sha256)
        row = Review(screening_id=screening_id, created_at=now, reviewer_id=reviewer.id,
                     reviewer_email=reviewer.email, outcome=outcome, decision=decision,
                     reason=reason, screening_sha256=s.content_sha256, content_sha256=digest)
        self.s.add(row)
        self.s.flush()
        audit.append(self.s, actor, "review", target_type="screening", target_id=screening_id,
                     detail={"review_id": row.id, "outcome": outcome, "decision": decision,
                             "content_sha256": digest})
        return _review(row)

    # -- reading ---------------------------------------------------------------------------

    def get(self, screening_id: str) -> ScreeningRecord | None:
        if not screening_id or len(screening_id) > 32:
            return None
        row = self.s.get(Screening, screening_id)
        if row is None:
            return None
        return self._full(row)

    def by_patient_token(self, token: str) -> ScreeningRecord | None:
        if not token or len(token) > 200:
            return None
        row = self.s.execute(select(Screening).where(
            Screening.patient_token_hash == token_digest(token))).scalar_one_or_none()
        return self._full(row) if row is not None else None

    def _by_key(self, key: str) -> ScreeningRecord | None:
        row = self.s.execute(select(Screening).where(Screening.idempotency_key == key)
                             ).scalar_one_or_none()
        return self._full(row) if row is not None else None

    def _full(self, row: Screening) -> ScreeningRecord:
        reviews = tuple(_review(r) for r in self.s.execute(
            select(Review).where(Review.screening_id == row.id).order_by(Review.id)).scalars())
        shares = tuple(ShareRecord(r.id, r.created_at, r.contact_name, r.contact, r.message)
                       for r in self.s.execute(select(Share).where(Share.screening_id == row.id)
                                               .order_by(Share.id)).scalars())
        later = tuple(self.s.execute(select(Screening.id).where(Screening.previous_id == row.id)
                                     .order_by(Screening.created_at)).scalars())
        return self._record(row, detail=True, reviews=reviews, shares=shares, later=later)

    def _record(self, row: Screening, *, detail: bool, reviews: tuple[ReviewRecord, ...],
                shares: tuple[ShareRecord, ...], later: tuple[str, ...] = (),
                reviewed: bool | None = None, shared: bool | None = None) -> ScreeningRecord:
        return ScreeningRecord(
            id=row.id, created_at=row.created_at, source=row.source, created_by=row.created_by,
            previous_id=row.previous_id, reference=row.reference, decision=row.decision,
            urgent=row.urgent, as_of=row.as_of, contract_version=row.contract_version,
            kb_version=row.kb_version, kb_sha256=row.kb_sha256,
            protocol_name=row.protocol_name, protocol_version=row.protocol_version,
            protocol_sha256=row.protocol_sha256,
            questionnaire_version=row.questionnaire_version,
            content_sha256=row.content_sha256,
            shared=shared if shared is not None else (row.shared_at_creation or bool(shares)),
            reviewed=reviewed if reviewed is not None else bool(reviews),
            intake_json=row.intake_json if detail else "",
            assessment_json=row.assessment_json if detail else "",
            answers_json=row.answers_json if detail else None,
            reviews=reviews, shares=shares, later_ids=later)

    def search(self, f: ScreeningFilter) -> ScreeningPage:
        """Screenings the clinic can see, filtered, urgent first by default, one page of them."""
        reviewed = exists().where(Review.screening_id == Screening.id)
        shared = or_(Screening.shared_at_creation.is_(True),
                     exists().where(Share.screening_id == Screening.id))
        conds: list[ColumnElement[bool]] = []
        if not f.include_private:
            conds.append(shared)
        if f.decisions:
            conds.append(Screening.decision.in_(list(f.decisions)))
        if f.urgent is not None:
            conds.append(Screening.urgent.is_(true() if f.urgent else false()))
        if f.status == "reviewed":
            conds.append(reviewed)
        elif f.status == "awaiting_review":
            conds.append(~reviewed)
        if f.created_from is not None:
            conds.append(Screening.created_at >= datetime.combine(f.created_from, datetime.min.time(), UTC))
        if f.created_to is not None:
            conds.append(Screening.created_at < datetime.combine(f.created_to + timedelta(days=1),
                                                                 datetime.min.time(), UTC))
        if f.text:
            needle = f.text.strip().lower()
            conds.append(or_(func.lower(Screening.reference).contains(needle, autoescape=True),
                             Screening.id.startswith(needle, autoescape=True)))
        total = int(self.s.execute(select(func.count(Screening.id)).where(*conds)).scalar_one())
        order = {
            "urgent_first": (Screening.urgent.desc(), Screening.created_at.desc()),
            "newest": (Screening.created_at.desc(),),
            "oldest": (Screening.created_at.asc(),),
        }[f.sort]
        cols = [c for c in Screening.__table__.columns if c.name not in
                ("intake_json", "assessment_json", "answers_json")]
        q = (select(*cols, reviewed.label("is_reviewed"), shared.label("is_shared"))
             .where(*conds).order_by(*order, Screening.id).limit(f.limit).offset(f.offset))
        found = list(self.s.execute(q).mappings())
        latest: dict[str, ReviewRecord] = {}
        if found:
            for rv in self.s.execute(select(Review).where(
                    Review.screening_id.in_([r["id"] for r in found])).order_by(Review.id)
                    ).scalars():
                latest[rv.screening_id] = _review(rv)
        items = []
        for r in found:
            row = Screening(**{c.name: r[c.name] for c in cols})
            last = latest.get(row.id)
            items.append(self._record(row, detail=False, reviews=(last,) if last else (),
                                      shares=(), reviewed=bool(r["is_reviewed"]),
                                      shared=bool(r["is_shared"])))
        return ScreeningPage(items, total, f.limit, f.offset)

    def count(self) -> int:
        return int(self.s.execute(select(func.count(Screening.id))).scalar_one())

    def ids(self) -> list[str]:
        return list(self.s.execute(select(Screening.id)).scalars())


def _review(r: Review) -> ReviewRecord:
    return ReviewRecord(r.id, r.screening_id, r.created_at, r.reviewer_email, r.outcome,
                        r.decision, r.reason, r.content_sha256)


# --------------------------------------------------------------------------------------------
# CDS Hooks feedback (a small generic, idempotent, append-only event log)


@dataclass(frozen=True, slots=True)
class CdsFeedbackRecord:
    id: int
    received_at: datetime
    service_id: str
    idempotency_key: str
    card_id: str | None
    outcome: str | None
    payload: dict[str, Any]


class CdsFeedbackLog:
    """Append-only, idempotent store for CDS Hooks feedback (``POST …/feedback``).

    ``append`` stores one event once: a second call with the same ``idempotency_key`` returns
    the stored record and ``created=False``. Each new event is audited (``cds_feedback``)."""

    def __init__(self, session: Session) -> None:
        self.s = session

    def append(self, *, service_id: str, idempotency_key: str, payload: dict[str, Any],
               actor: Actor, card_id: str | None = None,
               outcome: str | None = None) -> tuple[CdsFeedbackRecord, bool]:
        found = self.get(idempotency_key)
        if found is not None:
            return found, False
        row = CdsFeedback(received_at=_now(), service_id=service_id[:100],
                          idempotency_key=idempotency_key[:200], card_id=card_id,
                          outcome=outcome, payload_json=json.dumps(payload, sort_keys=True))
        try:
            with self.s.begin_nested():
                self.s.add(row)
        except IntegrityError:
            found = self.get(idempotency_key)
            if found is None:
                raise
            return found, False
        audit.append(self.s, actor, "cds_feedback", target_type="cds_service",
                     target_id=service_id[:64], detail={"feedback_id": row.id,
                                                        "outcome": outcome, "card": card_id})
        return _feedback(row), True

    def get(self, idempotency_key: str) -> CdsFeedbackRecord | None:
        row = self.s.execute(select(CdsFeedback).where(
            CdsFeedback.idempotency_key == idempotency_key)).scalar_one_or_none()
        return _feedback(row) if row is not None else None

    def recent(self, *, service_id: str | None = None, limit: int = 100) -> list[CdsFeedbackRecord]:
        q = select(CdsFeedback).order_by(CdsFeedback.id.desc()).limit(limit)
        if service_id is not None:
            q = q.where(CdsFeedback.service_id == service_id)
        return [_feedback(r) for r in self.s.execute(q).scalars()]


def _feedback(r: CdsFeedback) -> CdsFeedbackRecord:
    return CdsFeedbackRecord(r.id, r.received_at, r.service_id, r.idempotency_key, r.card_id,
                             r.outcome, json.loads(r.payload_json))
