"""Fixtures for the web tests: the app on each database, a client, accounts and tokens."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from ketascreen.storage import Actor, Database, Tokens, UserRecord, Users
from ketascreen.web.app import create_app
from ketascreen.web.settings import WebSettings
from tests.storage import fixtures

# The fixtures shared with the storage tests (a fresh database of each kind).
_quick_argon2 = fixtures._quick_argon2
database_url = fixtures.database_url
db = fixtures.db
db_kind = fixtures.db_kind
db_templates = fixtures.db_templates

with warnings.catch_warnings():
    # Starlette's test client asks for the `httpx2` package; plain httpx works the same here.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

__all__ = ["TestClient"]

PASSWORD = "correct horse battery staple"
SECRET = "test-secret-" + "k" * 40


def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> WebSettings:
    values: dict[str, Any] = {"data_dir": str(tmp_path / "data"), "database_url": database_url,
                              "secret_key": SECRET, "migrate_on_start": False}
    values.update(overrides)
    return WebSettings.from_env({}, **values)


@dataclass
class Accounts:
    admin: UserRecord
    clinician: UserRecord
    viewer: UserRecord
    admin_token: str
    clinician_token: str
    viewer_token: str

    def bearer(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {getattr(self, role + '_token')}"}


def make_accounts(database: Database) -> Accounts:
    actor = Actor("test")
    with database.write() as s:
        users = Users(s)
        admin = users.create("admin@clinic.test", "admin", PASSWORD, actor=actor)
        clinician = users.create("clinician@clinic.test", "clinician", PASSWORD, actor=actor)
        viewer = users.create("viewer@clinic.test", "viewer", PASSWORD, actor=actor)
        tokens = Tokens(s)
        return Accounts(admin, clinician, viewer, tokens.create(admin, actor=actor)[0],
                        tokens.create(clinician, actor=actor)[0],
                        tokens.create(viewer, actor=actor)[0])


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> WebSettings:
    return make_settings(tmp_path, database_url)


@pytest.fixture
def app(settings: WebSettings, db: Database) -> FastAPI:
    return create_app(settings, database=db)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url="https://testserver") as c:
        yield c


@pytest.fixture
def accounts(db: Database) -> Accounts:
    return make_accounts(db)


CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')


def csrf(client: TestClient, url: str = "/") -> str:
    found = CSRF.search(client.get(url).text)
    assert found, f"no CSRF token on {url}"
    return found.group(1)


def login(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    token = csrf(client, "/login")
    return client.post("/login", data={"csrf_token": token, "email": email,
                                       "password": password, "next": "/clinic"},
                       follow_redirects=False)
