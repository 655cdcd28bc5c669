"""The REST API's own schemas (request and response bodies), separate from the database rows.

The intake and the assessment are the screening contract's models themselves
(``ketascreen.core.model``); everything around them is defined here.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ketascreen.core.model import Assessment, Decision, Intake

__all__ = [
    "ErrorResponse",
    "HealthOut",
    "ReviewIn",
    "ReviewOut",
    "RuleOut",
    "RulesOut",
    "ScreeningListOut",
    "ScreeningOut",
    "ScreeningSummary",
]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProblemOut(_Out):
    field: str = Field(description="where: a path such as conditions[2].status")
    message: str


class ErrorBody(_Out):
    status: int
    code: str = Field(description="stable, machine-readable: invalid_intake, not_found, …")
    message: str
    problems: list[ProblemOut] = Field(default_factory=list)


class ErrorResponse(_Out):
    """Every error, everywhere."""

    error: ErrorBody


class ReviewIn(BaseModel):
    """A clinician's review: accept the assessment, or record a different decision and why."""

    model_config = ConfigDict(extra="forbid")

    outcome: Literal["accepted", "changed"]
    decision: Decision | None = Field(
        None, description="the clinical decision (required when outcome is 'changed'; when "
        "accepting it must be the assessment's decision or omitted)")
    reason: str | None = Field(None, max_length=5000,
                               description="required when outcome is 'changed'")


class ReviewOut(_Out):
    id: int
    created_at: datetime
    reviewer: str
    outcome: Literal["accepted", "changed"]
    decision: Decision
    reason: str | None
    content_sha256: str = Field(description="digest signed into the audit log")


class VersionRef(_Out):
    name: str | None = None
    version: str
    sha256: str


class ScreeningSummary(_Out):
    id: str
    created_at: datetime
    source: Literal["self", "clinician", "api"]
    reference: str | None
    decision: Decision = Field(description="the assessment's decision")
    clinical_decision: Decision = Field(description="the latest review's decision, else the "
                                        "assessment's")
    urgent: bool
    status: Literal["private", "awaiting_review", "reviewed"]
    as_of: date
    knowledge_base: VersionRef
    protocol: VersionRef


class ScreeningOut(ScreeningSummary):
    previous_id: str | None = Field(description="the screening this one re-screens")
    later_ids: list[str] = Field(description="re-screens of this screening, oldest first")
    content_sha256: str
    intake: Intake
    assessment: Assessment
    reviews: list[ReviewOut]


class ScreeningListOut(_Out):
    items: list[ScreeningSummary]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class RuleOut(_Out):
    id: str
    category: str
    severity: str
    urgent: bool
    routes: list[str]
    title: str
    sources: list[str]
    claims: list[str]


class RulesOut(_Out):
    knowledge_base: VersionRef
    protocol: VersionRef
    deviations: list[str]
    rules: list[RuleOut]


class HealthOut(_Out):
    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unavailable"]
    version: str
    knowledge_base: str


def summary_dict(r: Any) -> dict[str, Any]:
    """A ScreeningSummary as JSON data, from a storage ScreeningRecord."""
    latest = r.latest_review
    return {
        "id": r.id,
        "created_at": r.created_at.isoformat(),
        "source": r.source,
        "reference": r.reference,
        "decision": r.decision,
        "clinical_decision": latest.decision if latest is not None else r.decision,
        "urgent": r.urgent,
        "status": r.status,
        "as_of": r.as_of.isoformat(),
        "knowledge_base": {"name": None, "version": r.kb_version, "sha256": r.kb_sha256},
        "protocol": {"name": r.protocol_name, "version": r.protocol_version,
                     "sha256": r.protocol_sha256},
    }


def review_dict(v: Any) -> dict[str, Any]:
    return {"id": v.id, "created_at": v.created_at.isoformat(), "reviewer": v.reviewer_email,
            "outcome": v.outcome, "decision": v.decision, "reason": v.reason,
            "content_sha256": v.content_sha256}


def screening_json(r: Any) -> str:
    """A ScreeningOut as JSON text: the stored intake and assessment go in as stored (they are
    already JSON), which spares decoding and encoding them on every answer."""
    head = json.dumps({
        **summary_dict(r),
        "previous_id": r.previous_id,
        "later_ids": list(r.later_ids),
        "content_sha256": r.content_sha256,
        "reviews": [review_dict(v) for v in r.reviews],
    }, ensure_ascii=False)
    return f'{head[:-1]},"intake":{r.intake_json},"assessment":{r.assessment_json}}}'
