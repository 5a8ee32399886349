"""Failed logins per e-mail address: after ``MAX_FAILURES`` within ``WINDOW_SECONDS`` the
address is locked until that window ends, whatever password is offered.

One row per address in login-attempts: ``failures``, ``windowStart`` (epoch seconds of the
first failure of the window) and ``expiresAt`` (TTL, the end of the window).

Login reads the row with the user in one BatchGetItem and writes its change (a failure
counted, or the row deleted on success) in the transaction that records the attempt, so a
login costs the same few calls whatever its outcome; a failure whose conditional count
loses a race is counted again by ``note_failure``, so none is ever lost.
"""

from __future__ import annotations

import math
import time

from botocore.exceptions import ClientError

from handlers.auth.store import conditional_failure
from handlers.shared.clients import table
from handlers.shared.tokens import as_int

MAX_FAILURES = 5
WINDOW_SECONDS = 15 * 60


def key(email: str) -> tuple[str, dict]:
    """The address's row as ``dynamo.get_many`` takes it."""
    return "login-attempts", {"email": email}


def wait_of(row: dict | None) -> int | None:
    """Seconds until the address may try again, from its row (None: not locked, or no
    row); the caller reads the row with whatever else it needs (``key``)."""
    if row is None:
        return None
    failures, start = as_int(row.get("failures")) or 0, as_int(row.get("windowStart"))
    if failures < MAX_FAILURES or start is None:
        return None
    remaining = start + WINDOW_SECONDS - time.time()
    return max(1, math.ceil(remaining)) if remaining > 0 else None


def failure_item(email: str, row: dict | None) -> dict:
    """The transaction entry counting one failure, given the row read just before: one more
    in the current window, or the first of a new one. Its condition is the state that
    read saw, so a transaction cancelled on it (another failure counted meanwhile) counts
    nothing and the caller falls back to ``note_failure``."""
    now = int(time.time())
    cutoff = now - WINDOW_SECONDS
    name = table("login-attempts").name
    start = as_int(row.get("windowStart")) if row is not None else None
    if start is not None and start > cutoff:
        return {"Update": {
            "TableName": name, "Key": {"email": email}, "UpdateExpression": "ADD failures :one",
            "ConditionExpression": "windowStart > :cutoff",
            "ExpressionAttributeValues": {":one": 1, ":cutoff": cutoff}}}
    return {"Update": {
        "TableName": name, "Key": {"email": email},
        "UpdateExpression": "SET failures = :one, windowStart = :now, expiresAt = :end",
        "ConditionExpression": "attribute_not_exists(email) OR windowStart <= :cutoff",
        "ExpressionAttributeValues": {":one": 1, ":now": now, ":end": now + WINDOW_SECONDS,
                                      ":cutoff": cutoff}}}


def clear_item(email: str) -> dict:
    """The transaction entry forgetting the address's failures (a success, a reset)."""
    return {"Delete": {"TableName": table("login-attempts").name, "Key": {"email": email}}}


def note_failure(email: str) -> None:
    """Count one failure: the first of a new window, or one more in the current one."""
    attempts = table("login-attempts")
    for _ in range(3):
        now = int(time.time())
        try:  # the current window goes on
            attempts.update_item(
                Key={"email": email}, UpdateExpression="ADD failures :one",
                ConditionExpression="windowStart > :cutoff",
                ExpressionAttributeValues={":one": 1, ":cutoff": now - WINDOW_SECONDS})
            return
        except ClientError as error:
            if not conditional_failure(error):
                raise
        try:  # no row, or its window is over: start a new one
            attempts.update_item(
                Key={"email": email},
                UpdateExpression="SET failures = :one, windowStart = :now, expiresAt = :end",
                ConditionExpression="attribute_not_exists(email) OR windowStart <= :cutoff",
                ExpressionAttributeValues={":one": 1, ":now": now, ":end": now + WINDOW_SECONDS,
                                           ":cutoff": now - WINDOW_SECONDS})
            return
        except ClientError as error:  # another request started the window meanwhile
            if not conditional_failure(error):
                raise
