"""Complete questionnaire answers for an unremarkable adult, for tests, benchmarks and
screenshots. ``healthy_answers(**changes)`` returns a fresh copy with ``changes`` applied."""

from __future__ import annotations

from typing import Any

# Every validated questionnaire the self-screening can ask (the others are left to the clinic:
# their licences do not allow shipping their questions).
ALL_INSTRUMENTS = frozenset({"phq9", "gad7", "pcl5"})
SUBSTANCES = ("alcohol", "cannabis", "stimulants", "cocaine", "methamphetamine", "opioids",
              "sedatives", "ketamine", "hallucinogens", "nicotine", "other")

_HEALTHY: dict[str, Any] = {
    "age": 40, "sex": "female", "reasons": ["treatment_resistant_depression"], "route": "iv",
    "pregnant": "no", "breastfeeding": False, "planning_pregnancy": False,
    "suicidal": "none", "suicide_attempt": "none", "hallucinations_past": False,
    "psychosis_now": False, "mania_now": False, "dissociation": "none",
    **{f"phq9_{i}": 1 for i in range(1, 9)}, "phq9_9": 0, **{f"gad7_{i}": 1 for i in range(1, 8)},
    "diagnoses": ["depression"], "family_psychosis": ["none"], "family_bipolar": ["none"],
    "bp_red_flags": False, "heart_conditions": ["none"], "knows_bp": False,
    "body_conditions": ["none"], "takes_medicines": False, "has_allergies": False,
    "ketamine_before": False,
    **{f"sub_{s}": "never" for s in SUBSTANCES},
    "own_choice": True, "pressured": False, "expects_quick_fix": False,
    "can_attend_series": True, "ride_home": True, "support_person": True,
    "integration_support": True, "open_to_therapy": True,
}


def healthy_answers(**changes: Any) -> dict[str, Any]:
    answers = {k: (list(v) if isinstance(v, list) else v) for k, v in _HEALTHY.items()}
    answers.update(changes)
    return answers


def form_value(value: Any) -> str | list[str]:
    """An answer as a browser would post it."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return [str(v) for v in value]
    return str(value)
