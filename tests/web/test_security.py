"""Security headers, cookies, settings, logging without patient data, and faults without
tracebacks."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi import FastAPI

from ketascreen.errors import InputError
from ketascreen.testing import merge_intake
from ketascreen.web.security import RateLimiter, csrf_token_for, csrf_valid
from ketascreen.web.settings import WEB_SETTINGS_DOC, WebSettings
from tests.web.answers import healthy_answers
from tests.web.conftest import SECRET, TestClient, login
from tests.web.test_patient import complete, submit

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", ["/", "/login", "/api/v1/rules", "/health", "/nowhere",
                                  "/static/app.css", "/api/v1/docs"])
def test_security_headers_everywhere(client: TestClient, path: str) -> None:
    r = client.get(path)
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"  # private links never leave the site
    if not path.startswith("/static/"):
        assert r.headers["cache-control"] == "no-store"


def test_pages_have_no_inline_scripts_or_styles(client: TestClient) -> None:
    for path in ("/", "/login", "/api/v1/docs"):
        html = client.get(path).text
        assert "<script>" not in html and "<script " in html  # only the external file
        assert 'src="/static/app.js"' in html
        assert "<style" not in html and "style=" not in html and "onclick" not in html


def test_cookies_are_secure_httponly_samesite(client: TestClient) -> None:
    r = client.get("/")
    csrf_cookie = r.headers["set-cookie"]
    assert csrf_cookie.startswith("ks_csrf=")
    for flag in ("HttpOnly", "Secure", "SameSite=strict"):
        assert flag in csrf_cookie
    token = r.text.split('name="csrf_token" value="')[1][:64]
    started = client.post("/screening/start", data={"csrf_token": token},
                          follow_redirects=False)
    draft = started.headers["set-cookie"]
    assert draft.startswith("ks_draft=") and "HttpOnly" in draft and "Secure" in draft
    assert "Path=/screening" in draft


def test_csrf_tokens() -> None:
    token = csrf_token_for(SECRET, "cookie-value")
    assert csrf_valid(SECRET, "cookie-value", token)
    assert not csrf_valid(SECRET, "other-cookie", token)
    assert not csrf_valid("another secret " * 3, "cookie-value", token)
    assert not csrf_valid(SECRET, None, token) and not csrf_valid(SECRET, "cookie-value", None)


def test_rate_limiter_window() -> None:
    limiter = RateLimiter(2, window_s=60)
    assert limiter.allow("a", now=0) and limiter.allow("a", now=1)
    assert not limiter.allow("a", now=2) and limiter.allow("b", now=2)
    assert limiter.retry_after("a", now=2) == 59
    assert limiter.allow("a", now=61)


def test_logs_hold_no_patient_data(client: TestClient, caplog: pytest.LogCaptureFixture
                                   ) -> None:
    caplog.set_level(logging.DEBUG)
    client.post("/api/v1/assessments", json=merge_intake({
        "id": "Jane Doe MRN 0042", "medications": [{"name": "sertraline"}]}))
    review, _ = complete(client, healthy_answers(age=37, medicine_list="fluoxetine",
                                                 takes_medicines=True))
    result = submit(client, review.text)
    token = result.url.path.rsplit("/", 1)[1]
    client.post("/api/v1/assessments", json={"age": "Jane Doe"})
    # Everything the server side logged (the test's own HTTP client, httpx, logs URLs itself).
    text = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("httpx"))
    assert "POST /api/v1/assessments 200" in text  # requests are logged…
    assert "GET /r/{token} 200" in text
    for secret in ("Jane", "0042", "sertraline", "fluoxetine", token):
        assert secret not in text  # …but never what they carry


def test_a_fault_answers_500_without_a_traceback(app: FastAPI, client: TestClient,
                                                 caplog: pytest.LogCaptureFixture,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    screener = app.state.ks.screener

    marker = "".join(["9f", "8e"])  # built here, so it is not in any source line

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError(f"secret patient detail {marker}")

    monkeypatch.setattr(screener, "screen", broken)
    r = client.post("/api/v1/assessments", json=merge_intake())
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "internal_error"
    assert "Traceback" not in r.text and "9f8e" not in r.text
    logged = "\n".join(rec.getMessage() for rec in caplog.records)
    assert "internal error RuntimeError" in logged and "9f8e" not in logged
    page = client.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 200  # the app carries on


def test_settings_precedence_and_validation(tmp_path: Path) -> None:
    env = {"KETASCREEN_PORT": "9000", "KETASCREEN_HOST": "0.0.0.0",
           "KETASCREEN_DATA_DIR": str(tmp_path), "KETASCREEN_SESSION_HOURS": "2"}
    s = WebSettings.from_env(env, port=9100)
    assert s.port == 9100 and s.host == "0.0.0.0" and s.session_hours == 2
    assert s.database_url == f"sqlite:///{tmp_path / 'ketascreen.db'}"
    assert s.secret_source == "generated" and len(s.secret_key) >= 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    assert WebSettings.from_env(env).secret_key == s.secret_key  # kept across restarts
    assert s.base_url == "http://127.0.0.1:9100"
    with pytest.raises(InputError) as err:
        WebSettings.from_env({**env, "KETASCREEN_PORT": "99999",
                              "KETASCREEN_SELF_SCREENING_INSTRUMENTS": "phq9,mmse"})
    fields = {p.field for p in err.value.problems}
    assert fields == {"KETASCREEN_PORT", "KETASCREEN_SELF_SCREENING_INSTRUMENTS"}
    none = WebSettings.from_env({**env, "KETASCREEN_SELF_SCREENING_INSTRUMENTS": "none"})
    assert none.self_screening_instruments == ()


def test_self_screening_asks_only_what_its_licence_allows(tmp_path: Path) -> None:
    env = {"KETASCREEN_DATA_DIR": str(tmp_path)}
    assert WebSettings.from_env(env).self_screening_instruments == ("phq9", "gad7", "pcl5")
    for name, label in [("cssrs_screen", "C-SSRS screener"), ("audit_c", "AUDIT-C"),
                        ("mdq", "MDQ"), ("dast10", "DAST-10")]:
        with pytest.raises(InputError) as err:
            WebSettings.from_env({**env, "KETASCREEN_SELF_SCREENING_INSTRUMENTS": f"phq9,{name}"})
        problems = err.value.problems
        assert {p.field for p in problems} == {"KETASCREEN_SELF_SCREENING_INSTRUMENTS"}
        why = problems[0].message
        assert why.startswith(f"{name} ({label}) cannot be asked in the self-screening")
        assert "its licence does not allow ketascreen to ship its questions" in why
        assert "The clinic asks it" in why and "Value error" not in why
        assert problems[-1].message == "The self-screening can ask: phq9, gad7, pcl5."
    with pytest.raises(InputError, match="mmse is not a validated questionnaire"):
        WebSettings.from_env({**env, "KETASCREEN_SELF_SCREENING_INSTRUMENTS": "mmse"})


@pytest.mark.parametrize("secret", [None, "change-me", "secret", "short-but-not-placeholder"])
def test_production_refuses_a_placeholder_secret(tmp_path: Path, secret: str | None) -> None:
    env = {"KETASCREEN_ENV": "production", "KETASCREEN_DATA_DIR": str(tmp_path)}
    if secret is not None:
        env["KETASCREEN_SECRET_KEY"] = secret
    with pytest.raises(InputError) as err:
        WebSettings.from_env(env)
    assert err.value.problems[0].field == "KETASCREEN_SECRET_KEY"


def test_production_with_a_real_secret(tmp_path: Path) -> None:
    s = WebSettings.from_env({"KETASCREEN_ENV": "production", "KETASCREEN_DATA_DIR":
                              str(tmp_path), "KETASCREEN_SECRET_KEY": "r" * 48})
    assert s.is_production
    with pytest.raises(InputError, match="HTTPS"):
        WebSettings.from_env({"KETASCREEN_ENV": "production", "KETASCREEN_DATA_DIR":
                              str(tmp_path), "KETASCREEN_SECRET_KEY": "r" * 48,
                              "KETASCREEN_COOKIE_SECURE": "false"})


def test_every_setting_is_documented() -> None:
    docs = (ROOT / "docs" / "web.md").read_text(encoding="utf-8")
    for name in WEB_SETTINGS_DOC:
        assert f"`{name}`" in docs, name
    fields = set(WebSettings.model_fields) - {"secret_source"}
    documented = {n.removeprefix("KETASCREEN_").lower() for n in WEB_SETTINGS_DOC}
    assert fields <= documented | {"env"}


def test_a_session_ends_with_logout(client: TestClient, accounts: object) -> None:
    login(client, "admin@clinic.test")
    cookie = client.cookies.get("ks_session")
    assert cookie and len(cookie) >= 43
    assert client.get("/clinic", follow_redirects=False).status_code == 200
    token = client.get("/clinic").text.split('name="csrf_token" value="')[1][:64]
    client.post("/logout", data={"csrf_token": token})
    client.cookies.clear()
    replayed = client.get("/clinic", headers={"Cookie": f"ks_session={cookie}"},
                          follow_redirects=False)
    assert replayed.status_code == 303  # the old session token opens nothing any more
