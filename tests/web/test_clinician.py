"""The clinician workspace: login, roles, list, detail, review, intake entry, reports, audit."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from ketascreen.storage import Database, Screenings, verify
from ketascreen.testing import merge_intake
from tests.web.conftest import CSRF, PASSWORD, Accounts, TestClient, csrf, login


def make_screening(client: TestClient, accounts: Accounts, fragment: dict[str, Any] | None = None
                   ) -> str:
    r = client.post("/api/v1/screenings", json=merge_intake(fragment),
                    headers=accounts.bearer("clinician"))
    assert r.status_code == 201
    return str(r.json()["id"])


def test_pages_need_a_login(client: TestClient) -> None:
    for path in ("/clinic", "/clinic/knowledge", "/clinic/screenings/new",
                 "/clinic/screenings/" + "0" * 32, "/clinic/audit"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")


def test_login_and_logout(client: TestClient, accounts: Accounts, db: Database) -> None:
    r = login(client, "Clinician@Clinic.test")
    assert r.status_code == 303 and r.headers["location"] == "/clinic"
    cookie = r.headers.get_list("set-cookie")
    session = next(c for c in cookie if c.startswith("ks_session="))
    assert "HttpOnly" in session and "Secure" in session and "SameSite=lax" in session
    page = client.get("/clinic")
    assert page.status_code == 200 and "clinician@clinic.test" in page.text
    r = client.post("/logout", data={"csrf_token": csrf(client, "/clinic")},
                    follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/clinic", follow_redirects=False).status_code == 303
    with db.read() as s:
        from sqlalchemy import text

        actions = s.execute(text("SELECT action FROM audit_log")).scalars().all()
    assert "login" in actions and "logout" in actions


def test_wrong_password_then_lockout(client: TestClient, accounts: Accounts) -> None:
    for _ in range(4):
        r = login(client, "viewer@clinic.test", "not the password")
        assert r.status_code == 401 and "do not match" in r.text
    r = login(client, "viewer@clinic.test", "not the password")
    assert r.status_code == 403 and "locked" in r.text
    r = login(client, "viewer@clinic.test", PASSWORD)
    assert r.status_code == 403 and "locked" in r.text
    assert login(client, "nobody@clinic.test").status_code == 401


def test_login_rate_limit(client: TestClient, accounts: Accounts) -> None:
    codes = [login(client, f"user{i}@clinic.test", "x").status_code for i in range(12)]
    assert codes[:10] == [401] * 10 and codes[10:] == [429, 429]
    r = login(client, "admin@clinic.test")
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0


def test_login_redirects_only_inside_the_workspace(client: TestClient, accounts: Accounts
                                                   ) -> None:
    token = csrf(client, "/login")
    r = client.post("/login", data={"csrf_token": token, "email": "admin@clinic.test",
                                    "password": PASSWORD, "next": "//evil.example/x"},
                    follow_redirects=False)
    assert r.headers["location"] == "/clinic"


def test_list_detail_and_review(client: TestClient, accounts: Accounts, db: Database) -> None:
    calm = make_screening(client, accounts, {"id": "calm-1"})
    urgent = make_screening(client, accounts, {"id": "urgent-2",
                                               "symptoms": {"suicidal": "plan_or_intent"}})
    login(client, "clinician@clinic.test")
    page = client.get("/clinic").text
    assert page.index("urgent-2") < page.index("calm-1")  # urgent first
    assert f"/clinic/screenings/{calm}" in page
    assert "2 screenings" in page
    only = client.get("/clinic?q=calm").text
    assert "calm-1" in only and "urgent-2" not in only
    filtered = client.get("/clinic?decision=defer&status=all").text
    assert "urgent-2" in filtered and "calm-1" not in filtered

    detail = client.get(f"/clinic/screenings/{urgent}")
    assert detail.status_code == 200
    text = detail.text
    for expected in ("Urgent", "Suicidal ideation with plan or intent", "Route",
                     "How every rule was evaluated", "psych.suicide_high_risk",
                     "Sign and save the review", "Audit trail"):
        assert expected in text, expected

    token = CSRF.search(text)
    assert token
    r = client.post(f"/clinic/screenings/{urgent}/review",
                    data={"csrf_token": token.group(1), "outcome": "changed",
                          "decision": "not_recommended"})
    assert r.status_code == 422
    assert "Give the reason" in r.text and "Confirm that you sign" in r.text
    r = client.post(f"/clinic/screenings/{urgent}/review",
                    data={"csrf_token": token.group(1), "outcome": "changed",
                          "decision": "not_recommended", "reason": "active plan on interview",
                          "signed": "yes"})
    assert r.status_code == 200 and r.url.path == f"/clinic/screenings/{urgent}"
    assert "active plan on interview" in r.text and "signed by clinician@clinic.test" in r.text
    reviewed = client.get("/clinic?status=reviewed").text
    assert "urgent-2" in reviewed and "calm-1" not in reviewed
    with db.read() as s:
        record = Screenings(s).get(urgent)
        assert record is not None and record.decision == "defer"
        assert record.latest_review is not None
        assert record.latest_review.decision == "not_recommended"
        assert verify(s).ok


def test_viewer_cannot_review_or_enter(client: TestClient, accounts: Accounts) -> None:
    sid = make_screening(client, accounts)
    login(client, "viewer@clinic.test")
    detail = client.get(f"/clinic/screenings/{sid}")
    assert detail.status_code == 200 and "Sign and save the review" not in detail.text
    token = CSRF.search(detail.text)
    assert token
    r = client.post(f"/clinic/screenings/{sid}/review",
                    data={"csrf_token": token.group(1), "outcome": "accepted", "signed": "yes"})
    assert r.status_code == 403
    assert client.get("/clinic/screenings/new").status_code == 403
    assert client.get("/clinic/audit").status_code == 403


def test_review_needs_csrf(client: TestClient, accounts: Accounts) -> None:
    sid = make_screening(client, accounts)
    login(client, "clinician@clinic.test")
    r = client.post(f"/clinic/screenings/{sid}/review",
                    data={"outcome": "accepted", "signed": "yes"})
    assert r.status_code == 403
    r = client.post(f"/clinic/screenings/{sid}/review", headers={"Origin": "https://evil.test"},
                    data={"csrf_token": csrf(client, "/clinic"), "outcome": "accepted",
                          "signed": "yes"})
    assert r.status_code == 403


def test_unknown_or_private_screening_is_404(client: TestClient, accounts: Accounts) -> None:
    login(client, "admin@clinic.test")
    assert client.get("/clinic/screenings/" + "0" * 32).status_code == 404
    assert client.get("/clinic/screenings/nonsense").status_code == 404


def test_printable_report_and_pdf(client: TestClient, accounts: Accounts) -> None:
    sid = make_screening(client, accounts)
    login(client, "clinician@clinic.test")
    html = client.get(f"/clinic/screenings/{sid}/report")
    assert html.status_code == 200 and "<!doctype html>" in html.text.lower()
    assert "frame-ancestors 'none'" in html.headers["content-security-policy"]
    pdf = client.get(f"/clinic/screenings/{sid}/report.pdf")
    app_pdf = client.app.state.ks.pdf  # type: ignore[attr-defined]
    if app_pdf is None:
        assert pdf.status_code == 404
    else:
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        assert "attachment" in pdf.headers["content-disposition"]


def test_enter_an_intake_in_person(client: TestClient, accounts: Accounts, db: Database
                                   ) -> None:
    login(client, "clinician@clinic.test")
    form = client.get("/clinic/screenings/new")
    assert form.status_code == 200 and "Patient reference" in form.text
    shown = re.findall(r'name="_shown" value="([a-z0-9_]+)"', form.text)
    assert "reference" in shown and "bp_systolic" in shown
    data: dict[str, Any] = {"csrf_token": CSRF.search(form.text).group(1),  # type: ignore[union-attr]
                            "_mode": "form", "_nav": "save", "_shown": shown,
                            "reference": "MRN-555", "age": "58", "sex": "male",
                            "knows_bp": "yes", "bp_systolic": "152", "bp_diastolic": "94",
                            "bp_taken_on": "2026-11-01", "suicidal": "none"}
    r = client.post("/clinic/screenings/new", data=data)
    assert r.status_code == 200 and "/clinic/screenings/" in r.url.path
    assert "MRN-555" in r.text and "Incomplete" in r.text  # unanswered stays missing
    sid = r.url.path.rsplit("/", 1)[1]
    with db.read() as s:
        record = Screenings(s).get(sid)
    assert record is not None and record.source == "clinician"
    assert record.intake()["vitals"]["systolic"] == 152
    assert "pregnancy" not in record.intake()
    bad = client.post("/clinic/screenings/new", data={**data, "age": "fifty"})
    assert bad.status_code == 422 and "Enter a whole number" in bad.text


def test_enter_json_and_rescreen(client: TestClient, accounts: Accounts, db: Database) -> None:
    sid = make_screening(client, accounts, {"id": "json-1"})
    login(client, "clinician@clinic.test")
    edit = client.get(f"/clinic/screenings/{sid}/edit")
    assert edit.status_code == 200 and "json-1" in edit.text and 'name="intake"' in edit.text
    token = CSRF.search(edit.text).group(1)  # type: ignore[union-attr]
    changed = merge_intake({"id": "json-1", "vitals": {"systolic": 190, "diastolic": 100}})
    r = client.post(f"/clinic/screenings/{sid}/edit",
                    data={"csrf_token": token, "_mode": "json", "intake": json.dumps(changed)})
    assert r.status_code == 200
    new_id = r.url.path.rsplit("/", 1)[1]
    assert new_id != sid and "Re-screen of" in r.text and "Urgent" in r.text
    with db.read() as s:
        old = Screenings(s).get(sid)
        assert old is not None and old.later_ids == (new_id,) and old.decision == "eligible"
    bad = client.post("/clinic/screenings/new",
                      data={"csrf_token": token, "_mode": "json", "intake": '{"age": 400}'})
    assert bad.status_code == 422 and "age: must be at most 120" in bad.text
    broken = client.post("/clinic/screenings/new",
                         data={"csrf_token": token, "_mode": "json", "intake": "{"})
    assert broken.status_code == 422 and "Not valid JSON" in broken.text


def test_knowledge_page(client: TestClient, accounts: Accounts) -> None:
    login(client, "viewer@clinic.test")
    page = client.get("/clinic/knowledge")
    assert page.status_code == 200
    for expected in ("ketascreen-knowledge-base", "ketascreen-default", "cardio.bp_severe",
                     "Rules catalogue", "+self-screening"):
        assert expected in page.text


def test_admin_audit_and_accounts(client: TestClient, accounts: Accounts) -> None:
    make_screening(client, accounts)
    login(client, "admin@clinic.test")
    audit = client.get("/clinic/audit?verify=1")
    assert audit.status_code == 200 and "The chain is intact" in audit.text
    users = client.get("/clinic/users")
    assert users.status_code == 200 and "viewer@clinic.test" in users.text
    assert accounts.admin_token not in users.text


@pytest.mark.parametrize("path", ["/clinic/screenings/new", "/logout"])
def test_clinic_forms_need_csrf(client: TestClient, accounts: Accounts, path: str) -> None:
    login(client, "clinician@clinic.test")
    assert client.post(path, data={"_mode": "json", "intake": "{}"}).status_code == 403


def test_cds_feedback_page(client: TestClient, accounts: Accounts, db: Database) -> None:
    from ketascreen.storage import Actor, CdsFeedbackLog

    with db.write() as s:
        CdsFeedbackLog(s).append(
            service_id="ketascreen-order-sign", idempotency_key="fb-9", card_id="card-9",
            outcome="overridden", actor=Actor("ehr"),
            payload={"overrideReason": {"reason": {"display": "Benefit outweighs risk"},
                                        "userComment": "discussed with cardiology"}})
    login(client, "viewer@clinic.test")
    page = client.get("/clinic/cds-feedback")
    assert page.status_code == 200
    for expected in ("ketascreen-order-sign", "overridden", "Benefit outweighs risk",
                     "discussed with cardiology"):
        assert expected in page.text
