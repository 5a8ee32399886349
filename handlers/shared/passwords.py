"""Password hashing (scrypt: memory-hard, per-user salt) and the password policy.

A hash records its own parameters (``scrypt$<n>$<r>$<p>$<salt>$<hash>``), so they can be
raised later: ``needs_rehash`` says when a stored hash is weaker than today's settings.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from handlers.shared.common_passwords import COMMON_PASSWORDS

N, R, P = 2 ** 14, 8, 1          # 16 MiB per hash; about 50 ms on a Lambda
KEY_BYTES = 32
MIN_LENGTH, MAX_LENGTH = 10, 128


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, dklen=KEY_BYTES,
                            maxmem=64 * 1024 * 1024)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str | None) -> bool:
    """Constant-time check; an absent or malformed hash is checked against a dummy so a
    caller cannot tell the cases apart by timing."""
    try:
        scheme, n, r, p, salt, digest = (stored or "").split("$")
        if scheme != "scrypt":
            raise ValueError
        n, r, p = int(n), int(r), int(p)
        salt_bytes = base64.b64decode(salt, validate=True)
        expected = base64.b64decode(digest, validate=True)
        # Parameters scrypt accepts within maxmem; anything else is malformed, not a fault.
        if not (1 < n <= 2 ** 20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16
                and 128 * r * n <= 64 * 1024 * 1024 and salt_bytes and 16 <= len(expected) <= 64):
            raise ValueError
    except (ValueError, TypeError):
        n, r, p, salt_bytes, expected = N, R, P, b"\0" * 16, b"\1" * KEY_BYTES
        stored = None
    actual = hashlib.scrypt(password.encode(), salt=salt_bytes, n=n, r=r, p=p,
                            dklen=len(expected), maxmem=128 * 1024 * 1024)
    return hmac.compare_digest(actual, expected) and stored is not None


def needs_rehash(stored: str) -> bool:
    try:
        _, n, r, p, _, _ = stored.split("$")
        return (int(n), int(r), int(p)) < (N, R, P)
    except ValueError:
        return True


def policy_problem(password: str, email: str | None = None) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    lowered = password.lower()
    if lowered in COMMON_PASSWORDS or len(set(lowered)) < 4:
        return "is too common; choose another"
    if email and lowered == email.lower():
        return "must not be your e-mail address"
    return None
