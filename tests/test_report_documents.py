"""The clinician report and the patient letter as documents: HTML snapshots and structure, the PDF
read back with pypdf, reading level with textstat, and rendering in headless Chromium.

Snapshots redact the knowledge base's version and hash; update them with
``.venv/bin/python -m pytest tests/test_report_documents.py --snapshot-update`` and review the
diff. Chromium is Debian's (``/usr/bin/chromium``) driven by Playwright; nothing is downloaded.
"""

from __future__ import annotations

import io
import json
import logging
import re
import statistics
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pypdf import PdfReader
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.amber import AmberSnapshotExtension
from typer.testing import CliRunner

from ketascreen.cli.app import app
from ketascreen.core.kb import KnowledgeBase
from ketascreen.core.model import Assessment
from ketascreen.reports import patient_words
from ketascreen.reports.pdf import PdfUnavailableError, render_pdf
from ketascreen.reports.render import DECISION_LABEL, PATIENT_DECISION_LABEL, render, render_many
from ketascreen.services import Screener
from ketascreen.testing import BASELINE_DATE, merge_intake

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = Path(__file__).parent / "cases" / "examples"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
ICD_CODE = re.compile(r"\b[A-TV-Z]\d{2}\.[0-9A-Z]{1,4}\b")
FIELD_PATH = re.compile(r"\b(symptoms|readiness|instruments|substances|conditions|medications|"
                        r"vitals|pregnancy|labs|prior_ketamine)(\.|\[)")
CRISIS = "If you are in danger, call or text 988 now, or call 911. Do not wait for the clinic."


def cssrs(*yes: str) -> dict[str, bool]:
    keys = ("wish_dead", "active_thoughts", "method", "intent", "plan", "behavior_3mo")
    return {k: k in yes for k in keys}


CASES: dict[str, dict[str, Any]] = {
    # several questionnaires; a low C-SSRS flags suicide risk without urgency
    "questionnaires": {
        "id": "questionnaires", "sex": "female", "age": 58,
        "indications": ["treatment_resistant_depression", "ptsd"],
        "conditions": [{"code": "F33.2"}, {"code": "F43.12"}],
        "symptoms": {"suicidal": "passive"},
        "instruments": {"phq9": [2, 3, 2, 2, 1, 2, 2, 1, 1], "gad7": [2, 2, 1, 2, 1, 1, 1],
                        "pcl5": [2] * 20, "cssrs_screen": cssrs("wish_dead")},
    },
    # C-SSRS high risk: urgent, crisis contacts first
    "cssrs-high": {
        "id": "cssrs-high",
        "instruments": {"phq9": [2] * 9, "cssrs_screen": cssrs("wish_dead", "active_thoughts",
                                                               "method", "plan")},
    },
    # DAST-10 of 6 with no drug use reported: defer ("not right now") and disagreement
    "dast-defer": {
        "id": "dast-defer",
        "instruments": {"dast10": [True, True, False, True, True, True, False, False, False,
                                   False]},
    },
    # PHQ-9 item 9 above 0, no C-SSRS; an unrecognized medication
    "item9-incomplete": {
        "id": "item9-incomplete",
        "medications": [{"name": "zzyzxamine"}],
        "instruments": {"phq9": [1, 1, 1, 1, 1, 1, 1, 1, 1]},
    },
}


@pytest.fixture(scope="module")
def assessments(screener: Screener) -> dict[str, Assessment]:
    return {name: screener.screen(merge_intake(fragment), today=BASELINE_DATE)
            for name, fragment in CASES.items()}


def report(a: Assessment, audience: str, kb: KnowledgeBase, fmt: str = "html") -> str:
    return render(a, fmt, audience, str(kb.texts.get("disclaimer", "")),
                  crisis_contacts=kb.texts.get("crisis_contacts"))


def test_the_cases_give_the_intended_assessments(assessments: dict[str, Assessment]) -> None:
    a = assessments
    assert a["questionnaires"].decision == "eligible_with_precautions"
    assert not a["questionnaires"].urgent
    assert a["cssrs-high"].urgent
    assert a["cssrs-high"].decision == "defer"
    assert a["dast-defer"].decision == "defer"
    assert a["item9-incomplete"].decision == "incomplete"
    assert a["item9-incomplete"].unrecognized


# ------------------------------------------------------------------------------------------
# HTML snapshots


class DocumentSnapshots(AmberSnapshotExtension):
    snapshot_dirname = "snapshots"


@pytest.fixture
def doc_snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(DocumentSnapshots)


def redact(text: str, a: Assessment) -> str:
    kb = a.knowledge_base
    text = text.replace(kb.sha256, "<kb-sha256>").replace(kb.sha256[:12], "<kb-sha256>")
    return text.replace(kb.version, "<kb-version>")


@pytest.mark.parametrize("audience", ["clinician", "patient"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_html_snapshot(assessments: dict[str, Assessment], kb: KnowledgeBase,
                       doc_snapshot: SnapshotAssertion, case: str, audience: str) -> None:
    a = assessments[case]
    assert redact(report(a, audience, kb), a) == doc_snapshot


# ------------------------------------------------------------------------------------------
# The clinician report


def _section(html: str, heading: str) -> str:
    start = html.index(f"<h2>{heading}</h2>")
    end = html.find("<h2>", start + 4)
    return html[start:end if end > 0 else None]


@pytest.mark.parametrize("case", sorted(CASES))
def test_clinician_report_has_every_part_in_order(assessments: dict[str, Assessment],
                                                  kb: KnowledgeBase, case: str) -> None:
    a = assessments[case]
    html = report(a, "clinician", kb)
    order = ['<div class="banner"><strong>Decision: ', "<h2>Routes</h2>", "<h2>Findings</h2>",
             "<h2>Missing answers</h2>", "<h2>Questionnaires</h2>", '<div class="signature">',
             "<h2>References</h2>"]
    positions = [html.index(marker) for marker in order]
    assert positions == sorted(positions)
    if a.urgent:
        assert html.index('role="alert"') < positions[0]
    # who, when, which knowledge base and protocol
    assert f"<strong>{a.id}</strong>, as of {a.as_of.isoformat()}" in html
    assert f"protocol {a.protocol.name} v{a.protocol.version}" in html
    assert a.protocol.sha256[:12] in html
    assert f"knowledge base v{a.knowledge_base.version}" in html
    assert a.knowledge_base.sha256[:12] in html
    assert DECISION_LABEL[a.decision] in html
    for label in ("Reviewed by (name, role)", "Signature and date", "Clinician's decision"):
        assert label in html


def test_findings_table_columns_and_rows(assessments: dict[str, Assessment],
                                         kb: KnowledgeBase) -> None:
    a = assessments["questionnaires"]
    table = _section(report(a, "clinician", kb), "Findings")
    headers = re.findall(r'<th scope="col"[^>]*>([^<]+)</th>', table)
    assert headers == ["Severity", "Finding", "Evidence", "Actions", "Sources"]
    assert table.count("<tr><td class=\"sev sev-") == len(a.findings)
    for f in a.findings:
        assert f.rule in table
        assert f.title in table
        for s in f.sources:
            assert f">{s.id}</" in table


def test_route_matrix_shows_each_route_and_non_info_finding(assessments: dict[str, Assessment],
                                                            kb: KnowledgeBase) -> None:
    a = assessments["dast-defer"]
    matrix = _section(report(a, "clinician", kb), "Routes")
    for label in ("IV infusion (asked)", "Intramuscular injection", "Esketamine nasal spray",
                  "Oral / sublingual"):
        assert label in matrix
    rows = re.findall(r"<tr>(.*?)</tr>", matrix, re.DOTALL)
    assert rows[1].startswith('<th scope="row">Decision</th>')
    assert rows[1].count(DECISION_LABEL["defer"]) == 4
    non_info = [f for f in a.findings if f.severity != "info"]
    assert len(rows) == 2 + len(non_info)
    for f, row in zip(non_info, rows[2:], strict=True):
        assert f.title in row


def test_questionnaire_scores_with_bands(assessments: dict[str, Assessment],
                                         kb: KnowledgeBase) -> None:
    a = assessments["questionnaires"]
    table = _section(report(a, "clinician", kb), "Questionnaires")
    for s in a.scores.values():
        assert f"<strong>{s.instrument}</strong>" in table
        assert f"<td>{s.band}</td>" in table
        assert s.version and s.version in table
    assert "<td>16</td><td>moderately severe</td><td>positive</td>" in table
    assert "<td>–</td><td>low</td><td>positive</td>" in table  # C-SSRS has no total
    refs = _section(report(a, "clinician", kb), "References")
    assert "Kroenke K" in refs and "Posner K" in refs


def test_missing_and_unrecognized_are_listed(assessments: dict[str, Assessment],
                                             kb: KnowledgeBase) -> None:
    html = report(assessments["item9-incomplete"], "clinician", kb)
    missing = _section(html, "Missing answers")
    assert "<strong>blocking</strong> · <code>instruments.cssrs_screen</code>" in missing
    unrecognized = _section(html, "Unrecognized inputs")
    assert "medications[0].name" in unrecognized and "zzyzxamine" in unrecognized


# ------------------------------------------------------------------------------------------
# The patient letter


@pytest.mark.parametrize("fmt", ["html", "text", "markdown"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_letter_shows_no_rule_ids_codes_or_field_names(
        assessments: dict[str, Assessment], kb: KnowledgeBase, case: str, fmt: str) -> None:
    out = report(assessments[case], "patient", kb, fmt)
    for rule in kb.rules:
        assert rule.id not in out, rule.id
    assert not ICD_CODE.search(out), ICD_CODE.findall(out)
    assert not FIELD_PATH.search(out), FIELD_PATH.findall(out)
    assert "sha256" not in out


@pytest.mark.parametrize("fmt", ["html", "text", "markdown"])
def test_crisis_contacts_come_first_when_suicide_risk_is_flagged(
        assessments: dict[str, Assessment], kb: KnowledgeBase, fmt: str) -> None:
    a = assessments["questionnaires"]  # suicide risk flagged, not urgent
    assert not a.urgent
    out = report(a, "patient", kb, fmt)
    result = PATIENT_DECISION_LABEL[a.decision]
    assert out.index("If you need help right now") < out.index("988") < out.index(result)
    assert "role=\"alert\"" not in out
    custom = render(a, fmt, "patient", crisis_contacts=CRISIS)
    assert custom.index("call or text 988 now") < custom.index(result)


def test_urgent_letter_puts_the_alert_first_once(assessments: dict[str, Assessment],
                                                 kb: KnowledgeBase) -> None:
    out = report(assessments["cssrs-high"], "patient", kb)
    alert = re.search(r'<div class="banner urgent" role="alert">(.*?)</div>', out, re.DOTALL)
    assert alert and "988" in alert.group(1) and "911" in alert.group(1)
    assert out.index('role="alert"') < out.index("Not right now")
    assert '<aside class="crisis"' not in out  # the alert already carries the contacts


def test_no_crisis_box_without_a_suicide_finding(assessments: dict[str, Assessment],
                                                 kb: KnowledgeBase) -> None:
    out = report(assessments["dast-defer"], "patient", kb)
    assert "If you need help right now" not in out
    assert 'role="alert"' not in out


def test_deferred_letter_says_not_right_now_and_what_would_change(
        assessments: dict[str, Assessment], kb: KnowledgeBase) -> None:
    out = report(assessments["dast-defer"], "patient", kb)
    assert "<strong>Not right now</strong>" in out
    found = _section(out, "What we found")
    assert '<span class="tag tag-defer">Not right now:</span>' in found
    change = _section(out, "What could change this result")
    assert "This is not a &#34;no&#34;" in change or 'This is not a "no"' in change
    steps = _section(out, "What happens next")
    assert steps.count("<li>") == len(patient_words.NEXT_STEPS["defer"]) + 1
    assert "Do not stop or change a medicine" in steps


def test_missing_answers_are_asked_in_plain_words(assessments: dict[str, Assessment],
                                                  kb: KnowledgeBase) -> None:
    out = report(assessments["item9-incomplete"], "patient", kb)
    questions = _section(out, "Questions still to answer")
    assert ("thoughts of death or suicide, with a few standard safety questions at your next "
            "visit") in questions


def test_every_answer_has_a_plain_topic(kb: KnowledgeBase) -> None:
    for name in kb.answers:
        assert name in patient_words.MISSING_TOPICS, name
    assert patient_words.missing_topic("conditions[3].controlled") == (
        patient_words.MISSING_TOPICS["conditions[].controlled"])
    assert patient_words.missing_topic("something.new") == patient_words.GENERAL_TOPIC


def test_eligible_letter_has_no_what_would_change_section(screener: Screener,
                                                          kb: KnowledgeBase) -> None:
    a = screener.screen(merge_intake({"id": "well"}), today=BASELINE_DATE)
    out = report(a, "patient", kb)
    assert a.decision == "eligible"
    assert "What could change this result" not in out
    assert "clinician makes the final decision" in out


# ------------------------------------------------------------------------------------------
# Reading level: Flesch-Kincaid grade by textstat


@pytest.fixture
def textstat_offline(monkeypatch: pytest.MonkeyPatch) -> Any:
    """textstat, counting syllables with Pyphen only.

    textstat's English syllable counter downloads NLTK's CMU dictionary at run time; tests never
    touch the network, so its own Pyphen fallback (hyphenation-based, what textstat used before)
    counts every word instead.
    """
    import nltk  # type: ignore[import-untyped]
    import textstat  # type: ignore[import-untyped]

    def no_download(*args: object, **kwargs: object) -> bool:
        raise AssertionError("textstat tried to download NLTK data")

    monkeypatch.setattr(nltk, "download", no_download)
    monkeypatch.setattr("textstat.backend.counts._count_syllables.get_cmudict",
                        lambda lang: None)
    return textstat


class _Blocks(HTMLParser):
    """Text of each block (heading, paragraph, list item), each ending as a sentence."""

    BLOCKS = frozenset({"h1", "h2", "p", "li", "div", "aside", "ol", "ul"})

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._text: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "title"):
            self._hidden += 1
        if tag in self.BLOCKS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "title"):
            self._hidden -= 1
        if tag in self.BLOCKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self._text.append(data)

    def _flush(self) -> None:
        text = " ".join("".join(self._text).split())
        self._text = []
        if text:
            self.parts.append(text if text[-1] in ".!?:" else text + ".")


def letter_text(html: str) -> str:
    parser = _Blocks()
    parser.feed(html)
    parser.close()
    parser._flush()
    return " ".join(parser.parts)


def _example_assessments(screener: Screener) -> Iterator[tuple[str, Assessment]]:
    for path in sorted(EXAMPLES.glob("*.json")):
        if path.stem in ("expected", "invalid-heart-rate"):
            continue
        yield path.stem, screener.screen(json.loads(path.read_text()), today=BASELINE_DATE)


LETTER_GRADE = 8.0  # the letter as a whole
RULE_MEDIAN, RULE_P90, RULE_MAX = 8.0, 10.0, 13.0  # every rule's patient text


def test_patient_letters_read_at_grade_8(textstat_offline: Any, screener: Screener,
                                         assessments: dict[str, Assessment],
                                         kb: KnowledgeBase) -> None:
    letters = [*_example_assessments(screener), *assessments.items()]
    assert len(letters) >= 15
    for name, a in letters:
        text = letter_text(report(a, "patient", kb))
        assert len(text.split()) > 100, name
        grade = textstat_offline.flesch_kincaid_grade(text)
        assert grade <= LETTER_GRADE, (name, grade)


def test_rule_patient_texts_read_at_about_grade_8(textstat_offline: Any,
                                                  kb: KnowledgeBase) -> None:
    crisis = kb.texts["crisis_contacts"]
    grades = {r.id: textstat_offline.flesch_kincaid_grade(
        r.patient.replace("{crisis_contacts}", crisis)) for r in kb.rules}
    ordered = sorted(grades.values())
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    assert statistics.median(ordered) <= RULE_MEDIAN
    assert p90 <= RULE_P90
    assert max(ordered) <= RULE_MAX, max(grades.items(), key=lambda kv: kv[1])
    # the questionnaire pack is held to the letter's own target
    for rid, grade in grades.items():
        if rid.startswith("instr."):
            assert grade <= 9.0, (rid, grade)


def test_manifest_and_letter_texts_read_at_about_grade_8(textstat_offline: Any,
                                                         kb: KnowledgeBase) -> None:
    texts = {k: v for k, v in kb.texts.items() if k.startswith("patient_")}
    texts.update(crisis_contacts=kb.texts["crisis_contacts"],
                 note_each_session=kb.texts["note_each_session"])
    for key, text in texts.items():
        assert textstat_offline.flesch_kincaid_grade(text) <= 10.0, key
    ours = [s for steps in patient_words.NEXT_STEPS.values() for s in steps]
    ours += [*patient_words.WHAT_WOULD_CHANGE.values(), patient_words.ALWAYS_NEXT]
    for text in ours:
        assert textstat_offline.flesch_kincaid_grade(text) <= 8.0, text


# ------------------------------------------------------------------------------------------
# PDF, read back with pypdf


def _pdf(items: list[Assessment], audience: str, kb: KnowledgeBase,
         paper: str = "letter") -> PdfReader:
    data = render_pdf(items, audience, str(kb.texts.get("disclaimer", "")),
                      crisis_contacts=kb.texts.get("crisis_contacts"),
                      paper="a4" if paper == "a4" else "letter")
    assert data.startswith(b"%PDF-")
    return PdfReader(io.BytesIO(data))


def _flat(text: str) -> str:
    """Whitespace collapsed, and words split at a hyphen by a line break joined again."""
    return re.sub(r"-\s+", "-", " ".join(text.split()))


def _text(reader: PdfReader) -> str:
    return _flat(" ".join(page.extract_text() for page in reader.pages))


def _fonts(reader: PdfReader) -> Iterator[Any]:
    for page in reader.pages:
        resources: Any = page["/Resources"]
        fonts = resources.get_object().get("/Font")
        for ref in (fonts.get_object() if fonts else {}).values():
            font = ref.get_object()
            if font.get("/Subtype") == "/Type0":
                for desc in font["/DescendantFonts"]:
                    yield desc.get_object()
            else:
                yield font


@pytest.mark.parametrize("case", ["questionnaires", "dast-defer"])
def test_clinician_pdf_has_the_decision_and_every_finding(
        assessments: dict[str, Assessment], kb: KnowledgeBase, case: str,
        caplog: pytest.LogCaptureFixture) -> None:
    a = assessments[case]
    with caplog.at_level(logging.WARNING, logger="weasyprint"):
        reader = _pdf([a], "clinician", kb)
    assert not caplog.records, [r.getMessage() for r in caplog.records]  # all CSS understood
    assert 1 <= len(reader.pages) <= 2
    text = _text(reader)
    assert f"Decision: {DECISION_LABEL[a.decision]}" in text
    for f in a.findings:
        assert _flat(f.title) in text, f.title
    assert "Signature and date" in text
    assert f"Page 1 of {len(reader.pages)}" in text
    meta = reader.metadata
    assert meta is not None
    assert meta.title == f"ketascreen screening report {a.id}"
    assert meta.author == "ketascreen"


def test_pdf_is_archival_with_embedded_fonts(assessments: dict[str, Assessment],
                                             kb: KnowledgeBase) -> None:
    reader = _pdf([assessments["questionnaires"]], "clinician", kb)
    fonts = list(_fonts(reader))
    assert fonts
    for font in fonts:
        descriptor = font["/FontDescriptor"].get_object()
        assert {"/FontFile", "/FontFile2", "/FontFile3"} & set(descriptor), font.get("/BaseFont")
    root: Any = reader.trailer["/Root"]
    xmp = root["/Metadata"].get_object().get_data()
    assert b"pdfaid" in xmp
    assert re.search(rb"pdfaid:part(>|=\")2", xmp)
    assert root.get("/Lang") == "en"


@pytest.mark.parametrize(("paper", "size"), [("letter", (612, 792)), ("a4", (595, 842))])
def test_pdf_page_size(assessments: dict[str, Assessment], kb: KnowledgeBase, paper: str,
                       size: tuple[int, int]) -> None:
    box = _pdf([assessments["dast-defer"]], "patient", kb, paper).pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == size


def test_patient_pdf_gives_crisis_contacts_and_no_codes(assessments: dict[str, Assessment],
                                                        kb: KnowledgeBase) -> None:
    reader = _pdf([assessments["cssrs-high"]], "patient", kb)
    text = _text(reader)
    assert len(reader.pages) <= 2
    assert text.index("988") < text.index("Not right now")
    assert "psych." not in text and "instr." not in text
    meta = reader.metadata
    assert meta is not None and meta.title == "Your ketamine screening"


def test_several_screenings_each_start_a_page(assessments: dict[str, Assessment],
                                              kb: KnowledgeBase) -> None:
    items = [assessments["dast-defer"], assessments["item9-incomplete"]]
    reader = _pdf(items, "clinician", kb)
    starts = [i for i, page in enumerate(reader.pages)
              if page.extract_text().lstrip().startswith("ketascreen screening report")]
    assert len(starts) == 2
    for index, a in zip(starts, items, strict=True):
        assert f"Screening {a.id}," in reader.pages[index].extract_text()


def test_pdf_without_weasyprint_says_how_to_fix_it(assessments: dict[str, Assessment],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "weasyprint", None)  # import fails as if not installed
    with pytest.raises(PdfUnavailableError, match="make system"):
        render_pdf([assessments["dast-defer"]])
    with pytest.raises(ValueError, match="at least one"):
        render_pdf([])


def test_cli_pdf_needs_an_output_file(tmp_path: Path) -> None:
    runner = CliRunner()
    intake = tmp_path / "intake.json"
    intake.write_text(json.dumps(merge_intake(CASES["dast-defer"])), encoding="utf-8")
    refused = runner.invoke(app, ["screen", str(intake), "--format", "pdf"])
    assert refused.exit_code == 2
    assert "--output" in refused.stderr
    target = tmp_path / "report.pdf"
    done = runner.invoke(app, ["screen", str(intake), "-f", "pdf", "-o", str(target),
                               "--paper", "a4", "--audience", "patient"])
    assert done.exit_code == 0, done.stderr
    assert done.stdout == ""
    reader = PdfReader(target)
    assert round(float(reader.pages[0].mediabox.height)) == 842
    assert "Not right now" in _text(reader)


def test_cli_pdf_keeps_going_past_an_invalid_input(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(merge_intake(CASES["questionnaires"])), encoding="utf-8")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(merge_intake({"age": 300})), encoding="utf-8")
    target = tmp_path / "both.pdf"
    result = CliRunner().invoke(app, ["screen", str(bad), str(good), "-f", "pdf", "-o",
                                      str(target)])
    assert result.exit_code == 2
    assert "age" in result.stderr
    assert "Screening questionnaires," in _text(PdfReader(target))


def test_the_cli_does_not_import_weasyprint_or_a_browser_at_start() -> None:
    code = ("import sys, ketascreen.cli.app; "
            "print(sorted(m for m in ('weasyprint', 'playwright', 'jinja2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------
# Headless Chromium: the HTML renders to a picture


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.mark.parametrize("audience", ["clinician", "patient"])
def test_reports_render_in_chromium(chromium: Any, assessments: dict[str, Assessment],
                                    kb: KnowledgeBase, tmp_path: Path, audience: str) -> None:
    page = chromium.new_page(viewport={"width": 900, "height": 700})
    try:
        page.set_content(report(assessments["questionnaires"], audience, kb), wait_until="load")
        heading = page.locator("h1").inner_text()
        assert heading == ("ketascreen screening report" if audience == "clinician"
                           else "Your ketamine screening")
        target = tmp_path / f"{audience}.png"
        page.screenshot(path=str(target), full_page=True)
    finally:
        page.close()
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(target) as image:
        width, height = image.size
        assert width == 900
        assert height > 700  # a full page: longer than the window
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
        assert colours is not None and len(colours) > 50  # text and colour, not a blank page


def test_report_images_script_writes_both_pictures(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "report_images.py"),
                             "--out", str(tmp_path)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    for name in ("clinician-report.png", "patient-letter.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG"
            assert image.size[1] > 800


def test_render_many_keeps_each_letter_separate(assessments: dict[str, Assessment],
                                                kb: KnowledgeBase) -> None:
    items = [assessments[name] for name in sorted(CASES)]
    out = render_many(items, "html", "patient", crisis_contacts=CRISIS)
    assert out.count("<html") == 1
    assert out.count("<h1") == len(items)
    assert out.count('<section class="screening letter"') == len(items)
