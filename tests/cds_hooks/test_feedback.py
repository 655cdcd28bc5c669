"""CDS Hooks 2.0 feedback: stored once (idempotent), with the card's decision and rules, in the
injected store; and the database-backed store of the web application."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from ketascreen.cds_hooks.storage import (
    DatabaseFeedbackStore,
    FeedbackEvent,
    InMemoryFeedbackStore,
    feedback_key,
)
from tests.cds_hooks.conftest import BASE, PATIENT_VIEW, Keys, Service, chart, hook_request, mint

URL = f"/cds-services/{PATIENT_VIEW}/feedback"
AUD = f"{BASE}/cds-services/{PATIENT_VIEW}"


def issue_card(service: Service, keys: Keys) -> dict[str, Any]:
    r = service.call(PATIENT_VIEW, hook_request(prefetch=chart()), mint(keys, aud=AUD))
    card: dict[str, Any] = r.json()["cards"][0]
    return card


def test_feedback_is_stored_once(service: Service, keys: Keys) -> None:
    card = issue_card(service, keys)
    reason = card["overrideReasons"][0]
    payload = {"feedback": [
        {"card": card["uuid"], "outcome": "overridden",
         "overrideReason": {"reason": reason, "userComment": "Seen by neurology: stable."},
         "outcomeTimestamp": "2026-11-16T10:12:00Z"},
        {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp":
            "2026-11-16T10:13:00Z", "acceptedSuggestions": [{"id": "s-1"}]},
    ]}
    first = service.request("POST", URL, json_body=payload, token=mint(keys, aud=AUD))
    assert first.status_code == 200 and first.json() == {"received": 2, "stored": 2}
    again = service.request("POST", URL, json_body=payload, token=mint(keys, aud=AUD + "/feedback"))
    assert again.status_code == 200 and again.json() == {"received": 2, "stored": 0}
    events = service.store.recent()
    assert len(events) == 2
    overridden = next(e for e in events if e.outcome == "overridden")
    assert overridden.card_id == card["uuid"]
    assert overridden.payload["decision"] == "not_recommended"
    assert "cardio.aneurysm_avm" in overridden.payload["rules"]
    assert overridden.payload["feedback"]["overrideReason"]["reason"]["code"] == reason["code"]
    assert overridden.payload["issuer"] == "https://ehr.example"


def test_feedback_on_an_unknown_card_is_kept_and_marked(service: Service, keys: Keys) -> None:
    payload = {"feedback": [{"card": str(uuid.uuid4()), "outcome": "accepted",
                             "outcomeTimestamp": "2026-11-16T10:00:00Z"}]}
    r = service.request("POST", URL, json_body=payload, token=mint(keys, aud=AUD))
    assert r.json()["stored"] == 1
    assert service.store.recent()[0].payload["card_known"] is False


@pytest.mark.parametrize("payload", [
    {}, {"feedback": []}, {"feedback": [{"card": "x", "outcome": "ignored",
                                         "outcomeTimestamp": "2026-11-16T10:00:00Z"}]},
    {"feedback": [{"outcome": "accepted", "outcomeTimestamp": "2026-11-16T10:00:00Z"}]},
])
def test_malformed_feedback_is_422(service: Service, keys: Keys, payload: dict[str, Any]) -> None:
    r = service.request("POST", URL, json_body=payload, token=mint(keys, aud=AUD))
    assert r.status_code == 422


def test_the_idempotency_key_depends_on_the_whole_item() -> None:
    item = {"card": "c", "outcome": "accepted", "outcomeTimestamp": "t"}
    assert feedback_key("s", item) == feedback_key("s", dict(reversed(item.items())))
    assert feedback_key("s", item) != feedback_key("s", {**item, "outcome": "overridden"})
    assert feedback_key("s", item) != feedback_key("other", item)


def test_the_in_memory_store_is_append_only_and_idempotent() -> None:
    store = InMemoryFeedbackStore()
    event = FeedbackEvent("k1", "svc", "card", "accepted", {"a": 1})
    assert store.add(event, actor="cds:test") is True
    assert store.add(FeedbackEvent("k1", "svc", "card", "overridden", {}), actor="x") is False
    assert [e.outcome for e in store.recent()] == ["accepted"]
    assert store.recent(service_id="other") == []


def test_the_database_store_uses_the_web_applications_log(tmp_path: Path) -> None:
    from ketascreen.storage.database import Database

    db = Database(f"sqlite:///{tmp_path / 'k.db'}")
    db.upgrade()
    store = DatabaseFeedbackStore(db)
    event = FeedbackEvent("cds-feedback:abc", PATIENT_VIEW, "card-1", "overridden",
                          {"feedback": {"card": "card-1"}, "decision": "defer"})
    assert store.add(event, actor="cds:https://ehr.example") is True
    assert store.add(event, actor="cds:https://ehr.example") is False
    [stored] = store.recent(service_id=PATIENT_VIEW)
    assert (stored.key, stored.card_id, stored.outcome) == ("cds-feedback:abc", "card-1",
                                                           "overridden")
    assert stored.payload["decision"] == "defer"
    db.dispose()
