"""Property-based API tests: schemathesis generates requests from /api/v1/openapi.json (valid
ones, and invalid ones) and checks that no answer is a server error and every answer matches the
documented schema (status code, content type, headers, body). Bounded examples, so it stays
quick; on both databases."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, checks

from tests.web.conftest import Accounts

# The routes this API documents; the CDS Hooks service mounted beside it has its own tests.
OURS = r"^/(api/v1/|health)"
CHECKS = [checks.not_a_server_error, checks.status_code_conformance,
          checks.content_type_conformance, checks.response_schema_conformance,
          checks.response_headers_conformance]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_never_fails_and_matches_its_schema(app: FastAPI, accounts: Accounts,
                                                mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app).include(
        path_regex=OURS)
    headers = accounts.bearer("clinician")
    tested = []
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid schema raises here
        if mode is GenerationMode.NEGATIVE and not (
                operation.body or operation.query or operation.path_parameters
                or operation.headers):
            continue  # nothing in the request to make invalid (GET /health)
        tested.append(operation.label)

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=10, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        run()
    assert "POST /api/v1/assessments" in tested and "GET /api/v1/screenings" in tested
    assert len(tested) >= 5
