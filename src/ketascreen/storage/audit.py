"""The audit log: append-only and hash-chained, so that any change after the fact shows.

Each entry's ``hash`` is the SHA-256 of the previous entry's hash and the entry's own canonical
JSON (sequence number, time, actor, action, target, address, detail). ``audit_head`` holds the
newest sequence number and hash; appending locks that row, so entries form one chain even with
many writers. :func:`verify` walks the chain and also re-checks every screening and review
against the digest recorded when it was created: an edited, inserted, reordered or deleted entry,
and an edited screening or review, are all reported.

Entries never hold patient data: no answers, names or contact details, only ids and digests.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, text, update
from sqlalchemy.orm import Session

from ketascreen.storage.models import AuditEntry, AuditHead, Review, Screening

__all__ = ["GENESIS", "Actor", "AuditRecord", "VerifyReport", "append", "entry_hash", "verify"]

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did something, and from where: ``user:alice@clinic.org``, ``patient``, ``api:…``."""

    label: str
    user_id: int | None = None
    ip: str | None = None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    at: datetime
    actor: str
    action: str
    target_type: str | None
    target_id: str | None
    ip: str | None
    detail: dict[str, Any]
    hash: str


@dataclass
class VerifyReport:
    entries: int = 0
    screenings: int = 0
    reviews: int = 0
    head_hash: str = GENESIS
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _canonical(seq: int, at: datetime, actor: str, action: str, target_type: str | None,
               target_id: str | None, ip: str | None, detail_json: str) -> bytes:
    body = {
        "seq": seq,
        "at": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor": actor,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "ip": ip,
        "detail": detail_json,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(prev_hash: str, seq: int, at: datetime, actor: str, action: str,
               target_type: str | None, target_id: str | None, ip: str | None,
               detail_json: str) -> str:
    h = hashlib.sha256(prev_hash.encode("ascii") + b"\n")
    h.update(_canonical(seq, at, actor, action, target_type, target_id, ip, detail_json))
    return h.hexdigest()


_HEAD = select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1).with_for_update()
_ENTRIES = cast(Table, AuditEntry.__table__)
_HEADS = cast(Table, AuditHead.__table__)
_INSERT = insert(_ENTRIES)
_MOVE_HEAD = (update(_HEADS).where(_HEADS.c.id == 1)
              .values(seq=bindparam("new_seq"), hash=bindparam("new_hash")))
_PG_ADVANCE = text("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
_PG_WRITE = text(
    "WITH entry AS (INSERT INTO audit_log (seq, at, actor, action, target_type, target_id, ip, "
    "detail_json, prev_hash, hash) VALUES (:seq, :at, :actor, :action, :target_type, "
    ":target_id, :ip, :detail_json, :prev_hash, :hash)) "
    "UPDATE audit_head SET hash = :hash WHERE id = 1")


def append(session: Session, actor: Actor, action: str, *, target_type: str | None = None,
           target_id: str | None = None, detail: Mapping[str, Any] | None = None,
           now: datetime | None = None) -> AuditRecord:
    """Add one entry to the chain, inside the caller's transaction (so it commits, or not,
    together with what it records)."""
    # Core statements, not ORM objects: this runs in every write, on the hot path. The row lock
    # on the head (PostgreSQL) or the write lock (SQLite) keeps the chain a single line.
    session.flush()
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:  # lock and advance the head in one round trip
        seq, head_hash = session.execute(_PG_ADVANCE).one()
    else:
        head_seq, head_hash = session.execute(_HEAD).one()
        seq = head_seq + 1
    at = (now or datetime.now(UTC)).astimezone(UTC)
    detail_json = json.dumps(dict(detail or {}), sort_keys=True, separators=(",", ":"),
                             ensure_ascii=False, default=str)
    ip = actor.ip[:64] if actor.ip else None
    label = actor.label[:200]
    digest = entry_hash(head_hash, seq, at, label, action, target_type, target_id, ip,
                        detail_json)
    params = {"seq": seq, "at": at, "actor": label, "action": action,
              "target_type": target_type, "target_id": target_id, "ip": ip,
              "detail_json": detail_json, "prev_hash": head_hash, "hash": digest}
    if postgres:  # the entry and the head's new hash in one round trip
        session.execute(_PG_WRITE, params)
    else:
        session.execute(_INSERT, params)
        session.execute(_MOVE_HEAD, {"new_seq": seq, "new_hash": digest})
    return AuditRecord(seq, at, label, action, target_type, target_id, ip,
                       json.loads(detail_json), digest)


def records(session: Session, *, target_type: str | None = None, target_id: str | None = None,
            limit: int = 200) -> list[AuditRecord]:
    """The newest entries (optionally about one target), newest first."""
    q = select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(limit)
    if target_type is not None:
        q = q.where(AuditEntry.target_type == target_type)
    if target_id is not None:
        q = q.where(AuditEntry.target_id == target_id)
    return [_record(e) for e in session.execute(q).scalars()]


def _record(e: AuditEntry) -> AuditRecord:
    return AuditRecord(e.seq, e.at, e.actor, e.action, e.target_type, e.target_id, e.ip,
                       json.loads(e.detail_json or "{}"), e.hash)


def _entries(session: Session, batch: int = 2000) -> Iterator[AuditEntry]:
    last = 0
    while True:
        rows = list(session.execute(select(AuditEntry).where(AuditEntry.seq > last)
                                    .order_by(AuditEntry.seq).limit(batch)).scalars())
        if not rows:
            return
        yield from rows
        last = rows[-1].seq
        session.expunge_all()


def verify(session: Session) -> VerifyReport:
    """Walk the whole chain and re-check screenings and reviews; report every problem found."""
    from ketascreen.storage.repositories import review_digest, screening_digest

    report = VerifyReport()
    prev = GENESIS
    expected_seq = 1
    created: dict[str, str] = {}
    reviewed: dict[str, str] = {}
    for e in _entries(session):
        report.entries += 1
        if e.seq != expected_seq:
            report.problems.append(f"entry {e.seq}: expected sequence number {expected_seq} "
                                   "(entries are missing or were inserted)")
        if e.prev_hash != prev:
            report.problems.append(f"entry {e.seq}: does not follow the previous entry's hash")
        digest = entry_hash(e.prev_hash, e.seq, e.at, e.actor, e.action, e.target_type,
                            e.target_id, e.ip, e.detail_json)
        if digest != e.hash:
            report.problems.append(f"entry {e.seq}: content does not match its hash "
                                   "(the entry was changed)")
        if e.action == "create" and e.target_type == "screening" and e.target_id:
            created[e.target_id] = str(json.loads(e.detail_json).get("content_sha256", ""))
        if e.action == "review" and e.target_type == "screening":
            d = json.loads(e.detail_json)
            reviewed[str(d.get("review_id"))] = str(d.get("content_sha256", ""))
        prev = e.hash
        expected_seq = e.seq + 1
    head = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one_or_none()
    if head is None:
        report.problems.append("the audit head is missing")
    else:
        report.head_hash = head.hash
        if head.seq != expected_seq - 1 or head.hash != prev:
            report.problems.append(
                f"the chain ends at entry {expected_seq - 1} but the head says {head.seq} "
                "(entries at the end were removed, or the head was changed)")
    for s in session.execute(select(Screening)).scalars():
        report.screenings += 1
        recomputed = screening_digest(s.intake_json, s.assessment_json, s.answers_json)
        if recomputed != s.content_sha256:
            report.problems.append(f"screening {s.id}: content changed after it was stored")
        logged = created.get(s.id)
        if logged is None:
            report.problems.append(f"screening {s.id}: no audit entry records its creation")
        elif logged != s.content_sha256:
            report.problems.append(f"screening {s.id}: differs from the digest in the audit log")
    for r in session.execute(select(Review)).scalars():
        report.reviews += 1
        if review_digest(r.screening_id, r.created_at, r.reviewer_email, r.outcome, r.decision,
                         r.reason, r.screening_sha256) != r.content_sha256:
            report.problems.append(f"review {r.id}: content changed after it was signed")
        logged = reviewed.get(str(r.id))
        if logged is None:
            report.problems.append(f"review {r.id}: no audit entry records it")
        elif logged != r.content_sha256:
            report.problems.append(f"review {r.id}: differs from the digest in the audit log")
    return report
