"""The stateless API speaks FHIR both ways: a Bundle in, and a Bundle out on request."""

from __future__ import annotations

from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle

from ketascreen.testing import merge_intake


def test_assessment_as_fhir_bundle(client: TestClient) -> None:
    r = client.post("/api/v1/assessments",
                    json=merge_intake({"id": "fhir-1", "conditions": [{"code": "I71.20"}]}),
                    headers={"Accept": "application/fhir+json"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/fhir+json")
    bundle = Bundle.model_validate(r.json())
    kinds = [e.resource.get_resource_type() for e in bundle.entry or [] if e.resource]
    assert "RiskAssessment" in kinds
    assert "DetectedIssue" in kinds


def test_plain_json_stays_the_default(client: TestClient) -> None:
    r = client.post("/api/v1/assessments", json=merge_intake())
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["decision"] == "eligible"
