"""Retake the web app's pictures for the README and docs/web.md.

Runs the app on a temporary SQLite database, drives Debian's Chromium (/usr/bin/chromium) with
Playwright, and writes docs/images/questionnaire.png, docs/images/result.png and
docs/images/clinician-detail.png. Usage: .venv/bin/python scripts/web_screenshots.py
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests/web: the answers of a healthy adult, the test server

import httpx  # noqa: E402
from playwright.sync_api import Page, ViewportSize, sync_playwright  # noqa: E402
from tests.web.answers import healthy_answers  # noqa: E402
from tests.web.conftest import PASSWORD, make_accounts, make_settings  # noqa: E402
from tests.web.live import CHROMIUM, CHROMIUM_ARGS, serve  # noqa: E402

from ketascreen.storage import Database  # noqa: E402
from ketascreen.web.app import create_app  # noqa: E402

IMAGES = ROOT / "docs" / "images"
VIEWPORT: ViewportSize = {"width": 1000, "height": 1150}


def answer(page: Page, answers: dict[str, Any]) -> None:
    """Answer every visible question, again as follow-ups appear."""
    done: set[str] = set()
    while True:
        todo = [b for b in page.locator("form.questions [data-item]:visible").all()
                if (b.get_attribute("data-item") or "") in answers
                and b.get_attribute("data-item") not in done]
        if not todo:
            return
        for box in todo:
            done.add(box.get_attribute("data-item") or "")
            _answer_one(box, answers)


def _answer_one(box: Any, answers: dict[str, Any]) -> None:
    value = answers[box.get_attribute("data-item") or ""]
    if isinstance(value, bool):
        value = "yes" if value else "no"
    values = value if isinstance(value, list) else [value]
    first = box.locator("input:not([type=hidden]), textarea").first
    if first.get_attribute("type") in ("radio", "checkbox"):
        for v in values:
            box.locator(f'input[value="{v}"]').check()
    else:
        first.fill(str(value))


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="ks-shots-"))
    IMAGES.mkdir(parents=True, exist_ok=True)
    answers = healthy_answers(
        age=38, heart_conditions=["high_bp"], bp_controlled=True, knows_bp=True,
        bp_systolic=128, bp_diastolic=82, bp_taken_on="2026-10-30", takes_medicines=True,
        medicine_list="sertraline 100 mg\nlisinopril 10 mg", sub_alcohol="current",
        sub_alcohol_problem=False, integration_support=False)
    try:
        db = Database(f"sqlite:///{tmp / 'ketascreen.db'}")
        db.upgrade()
        accounts = make_accounts(db)
        app = create_app(make_settings(tmp, db.url, clinic_name="Harbour Clinic"), database=db)
        with serve(app) as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_context(base_url=url, viewport=VIEWPORT).new_page()
            page.goto("/")
            page.get_by_role("button", name="Start the questionnaire").click()
            shot = False
            while "/screening/page/" in page.url:
                if page.url.endswith("/heart") and not shot:
                    page.get_by_label("High blood pressure", exact=True).check()
                    page.get_by_label("No", exact=True).first.check()
                    page.mouse.click(5, 300)  # no focus ring in the picture
                    page.screenshot(path=str(IMAGES / "questionnaire.png"))
                    shot = True
                answer(page, answers)
                with page.expect_navigation():
                    page.get_by_role("button", name="Continue").click()
            with page.expect_navigation():
                page.get_by_role("button", name="See my result").click()
            page.screenshot(path=str(IMAGES / "result.png"))

            intake = json.loads((ROOT / "examples" / "bp-152-94.json").read_text())
            intake["id"] = "MRN-20417"
            r = httpx.post(f"{url}/api/v1/screenings", json=intake,
                           headers=accounts.bearer("clinician"))
            r.raise_for_status()
            sid = r.json()["id"]
            page.goto("/login")
            page.get_by_label("E-mail address").fill("clinician@clinic.test")
            page.get_by_label("Password").fill(PASSWORD)
            with page.expect_navigation():
                page.get_by_role("button", name="Log in").click()
            page.goto(f"/clinic/screenings/{sid}")
            page.screenshot(path=str(IMAGES / "clinician-detail.png"))
            browser.close()
        db.dispose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for name in ("questionnaire.png", "result.png", "clinician-detail.png"):
        size = (IMAGES / name).stat().st_size
        print(f"wrote docs/images/{name} ({size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
