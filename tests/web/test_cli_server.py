"""The server's commands: serve, db upgrade, users, tokens, audit verify (both databases)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from ketascreen.cli.app import app
from ketascreen.storage import Database, Tokens, Users
from tests.storage.dbs import Templates, fresh_url
from tests.web.conftest import PASSWORD, SECRET
from tests.web.live import free_port

runner = CliRunner()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("KETASCREEN_") and name != "KETASCREEN_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)


@pytest.fixture
def empty_url(db_kind: str, db_templates: Templates, tmp_path: Path) -> object:
    with fresh_url(db_kind, db_templates, tmp_path, migrated=False) as url:
        yield url


def cli(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_db_upgrade_then_accounts_and_tokens(empty_url: str) -> None:
    url = str(empty_url)
    code, out, _ = cli("db", "upgrade", "--database-url", url)
    assert code == 0 and "revision 0001" in out
    code, out, _ = cli("users", "create", "--email", "Boss@Clinic.test", "--role", "admin",
                       "--password-stdin", "--database-url", url, stdin=PASSWORD + "\n")
    assert code == 0 and "created admin account boss@clinic.test" in out
    code, _, err = cli("users", "create", "--email", "boss@clinic.test", "--role", "viewer",
                       "--password-stdin", "--database-url", url, stdin=PASSWORD + "\n")
    assert code == 2 and "already exists" in err
    code, _, err = cli("users", "create", "--email", "x@clinic.test", "--role", "viewer",
                       "--password-stdin", "--database-url", url, stdin="short\n")
    assert code == 2 and "12 characters" in err
    code, _, err = cli("users", "create", "--email", "x@clinic.test", "--role", "root",
                       "--password-stdin", "--database-url", url, stdin=PASSWORD + "\n")
    assert code == 2
    code, out, _ = cli("users", "list", "--database-url", url)
    assert code == 0 and "boss@clinic.test\tadmin\tactive" in out
    code, out, _ = cli("tokens", "create", "--email", "boss@clinic.test", "--database-url", url)
    assert code == 0
    token = out.strip()
    assert re.fullmatch(r"ks_[A-Za-z0-9_-]{43}", token)
    db = Database(url)
    try:
        with db.read() as s:
            assert Tokens(s).authenticate(token) is not None
        code, out, _ = cli("tokens", "revoke", "--email", "boss@clinic.test",
                           "--database-url", url)
        assert code == 0 and "revoked 1 token" in out
        with db.read() as s:
            assert Tokens(s).authenticate(token) is None
        code, _, err = cli("tokens", "create", "--email", "nobody@clinic.test",
                           "--database-url", url)
        assert code == 2 and "no active account" in err
        code, out, _ = cli("users", "set-password", "--email", "boss@clinic.test",
                           "--password-stdin", "--database-url", url,
                           stdin="a brand new passphrase\n")
        assert code == 0
        with db.write() as s:
            from ketascreen.storage import Actor

            result = Users(s).authenticate("boss@clinic.test", "a brand new passphrase",
                                           actor=Actor("test"))
            assert result.reason == "ok"
        code, out, _ = cli("audit", "verify", "--database-url", url)
        assert code == 0 and "audit log OK" in out
        with db.engine.begin() as conn:
            if db.dialect == "postgresql":
                conn.exec_driver_sql("ALTER TABLE audit_log DISABLE TRIGGER USER")
            else:
                conn.exec_driver_sql("DROP TRIGGER audit_log_no_update")
            conn.exec_driver_sql("UPDATE audit_log SET actor = 'forged' WHERE seq = 1")
        code, out, err = cli("audit", "verify", "--database-url", url)
        assert code == 1 and "entry 1: content does not match its hash" in out
        assert "problem" in err
    finally:
        db.dispose()


def test_database_errors_are_one_line(tmp_path: Path) -> None:
    code, _, err = cli("db", "upgrade", "--database-url", "mysql://u@h/db")
    assert code == 2 and "unsupported database" in err
    code, _, err = cli("audit", "verify", "--database-url",
                       "postgresql://postgres@127.0.0.1:1/none")
    assert code == 1 and "cannot use the database" in err and "Traceback" not in err


def test_the_password_prompt(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    code, out, _ = cli("users", "create", "--email", "p@clinic.test", "--role", "clinician",
                       "--database-url", url, stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert code == 0 and "created clinician account" in out


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ketascreen.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_serve_refuses_a_placeholder_secret_in_production(tmp_path: Path) -> None:
    env = {**os.environ, "KETASCREEN_ENV": "production", "KETASCREEN_SECRET_KEY": "change-me",
           "KETASCREEN_DATA_DIR": str(tmp_path)}
    result = _run(["serve"], env)
    assert result.returncode == 2
    assert "KETASCREEN_SECRET_KEY" in result.stderr and "Traceback" not in result.stderr


def test_serve_refuses_an_instrument_it_may_not_ask(tmp_path: Path) -> None:
    env = {**os.environ, "KETASCREEN_DATA_DIR": str(tmp_path),
           "KETASCREEN_SELF_SCREENING_INSTRUMENTS": "phq9,cssrs_screen"}
    result = _run(["serve"], env)
    assert result.returncode == 2
    said = " ".join(result.stderr.split())
    assert "KETASCREEN_SELF_SCREENING_INSTRUMENTS: cssrs_screen (C-SSRS screener) cannot be " \
        "asked in the self-screening: its licence does not allow ketascreen to ship its " \
        "questions" in said
    assert "The self-screening can ask: phq9, gad7, pcl5." in said
    assert "Traceback" not in result.stderr and not list(tmp_path.glob("*.db"))


def test_serve_starts_and_says_where(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "KETASCREEN_DATA_DIR": str(tmp_path / "data"),
           "KETASCREEN_SECRET_KEY": SECRET}
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "-m", "ketascreen.cli", "serve", "--port",
                                   str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    text = log.read_text()
    assert f"ketascreen is starting at http://127.0.0.1:{port}/" in text
    assert "ketascreen users create --email you@example.org --role admin" in text
    assert (tmp_path / "data" / "ketascreen.db").exists()
    assert "Traceback" not in text
