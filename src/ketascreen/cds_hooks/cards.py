"""An assessment as a CDS Hooks 2.0 card: summary, indicator, Markdown detail, source, links.

Every card has a ``uuid`` (feedback names it), a ``summary`` under 140 characters, an
``indicator`` from the decision (critical for not recommended or urgent; warning for defer,
needs evaluation or incomplete; info otherwise), a Markdown ``detail`` (findings with evidence
and actions, routes, what is missing and what was not recognised), a ``source`` with a label and
a link to the rules catalogue, ``overrideReasons`` and a link to the full report. Optional fields
are left out rather than sent empty or null.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ketascreen.adapters.fhir_out import contraindication_level
from ketascreen.adapters.fhir_r4 import CANONICAL_BASE

if TYPE_CHECKING:
    from ketascreen.adapters.fhir_r4 import MappingIssue
    from ketascreen.core.model import Assessment, Finding

__all__ = ["OVERRIDE_REASONS", "SUMMARY_LIMIT", "assessment_card", "indicator_for"]

SUMMARY_LIMIT = 140
OVERRIDE_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/override-reason"
OVERRIDE_REASONS: list[dict[str, str]] = [
    {"system": OVERRIDE_SYSTEM, "code": "reviewed-benefit-outweighs-risk",
     "display": "Reviewed: the expected benefit outweighs the risk"},
    {"system": OVERRIDE_SYSTEM, "code": "record-out-of-date",
     "display": "The record is out of date or wrong"},
    {"system": OVERRIDE_SYSTEM, "code": "already-addressed",
     "display": "Already assessed or addressed"},
    {"system": OVERRIDE_SYSTEM, "code": "will-monitor",
     "display": "Will monitor closely during treatment"},
    {"system": OVERRIDE_SYSTEM, "code": "not-applicable",
     "display": "Does not apply to this patient"},
]
DECISION_LABEL = {
    "eligible": "no concerns found",
    "eligible_with_precautions": "eligible with precautions",
    "needs_evaluation": "needs evaluation",
    "incomplete": "screening incomplete",
    "defer": "defer for now",
    "not_recommended": "not recommended",
}
ROUTE_LABEL = {"iv": "IV", "im": "IM", "intranasal": "intranasal", "oral": "oral"}
_RANK = {"eligible": 0, "eligible_with_precautions": 1, "needs_evaluation": 2, "incomplete": 3,
         "defer": 4, "not_recommended": 5}
_MAX_ISSUES = 15


def indicator_for(decision: str, urgent: bool) -> str:
    if urgent or decision == "not_recommended":
        return "critical"
    if decision in ("defer", "needs_evaluation", "incomplete"):
        return "warning"
    return "info"


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip(" ,;:-") + "…"


def _md(text: str) -> str:
    """Plain text made safe inside Markdown (no accidental emphasis, links or HTML)."""
    out = text
    for ch in ("\\", "*", "_", "`", "[", "]", "<", ">", "#"):
        out = out.replace(ch, "\\" + ch)
    return " ".join(out.split())


def card_decision(assessment: Assessment, route_known: bool) -> str:
    """The decision a card shows: the assessment's, or the worst route's when an order's route
    is not known (the safe reading)."""
    if route_known or not assessment.routes:
        return assessment.decision
    return max(assessment.routes.values(), key=lambda d: _RANK[d])


def summary_text(assessment: Assessment, decision: str, what: str) -> str:
    top = next((f for f in assessment.findings if contraindication_level(f)), None) or next(
        iter(assessment.findings), None)
    head = f"{'URGENT — ' if assessment.urgent else ''}{what}: {DECISION_LABEL[decision]}"
    if decision == "incomplete" and assessment.missing and (
            top is None or not contraindication_level(top)):
        blocking = sum(1 for m in assessment.missing if m.blocking)
        return _short(f"{head} ({blocking} answer{'s' if blocking != 1 else ''} needed)",
                      SUMMARY_LIMIT - 1)
    if top is None or decision == "eligible":
        return _short(head, SUMMARY_LIMIT - 1)
    more = len(assessment.findings) - 1
    tail = f" (+{more} more)" if more > 0 else ""
    room = SUMMARY_LIMIT - 1 - len(head) - len(tail) - 3
    if room < 20:
        return _short(head + tail, SUMMARY_LIMIT - 1)
    return f"{head} — {_short(top.title, room)}{tail}"


def _finding_md(f: Finding, where: Callable[[str], str]) -> list[str]:
    label = f"{f.severity}{', urgent' if f.urgent else ''}"
    routes = ", ".join(ROUTE_LABEL[r] for r in f.routes)
    lines = [f"- **{_md(f.title)}** ({label}; {routes}; rule `{f.rule}`)  ",
             f"  {_md(f.clinician)}"]
    if f.evidence:
        lines.append("  *Evidence:* " + "; ".join(
            f"{_md(where(e.field))} = {_md(e.value)}" + (f" ({_md(e.meaning)})" if e.meaning
                                                          else "") for e in f.evidence))
    if f.actions:
        lines.append("  *Next:* " + " ".join(_md(a if a.endswith(".") else a + ".")
                                             for a in f.actions))
    if f.sources:
        lines.append("  *Sources:* " + "; ".join(_md(f"[{s.id}] {s.citation}")
                                                 for s in f.sources))
    return lines


def detail_markdown(assessment: Assessment, decision: str, *, route_note: str | None,
                    issues: list[MappingIssue], where: Callable[[str], str],
                    notes: list[str], dev_mode: bool) -> str:
    out: list[str] = []
    if dev_mode:
        out += ["**DEVELOPMENT MODE: the EHR's identity was not verified.**", ""]
    out.append(f"**Ketamine screening: {DECISION_LABEL[decision]}** (as of "
               f"{assessment.as_of.isoformat()}).")
    if route_note:
        out.append(route_note)
    if assessment.summary is not None:
        out.append(_md(assessment.summary.clinician))
    urgent = [f for f in assessment.findings if f.urgent]
    if urgent:
        out += ["", "**Urgent — needs attention today:**"]
        for f in urgent:
            out += _finding_md(f, where)
    others = [f for f in assessment.findings if not f.urgent]
    if others:
        out += ["", "**Findings:**"]
        for f in others:
            out += _finding_md(f, where)
    if assessment.routes:
        out += ["", "**By route:** " + " · ".join(
            f"{ROUTE_LABEL[r]}: {DECISION_LABEL[d]}" for r, d in assessment.routes.items())]
    if assessment.missing:
        out += ["", "**Still to ask:**"]
        for m in assessment.missing:
            kind = "needed" if m.blocking else "confirm at the first visit"
            out.append(f"- {_md(m.question)} ({kind}; `{m.field}`)")
    if assessment.unrecognized:
        out += ["", "**Not recognised (a clinician should review):**"]
        out += [f"- {_md(where(u.field))}: {_md(u.value)}" for u in assessment.unrecognized]
    order = {"error": 0, "ignored": 1, "note": 2}
    shown = sorted((i for i in issues if i.kind in order), key=lambda i: order[i.kind])
    if shown or notes:
        out += ["", "**From the record:**"]
        out += [f"- {_md(n)}" for n in notes]
        for i in shown[:_MAX_ISSUES]:
            out.append(f"- {_md(where(i.path))}: {_md(i.message)}"
                       + (f" ({_md(i.value)})" if i.value else ""))
        if len(shown) > _MAX_ISSUES:
            out.append(f"- …and {len(shown) - _MAX_ISSUES} more (see the full report).")
    out += ["", "*ketascreen supports a clinician's decision; it never replaces it.*"]
    return "\n".join(out)


def assessment_card(
    assessment: Assessment,
    *,
    what: str,
    route_known: bool = True,
    route_note: str | None = None,
    source_label: str,
    source_url: str | None,
    report_url: str | None,
    issues: list[MappingIssue] | None = None,
    where: Callable[[str], str] = lambda p: p,
    notes: list[str] | None = None,
    dev_mode: bool = False,
    suggestions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One card for an assessment (see the module docstring)."""
    decision = card_decision(assessment, route_known)
    indicator = indicator_for(decision, assessment.urgent)
    source: dict[str, Any] = {"label": source_label}
    if source_url:
        source["url"] = source_url
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": summary_text(assessment, decision, what),
        "indicator": indicator,
        "detail": detail_markdown(assessment, decision, route_note=route_note,
                                  issues=issues or [], where=where, notes=notes or [],
                                  dev_mode=dev_mode),
        "source": source,
    }
    if suggestions:
        card["suggestions"] = suggestions
        card["selectionBehavior"] = "at-most-one"
    if indicator != "info":
        card["overrideReasons"] = [dict(r) for r in OVERRIDE_REASONS]
    if report_url:
        card["links"] = [{"label": "Full ketascreen report", "url": report_url,
                          "type": "absolute"}]
    return card
