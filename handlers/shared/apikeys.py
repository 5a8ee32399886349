"""API keys: ``lbk_`` followed by a random url-safe string.

Only the sha256 of a key is stored (the api-keys table is keyed by it), so the key itself
is shown once, when it is created, and can never be read back. A leaked table does not
leak usable keys.
"""

from __future__ import annotations

import hashlib
import re
import secrets

PREFIX = "lbk_"
_RANDOM_BYTES = 32          # token_urlsafe(32) -> 43 characters
_MIN_BODY, _MAX_BODY = 40, 128
_KEY = re.compile(rf"{PREFIX}[A-Za-z0-9_-]{{{_MIN_BODY},{_MAX_BODY}}}")


def generate() -> tuple[str, str]:
    """A new key and its hash (store the hash, show the key once)."""
    key = PREFIX + secrets.token_urlsafe(_RANDOM_BYTES)
    return key, hash_key(key)


def hash_key(key: str) -> str:
    """sha256 hex of the full key, prefix included: the api-keys table key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def looks_like_key(s: object) -> bool:
    """Whether ``s`` has the shape of a key (prefix, url-safe charset, sane length)."""
    return isinstance(s, str) and _KEY.fullmatch(s) is not None
