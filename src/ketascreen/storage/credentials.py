"""Passwords (argon2id) and random tokens (stored only as SHA-256 digests)."""

from __future__ import annotations

import hashlib
import secrets
from functools import lru_cache
from typing import Any

__all__ = ["dummy_verify", "hash_password", "new_token", "token_digest", "verify_password"]

MIN_PASSWORD_LENGTH = 12


@lru_cache(maxsize=1)
def _hasher() -> Any:
    from argon2 import PasswordHasher

    return PasswordHasher()  # argon2id with the library's current recommended parameters


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return str(_hasher().hash(password))


def verify_password(stored_hash: str, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return bool(_hasher().verify(stored_hash, password))
    except (VerificationError, InvalidHashError):
        return False


def dummy_verify(password: str) -> None:
    """Spend the time of a real check (so an unknown e-mail answers as slowly as a known one)."""
    verify_password(_dummy_hash(), password)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return str(_hasher().hash(secrets.token_urlsafe(16)))


def new_token(prefix: str = "", nbytes: int = 32) -> str:
    """An unguessable token: ``nbytes`` random bytes (256 bits by default), URL-safe."""
    return prefix + secrets.token_urlsafe(nbytes)


def token_digest(token: str) -> str:
    """What is stored for a token: its SHA-256 (a database leak gives no usable tokens)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
