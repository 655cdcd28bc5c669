"""Rendered reports: snapshots of text, Markdown and HTML for clinicians and patients.

The knowledge base's version and sha256 are redacted before comparing, so a content edit that
does not change a report's shape does not break the snapshots. Update them with
``.venv/bin/python -m pytest tests/test_reports.py --snapshot-update`` and review the diff.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.amber import AmberSnapshotExtension

from ketascreen.core.kb import KnowledgeBase
from ketascreen.core.model import Assessment, Route
from ketascreen.reports.render import render, render_many
from ketascreen.services import Screener
from ketascreen.testing import merge_intake

TODAY = date(2026, 11, 16)
FORMATS = ("text", "markdown", "html")
AUDIENCES = ("clinician", "patient")
ICD_CODE = re.compile(r"\b[A-TV-Z]\d{2}\.[0-9A-Z]{1,4}\b")

CASES: dict[str, dict[str, Any]] = {
    "healthy-ptsd": {
        "id": "healthy-ptsd",
        "indications": ["ptsd"],
        "conditions": [{"code": "F43.12", "status": "active"}],
        "instruments": {"phq9": [2, 2, 1, 2, 1, 1, 2, 1, 0], "pcl5": [2] * 20},
    },
    "suicidal-plan": {
        "id": "suicidal-plan",
        "indications": ["treatment_resistant_depression"],
        "symptoms": {"suicidal": "plan_or_intent"},
    },
    "theophylline-any-route": {
        "id": "theophylline-any-route",
        "route": None,
        "medications": [{"name": "theophylline", "daily_mg": 400, "dose": "200 mg twice a day"}],
    },
}


class ReportSnapshots(AmberSnapshotExtension):
    """Amber snapshots kept in tests/snapshots/."""

    snapshot_dirname = "snapshots"


@pytest.fixture
def report_snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(ReportSnapshots)


@pytest.fixture(scope="module")
def assessments(screener: Screener) -> dict[str, Assessment]:
    return {name: screener.screen(merge_intake(fragment), today=TODAY)
            for name, fragment in CASES.items()}


def redact(text: str, a: Assessment) -> str:
    kb = a.knowledge_base
    text = text.replace(kb.sha256, "<kb-sha256>").replace(kb.sha256[:12], "<kb-sha256>")
    return text.replace(kb.version, "<kb-version>")


def report(a: Assessment, fmt: str, audience: str, kb: KnowledgeBase) -> str:
    return render(a, fmt, audience, disclaimer=str(kb.texts.get("disclaimer", "")))


def test_the_cases_give_the_intended_assessments(assessments: dict[str, Assessment]) -> None:
    healthy = assessments["healthy-ptsd"]
    assert healthy.decision == "eligible_with_precautions"
    assert not healthy.urgent
    assert healthy.as_of == TODAY

    plan = assessments["suicidal-plan"]
    assert plan.urgent
    assert plan.decision in ("defer", "not_recommended")

    theo = assessments["theophylline-any-route"]
    assert theo.route is None
    assert len(set(theo.routes.values())) > 1, theo.routes


@pytest.mark.parametrize("audience", AUDIENCES)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_report_snapshot(
    assessments: dict[str, Assessment], kb: KnowledgeBase, report_snapshot: SnapshotAssertion,
    case: str, fmt: str, audience: str,
) -> None:
    a = assessments[case]
    text = redact(report(a, fmt, audience, kb), a)
    assert "<kb-sha256>" in text or audience == "patient"
    assert text == report_snapshot


@pytest.mark.parametrize("audience", AUDIENCES)
@pytest.mark.parametrize("fmt", FORMATS)
def test_reports_are_deterministic(
    screener: Screener, kb: KnowledgeBase, fmt: str, audience: str
) -> None:
    intake = merge_intake(CASES["theophylline-any-route"])
    first = report(screener.screen(intake, today=TODAY), fmt, audience, kb)
    second = report(screener.screen(intake, today=TODAY), fmt, audience, kb)
    assert first == second


# ------------------------------------------------------------------------------------------
# Patient reports


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_patient_reports_show_no_rule_ids_or_codes(
    assessments: dict[str, Assessment], kb: KnowledgeBase, case: str, fmt: str
) -> None:
    out = report(assessments[case], fmt, "patient", kb)
    for rule in kb.rules:
        assert rule.id not in out, rule.id
    assert not ICD_CODE.search(out), ICD_CODE.findall(out)
    assert "sha256" not in out


@pytest.mark.parametrize("case", sorted(CASES))
def test_patient_html_is_english_and_accessible(
    assessments: dict[str, Assessment], kb: KnowledgeBase, case: str
) -> None:
    out = report(assessments[case], "html", "patient", kb)
    assert out.startswith("<!doctype html>")
    assert '<html lang="en">' in out
    assert '<meta charset="utf-8">' in out
    assert "<title>" in out
    assert out.count("<h1") == 1


def test_patient_html_urgent_banner_is_an_alert(
    assessments: dict[str, Assessment], kb: KnowledgeBase
) -> None:
    out = report(assessments["suicidal-plan"], "html", "patient", kb)
    match = re.search(r'<div class="banner urgent" role="alert">(.*?)</div>', out, re.DOTALL)
    assert match, out
    banner = match.group(1)
    assert "988" in banner
    assert "911" in banner
    # the urgent banner comes before the result
    assert out.index('role="alert"') < out.index("Not right now")


@pytest.mark.parametrize("case", ["healthy-ptsd", "theophylline-any-route"])
def test_no_alert_without_an_urgent_finding(
    assessments: dict[str, Assessment], kb: KnowledgeBase, case: str
) -> None:
    for audience in AUDIENCES:
        out = report(assessments[case], "html", audience, kb)
        assert 'role="alert"' not in out
        assert "banner urgent" not in out


@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_patient_text_urgent_comes_first_with_contacts(
    assessments: dict[str, Assessment], kb: KnowledgeBase, fmt: str
) -> None:
    out = report(assessments["suicidal-plan"], fmt, "patient", kb)
    assert "Please read this first" in out
    assert out.index("Please read this first") < out.index("988") < out.index("Not right now")


@pytest.mark.parametrize("fmt", FORMATS)
def test_patient_report_names_every_held_route(
    assessments: dict[str, Assessment], kb: KnowledgeBase, fmt: str
) -> None:
    a = assessments["theophylline-any-route"]
    out = report(a, fmt, "patient", kb).lower()
    held: dict[Route, str] = {"iv": "iv infusion", "im": "intramuscular injection", "oral": "oral"}
    for route, words in held.items():
        assert a.routes[route] in ("defer", "not_recommended")
        assert words in out, route


@pytest.mark.parametrize("fmt", FORMATS)
def test_eligible_patient_report_says_a_clinician_decides(
    assessments: dict[str, Assessment], kb: KnowledgeBase, fmt: str
) -> None:
    out = " ".join(report(assessments["healthy-ptsd"], fmt, "patient", kb).split())
    assert "clinician makes the final decision" in out
    assert "checked again before every session" in out


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_no_empty_what_we_found_section(
    assessments: dict[str, Assessment], kb: KnowledgeBase, case: str, fmt: str
) -> None:
    """The "What we found" heading is only shown above at least one item."""
    out = report(assessments[case], fmt, "patient", kb)
    heading, item = {
        "text": ("WHAT WE FOUND\n", r"WHAT WE FOUND\n\n\* \S"),
        "markdown": ("## What we found\n", r"## What we found\n\n- \S"),
        "html": ("<h2>What we found</h2>", r"<h2>What we found</h2><ul><li>"),
    }[fmt]
    if heading in out:
        assert re.search(item, out), out


# ------------------------------------------------------------------------------------------
# Clinician reports


@pytest.mark.parametrize("case", sorted(CASES))
def test_clinician_html_has_decision_banner_and_signature_block(
    assessments: dict[str, Assessment], kb: KnowledgeBase, case: str
) -> None:
    a = assessments[case]
    out = report(a, "html", "clinician", kb)
    assert '<html lang="en">' in out
    assert re.search(r'<div class="banner"><strong>Decision: [^<]+</strong>', out)
    assert '<div class="signature">' in out
    assert "Reviewed by" in out
    assert "Signature and date" in out
    assert out.index("Decision: ") < out.index('<div class="signature">')
    for f in a.findings:
        assert f.rule in out


def test_clinician_html_urgent_banner_is_an_alert_before_the_decision(
    assessments: dict[str, Assessment], kb: KnowledgeBase
) -> None:
    out = report(assessments["suicidal-plan"], "html", "clinician", kb)
    assert '<div class="banner urgent" role="alert">' in out
    assert out.index('role="alert"') < out.index("<strong>Decision: ")


@pytest.mark.parametrize("fmt", FORMATS)
def test_clinician_report_shows_routes_ids_and_evidence(
    assessments: dict[str, Assessment], kb: KnowledgeBase, fmt: str
) -> None:
    a = assessments["theophylline-any-route"]
    out = report(a, fmt, "clinician", kb)
    for label in ("IV infusion", "Intramuscular injection", "Esketamine nasal spray",
                  "Oral / sublingual"):
        assert label in out
    assert "med.methylxanthine_racemic" in out
    assert "medications[0]" in out
    assert a.knowledge_base.sha256[:12] in out


@pytest.mark.parametrize("fmt", FORMATS)
def test_clinician_report_shows_scores(
    assessments: dict[str, Assessment], kb: KnowledgeBase, fmt: str
) -> None:
    out = report(assessments["healthy-ptsd"], fmt, "clinician", kb)
    assert "PHQ-9" in out
    assert "PCL-5" in out


# ------------------------------------------------------------------------------------------
# HTML safety and several assessments


@pytest.mark.parametrize("audience", AUDIENCES)
def test_html_escapes_the_callers_text(screener: Screener, kb: KnowledgeBase,
                                       audience: str) -> None:
    a = screener.screen(merge_intake({
        "id": "<script>alert(1)</script>",
        "medications": [{"name": "<b>zz & drug</b>", "dose": "1 <i>pill</i>"}],
    }), today=TODAY)
    out = report(a, "html", audience, kb)
    assert "<script>" not in out
    assert "<b>zz" not in out
    if audience == "clinician":
        assert "&lt;script&gt;" in out
        assert "&lt;b&gt;zz &amp; drug&lt;/b&gt;" in out


def test_render_many_html_is_one_page_with_a_section_each(
    assessments: dict[str, Assessment], kb: KnowledgeBase
) -> None:
    items = [assessments[name] for name in sorted(CASES)]
    out = render_many(items, "html", "clinician")
    assert out.count("<html") == 1
    assert out.count('<section class="screening"') == len(items)
    for a in items:
        assert f"<strong>{a.id}</strong>" in out


@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_render_many_text_keeps_the_order(
    assessments: dict[str, Assessment], kb: KnowledgeBase, fmt: str
) -> None:
    names = sorted(CASES)
    out = render_many([assessments[n] for n in names], fmt, "clinician")
    positions = [out.index(f"{n}, as of") for n in names]
    assert positions == sorted(positions)
