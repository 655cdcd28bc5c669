"""Regenerate the README's pictures of the two reports: docs/images/clinician-report.png and
docs/images/patient-letter.png.

The HTML reports of one illustrative screening (below) are rendered in headless Chromium —
Debian's ``/usr/bin/chromium`` driven by Playwright, never a downloaded browser, with networking
switched off — and captured as full-page PNGs. Run ``.venv/bin/python scripts/report_images.py``
after changing the report templates; ``--out DIR`` writes elsewhere (the tests use it).
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
SCREENING_DATE = date(2026, 11, 16)

# An illustrative person: treatment-resistant depression and PTSD, controlled hypertension,
# questionnaires that show a PHQ-9 item 9 answer and a low-risk C-SSRS screener.
EXAMPLE: dict[str, Any] = {
    "id": "example-0042",
    "assessed_on": "2026-11-16",
    "age": 58,
    "sex": "female",
    "route": "iv",
    "indications": ["treatment_resistant_depression", "ptsd"],
    "conditions": [{"code": "F33.2", "status": "active"}, {"code": "F43.12", "status": "active"},
                   {"code": "I10", "status": "active", "controlled": True}],
    "family_history": [],
    "medications": [{"name": "sertraline", "dose": "100 mg daily", "daily_mg": 100},
                    {"name": "lisinopril", "dose": "10 mg daily", "daily_mg": 10}],
    "allergies": [],
    "substances": [],
    "vitals": {"systolic": 134, "diastolic": 84, "heart_rate": 76, "taken_on": "2026-11-10"},
    "pregnancy": {"pregnant": "no", "breastfeeding": False, "planning": False},
    "symptoms": {"psychosis_now": False, "mania_now": False, "hallucinations_past": False,
                 "dissociation": "none", "suicidal": "passive", "suicide_attempt": "none"},
    "readiness": {"own_choice": True, "pressured": False, "can_consent": True,
                  "expects_quick_fix": False, "support_person": True,
                  "integration_support": True, "open_to_therapy": True,
                  "can_attend_series": True, "ride_home": True},
    "instruments": {
        "phq9": [2, 3, 2, 2, 1, 2, 2, 1, 1],
        "gad7": [2, 2, 1, 2, 1, 1, 1],
        "audit_c": [1, 1, 0],
        "pcl5": [3, 2, 2, 3, 2, 2, 3, 1, 2, 2, 3, 2, 2, 2, 1, 0, 2, 2, 2, 2],
        "cssrs_screen": {"wish_dead": True, "active_thoughts": False, "method": False,
                         "intent": False, "plan": False, "behavior_3mo": False},
    },
}
PICTURES = {"clinician": "clinician-report.png", "patient": "patient-letter.png"}


def report_html() -> dict[str, str]:
    """The example's clinician report and patient letter as HTML."""
    from ketascreen.reports.render import render
    from ketascreen.services import Screener

    screener = Screener()
    assessment = screener.screen(EXAMPLE, today=SCREENING_DATE)
    disclaimer = screener.kb.texts.get("disclaimer", "")
    crisis = screener.kb.texts.get("crisis_contacts")
    return {audience: render(assessment, "html", audience, disclaimer, crisis_contacts=crisis)
            for audience in PICTURES}


def write_pictures(out: Path, *, width: int = 1000) -> list[Path]:
    """Render both reports in headless Chromium and save full-page PNGs in ``out``."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    pages = report_html()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 800})
            for audience, name in PICTURES.items():
                page.set_content(pages[audience], wait_until="load")
                target = out / name
                page.screenshot(path=str(target), full_page=True)
                written.append(target)
        finally:
            browser.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images",
                        help="folder for the PNGs (default: docs/images)")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"report_images: {CHROMIUM} is missing; run `make system` (Debian: apt-get "
              "install chromium)", file=sys.stderr)
        return 1
    for path in write_pictures(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
