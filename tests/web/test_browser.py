"""Browser tests with Playwright driving Debian's Chromium (/usr/bin/chromium, never a downloaded
browser): a patient completes the questionnaire, a suicidal plan shows crisis resources at once,
keyboard-only completion, a clinician reviews and downloads the PDF, and axe-core finds no
serious accessibility problems. Pages run under the app's real CSP: a violation fails the test.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from ketascreen.storage import Database
from ketascreen.web.app import create_app
from tests.web.answers import healthy_answers
from tests.web.conftest import PASSWORD, Accounts, make_accounts, make_settings
from tests.web.live import CHROMIUM, CHROMIUM_ARGS, serve

AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text(encoding="utf-8")

# The shorter path through the questionnaire: a man (no pregnancy page), no PTSD (no PCL-5).
ANSWERS = healthy_answers(sex="male", age=46)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Accounts]]:
    tmp = tmp_path_factory.mktemp("browser")
    db = Database(f"sqlite:///{tmp / 'ks.db'}")
    db.upgrade()
    accounts = make_accounts(db)
    app = create_app(make_settings(tmp, db.url), database=db)
    with serve(app) as url:
        yield url, accounts
    db.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: run `make system` (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser, site: tuple[str, Accounts]) -> Iterator[Page]:
    context = browser.new_context(base_url=site[0], accept_downloads=True)
    pg = context.new_page()
    problems: list[str] = []
    pg.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: problems.append(str(e)))
    yield pg
    context.close()
    # Answers that need another look come back as 422 pages on purpose; anything else logged
    # (a CSP violation, a script error, a missing file) fails the test.
    assert [p for p in problems if "status of 422" not in p] == [], problems


def answer_page(page: Page, answers: dict[str, Any]) -> None:
    """Answer every visible question on the page with the mouse (clicks and typing)."""
    for box in page.locator("form.questions [data-item]:visible").all():
        item = box.get_attribute("data-item") or ""
        if item not in answers:
            continue
        value = answers[item]
        if isinstance(value, bool):
            value = "yes" if value else "no"
        values = value if isinstance(value, list) else [value]
        inputs = box.locator("input:not([type=hidden]), textarea")
        kind = inputs.first.get_attribute("type")
        if kind in ("radio", "checkbox"):
            for v in values:
                box.locator(f'input[value="{v}"]').check()
        else:
            inputs.first.fill(str(value))


def walk(page: Page, answers: dict[str, Any]) -> list[str]:
    page.goto("/")
    page.get_by_role("button", name="Start the questionnaire").click()
    titles = []
    while "/screening/page/" in page.url:
        titles.append(page.locator("h1").inner_text())
        answer_page(page, answers)
        with page.expect_navigation():
            page.get_by_role("button", name="Continue").click()
        if len(titles) > 40:
            raise AssertionError("the questionnaire did not end")
    expect(page.locator("h1")).to_have_text("Check your answers")
    return titles


def axe_serious(page: Page) -> list[str]:
    page.evaluate(AXE)
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [f"{v['id']} ({v['impact']}): {v['help']} — {len(v['nodes'])} node(s)"
            for v in result["violations"] if v["impact"] in ("serious", "critical")]


def test_patient_completes_the_questionnaire_and_sees_the_letter(page: Page) -> None:
    titles = walk(page, ANSWERS)
    assert titles[0] == "About you" and "Pregnancy and breastfeeding" not in titles
    # The validated questionnaires licensed to ship; the C-SSRS screener and AUDIT-C are left
    # to the clinic, and alcohol is asked in ketascreen's own words.
    assert titles[1:5] == ["How you have been feeling", "Mood over the last two weeks (PHQ-9)",
                           "Worry and anxiety over the last two weeks (GAD-7)",
                           "Mental health diagnoses"]
    assert "Alcohol and other drugs" in titles
    assert not [t for t in titles if "C-SSRS" in t or "AUDIT" in t]
    assert axe_serious(page) == []
    page.get_by_role("button", name="See my result").click()
    expect(page.locator("h1")).to_have_text("Your screening result")
    expect(page.locator(".result-headline")).to_contain_text("No concerns found")
    expect(page.locator("article.letter")).to_be_visible()
    link = page.locator("#private-link").inner_text()
    assert re.fullmatch(r"http://[a-z0-9.]+:\d+/r/[A-Za-z0-9_-]{43}", link)
    assert axe_serious(page) == []
    page.get_by_label("Your name (optional)").fill("Alex")
    page.get_by_label(re.compile("I agree to send")).check()
    page.get_by_role("button", name=re.compile("Send to")).click()
    expect(page.locator(".share .notice")).to_contain_text("Your screening was sent")


def test_item9_above_0_leaves_the_safety_questions_to_the_clinic(page: Page) -> None:
    """Thoughts of death on PHQ-9 item 9: no C-SSRS page (not licensed to ship); the result
    waits for the clinic's safety questions and says so in plain words."""
    titles = walk(page, {**ANSWERS, "phq9_9": 1, "suicidal": "passive"})
    assert not [t for t in titles if "C-SSRS" in t or "Safety questions" in t]
    page.get_by_role("button", name="See my result").click()
    expect(page.locator(".result-headline")).to_contain_text("A few answers are still needed")
    letter = page.locator("article.letter")
    expect(letter).to_contain_text("Your clinic still needs to ask you about")
    expect(letter).to_contain_text(
        "thoughts of death or suicide, with a few standard safety questions at your next visit")
    expect(letter).not_to_contain_text("C-SSRS")
    assert axe_serious(page) == []


def test_suicidal_plan_shows_crisis_resources_at_once(page: Page) -> None:
    page.goto("/")
    page.get_by_role("button", name="Start the questionnaire").click()
    answer_page(page, ANSWERS)
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("h1")).to_have_text("How you have been feeling")
    crisis = page.locator("#alert-suicide_crisis")
    expect(crisis).to_be_hidden()
    page.get_by_label("Yes, and I have a plan or I intend to act on them").check()
    expect(crisis).to_be_visible()  # at once, before anything is sent
    expect(crisis).to_contain_text("988")
    assert "/screening/page/feelings" in page.url
    page.get_by_label("No", exact=True).first.check()
    expect(crisis).to_be_hidden()


def test_follow_up_appears_without_reload(page: Page) -> None:
    page.goto("/")
    page.get_by_role("button", name="Start the questionnaire").click()
    follow_up = page.locator("#item-setting")
    expect(follow_up).to_be_hidden()
    page.get_by_label("Tablets or lozenges that dissolve in the mouth").check()
    expect(follow_up).to_be_visible()
    none = page.get_by_label("Depression", exact=True)
    none.check()


def _tab_to(page: Page, test: str, limit: int = 400) -> dict[str, Any]:
    """Press Tab until the focused element satisfies the JS predicate ``test``."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        info = page.evaluate(
            "() => { const e = document.activeElement; return {tag: e.tagName, type: e.type,"
            " name: e.name, value: e.value, text: e.innerText, checked: e.checked,"
            f" match: (({test}))(e), outline: getComputedStyle(e).outlineStyle}}; }}")
        if info["match"]:
            return dict(info)
    raise AssertionError(f"could not reach {test} with the keyboard")


def test_keyboard_only_completion(page: Page) -> None:
    page.goto("/")
    start = _tab_to(page, "e => e.tagName === 'BUTTON'")
    assert start["outline"] != "none"  # the focus is visible
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "/screening/page/about" in page.url
    while "/screening/page/" in page.url:
        items = page.locator("form.questions [data-item]:visible")
        done: set[str] = set()
        for _ in range(200):
            visible = [b.get_attribute("data-item") or "" for b in items.all()]
            todo = [i for i in visible if i in ANSWERS and i not in done]
            if not todo:
                break
            item = todo[0]
            value = ANSWERS[item]
            if isinstance(value, bool):
                value = "yes" if value else "no"
            values = [str(v) for v in (value if isinstance(value, list) else [value])]
            first = _tab_to(page, f"e => e.name === '{item}' && e.type !== 'hidden'")
            if first["type"] == "radio":
                for _ in range(20):  # arrow keys move through a radio group and select
                    now = page.evaluate("() => document.activeElement.value")
                    if now == values[0]:
                        page.keyboard.press("Space")
                        break
                    page.keyboard.press("ArrowDown")
                else:
                    raise AssertionError(f"{item}: option {values[0]} not reached")
            elif first["type"] == "checkbox":
                for _ in range(40):
                    info = page.evaluate("() => ({name: document.activeElement.name,"
                                         " value: document.activeElement.value})")
                    if info["name"] != item:
                        break
                    if info["value"] in values:
                        page.keyboard.press("Space")
                    page.keyboard.press("Tab")
                page.keyboard.press("Shift+Tab")
            else:
                page.keyboard.type(values[0])
            done.add(item)
        _tab_to(page, "e => e.tagName === 'BUTTON' && e.value === 'next'")
        with page.expect_navigation():
            page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Check your answers")
    _tab_to(page, "e => e.tagName === 'BUTTON'")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page.locator(".result-headline")).to_contain_text("No concerns found")


def test_usable_on_a_phone(browser: Browser, site: tuple[str, Accounts]) -> None:
    context = browser.new_context(base_url=site[0], viewport={"width": 360, "height": 740},
                                  is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto("/")
    page.get_by_role("button", name="Start the questionnaire").click()
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 360  # nothing runs off the side of the screen
    box = page.get_by_role("button", name="Continue").bounding_box()
    assert box is not None and box["height"] >= 44  # a comfortable target
    context.close()


def test_clinician_finds_reviews_and_downloads_the_pdf(page: Page,
                                                       site: tuple[str, Accounts]) -> None:
    url, accounts = site
    import httpx

    from ketascreen.testing import merge_intake

    r = httpx.post(f"{url}/api/v1/screenings", headers=accounts.bearer("clinician"),
                   json=merge_intake({"id": "BROWSER-7", "vitals": {"systolic": 150,
                                                                    "diastolic": 92}}))
    assert r.status_code == 201
    page.goto("/clinic")
    expect(page).to_have_url(re.compile("/login"))
    assert axe_serious(page) == []
    page.get_by_label("E-mail address").fill("clinician@clinic.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("h1")).to_have_text("Screenings")
    page.get_by_label("Reference or id").fill("BROWSER-7")
    page.get_by_role("button", name="Apply filters").click()
    assert axe_serious(page) == []
    page.get_by_role("row", name=re.compile("BROWSER-7")).get_by_role("link").click()
    expect(page.locator("h1")).to_have_text("Screening BROWSER-7")
    assert axe_serious(page) == []
    decision = page.locator("#rv-decision")
    expect(decision).to_be_hidden()
    page.get_by_label("Record a different clinical decision").check()
    expect(decision).to_be_visible()
    page.get_by_label("Clinical decision", exact=True).select_option("defer")
    page.get_by_label(re.compile("^Reason")).fill("Repeat reading 168/104 in clinic")
    page.get_by_label(re.compile("sign this review")).check()
    page.get_by_role("button", name="Sign and save the review").click()
    expect(page.locator("ol.reviews")).to_contain_text("Repeat reading 168/104 in clinic")
    pdf_link = page.get_by_role("link", name="Download PDF")
    if pdf_link.count() == 0:
        pytest.fail("the PDF download is missing although ketascreen.reports.pdf exists")
    with page.expect_download() as info:
        pdf_link.click()
    path = info.value.path()
    assert Path(path).read_bytes()[:5] == b"%PDF-"


def test_question_pages_pass_axe(page: Page) -> None:
    page.goto("/")
    assert axe_serious(page) == []
    page.get_by_role("button", name="Start the questionnaire").click()
    page.get_by_role("button", name="Continue").click()  # nothing answered: errors shown
    expect(page.locator("#error-summary")).to_be_visible()
    expect(page.locator("#error-summary")).to_be_focused()
    assert axe_serious(page) == []


def test_without_javascript(browser: Browser, site: tuple[str, Accounts]) -> None:
    """The questionnaire works with scripts switched off: follow-ups and crisis resources come
    from the server, on the same page."""
    context = browser.new_context(base_url=site[0], java_script_enabled=False)
    page = context.new_page()
    page.goto("/")
    page.get_by_role("button", name="Start the questionnaire").click()
    answer_page(page, {**ANSWERS, "route": "oral"})
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("#notice")).to_contain_text("follow-up question")
    expect(page.locator("#item-setting")).to_be_visible()
    page.get_by_label("At home").check()
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("h1")).to_have_text("How you have been feeling")
    answer_page(page, {**ANSWERS, "suicidal": "plan_or_intent"})
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("h1")).to_have_text("How you have been feeling")
    expect(page.locator("#alert-suicide_crisis")).to_be_visible()
    context.close()
