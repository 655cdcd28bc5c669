"""Test databases: every storage and API test runs against SQLite and the real PostgreSQL.

A migrated template of each is made once per session; each test gets a fresh copy (a file copy
for SQLite, ``CREATE DATABASE … TEMPLATE`` for PostgreSQL), and the PostgreSQL copies are dropped
afterwards. The PostgreSQL server comes from ``KETASCREEN_TEST_POSTGRES_URL``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from ketascreen.storage import Database

PG_ADMIN_URL = os.environ.get("KETASCREEN_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
KINDS = ("sqlite", "postgresql")


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def pg_url(name: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(_libpq(PG_ADMIN_URL), autocommit=True)


class Templates:
    """Migrated template databases, made on first use."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.sqlite_file: Path | None = None
        self.pg_name: str | None = None

    def sqlite(self) -> Path:
        if self.sqlite_file is None:
            path = self.workdir / "template.db"
            db = Database(f"sqlite:///{path}")
            db.upgrade()
            db.dispose()
            self.sqlite_file = path
        return self.sqlite_file

    def postgresql(self) -> str:
        if self.pg_name is None:
            name = f"ks_tmpl_{uuid.uuid4().hex[:10]}"
            with _admin() as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            db = Database(pg_url(name))
            db.upgrade()
            db.dispose()
            self.pg_name = name
        return self.pg_name

    def close(self) -> None:
        if self.pg_name is not None:
            with _admin() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')


@contextmanager
def fresh_url(kind: str, templates: Templates, tmp: Path, *, migrated: bool = True
              ) -> Iterator[str]:
    """The URL of a new, empty database of ``kind`` (migrated unless told otherwise)."""
    if kind == "sqlite":
        path = tmp / f"ks-{uuid.uuid4().hex[:8]}.db"
        if migrated:
            shutil.copyfile(templates.sqlite(), path)
        yield f"sqlite:///{path}"
        return
    name = f"ks_test_{uuid.uuid4().hex[:12]}"
    with _admin() as conn:
        if migrated:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{templates.postgresql()}"')
        else:
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_url(name)
    finally:
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
