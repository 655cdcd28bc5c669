"""Where the database is: flag > ``KETASCREEN_DATABASE_URL`` > SQLite in the data folder.

Every command that touches the database (``serve``, ``db upgrade``, ``users``, ``tokens``,
``audit verify``) resolves its URL here, so they always agree.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

__all__ = ["DEFAULT_DATA_DIR", "data_dir_from", "database_url_from", "normalize_url", "redact_url"]

DEFAULT_DATA_DIR = Path("data")
DATABASE_FILE = "ketascreen.db"


def data_dir_from(flag: str | Path | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The data folder: ``flag`` > ``KETASCREEN_DATA_DIR`` > ``./data``."""
    env = os.environ if env is None else env
    chosen = flag or env.get("KETASCREEN_DATA_DIR") or DEFAULT_DATA_DIR
    return Path(chosen).expanduser().resolve()


def database_url_from(flag: str | None = None, env: Mapping[str, str] | None = None, *,
                      data_dir: str | Path | None = None) -> str:
    """The database URL: ``flag`` > ``KETASCREEN_DATABASE_URL`` > SQLite in the data folder."""
    env = os.environ if env is None else env
    url = flag or env.get("KETASCREEN_DATABASE_URL")
    if url:
        return normalize_url(url)
    return f"sqlite:///{data_dir_from(data_dir, env) / DATABASE_FILE}"


def normalize_url(url: str) -> str:
    """Accept the usual spellings of a PostgreSQL URL and use the installed driver (psycopg 3)."""
    url = url.strip()
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def redact_url(url: str) -> str:
    """The URL with any password replaced, safe to print or log."""
    return re.sub(r"(//[^:/@]+:)[^@]*@", r"\1***@", url)
