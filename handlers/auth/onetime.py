"""Single-use tokens sent by e-mail (verification, password reset).

The token goes to the user's mailbox only; the auth-tokens table keeps its sha256 as
``<kind>#<hex>`` with the user, the address it was sent to and an expiry (also the
table's TTL attribute, but TTL deletion is lazy, so expiry is checked here). Consuming a
token is a conditional update that sets ``usedAt``, done in the same transaction as the
change the token allows, so a token works once. A row may also carry ``homeAccountId``,
the account the user was in when it was issued: using the token reads the user and that
account's membership in one call (to record the event there).
"""

from __future__ import annotations

import hashlib
import secrets
import time

from handlers.auth import store
from handlers.shared import clock
from handlers.shared.clients import table

VERIFY, RESET = "verify", "reset"
TTL_SECONDS = {VERIFY: 24 * 3600, RESET: 3600}


def token_id(kind: str, token: str) -> str:
    return f"{kind}#{hashlib.sha256(token.encode('utf-8')).hexdigest()}"


def new(kind: str, user: dict, extra: dict | None = None) -> tuple[str, dict]:
    """A new token of ``kind`` for ``user`` and the transaction entry (``Put``) storing its
    hash (with ``extra``): the token works once that entry has committed."""
    token = secrets.token_urlsafe(32)
    return token, store.put("auth-tokens", {
        **(extra or {}), "tokenId": token_id(kind, token), "kind": kind,
        "userId": user["userId"], "email": user["email"], "createdAt": clock.iso(),
        "expiresAt": int(time.time()) + TTL_SECONDS[kind]})


def find(kind: str, token: str) -> dict | None:
    """The unused, unexpired row of ``token``, or None."""
    row = table("auth-tokens").get_item(Key={"tokenId": token_id(kind, token)}).get("Item")
    if row is None or row.get("kind") != kind or "usedAt" in row:
        return None
    if int(row.get("expiresAt", 0)) <= time.time():
        return None
    return row


def consume(row: dict) -> dict:
    """The transaction step that marks ``row`` used, if it still is unused and unexpired."""
    return store.update(
        "auth-tokens", {"tokenId": row["tokenId"]}, "SET usedAt = :now",
        values={":now": clock.iso(), ":t": int(time.time())},
        condition="attribute_exists(tokenId) AND attribute_not_exists(usedAt) AND expiresAt > :t")
