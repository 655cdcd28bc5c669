"""Fixtures shared by the storage and web tests: a fresh database of each kind (SQLite and
PostgreSQL), and fast password hashing. Imported by both conftest files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ketascreen.storage import Database
from tests.storage.dbs import KINDS, Templates, fresh_url


@pytest.fixture(scope="session")
def db_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    templates = Templates(tmp_path_factory.mktemp("db-templates"))
    yield templates
    templates.close()


@pytest.fixture(scope="session", autouse=True)
def _quick_argon2() -> Iterator[None]:
    """Cheap argon2id parameters for tests (same algorithm, far less memory and time)."""
    from argon2 import PasswordHasher

    from ketascreen.storage import credentials

    mp = pytest.MonkeyPatch()
    quick = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    mp.setattr(credentials, "_hasher", lambda: quick)
    yield
    mp.undo()


@pytest.fixture(params=KINDS)
def db_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(db_kind: str, db_templates: Templates, tmp_path: Path) -> Iterator[str]:
    with fresh_url(db_kind, db_templates, tmp_path) as url:
        yield url


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()
