"""Rendering an Assessment for people: text, Markdown and HTML, for clinicians or patients.

All formats come from Jinja templates shipped in ``reports/templates``; a view model prepared
here keeps the templates free of logic. The clinician report is built to print on one or two
pages and be filed in a chart (``reports.pdf`` turns its HTML into a PDF/A). The patient letter
is written at about a grade-8 reading level, shows no rule ids or codes, and puts crisis
contacts first whenever suicide risk is flagged.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

from ketascreen.core.model import DECISION_RANK, ROUTES, Assessment, Finding
from ketascreen.reports import patient_words

Audience = Literal["clinician", "patient"]
Format = Literal["text", "markdown", "html"]

DECISION_LABEL = {
    "eligible": "Eligible",
    "eligible_with_precautions": "Eligible with precautions",
    "needs_evaluation": "Needs clinical evaluation",
    "incomplete": "Incomplete: answers missing",
    "defer": "Defer (not right now)",
    "not_recommended": "Not recommended",
}
PATIENT_DECISION_LABEL = {
    "eligible": "No concerns found in this screening",
    "eligible_with_precautions": "No concerns that rule treatment out",
    "needs_evaluation": "A clinician needs to take a closer look",
    "incomplete": "A few answers are still needed",
    "defer": "Not right now",
    "not_recommended": "Ketamine is not recommended for you",
}
ROUTE_LABEL = {
    "iv": "IV infusion",
    "im": "Intramuscular injection",
    "intranasal": "Esketamine nasal spray",
    "oral": "Oral / sublingual",
}
ROUTE_SHORT = {"iv": "IV", "im": "IM", "intranasal": "Nasal", "oral": "Oral"}
SEVERITY_LABEL = {
    "exclude": "Exclude",
    "defer": "Defer",
    "evaluation": "Evaluate",
    "precaution": "Precaution",
    "info": "Info",
}
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
# Shown when no configured contacts are passed in (the CLI passes the configured ones).
DEFAULT_CRISIS_CONTACTS = (
    "If you are in danger or thinking about ending your life, call or text 988 (the Suicide & "
    "Crisis Lifeline) or call your local emergency number now. Please do not wait for the "
    "clinic."
)


def _finding_view(f: Finding) -> dict[str, Any]:
    return {
        "rule": f.rule,
        "title": f.title,
        "category": f.category,
        "severity": f.severity,
        "severity_label": SEVERITY_LABEL[f.severity],
        "group": patient_words.FINDING_GROUP.get(f.severity, ""),
        "urgent": f.urgent,
        "clinician": f.clinician,
        "patient": f.patient,
        "evidence": [
            {"field": e.field, "value": e.value, "meaning": e.meaning} for e in f.evidence
        ],
        "actions": f.actions,
        "sources": [{"id": s.id, "citation": s.citation, "url": s.url} for s in f.sources],
        "claims": f.claims,
        "routes": ", ".join(f.routes),
        "route_set": set(f.routes),
    }


def _references(findings: list[Finding]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for f in findings:
        for s in f.sources:
            seen.setdefault(s.id, {"id": s.id, "citation": s.citation, "url": s.url})
    return sorted(seen.values(), key=lambda s: _source_order(s["id"]))


def _source_order(sid: str) -> tuple[int, int, str]:
    digits = sid[1:] if sid[:1] == "S" else ""
    return (0, int(digits), sid) if digits.isdigit() else (1, 0, sid)


def view_model(a: Assessment, audience: str, disclaimer: str = "", *,
               crisis_contacts: str | None = None) -> dict[str, Any]:
    findings = [_finding_view(f) for f in a.findings]
    # Urgent findings are shown first, on their own; the rest follow under "What we found".
    patient_findings = [f for f in findings if f["severity"] != "info" and not f["urgent"]]
    suicide_flagged = any(f["category"] == "suicide_risk" and f["severity"] != "info"
                          for f in findings)
    matrix = [f for f in findings if f["severity"] != "info"]
    missing = [m.model_dump() for m in a.missing]
    decision = a.decision
    return {
        "a": a,
        "audience": audience,
        "id": a.id or "(no id)",
        "as_of": a.as_of.isoformat(),
        "as_of_long": f"{_MONTHS[a.as_of.month - 1]} {a.as_of.day}, {a.as_of.year}",
        "decision": decision,
        "decision_label": DECISION_LABEL[decision],
        "patient_decision_label": PATIENT_DECISION_LABEL[decision],
        "urgent": a.urgent,
        "urgent_findings": [f for f in findings if f["urgent"]],
        "findings": findings,
        "info_count": sum(1 for f in findings if f["severity"] == "info"),
        "patient_findings": patient_findings,
        "suicide_flagged": suicide_flagged,
        "crisis_contacts": crisis_contacts or DEFAULT_CRISIS_CONTACTS,
        "missing": missing,
        "blocking_count": sum(1 for m in missing if m["blocking"]),
        "missing_topics": patient_words.missing_topics([m["field"] for m in missing]),
        "unrecognized": [u.model_dump() for u in a.unrecognized],
        "routes": [
            {"route": r, "label": ROUTE_LABEL[r], "short": ROUTE_SHORT[r], "decision": d,
             "decision_label": DECISION_LABEL[d],
             "held": DECISION_RANK[d] >= DECISION_RANK["defer"], "asked": a.route == r}
            for r, d in a.routes.items()
        ],
        "route_order": list(ROUTES),
        "matrix": matrix,
        "scores": [{"key": k, **s.model_dump()} for k, s in a.scores.items()],
        "references": _references(a.findings),
        "summary": a.summary,
        "notes": a.notes,
        "protocol": a.protocol,
        "knowledge_base": a.knowledge_base,
        "contract_version": a.contract_version,
        "trace": [t.model_dump() for t in a.trace] if a.trace else [],
        "disclaimer": disclaimer,
        "next_steps": [*patient_words.NEXT_STEPS[decision], patient_words.ALWAYS_NEXT],
        "what_would_change": patient_words.WHAT_WOULD_CHANGE.get(decision, ""),
    }


@lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("ketascreen.reports", "templates"),
        # Templates are named *.html.j2: escape by that full ending, or caller text goes raw.
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"),
                                            default_for_string=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["wrap"] = _wrap
    return env


def _wrap(text: str, width: int = 92, indent: int = 0) -> str:
    import textwrap

    pad = " " * indent
    return textwrap.fill(" ".join(str(text).split()), width=width, initial_indent=pad,
                         subsequent_indent=pad)


_EXT = {"text": "txt", "markdown": "md", "html": "html"}


def render(a: Assessment, fmt: str, audience: str = "clinician",
           disclaimer: str = "", *, crisis_contacts: str | None = None) -> str:
    """One assessment as a report in ``fmt`` for ``audience``."""
    if fmt == "html":
        return render_many([a], fmt, audience, disclaimer, crisis_contacts=crisis_contacts)
    template = _environment().get_template(f"{audience}.{_EXT[fmt]}.j2")
    return str(template.render(**view_model(a, audience, disclaimer,
                                            crisis_contacts=crisis_contacts)))


def render_many(items: list[Assessment], fmt: str, audience: str = "clinician",
                disclaimer: str = "", *, crisis_contacts: str | None = None) -> str:
    """Several assessments in one document (HTML gets one page with a section each)."""
    if fmt != "html":
        sep = "\n" + ("-" * 92 if fmt == "text" else "---") + "\n\n"
        return sep.join(render(a, fmt, audience, disclaimer, crisis_contacts=crisis_contacts)
                        for a in items)
    template = _environment().get_template(f"{audience}.html.j2")
    views = [{**view_model(a, audience, disclaimer, crisis_contacts=crisis_contacts),
              "index": i + 1} for i, a in enumerate(items)]
    title = _title(items, audience)
    return str(template.render(items=views, disclaimer=disclaimer, title=title))


def _title(items: list[Assessment], audience: str) -> str:
    if audience == "patient":
        return "Your ketamine screening"
    if len(items) == 1:
        return f"ketascreen screening report {items[0].id or ''}".rstrip()
    return f"ketascreen screening reports ({len(items)})"
