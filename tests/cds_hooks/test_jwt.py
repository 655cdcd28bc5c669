"""Trusting the EHR: every JWT failure is refused with 401; RS384 and ES384 from a trusted
issuer pass; the development mode says so loudly."""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from ketascreen.cds_hooks.settings import CdsSettings
from ketascreen.errors import InputError
from tests.cds_hooks.conftest import (
    BASE,
    ISSUER,
    JWKS_URL,
    PATIENT_VIEW,
    FakeEhr,
    Keys,
    Service,
    chart,
    hook_request,
    mint,
)

AUD = f"{BASE}/cds-services/{PATIENT_VIEW}"


def body() -> dict[str, Any]:
    return hook_request(prefetch=chart())


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_a_good_token_is_accepted(service: Service, keys: Keys, alg: str) -> None:
    r = service.call(PATIENT_VIEW, body(), mint(keys, alg=alg))
    assert r.status_code == 200, r.text


def test_aud_may_be_a_list_holding_the_service_url(service: Service, keys: Keys) -> None:
    token = mint(keys, aud=["https://elsewhere.example", AUD + "/"])
    assert service.call(PATIENT_VIEW, body(), token).status_code == 200


def _unsigned(claims: dict[str, Any]) -> str:
    def part(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT', 'kid': 'rsa-1'})}.{part(claims)}."


def _claims() -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": AUD, "iat": now, "exp": now + 60, "jti": str(uuid.uuid4())}


@pytest.mark.parametrize(("make_token", "reason"), [
    (lambda k: mint(k, aud=f"{BASE}/cds-services/ketascreen-order-sign"), "aud must be"),
    (lambda k: mint(k, aud="https://attacker.example/cds-services/x"), "aud must be"),
    (lambda k: mint(k, exp_in=-120), "expired"),
    (lambda k: mint(k, iss="https://unknown-ehr.example"), "not trusted"),
    (lambda k: _unsigned(_claims()), "alg 'none' is not accepted"),
    (lambda k: jwt.encode(_claims(), "a-shared-secret-that-is-long-enough-for-hs384-xx",
                          algorithm="HS384", headers={"kid": "rsa-1"}), "alg 'HS384'"),
    (lambda k: mint(k, alg="RS256"), "alg 'RS256'"),
    (lambda k: mint(k, kid="nobody"), "no key with kid"),
    (lambda k: mint(k, headers={"jku": "https://attacker.example/jwks.json"}), "jku"),
    (lambda k: mint(k, drop=("jti",)), "no jti claim"),
    (lambda k: mint(k, drop=("exp",)), "no exp claim"),
    (lambda k: mint(k, exp_in=3600), "longer than five minutes"),
    (lambda k: mint(k)[:-6] + "AAAAAA", "not valid"),
    (lambda k: "not-a-jwt", "not a JWT"),
], ids=["wrong-audience", "foreign-audience", "expired", "unknown-issuer", "alg-none",
        "shared-secret", "rs256", "unknown-kid", "jku-not-allowed", "no-jti", "no-exp",
        "too-long-lived", "bad-signature", "garbage"])
def test_every_jwt_failure_is_refused_with_401(service: Service, keys: Keys,
                                               make_token: Callable[[Keys], str],
                                               reason: str) -> None:
    r = service.call(PATIENT_VIEW, body(), make_token(keys))
    assert r.status_code == 401, r.text
    assert reason in r.json()["error"]["message"]
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_no_authorization_header_is_401(service: Service) -> None:
    r = service.call(PATIENT_VIEW, body(), None)
    assert r.status_code == 401
    assert "Authorization: Bearer JWT is required" in r.json()["error"]["message"]


def test_a_replayed_token_is_refused(service: Service, keys: Keys) -> None:
    token = mint(keys)
    assert service.call(PATIENT_VIEW, body(), token).status_code == 200
    again = service.call(PATIENT_VIEW, body(), token)
    assert again.status_code == 401
    assert "already used" in again.json()["error"]["message"]


def test_a_token_from_another_key_is_refused(service: Service, keys: Keys) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    token = jwt.encode({"iss": ISSUER, "aud": AUD, "iat": now, "exp": now + 60,
                        "jti": str(uuid.uuid4())}, stranger, algorithm="RS384",
                       headers={"kid": "rsa-1"})
    assert service.call(PATIENT_VIEW, body(), token).status_code == 401


def test_jku_is_followed_only_when_on_the_allow_list(make_service: Callable[..., Service],
                                                     keys: Keys, ehr: FakeEhr) -> None:
    service = make_service(trusted_issuers={ISSUER: ("https://ehr.example/other.json",
                                                     JWKS_URL)})
    token = mint(keys, headers={"jku": JWKS_URL})
    assert service.call(PATIENT_VIEW, body(), token).status_code == 200
    assert [str(r.url) for r in ehr.requests] == [JWKS_URL]  # the default URL never fetched


def test_the_jwk_set_is_cached(service: Service, keys: Keys, ehr: FakeEhr) -> None:
    for _ in range(3):
        assert service.call(PATIENT_VIEW, body(), mint(keys)).status_code == 200
    assert [str(r.url) for r in ehr.requests] == [JWKS_URL]


def test_an_unreachable_jwk_set_is_401(make_service: Callable[..., Service], keys: Keys) -> None:
    service = make_service(trusted_issuers={ISSUER: ("https://ehr.example/missing.json",)})
    r = service.call(PATIENT_VIEW, body(), mint(keys))
    assert r.status_code == 401 and "JWK Set could not be read" in r.json()["error"]["message"]


def test_feedback_needs_a_valid_jwt_too(service: Service, keys: Keys) -> None:
    url = f"/cds-services/{PATIENT_VIEW}/feedback"
    payload = {"feedback": [{"card": str(uuid.uuid4()), "outcome": "accepted",
                             "outcomeTimestamp": "2026-11-16T10:00:00Z"}]}
    assert service.request("POST", url, json_body=payload).status_code == 401
    bad = mint(keys, aud="https://attacker.example")
    assert service.request("POST", url, json_body=payload, token=bad).status_code == 401


def test_development_mode_says_so_loudly(make_service: Callable[..., Service],
                                         caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ketascreen.cds_hooks"):
        service = make_service(verify_jwt=False)
        r = service.call(PATIENT_VIEW, body(), None)
    assert r.status_code == 200
    card = r.json()["cards"][0]
    assert "DEVELOPMENT MODE" in card["source"]["label"]
    assert card["detail"].startswith("**DEVELOPMENT MODE")
    warnings = [rec.message for rec in caplog.records if rec.levelno == logging.WARNING]
    assert sum("verification is OFF" in m for m in warnings) >= 2  # at start and per call


def test_settings_are_read_and_checked() -> None:
    settings = CdsSettings.from_env({
        "KETASCREEN_CDS_TRUSTED_ISSUERS": json.dumps({ISSUER: JWKS_URL,
                                                      "https://b.example": [JWKS_URL]}),
        "KETASCREEN_CDS_VERIFY_JWT": "false", "KETASCREEN_CDS_FETCH_TIMEOUT": "0.25",
        "KETASCREEN_CDS_BASE_URL": "https://k.example/"})
    assert settings.trusted_issuers == {ISSUER: (JWKS_URL,), "https://b.example": (JWKS_URL,)}
    assert settings.verify_jwt is False and settings.fetch_timeout == 0.25
    assert settings.base_url == "https://k.example"
    with pytest.raises(InputError) as caught:
        CdsSettings.from_env({"KETASCREEN_CDS_TRUSTED_ISSUERS": "[1]",
                              "KETASCREEN_CDS_VERIFY_JWT": "perhaps",
                              "KETASCREEN_CDS_FETCH_TIMEOUT": "-1"})
    assert {p.field for p in caught.value.problems} == {
        "KETASCREEN_CDS_TRUSTED_ISSUERS", "KETASCREEN_CDS_VERIFY_JWT",
        "KETASCREEN_CDS_FETCH_TIMEOUT"}
