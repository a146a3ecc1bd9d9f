"""Password hashing (argon2id via argon2-cffi) and the password policy."""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from kabarfeed.errors import InputError

MIN_LENGTH = 10
MAX_LENGTH = 1024
"""Longer passwords are refused before hashing (argon2 would hash them, slowly)."""

_HASHER = PasswordHasher()
"""argon2id with the library's RFC 9106 "low memory" defaults; immutable."""


def check_policy(password: str) -> str:
    """``password`` if acceptable, else :class:`InputError` saying why."""
    if len(password) < MIN_LENGTH:
        raise InputError(f"the password must have at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise InputError(f"the password must have at most {MAX_LENGTH} characters")
    if not password.strip():
        raise InputError("the password must not be only spaces")
    return password


def hash_password(password: str) -> str:
    """The argon2id hash string of ``password`` (salted; includes its parameters)."""
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored``. With no stored hash (unknown
    account, password not set yet) a dummy hash is verified instead, so the
    answer takes as long either way and reveals nothing."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _HASHER.verify(stored or _dummy_hash(), password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` was made with weaker parameters than today's."""
    return _HASHER.check_needs_rehash(stored)


@functools.cache
def _dummy_hash() -> str:
    return _HASHER.hash("kabarfeed: no such account")
