"""SSM parameters (SecureString, decrypted), cached in-process for five minutes.

A warm Lambda reads each parameter once per ``CACHE_SECONDS``, so a rotated value is picked
up within that time without a deploy. Values are secrets: this module never logs them, and
callers must not either.
"""

from __future__ import annotations

import time

from handlers.shared import clients

CACHE_SECONDS = 300.0

# name -> (value, time.monotonic() when fetched)
_cache: dict[str, tuple[str, float]] = {}


def get_parameter(name: str) -> str:
    """The decrypted value of parameter ``name``; raises what boto3 raises on a fault
    (``ParameterNotFound``, access denied...), which is never cached."""
    now = time.monotonic()
    hit = _cache.get(name)
    if hit is not None and now - hit[1] < CACHE_SECONDS:
        return hit[0]
    response = clients.client("ssm").get_parameter(Name=name, WithDecryption=True)
    value = response["Parameter"]["Value"]
    _cache[name] = (value, now)
    return value


def clear_cache() -> None:
    """Forget every cached value (tests; a test that swaps the AWS backend calls this)."""
    _cache.clear()
