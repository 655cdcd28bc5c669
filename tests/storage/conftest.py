"""Storage tests run against SQLite and the real PostgreSQL server (see fixtures.py)."""

from tests.storage import fixtures

# The shared fixtures, made visible to pytest here.
_quick_argon2 = fixtures._quick_argon2
database_url = fixtures.database_url
db = fixtures.db
db_kind = fixtures.db_kind
db_templates = fixtures.db_templates
