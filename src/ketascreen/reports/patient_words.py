"""Plain words for the patient letter: what a missing answer is about, next steps, what would change.

Aimed at about a US grade-8 reading level (checked by tests/test_report_documents.py with
textstat). Warm and non-judgemental; "not right now" is not "never". No rule ids, codes or
field names ever reach the letter: an answer with no topic here is shown as a general question.
"""

from __future__ import annotations

import re

_INDEX = re.compile(r"\[\d+\]")

# What each missing answer is about, completing "Your clinic still needs to ask you about ...".
MISSING_TOPICS: dict[str, str] = {
    "symptoms.suicidal": "any thoughts of ending your life",
    "symptoms.suicide_attempt": "whether you have ever tried to end your life",
    # The C-SSRS screener is never in ketascreen's own questionnaire (its licence does not allow
    # shipping the questions): the clinic asks it, so the words say who asks and when.
    "instruments.cssrs_screen": ("thoughts of death or suicide, with a few standard safety "
                                 "questions at your next visit"),
    "age": "your age",
    "conditions": "your health conditions, now and in the past",
    "conditions[].controlled": "whether a health problem you listed is under control",
    "medications": "all the medicines you take, including ones you buy without a prescription",
    "medications[].dose": "how much of a medicine you take each day",
    "substances": "any use of alcohol or drugs",
    "substances[].disorder": "whether alcohol or drug use has ever been hard to control",
    "substances[].last_use": "when you last used alcohol or a drug",
    "substances[].recovery_support": "the support you have for recovery",
    "substances.recovery_support": "the support you have for recovery",
    "allergies": "any allergies to medicines",
    "family_history": "mental health problems in your family",
    "pregnancy": "pregnancy and breastfeeding",
    "pregnancy.pregnant": "whether you might be pregnant",
    "pregnancy.breastfeeding": "whether you are breastfeeding",
    "pregnancy.planning": "whether you are planning a pregnancy",
    "symptoms.psychosis_now": "whether you see or hear things that others do not, right now",
    "symptoms.mania_now": "whether your mood or energy is unusually high right now",
    "symptoms.hallucinations_past": "whether you have seen or heard things others did not, in the past",
    "symptoms.dissociation": "how often you feel cut off from yourself or your surroundings",
    "symptoms.bp_red_flags": "chest pain, headaches or other warning signs right now",
    "vitals": "a recent blood pressure reading",
    "vitals.heart_rate": "your resting heart rate",
    "vitals.taken_on": "the date your blood pressure was taken",
    "readiness.own_choice": "whether this treatment is your own choice",
    "readiness.pressured": "whether anyone is pushing you into treatment",
    "readiness.can_consent": "how the treatment works, to be sure it is clear to you",
    "readiness.expects_quick_fix": "what you hope treatment will do for you",
    "readiness.integration_support": "who can help you talk through your sessions",
    "readiness.open_to_therapy": "how you feel about talk therapy as part of treatment",
    "readiness.can_attend_series": "whether you can come to a series of sessions",
    "readiness.ride_home": "who can drive you home after each session",
    "readiness.support_person": "who can be with you for the rest of the day after a session",
    "readiness.session_monitor": "who can stay with you during each session at home",
    "readiness.safe_storage": "where you can lock the medicine away at home",
    "prior_ketamine.received": "any ketamine you have had before",
    "prior_ketamine.misuse": "any ketamine you have had before",
    "prior_ketamine.adverse_reaction": "how ketamine affected you before",
    "labs.child_pugh": "recent blood tests of your liver",
    "labs.alt": "recent blood tests of your liver",
    "labs.ast": "recent blood tests of your liver",
    "labs.alp": "recent blood tests of your liver",
    "labs.ggt": "recent blood tests of your liver",
    "instruments": "a few short health questionnaires",
}
GENERAL_TOPIC = "one more question about your health"


def missing_topic(field: str) -> str:
    """The plain topic of a missing answer, from its field path (never the path itself)."""
    key = _INDEX.sub("[]", field)
    return MISSING_TOPICS.get(key) or MISSING_TOPICS.get(key.split(".", 1)[0], GENERAL_TOPIC)


def missing_topics(fields: list[str]) -> list[str]:
    """Distinct topics, in the order given (the most important first)."""
    out: list[str] = []
    for name in fields:
        topic = missing_topic(name)
        if topic not in out:
            out.append(topic)
    return out


# Headings for the findings, by severity: temporary obstacles are "not right now".
FINDING_GROUP: dict[str, str] = {
    "exclude": "Not recommended",
    "defer": "Not right now",
    "evaluation": "A closer look",
    "precaution": "Part of your plan",
}

NEXT_STEPS: dict[str, list[str]] = {
    "eligible": [
        "Share this letter with the clinic.",
        "At your first visit, a clinician will go over your health and your goals with you.",
        "Before each session, your blood pressure is checked again.",
    ],
    "eligible_with_precautions": [
        "Share this letter with the clinic.",
        "At your first visit, a clinician will go over the points above and make a plan with you.",
        "Before each session, your blood pressure is checked again.",
    ],
    "needs_evaluation": [
        "Share this letter with the clinic.",
        "A clinician will meet with you to talk about the points above.",
        "After that talk, you and your clinician decide together what comes next.",
    ],
    "incomplete": [
        "Answer the questions listed above with your clinic.",
        "Then the screening can be done again, and you will get a clearer result.",
    ],
    "defer": [
        "Work on the points under \"Not right now\" with your care team.",
        "When things change, ask your clinic to screen you again.",
        "Keep going with the care you have now.",
    ],
    "not_recommended": [
        "Talk with your clinician about other treatments that may help you.",
        "Keep going with the care you have now.",
    ],
}
ALWAYS_NEXT = ("Do not stop or change a medicine without talking to the person who "
               "prescribes it.")

WHAT_WOULD_CHANGE: dict[str, str] = {
    "needs_evaluation": ("The clinician's review decides. Many people go on to have "
                         "treatment after this talk."),
    "incomplete": "Answering the questions above will give you a clear result.",
    "defer": ("This is not a \"no\". The points under \"Not right now\" can change. When they "
              "do, you can be screened again."),
    "not_recommended": ("This result is about ketamine only. Other treatments can still help, "
                        "and your clinician can talk them through with you."),
}
