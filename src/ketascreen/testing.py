"""Intake factories shared by ketascreen's tests, the rule examples, and users' own tests.

``baseline_intake()`` is a complete intake of a healthy adult in which every must-have answer is
given and nothing is of concern; rule examples and scenarios are fragments merged onto it, so
each example shows only what matters to the rule.
"""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

__all__ = ["BASELINE_DATE", "baseline_intake", "merge_intake"]

BASELINE_DATE = date(2026, 11, 16)

_BASELINE: dict[str, Any] = {
    "id": "baseline",
    "assessed_on": "2026-11-16",
    "age": 45,
    "sex": "male",
    "route": "iv",
    "indications": ["treatment_resistant_depression"],
    "conditions": [{"code": "F33.1", "status": "active"}],
    "family_history": [],
    "medications": [],
    "allergies": [],
    "substances": [],
    "vitals": {"systolic": 122, "diastolic": 76, "heart_rate": 72, "taken_on": "2026-11-10"},
    "symptoms": {
        "psychosis_now": False,
        "mania_now": False,
        "hallucinations_past": False,
        "dissociation": "none",
        "suicidal": "none",
        "suicide_attempt": "none",
    },
    "readiness": {
        "own_choice": True,
        "pressured": False,
        "can_consent": True,
        "expects_quick_fix": False,
        "support_person": True,
        "integration_support": True,
        "open_to_therapy": True,
        "can_attend_series": True,
        "ride_home": True,
        "session_monitor": True,
        "safe_storage": True,
    },
}

# Keys whose value is an object: a fragment's keys are merged into the baseline's, not replacing it.
_MERGED = ("vitals", "symptoms", "readiness", "pregnancy", "labs")


def baseline_intake() -> dict[str, Any]:
    """A fresh copy of the complete, unremarkable baseline intake (as plain JSON data)."""
    return copy.deepcopy(_BASELINE)


def merge_intake(
    fragment: dict[str, Any] | None = None, unset: list[str] | None = None
) -> dict[str, Any]:
    """The baseline with ``fragment`` merged in and the dotted paths in ``unset`` removed.

    Lists and plain values replace the baseline's; ``vitals``, ``symptoms``, ``readiness``,
    ``pregnancy`` and ``labs`` merge key by key. ``unset: ["symptoms.mania_now"]`` removes an
    answer so that it counts as not asked.
    """
    data = baseline_intake()
    for key, value in (fragment or {}).items():
        if key in _MERGED and isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **copy.deepcopy(value)}
        else:
            data[key] = copy.deepcopy(value)
    for path in unset or ():
        parts = path.split(".")
        node: Any = data
        for part in parts[:-1]:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(parts[-1], None)
    # A female baseline must answer the pregnancy questions, unless the fragment says otherwise.
    if data.get("sex") != "male" and "pregnancy" not in data and "pregnancy" not in (unset or ()):
        data["pregnancy"] = {"pregnant": "no", "breastfeeding": False, "planning": False}
    return data
