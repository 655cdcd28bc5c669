"""A fake EHR for the CDS Hooks tests: its signing keys (RS384 and ES384, made here with
`cryptography`), its JWK Set and FHIR server behind an in-process httpx MockTransport (never the
network), JWT minting, and the service mounted in a FastAPI app called in-process."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from ketascreen.cds_hooks.service import create_router
from ketascreen.cds_hooks.settings import CdsSettings
from ketascreen.cds_hooks.storage import InMemoryFeedbackStore
from ketascreen.services import Screener
from ketascreen.testing import BASELINE_DATE
from tests.fhir.builders import (
    ICD10CM,
    LOINC,
    RXNORM,
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

ISSUER = "https://ehr.example"
JWKS_URL = "https://ehr.example/.well-known/jwks.json"
FHIR = "https://ehr.example/fhir"
BASE = "https://ketascreen.example"
PATIENT_VIEW = "ketascreen-patient-view"
ORDER_SIGN = "ketascreen-order-sign"
ORDER_SELECT = "ketascreen-order-select"


@dataclass
class Keys:
    rsa: rsa.RSAPrivateKey
    ec: ec.EllipticCurvePrivateKey
    jwks: dict[str, Any]


@pytest.fixture(scope="session")
def keys() -> Keys:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP384R1())
    rsa_jwk = json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key()))
    ec_jwk = json.loads(ECAlgorithm.to_jwk(ec_key.public_key()))
    rsa_jwk.update(kid="rsa-1", alg="RS384", use="sig")
    ec_jwk.update(kid="ec-1", alg="ES384", use="sig")
    return Keys(rsa_key, ec_key, {"keys": [rsa_jwk, ec_jwk]})


def mint(keys: Keys, *, aud: str | list[str] = f"{BASE}/cds-services/{PATIENT_VIEW}",
         iss: str = ISSUER, alg: str = "RS384", kid: str | None = None, exp_in: int = 120,
         jti: str | None = None, headers: dict[str, Any] | None = None,
         drop: tuple[str, ...] = ()) -> str:
    """A CDS Hooks 2.0 client JWT, as an EHR signs it."""
    now = int(time.time())
    claims: dict[str, Any] = {"iss": iss, "sub": "ehr-client-1", "aud": aud, "iat": now,
                              "exp": now + exp_in, "jti": jti or str(uuid.uuid4())}
    for name in drop:
        claims.pop(name, None)
    key: Any = keys.rsa if alg.startswith("RS") else keys.ec
    hdr = {"typ": "JWT", "kid": kid or ("rsa-1" if alg.startswith("RS") else "ec-1"),
           **(headers or {})}
    return jwt.encode(claims, key, algorithm=alg, headers=hdr)


def resource_bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "entry": [{"fullUrl": f"{FHIR}/{r['resourceType']}/{r['id']}", "resource": r,
                       "search": {"mode": "match"}} for r in resources]}


def chart() -> dict[str, dict[str, Any]]:
    """The patient's record on the fake FHIR server, by prefetch key."""
    return {
        "patient": patient(birth="1984-05-02", gender="female", birthsex="F"),
        "conditions": resource_bundle(
            condition("c1", coding(SNOMED, "370143000", "Major depressive disorder"),
                      coding(ICD10CM, "F33.2"), onset="2018"),
            condition("c2", coding(ICD10CM, "I67.1", "Cerebral aneurysm, nonruptured"),
                      onset="2021-03-09")),
        "medicationStatements": resource_bundle(
            med_statement("m1", "36437", "sertraline", dose_mg=150)),
        "medicationRequests": resource_bundle(),
        "allergies": resource_bundle(allergy("a1", coding(SNOMED, "716186003",
                                                          "No known allergy"))),
        "familyHistory": resource_bundle(family("f1", "FTH", coding(ICD10CM, "F31.9"))),
        "bloodPressure": resource_bundle(bp("bp1", 128, 82, "2026-11-10")),
        "heartRate": resource_bundle(),
        "pregnancy": resource_bundle(coded_observation(
            "pg", "82810-3", coding(LOINC, "LA26683-5", "Not pregnant"), "2026-11-10")),
        "questionnaireResponses": resource_bundle(),
    }


@dataclass
class FakeEhr:
    """The EHR's JWK Set and FHIR server, as an httpx MockTransport."""

    jwks: dict[str, Any]
    record: dict[str, dict[str, Any]] = field(default_factory=chart)
    requests: list[httpx.Request] = field(default_factory=list)
    fhir_status: int = 200
    delay: float = 0.0

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        url = str(request.url)
        if url == JWKS_URL:
            return httpx.Response(200, json=self.jwks)
        if not url.startswith(FHIR + "/"):
            return httpx.Response(404, json={"resourceType": "OperationOutcome"})
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fhir_status != 200:
            return httpx.Response(self.fhir_status, json={"resourceType": "OperationOutcome"})
        path = url[len(FHIR) + 1:]
        key = _key_for(path)
        if key is None:
            return httpx.Response(404, json={"resourceType": "OperationOutcome"})
        return httpx.Response(200, json=self.record[key],
                              headers={"Content-Type": "application/fhir+json"})

    def fhir_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if str(r.url).startswith(FHIR)]


def _key_for(path: str) -> str | None:
    if path.startswith("Patient/"):
        return "patient"
    kind, _, query = path.partition("?")
    by_type = {"Condition": "conditions", "MedicationStatement": "medicationStatements",
               "MedicationRequest": "medicationRequests", "AllergyIntolerance": "allergies",
               "FamilyMemberHistory": "familyHistory",
               "QuestionnaireResponse": "questionnaireResponses"}
    if kind in by_type:
        return by_type[kind]
    if kind == "Observation":
        if "85354-9" in query:
            return "bloodPressure"
        if "8867-4" in query:
            return "heartRate"
        if "82810-3" in query:
            return "pregnancy"
    return None


@pytest.fixture
def ehr(keys: Keys) -> FakeEhr:
    return FakeEhr(keys.jwks)


@pytest.fixture(scope="session")
def shared_screener() -> Screener:
    return Screener()


class Service:
    """The CDS Hooks router in an app, called in-process through httpx's ASGI transport."""

    def __init__(self, app: FastAPI, store: InMemoryFeedbackStore) -> None:
        self.app = app
        self.store = store

    def request(self, method: str, url: str, *, token: str | None = None,
                json_body: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"

        async def go() -> httpx.Response:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),
                                         base_url=BASE) as client:
                return await client.request(method, url, json=json_body, headers=hdrs)

        return asyncio.run(go())

    def call(self, service: str, body: dict[str, Any], token: str | None) -> httpx.Response:
        return self.request("POST", f"/cds-services/{service}", token=token, json_body=body)


@pytest.fixture
def make_service(ehr: FakeEhr, shared_screener: Screener) -> Callable[..., Service]:
    def make(**overrides: Any) -> Service:
        settings = CdsSettings(**{
            "trusted_issuers": {ISSUER: (JWKS_URL,)}, "base_url": BASE,
            "rules_url": f"{BASE}/rules", "transport": ehr.transport(), "fetch_timeout": 0.3,
            **overrides})
        store = InMemoryFeedbackStore()
        app = FastAPI()
        app.include_router(create_router(settings, feedback_store=store, screener=shared_screener,
                                         today=lambda: BASELINE_DATE))
        return Service(app, store)

    return make


@pytest.fixture
def service(make_service: Callable[..., Service]) -> Service:
    return make_service()


def hook_request(hook: str = "patient-view", *, prefetch: dict[str, Any] | None = None,
                 with_server: bool = True, **context: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hookInstance": str(uuid.uuid4()), "hook": hook,
        "context": {"userId": "Practitioner/dr-1", "patientId": "example", **context},
    }
    if with_server:
        body["fhirServer"] = FHIR
        body["fhirAuthorization"] = {"access_token": "ehr-access-token-123",
                                     "token_type": "Bearer", "expires_in": 300,
                                     "scope": "user/Patient.read user/Observation.read",
                                     "subject": "ehr-client-1"}
    if prefetch is not None:
        body["prefetch"] = prefetch
    return body


def ketamine_order(oid: str = "ket-1", *, route: tuple[str, str] | None = (
        "47625008", "Intravenous route"), name: str = "ketamine hydrochloride 50 MG/ML "
        "Injectable Solution", rxnorm: str | None = "6130") -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "MedicationRequest", "id": oid, "status": "draft", "intent": "order",
        "medicationCodeableConcept": {"coding": [coding(RXNORM, rxnorm, name)] if rxnorm
                                      else [], "text": name},
        "subject": {"reference": "Patient/example"},
    }
    if route is not None:
        res["dosageInstruction"] = [{"text": "0.5 mg/kg IV over 40 minutes",
                                     "route": {"coding": [coding(SNOMED, *route)]}}]
    return res


def draft_orders(*orders: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": o} for o in orders]}
