"""Storage: SQLAlchemy tables, repositories and Alembic migrations (SQLite default, PostgreSQL).

::

    db = Database(database_url_from(None))   # flag > KETASCREEN_DATABASE_URL > ./data SQLite
    db.upgrade()                             # Alembic migrations (also run on server start)
    with db.write() as s:                    # one transaction; audit entries commit with it
        record, created = Screenings(s).create(NewScreening.from_assessment(intake, a, source="api"),
                                               actor=Actor("api:ks_abc"))
    with db.read() as s:
        report = verify(s)                   # the audit chain and every stored screening

Screenings, shares, reviews, the audit log and CDS feedback are append-only (database triggers
refuse UPDATE and DELETE). See docs/web.md.
"""

from ketascreen.storage.audit import Actor, VerifyReport, verify
from ketascreen.storage.config import data_dir_from, database_url_from, redact_url
from ketascreen.storage.database import Database, StorageError
from ketascreen.storage.repositories import (
    ROLES,
    CdsFeedbackLog,
    CdsFeedbackRecord,
    Conflict,
    Drafts,
    NewScreening,
    NotFound,
    ReviewRecord,
    ScreeningFilter,
    ScreeningRecord,
    Screenings,
    Sessions,
    Tokens,
    UserRecord,
    Users,
)

__all__ = [
    "ROLES",
    "Actor",
    "CdsFeedbackLog",
    "CdsFeedbackRecord",
    "Conflict",
    "Database",
    "Drafts",
    "NewScreening",
    "NotFound",
    "ReviewRecord",
    "ScreeningFilter",
    "ScreeningRecord",
    "Screenings",
    "Sessions",
    "StorageError",
    "Tokens",
    "UserRecord",
    "Users",
    "VerifyReport",
    "data_dir_from",
    "database_url_from",
    "redact_url",
    "verify",
]
