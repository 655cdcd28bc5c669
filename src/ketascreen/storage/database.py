"""The database connection: SQLite (WAL, durable commits) by default, PostgreSQL by URL.

``Database`` owns the engine. ``read()`` and ``write()`` give sessions; a write transaction on
SQLite starts with ``BEGIN IMMEDIATE`` so concurrent writers queue for the lock instead of
failing half-way, and every commit is flushed to disk (``synchronous=FULL``): a screening that
was acknowledged survives a crash of the server or of the machine. Nothing here runs at import.
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from ketascreen.storage.config import normalize_url, redact_url

__all__ = ["Database", "StorageError"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
ALEMBIC_INI = Path(__file__).resolve().parent / "alembic.ini"
_WRITE = "ketascreen_write"


class StorageError(Exception):
    """The database cannot be opened or used (a clear message, never a traceback)."""


class Database:
    """One database: its engine, sessions, migrations and readiness check."""

    def __init__(self, url: str, *, pool_size: int = 10, busy_timeout_s: float = 30.0) -> None:
        self.url = normalize_url(url)
        try:
            parsed = make_url(self.url)
        except Exception as exc:  # sqlalchemy raises ArgumentError, ValueError…
            raise StorageError(f"database URL {redact_url(url)!r} is not valid: {exc}") from exc
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise StorageError(f"unsupported database {self.dialect!r}: use sqlite:///PATH or "
                               "postgresql://USER@HOST/DB")
        self.path: Path | None = None
        if self.is_sqlite:
            if not parsed.database or parsed.database == ":memory:":
                raise StorageError("SQLite needs a file (sqlite:///path/to/ketascreen.db): "
                                   "an in-memory database would lose every screening")
            self.path = Path(parsed.database).expanduser().resolve()
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(f"cannot create the data folder {self.path.parent}: "
                                   f"{exc.strerror}") from exc
            self.engine: Engine = create_engine(
                f"sqlite:///{self.path}",
                connect_args={"timeout": busy_timeout_s, "check_same_thread": False},
                pool_size=pool_size, max_overflow=2 * pool_size, pool_timeout=60)
            _sqlite_events(self.engine, busy_timeout_s)
        else:
            # No ping before each use (a round trip per transaction); a connection the server
            # dropped fails one request, and SQLAlchemy then renews the whole pool.
            self.engine = create_engine(self.url, pool_size=pool_size,
                                        max_overflow=2 * pool_size, pool_recycle=1800,
                                        pool_timeout=60)
        self._write_engine = self.engine.execution_options(**{_WRITE: True})
        self._thread_lock = threading.Lock()
        self._lock_file: IO[str] | None = None
        # PostgreSQL reads run in autocommit: under READ COMMITTED each statement sees its own
        # snapshot either way, and it spares a BEGIN and a ROLLBACK round trip per request.
        reader = self.engine if self.is_sqlite else self.engine.execution_options(
            isolation_level="AUTOCOMMIT")
        self._reader = sessionmaker(reader, expire_on_commit=False)
        self._writer = sessionmaker(self._write_engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def display_url(self) -> str:
        return redact_url(self.url)

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only unit of work (rolled back at the end)."""
        with self._reader() as session:
            try:
                yield session
            finally:
                session.rollback()

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction: committed when the block ends, rolled back on any error."""
        if not self.is_sqlite:
            with self._writer() as session, session.begin():
                yield session
            return
        # SQLite has one writer at a time. Writers queue on a lock (threads of this process,
        # then processes on a lock file) and wake the moment it is free, instead of polling
        # SQLite's busy handler with growing sleeps: higher throughput, far lower tail latency.
        with self._thread_lock:
            handle = self._lock_handle()
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                with self._writer() as session, session.begin():
                    yield session
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _lock_handle(self) -> IO[str]:
        if self._lock_file is None:
            assert self.path is not None
            self._lock_file = self.path.with_name(self.path.name + ".write.lock").open("a")
        return self._lock_file

    def ping(self) -> bool:
        """True when the database answers (for /health)."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            return False

    def dispose(self) -> None:
        self.engine.dispose()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    # ----------------------------------------------------------------------------------------
    # Migrations

    def upgrade(self, revision: str = "head") -> None:
        """Apply the Alembic migrations (idempotent; safe when several processes start)."""
        from alembic import command

        cfg = self.alembic_config()
        with self._migration_lock(), self._write_engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            conn.commit()

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head_revision(self) -> str | None:
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(self.alembic_config()).get_current_head()

    def alembic_config(self) -> Any:
        from alembic.config import Config

        cfg = Config(str(ALEMBIC_INI))
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        return cfg

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        if self.is_sqlite:
            assert self.path is not None
            lock_path = self.path.with_name(self.path.name + ".migrate.lock")
            with lock_path.open("a") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)
            return
        with self.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(727274)"))
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(727274)"))
                conn.commit()


def _sqlite_events(engine: Engine, busy_timeout_s: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below decide how each transaction starts.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
