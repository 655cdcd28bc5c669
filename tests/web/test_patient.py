"""Patient self-screening without JavaScript: pages, follow-ups, crisis resources, review,
result, private link and sending to the clinic (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from ketascreen.storage import Database, ScreeningFilter, Screenings, verify
from tests.web.answers import form_value, healthy_answers
from tests.web.conftest import CSRF, TestClient

SHOWN = re.compile(r'name="_shown" value="([a-z0-9_]+)">')


def start(client: TestClient) -> Any:
    token = CSRF.search(client.get("/").text)
    assert token
    r = client.post("/screening/start", data={"csrf_token": token.group(1)})
    assert r.status_code == 200 and r.url.path == "/screening/page/about"
    return r


def post_page(client: TestClient, page_html: str, page_id: str, answers: dict[str, Any],
              nav: str = "next") -> Any:
    token = CSRF.search(page_html)
    assert token
    shown = SHOWN.findall(page_html)
    data: dict[str, Any] = {"csrf_token": token.group(1), "_shown": shown, "_nav": nav}
    for item in shown:
        if item in answers:
            data[item] = form_value(answers[item])
    return client.post(f"/screening/page/{page_id}", data=data)


def complete(client: TestClient, answers: dict[str, Any]) -> tuple[Any, list[str]]:
    """Answer page after page until the review page; returns it and the pages visited."""
    r = start(client)
    visited = []
    for _ in range(60):
        if not r.url.path.startswith("/screening/page/"):
            break
        page = r.url.path.rsplit("/", 1)[1]
        visited.append(page)
        r = post_page(client, r.text, page, answers)
        assert r.status_code in (200, 303), r.text
    assert r.url.path == "/screening/review"
    return r, visited


def submit(client: TestClient, review_html: str) -> Any:
    token = CSRF.search(review_html)
    assert token
    return client.post("/screening/submit", data={"csrf_token": token.group(1)})


def test_complete_self_screening(client: TestClient, db: Database) -> None:
    review, visited = complete(client, healthy_answers())
    assert visited[:5] == ["about", "pregnancy", "feelings", "phq9", "gad7"]
    assert visited[5] == "mental_health"  # no C-SSRS nor AUDIT-C page: left to the clinic
    assert "pcl5" not in visited and "clinic" not in visited
    assert "Check your answers" in review.text and "Treatment-resistant" not in review.text
    assert "Depression that has not got better with at least two treatments" in review.text
    result = submit(client, review.text)
    assert result.status_code == 200 and result.url.path.startswith("/r/")
    token = result.url.path.rsplit("/", 1)[1]
    assert len(token) >= 43  # 256 random bits
    assert "No concerns found in this screening" in result.text
    assert "Your private link" in result.text and token in result.text
    assert 'class="report letter"' in result.text
    with db.read() as s:
        record = Screenings(s).by_patient_token(token)
        assert record is not None
        assert record.source == "self" and record.status == "private"
        assert record.protocol_name.endswith("+self-screening")
        assert record.answers() is not None and record.intake()["age"] == 40
        assert Screenings(s).search(ScreeningFilter()).total == 0  # not sent yet
        assert verify(s).ok
    again = client.get(result.url.path)
    assert again.status_code == 200 and "No concerns found" in again.text


def test_back_and_forth_keeps_answers(client: TestClient) -> None:
    r = start(client)
    r = post_page(client, r.text, "about", {"age": 52, "sex": "male", "reasons": ["ptsd"],
                                            "route": "intranasal"})
    assert r.url.path == "/screening/page/feelings"  # no pregnancy page for a man
    back = post_page(client, r.text, "feelings", {"suicidal": "none"}, nav="back")
    assert back.url.path == "/screening/page/about"
    assert 'value="52"' in back.text and re.search(r'value="ptsd"[^>]*checked', back.text)
    forward = client.get("/screening/page/feelings")
    assert re.search(r'value="none"[^>]*checked', forward.text)  # kept though not complete
    assert client.get("/screening/page/pregnancy").status_code == 404


def test_required_answers_are_checked_on_the_server(client: TestClient) -> None:
    r = start(client)
    r = post_page(client, r.text, "about", {"age": "very old", "sex": "female"})
    assert r.status_code == 422
    assert "Some answers need another look" in r.text
    assert "Enter a whole number." in r.text and "Please choose at least one answer" in r.text
    assert 'value="very old"' in r.text  # what was typed is shown back


def test_follow_up_appears_on_the_same_page(client: TestClient) -> None:
    answers = healthy_answers()
    r = start(client)
    for page in ("about", "pregnancy", "feelings", "phq9", "gad7", "mental_health"):
        r = post_page(client, r.text, page, answers)
    assert r.url.path == "/screening/page/heart"
    assert re.search(r'id="item-bp_controlled"[^>]*hidden', r.text)  # not asked yet
    r = post_page(client, r.text, "heart", {**answers, "heart_conditions": ["high_bp"]})
    assert r.status_code == 200 and r.url.path == "/screening/page/heart"
    assert "Your answer opened a follow-up question" in r.text
    assert not re.search(r'id="item-bp_controlled"[^>]*hidden', r.text)
    r = post_page(client, r.text, "heart", {**answers, "heart_conditions": ["high_bp"],
                                            "bp_controlled": True})
    assert r.url.path == "/screening/page/body"


def test_suicidal_plan_shows_crisis_resources_on_that_page(client: TestClient) -> None:
    answers = healthy_answers(suicidal="plan_or_intent")
    r = start(client)
    for page in ("about", "pregnancy"):
        r = post_page(client, r.text, page, answers)
    assert r.url.path == "/screening/page/feelings"
    assert re.search(r'id="alert-suicide_crisis"[^>]*hidden', r.text)  # there, not shown
    r = post_page(client, r.text, "feelings", answers)
    assert r.url.path == "/screening/page/feelings"  # the same page, before moving on
    crisis = re.search(r'<section class="alert alert-crisis" id="alert-suicide_crisis"[^>]*>',
                       r.text)
    assert crisis and "hidden" not in crisis.group(0)
    assert "988" in r.text and 'role="alert"' in crisis.group(0)
    r = post_page(client, r.text, "feelings", answers)
    assert r.url.path == "/screening/page/phq9"  # continues once seen
    assert "Please reach out for support right now" in r.text  # and stays on later pages


def test_item9_above_0_asks_the_clinic_to_complete_the_safety_questions(
        client: TestClient) -> None:
    """The C-SSRS screener is not in the self-screening (its licence does not allow shipping
    it): after PHQ-9 item 9 above 0 the result waits for the clinic's safety questions."""
    review, visited = complete(client, healthy_answers(phq9_9=1, suicidal="passive"))
    assert "cssrs" not in visited and "audit_c" not in visited
    assert client.get("/screening/page/cssrs").status_code == 404
    result = submit(client, review.text)
    assert result.status_code == 200
    assert "A few answers are still needed" in result.text
    questions = result.text.split("Questions still to answer", 1)[1].split("</ul>", 1)[0]
    assert "Your clinic still needs to ask you about" in questions
    assert "thoughts of death or suicide, with a few standard safety questions" in questions
    assert "C-SSRS" not in result.text and "instruments.cssrs_screen" not in result.text


def test_crisis_result_is_urgent(client: TestClient) -> None:
    review, _ = complete(client, healthy_answers(suicidal="plan_or_intent"))
    result = submit(client, review.text)
    assert result.status_code == 200
    assert "Please get support today" in result.text and "988" in result.text
    assert "Not right now" in result.text


def test_patient_token_opens_only_its_own_screening(client: TestClient) -> None:
    review, _ = complete(client, healthy_answers())
    first = submit(client, review.text).url.path
    client.cookies.clear()
    review, _ = complete(client, healthy_answers(age=63))
    second = submit(client, review.text).url.path
    assert first != second
    assert "63" not in client.get(first).text.split("Your private link")[0]
    wrong = client.get("/r/" + "A" * 43)
    assert wrong.status_code == 404 and "does not open a screening" in wrong.text
    assert client.get(first[:-1]).status_code == 404


def test_double_submit_leads_to_the_same_result(client: TestClient, db: Database) -> None:
    review, _ = complete(client, healthy_answers())
    first = submit(client, review.text)
    second = submit(client, review.text)
    assert second.url.path == first.url.path
    with db.read() as s:
        assert Screenings(s).count() == 1
    assert client.get("/screening/review").url.path == first.url.path


def test_sending_to_the_clinic(client: TestClient, db: Database) -> None:
    review, _ = complete(client, healthy_answers())
    result = submit(client, review.text)
    path = result.url.path
    token = CSRF.search(result.text)
    assert token
    refused = client.post(f"{path}/share", data={"csrf_token": token.group(1)})
    assert refused.status_code == 422 and "tick the box" in refused.text
    sent = client.post(f"{path}/share", data={"csrf_token": token.group(1), "consent": "yes",
                                              "contact_name": "Sam", "contact": "555-0100"})
    assert sent.status_code == 200 and "Your screening was sent" in sent.text
    with db.read() as s:
        found = Screenings(s).search(ScreeningFilter())
        assert found.total == 1 and found.items[0].status == "awaiting_review"
        record = Screenings(s).get(found.items[0].id)
        assert record is not None and record.shares[0].contact == "555-0100"
        assert verify(s).ok


def test_printable_letter(client: TestClient) -> None:
    review, _ = complete(client, healthy_answers())
    path = submit(client, review.text).url.path
    letter = client.get(f"{path}/letter")
    assert letter.status_code == 200 and letter.text.lstrip().startswith("<!doctype html>")
    assert "script-src" not in letter.headers["content-security-policy"]
    assert "default-src 'none'" in letter.headers["content-security-policy"]


def test_without_a_draft_the_pages_say_so(client: TestClient) -> None:
    r = client.get("/screening/page/about")
    assert r.status_code == 410 and "no longer here" in r.text
    assert client.get("/screening", follow_redirects=False).headers["location"] == "/"


@pytest.mark.parametrize("path", ["/screening/start", "/screening/page/about",
                                  "/screening/submit"])
def test_forms_need_the_csrf_token(client: TestClient, path: str) -> None:
    start(client)
    r = client.post(path, data={"csrf_token": "0" * 64})
    assert r.status_code == 403 and "expired" in r.text
    r = client.post(path, data={})
    assert r.status_code == 403
