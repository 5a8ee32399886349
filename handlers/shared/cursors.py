"""Opaque, tamper-safe pagination cursors.

A cursor is DynamoDB's LastEvaluatedKey plus the scope it was issued for (account and
list), serialised, then signed with HMAC-SHA256 under the stage's cursor secret (SSM
parameter named by ``CURSOR_SECRET_PARAM``). A cursor that was altered, or that was issued
for another account or list, is refused with 400.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from decimal import Decimal
from typing import Any, Mapping

from handlers.shared.http import ApiError

DEFAULT_LIMIT = 25
MAX_LIMIT = 100


def _key() -> bytes:
    from handlers.shared.params import get_parameter

    return hashlib.sha256(b"cursor:" + get_parameter(os.environ["CURSOR_SECRET_PARAM"]).encode()).digest()


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"$n": str(value)}
    raise TypeError(type(value).__name__)


def _hook(obj: dict) -> Any:
    return Decimal(obj["$n"]) if set(obj) == {"$n"} else obj


def encode(last_key: Mapping[str, Any] | None, scope: str) -> str | None:
    if not last_key:
        return None
    payload = json.dumps({"k": last_key, "s": scope}, default=_default, separators=(",", ":"),
                         sort_keys=True).encode()
    mac = hmac.new(_key(), payload, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac + payload).decode().rstrip("=")


def decode(cursor: str | None, scope: str) -> dict | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        mac, payload = raw[:16], raw[16:]
        if not hmac.compare_digest(mac, hmac.new(_key(), payload, hashlib.sha256).digest()[:16]):
            raise ValueError
        data = json.loads(payload, object_hook=_hook)
        if data.get("s") != scope or not isinstance(data.get("k"), dict):
            raise ValueError
        return data["k"]
    except (ValueError, TypeError):
        raise ApiError("invalid_request", "The cursor is not valid for this list", fields=["cursor"]) from None


def limit_of(query: Mapping[str, str]) -> int:
    raw = query.get("limit")
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_LIMIT:
        raise ApiError("validation_failed", f"limit must be 1..{MAX_LIMIT}", fields=["limit"])
    return value


def page(items: list, last_key: Mapping[str, Any] | None, scope: str) -> dict:
    return {"items": items, "nextCursor": encode(last_key, scope)}
