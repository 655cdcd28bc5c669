"""Rendering an Assessment for people: text, Markdown and HTML, for clinicians or patients.

All three formats come from Jinja templates shipped in ``reports/templates``; a view model
prepared here keeps the templates free of logic. Patient reports show no rule ids or codes.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

from ketascreen.core.model import DECISION_RANK, Assessment, Finding

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
SEVERITY_LABEL = {
    "exclude": "Exclude",
    "defer": "Defer",
    "evaluation": "Evaluate",
    "precaution": "Precaution",
    "info": "Info",
}


def _finding_view(f: Finding) -> dict[str, Any]:
    return {
        "rule": f.rule,
        "title": f.title,
        "severity": f.severity,
        "severity_label": SEVERITY_LABEL[f.severity],
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
    }


def view_model(a: Assessment, audience: str, disclaimer: str = "") -> dict[str, Any]:
    findings = [_finding_view(f) for f in a.findings]
    # Urgent findings are shown first, on their own; the rest follow under "What we found".
    patient_findings = [f for f in findings if f["severity"] != "info" and not f["urgent"]]
    return {
        "a": a,
        "audience": audience,
        "id": a.id or "(no id)",
        "as_of": a.as_of.isoformat(),
        "decision": a.decision,
        "decision_label": DECISION_LABEL[a.decision],
        "patient_decision_label": PATIENT_DECISION_LABEL[a.decision],
        "urgent": a.urgent,
        "urgent_findings": [f for f in findings if f["urgent"]],
        "findings": findings,
        "patient_findings": patient_findings,
        "missing": [m.model_dump() for m in a.missing],
        "unrecognized": [u.model_dump() for u in a.unrecognized],
        "routes": [
            {"route": r, "label": ROUTE_LABEL[r], "decision": d, "decision_label":
             DECISION_LABEL[d], "held": DECISION_RANK[d] >= DECISION_RANK["defer"],
             "asked": a.route == r}
            for r, d in a.routes.items()
        ],
        "scores": [s.model_dump() for s in a.scores.values()],
        "summary": a.summary,
        "notes": a.notes,
        "protocol": a.protocol,
        "knowledge_base": a.knowledge_base,
        "trace": [t.model_dump() for t in a.trace] if a.trace else [],
        "disclaimer": disclaimer,
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
           disclaimer: str = "") -> str:
    """One assessment as a report in ``fmt`` for ``audience``."""
    if fmt == "html":
        return render_many([a], fmt, audience, disclaimer)
    template = _environment().get_template(f"{audience}.{_EXT[fmt]}.j2")
    return str(template.render(**view_model(a, audience, disclaimer)))


def render_many(items: list[Assessment], fmt: str, audience: str = "clinician",
                disclaimer: str = "") -> str:
    """Several assessments in one document (HTML gets one page with a section each)."""
    if fmt != "html":
        sep = "\n" + ("-" * 92 if fmt == "text" else "---") + "\n\n"
        return sep.join(render(a, fmt, audience, disclaimer) for a in items)
    template = _environment().get_template(f"{audience}.html.j2")
    views = [{**view_model(a, audience, disclaimer), "index": i + 1} for i, a in enumerate(items)]
    return str(template.render(items=views, disclaimer=disclaimer))
