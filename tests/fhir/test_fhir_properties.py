"""The FHIR reader is total: whatever JSON arrives, it reports problems with paths, never a
traceback, and what it reads is either a valid intake or a list of problems."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ketascreen.adapters.fhir_r4 import bundle_to_intake, read_bundle
from ketascreen.core.kb import KnowledgeBase
from ketascreen.core.model import Intake
from ketascreen.errors import IntakeError, Problem
from ketascreen.testing import BASELINE_DATE
from tests.fhir.builders import (
    ICD10CM,
    LOINC,
    SNOMED,
    allergy,
    bp,
    coded_observation,
    coding,
    condition,
    family,
    med_statement,
    patient,
)

_KEYS = ["resourceType", "id", "status", "code", "coding", "system", "value", "subject",
         "clinicalStatus", "birthDate", "gender", "component", "valueQuantity", "entry",
         "resource", "effectiveDateTime", "item", "answer", "linkId", "reference", "text"]
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False)
    | st.text(max_size=12) | st.sampled_from([LOINC, SNOMED, ICD10CM, "final", "Patient",
                                              "Condition", "Observation", "2026-11-01",
                                              "mm[Hg]", "85354-9", "8480-6"]),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(_KEYS), inner, max_size=5),
    max_leaves=25)

_RESOURCES = st.sampled_from([
    condition("c1", coding(ICD10CM, "F20.9")),
    condition("c2", coding(SNOMED, "59621000"), clinical="remission"),
    med_statement("m1", "36437", "sertraline", dose_mg=50),
    allergy("a1", text="latex"),
    family("f1", "MTH", coding(ICD10CM, "F31.9")),
    bp("b1", 130, 85, "2026-11-01"),
    coded_observation("p1", "82810-3", coding(LOINC, "LA26683-5"), "2026-11-10"),
])


def _mutate(resource: dict[str, Any], junk: Any, key: str) -> dict[str, Any]:
    out = dict(resource)
    out[key] = junk
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(junk=_JSON, extra=st.lists(st.tuples(_RESOURCES, _JSON, st.sampled_from(_KEYS)),
                                  max_size=4))
def test_reading_never_fails_and_every_problem_has_a_path(
        kb: KnowledgeBase, junk: Any, extra: list[tuple[dict[str, Any], Any, str]]) -> None:
    entries: list[Any] = [{"resource": patient()}, junk]
    entries += [{"resource": _mutate(r, j, k)} for r, j, k in extra]
    data = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    mapped = read_bundle(data, kb=kb, today=BASELINE_DATE)
    for issue in mapped.issues:
        assert issue.path and issue.message
    problems: list[Problem] = []
    intake: Intake | None = None
    try:
        intake, _ = bundle_to_intake(data, kb=kb, today=BASELINE_DATE)
    except IntakeError as exc:
        problems = exc.problems
    if intake is None:
        assert problems and all(p.field for p in problems)
    else:
        assert intake.assessed_on == BASELINE_DATE


@settings(max_examples=60, deadline=None)
@given(junk=_JSON)
def test_any_json_at_all_is_read_or_refused_cleanly(kb: KnowledgeBase, junk: Any) -> None:
    mapped = read_bundle(junk, kb=kb, today=BASELINE_DATE)
    assert mapped.errors or (isinstance(junk, dict) and junk.get("resourceType") == "Bundle")
