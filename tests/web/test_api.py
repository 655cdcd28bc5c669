"""REST API v1, in-process, every endpoint, success and failure, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ketascreen.core.model import Assessment
from ketascreen.storage import Database, verify
from ketascreen.testing import merge_intake
from tests.web.conftest import Accounts, TestClient


def _error(r: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert err["status"] == status and err["message"]
    assert isinstance(err["problems"], list)
    if code is not None:
        assert err["code"] == code
    return dict(err)


# --------------------------------------------------------------------------------------------
# POST /api/v1/assessments


def test_assess_without_login(client: TestClient, db: Database) -> None:
    r = client.post("/api/v1/assessments", json=merge_intake({"id": "x-1"}))
    assert r.status_code == 200
    a = Assessment.model_validate(r.json())
    assert a.id == "x-1" and a.decision == "eligible" and a.trace is None
    with db.read() as s:
        assert verify(s).screenings == 0  # nothing stored


def test_assess_with_explain(client: TestClient) -> None:
    r = client.post("/api/v1/assessments?explain=true", json=merge_intake())
    assert r.status_code == 200 and len(r.json()["trace"]) > 100


def test_invalid_intake_lists_every_problem_with_its_path(client: TestClient) -> None:
    bad = merge_intake({"age": 300, "pregant": True,
                        "conditions": [{"code": "F20.9", "status": "sometimes"}]})
    err = _error(client.post("/api/v1/assessments", json=bad), 422, "invalid_intake")
    fields = {p["field"] for p in err["problems"]}
    assert {"age", "pregant", "conditions[0].status"} <= fields


@pytest.mark.parametrize(("body", "ctype", "status", "code"), [
    (b"{not json", "application/json", 400, "invalid_json"),
    (b"[1, 2]", "application/json", 422, "invalid_intake"),
    (b"age=40", "application/x-www-form-urlencoded", 415, None),
    (b"\xff\xfe", "application/json", 400, "invalid_json"),
])
def test_assess_rejects_bad_bodies(client: TestClient, body: bytes, ctype: str, status: int,
                                   code: str | None) -> None:
    r = client.post("/api/v1/assessments", content=body, headers={"Content-Type": ctype})
    _error(r, status, code)


def test_body_over_the_limit_gets_413(client: TestClient) -> None:
    huge = json.dumps({"age": 40, "extensions": {"pad": "x" * 1_100_000}})
    _error(client.post("/api/v1/assessments", content=huge,
                       headers={"Content-Type": "application/json"}), 413, "body_too_large")


def test_chunked_body_over_the_limit_gets_413(client: TestClient) -> None:
    def chunks() -> Any:
        for _ in range(200):
            yield b"x" * 10_000

    r = client.post("/api/v1/assessments", content=chunks(),
                    headers={"Content-Type": "application/json"})
    _error(r, 413)


def test_unknown_routes_and_methods(client: TestClient) -> None:
    _error(client.get("/api/v1/nothing-here"), 404, "not_found")
    _error(client.delete("/api/v1/assessments"), 405)
    _error(client.get("/api/v1/screenings?limit=0"), 401)  # auth first, then validation


# --------------------------------------------------------------------------------------------
# Screenings


def test_screenings_need_a_valid_token(client: TestClient, accounts: Accounts) -> None:
    for headers in ({}, {"Authorization": "Bearer ks_nope"}, {"Authorization": "Basic abc"}):
        r = client.get("/api/v1/screenings", headers=headers)
        _error(r, 401, "unauthorized")
        assert r.headers["www-authenticate"].startswith("Bearer")
    r = client.post("/api/v1/screenings", json=merge_intake())
    _error(r, 401)


def test_create_get_list_review(client: TestClient, accounts: Accounts, db: Database) -> None:
    auth = accounts.bearer("clinician")
    r = client.post("/api/v1/screenings", json=merge_intake({"id": "chart-9"}), headers=auth)
    assert r.status_code == 201, r.text
    created = r.json()
    sid = created["id"]
    assert r.headers["location"] == f"/api/v1/screenings/{sid}"
    assert created["status"] == "awaiting_review" and created["source"] == "api"
    assert created["assessment"]["decision"] == created["decision"] == "eligible"
    assert created["intake"]["id"] == "chart-9" and created["reviews"] == []

    got = client.get(f"/api/v1/screenings/{sid}", headers=accounts.bearer("viewer"))
    assert got.status_code == 200 and got.json()["content_sha256"] == created["content_sha256"]

    listed = client.get("/api/v1/screenings", headers=auth).json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == sid
    assert listed["next_offset"] is None

    r = client.post(f"/api/v1/screenings/{sid}/reviews", headers=auth,
                    json={"outcome": "changed", "decision": "defer",
                          "reason": "blood pressure 170/100 at the visit"})
    assert r.status_code == 201, r.text
    review = r.json()
    assert review["reviewer"] == "clinician@clinic.test" and review["decision"] == "defer"
    after = client.get(f"/api/v1/screenings/{sid}", headers=auth).json()
    assert after["status"] == "reviewed" and after["clinical_decision"] == "defer"
    assert after["decision"] == "eligible"
    with db.read() as s:
        report = verify(s)
    assert report.ok and report.reviews == 1


def test_idempotency_key(client: TestClient, accounts: Accounts) -> None:
    auth = {**accounts.bearer("admin"), "Idempotency-Key": "order-123"}
    first = client.post("/api/v1/screenings", json=merge_intake(), headers=auth)
    again = client.post("/api/v1/screenings", json=merge_intake(), headers=auth)
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    assert client.get("/api/v1/screenings", headers=auth).json()["total"] == 1


def test_viewer_reads_but_cannot_write(client: TestClient, accounts: Accounts) -> None:
    sid = client.post("/api/v1/screenings", json=merge_intake(),
                      headers=accounts.bearer("clinician")).json()["id"]
    viewer = accounts.bearer("viewer")
    _error(client.post("/api/v1/screenings", json=merge_intake(), headers=viewer), 403)
    _error(client.post(f"/api/v1/screenings/{sid}/reviews", json={"outcome": "accepted"},
                       headers=viewer), 403, "forbidden")
    assert client.get(f"/api/v1/screenings/{sid}", headers=viewer).status_code == 200


def test_revoked_token_is_refused(client: TestClient, accounts: Accounts, db: Database) -> None:
    from ketascreen.storage import Actor, Tokens

    with db.write() as s:
        Tokens(s).revoke_all(accounts.clinician, actor=Actor("test"))
    _error(client.get("/api/v1/screenings", headers=accounts.bearer("clinician")), 401)
    assert client.get("/api/v1/screenings", headers=accounts.bearer("admin")).status_code == 200


def test_create_rejects_an_invalid_intake(client: TestClient, accounts: Accounts) -> None:
    auth = accounts.bearer("clinician")
    err = _error(client.post("/api/v1/screenings", json={"age": "forty"}, headers=auth), 422)
    assert any(p["field"] == "age" for p in err["problems"])
    _error(client.post("/api/v1/screenings", content=b"{", headers={
        **auth, "Content-Type": "application/json"}), 422)
    assert client.get("/api/v1/screenings", headers=auth).json()["total"] == 0


@pytest.mark.parametrize(("review", "field"), [
    ({"outcome": "changed", "decision": "defer"}, "reason"),
    ({"outcome": "changed", "reason": "x"}, "decision"),
    ({"outcome": "accepted", "decision": "defer"}, "decision"),
    ({"outcome": "maybe"}, "outcome"),
    ({"outcome": "accepted", "extra": 1}, "extra"),
])
def test_incomplete_reviews_get_422(client: TestClient, accounts: Accounts,
                                    review: dict[str, Any], field: str) -> None:
    auth = accounts.bearer("clinician")
    sid = client.post("/api/v1/screenings", json=merge_intake(), headers=auth).json()["id"]
    err = _error(client.post(f"/api/v1/screenings/{sid}/reviews", json=review, headers=auth),
                 422)
    assert any(p["field"] == field for p in err["problems"]), err


def test_unknown_screening_is_404(client: TestClient, accounts: Accounts) -> None:
    auth = accounts.bearer("clinician")
    _error(client.get("/api/v1/screenings/" + "0" * 32, headers=auth), 404, "not_found")
    _error(client.get("/api/v1/screenings/x" * 30, headers=auth), 404)
    _error(client.post("/api/v1/screenings/" + "0" * 32 + "/reviews",
                       json={"outcome": "accepted"}, headers=auth), 404)


def test_list_filters_and_pagination(client: TestClient, accounts: Accounts) -> None:
    auth = accounts.bearer("clinician")
    ids = []
    for fragment in ({"id": "a"}, {"id": "b", "symptoms": {"suicidal": "plan_or_intent"}},
                     {"id": "c", "readiness": {"pressured": True}}):
        ids.append(client.post("/api/v1/screenings", json=merge_intake(fragment),
                               headers=auth).json()["id"])
    page = client.get("/api/v1/screenings?limit=2", headers=auth).json()
    assert page["total"] == 3 and len(page["items"]) == 2 and page["next_offset"] == 2
    assert page["items"][0]["id"] == ids[1]  # urgent first
    rest = client.get("/api/v1/screenings?limit=2&offset=2", headers=auth).json()
    assert len(rest["items"]) == 1 and rest["next_offset"] is None
    urgent = client.get("/api/v1/screenings?urgent=true", headers=auth).json()
    assert [i["id"] for i in urgent["items"]] == [ids[1]]
    defer = client.get("/api/v1/screenings?decision=defer&decision=not_recommended",
                       headers=auth).json()
    assert {i["id"] for i in defer["items"]} == {ids[1], ids[2]}
    assert client.get("/api/v1/screenings?q=c", headers=auth).json()["total"] >= 1
    for bad in ("limit=0", "limit=1000", "offset=-1", "decision=maybe", "status=odd",
                "created_from=yesterday"):
        _error(client.get(f"/api/v1/screenings?{bad}", headers=auth), 422)


def test_private_self_screenings_are_not_listed(client: TestClient, accounts: Accounts,
                                                db: Database) -> None:
    from ketascreen.services import Screener
    from ketascreen.storage import Actor, NewScreening, Screenings
    from ketascreen.testing import BASELINE_DATE

    screener = Screener()
    intake = screener.parse(merge_intake(), today=BASELINE_DATE)
    with db.write() as s:
        record, _ = Screenings(s).create(NewScreening.from_assessment(
            intake, screener.screen(intake), source="self", shared=False), actor=Actor("t"))
    auth = accounts.bearer("admin")
    assert client.get("/api/v1/screenings", headers=auth).json()["total"] == 0
    _error(client.get(f"/api/v1/screenings/{record.id}", headers=auth), 404)


# --------------------------------------------------------------------------------------------
# Rules, questionnaire, health, OpenAPI


def test_rules(client: TestClient) -> None:
    body = client.get("/api/v1/rules").json()
    assert body["knowledge_base"]["version"] and len(body["rules"]) > 100
    assert body["protocol"]["name"] == "ketascreen-default"
    ids = [r["id"] for r in body["rules"]]
    assert ids == sorted(ids) and "cardio.bp_severe" in ids


def test_questionnaire_definition(client: TestClient) -> None:
    body = client.get("/api/v1/questionnaire").json()
    assert body["id"] == "ketascreen-self-screening"
    assert body["pages"][0]["items"][0]["maps_to"]["path"] == "age"


def test_health(client: TestClient, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    r = client.get("/health")
    assert r.status_code == 200 and r.json()["database"] == "ok"
    monkeypatch.setattr(db, "ping", lambda: False)
    r = client.get("/health")
    assert r.status_code == 503 and r.json()["status"] == "unavailable"


def test_openapi_document(client: TestClient) -> None:
    spec = client.get("/api/v1/openapi.json").json()
    paths = spec["paths"]
    for path in ("/api/v1/assessments", "/api/v1/screenings", "/api/v1/screenings/{screening_id}",
                 "/api/v1/screenings/{screening_id}/reviews", "/api/v1/rules", "/health"):
        assert path in paths
    assert not any(p.startswith(("/clinic", "/screening", "/r/")) for p in paths)
    schemas = spec["components"]["schemas"]
    assert {"Intake", "Assessment", "ErrorResponse", "Condition"} <= set(schemas)
    body = paths["/api/v1/assessments"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Intake"}
    assert paths["/api/v1/screenings"]["get"]["security"] == [{"apiToken": []}]
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200 and "/api/v1/screenings" in docs.text
