"""Where the CDS Hooks service keeps things: feedback (injected), and issued cards (in memory).

Feedback storage is a small port, :class:`FeedbackStore`, so the service runs with the
in-memory double in tests and with the web application's database in production
(:class:`DatabaseFeedbackStore`, over ``ketascreen.storage.CdsFeedbackLog``: append-only,
idempotent, audited, visible in the clinician workspace).

Issued cards are remembered for a short while (:class:`CardCache`) so that feedback can name the
decision and rules it is about, and so that a card's link can show the full report. Nothing in
it outlives the process or its time limit.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ketascreen.core.model import Assessment

__all__ = ["CardCache", "DatabaseFeedbackStore", "FeedbackEvent", "FeedbackStore",
           "InMemoryFeedbackStore", "IssuedCard", "feedback_key"]


@dataclass(frozen=True, slots=True)
class FeedbackEvent:
    """One feedback item of a ``POST …/feedback`` call, as stored."""

    key: str
    service_id: str
    card_id: str
    outcome: str  # accepted | overridden
    payload: dict[str, Any]
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def feedback_key(service_id: str, item: dict[str, Any]) -> str:
    """The idempotency key of one feedback item: the same item sent twice is stored once."""
    canonical = json.dumps({"service": service_id, "item": item}, sort_keys=True,
                           separators=(",", ":"))
    return "cds-feedback:" + hashlib.sha256(canonical.encode()).hexdigest()


class FeedbackStore(Protocol):
    def add(self, event: FeedbackEvent, *, actor: str) -> bool:
        """Store the event once; False when an event with the same key is already stored."""

    def recent(self, *, service_id: str | None = None, limit: int = 100) -> list[FeedbackEvent]:
        """The newest events first."""


class InMemoryFeedbackStore:
    """The in-memory double (tests, development): idempotent, append-only, one process."""

    def __init__(self) -> None:
        self._events: dict[str, FeedbackEvent] = {}
        self._lock = threading.Lock()

    def add(self, event: FeedbackEvent, *, actor: str) -> bool:
        with self._lock:
            if event.key in self._events:
                return False
            self._events[event.key] = event
            return True

    def recent(self, *, service_id: str | None = None, limit: int = 100) -> list[FeedbackEvent]:
        with self._lock:
            events = [e for e in self._events.values()
                      if service_id is None or e.service_id == service_id]
        return list(reversed(events))[:limit]


class DatabaseFeedbackStore:
    """Feedback in the web application's database (``cds_feedback``, append-only, audited).

    ``database`` is a ``ketascreen.storage.Database``; each stored event is also written to the
    audit log as ``cds_feedback`` by the repository.
    """

    def __init__(self, database: Any) -> None:
        self.database = database

    def add(self, event: FeedbackEvent, *, actor: str) -> bool:
        from ketascreen.storage import CdsFeedbackLog
        from ketascreen.storage.audit import Actor

        with self.database.write() as session:
            _record, created = CdsFeedbackLog(session).append(
                service_id=event.service_id, idempotency_key=event.key, payload=event.payload,
                actor=Actor(actor[:200]), card_id=event.card_id[:200], outcome=event.outcome)
        return bool(created)

    def recent(self, *, service_id: str | None = None, limit: int = 100) -> list[FeedbackEvent]:
        from ketascreen.storage import CdsFeedbackLog

        with self.database.read() as session:
            rows = CdsFeedbackLog(session).recent(service_id=service_id, limit=limit)
        return [FeedbackEvent(r.idempotency_key, r.service_id, r.card_id or "",
                              r.outcome or "", r.payload, r.received_at) for r in rows]


@dataclass(slots=True)
class IssuedCard:
    """A card this process issued, remembered for feedback and the report link."""

    card_id: str
    service_id: str
    decision: str
    rules: list[str]
    patient: str | None
    assessment: Assessment
    report_token: str | None
    expires: float


class CardCache:
    """Issued cards by card uuid and by report token, bounded in size and time."""

    def __init__(self, minutes: int, max_cards: int = 2000) -> None:
        self.ttl = minutes * 60.0
        self.max_cards = max_cards
        self._cards: OrderedDict[str, IssuedCard] = OrderedDict()
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()

    def add(self, *, card_id: str, service_id: str, assessment: Assessment,
            patient: str | None, with_report: bool) -> IssuedCard:
        token = secrets.token_urlsafe(32) if with_report and self.ttl > 0 else None
        card = IssuedCard(card_id, service_id, assessment.decision,
                          [f.rule for f in assessment.findings], patient, assessment, token,
                          time.monotonic() + max(self.ttl, 3600.0))
        with self._lock:
            self._purge()
            self._cards[card_id] = card
            if token:
                self._tokens[token] = card_id
            while len(self._cards) > self.max_cards:
                _old_id, old = self._cards.popitem(last=False)
                if old.report_token:
                    self._tokens.pop(old.report_token, None)
        return card

    def card(self, card_id: str) -> IssuedCard | None:
        with self._lock:
            self._purge()
            return self._cards.get(card_id)

    def report(self, token: str) -> IssuedCard | None:
        """The card whose report link this is, while the link is valid."""
        with self._lock:
            self._purge()
            card = self._cards.get(self._tokens.get(token, ""))
        if card is None or self.ttl <= 0:
            return None
        issued = card.expires - max(self.ttl, 3600.0)
        return card if time.monotonic() - issued <= self.ttl else None

    def _purge(self) -> None:
        now = time.monotonic()
        for card_id in [k for k, c in self._cards.items() if c.expires < now]:
            old = self._cards.pop(card_id)
            if old.report_token:
                self._tokens.pop(old.report_token, None)
