"""Failed logins per e-mail address: after ``MAX_FAILURES`` within ``WINDOW_SECONDS`` the
address is locked until that window ends, whatever password is offered.

One row per address in login-attempts: ``failures``, ``windowStart`` (epoch seconds of the
first failure of the window) and ``expiresAt`` (TTL, the end of the window).
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


def retry_after(email: str) -> int | None:
    """Seconds until ``email`` may try again, or None when it is not locked."""
    row = table("login-attempts").get_item(Key={"email": email}).get("Item")
    if row is None:
        return None
    failures, start = as_int(row.get("failures")) or 0, as_int(row.get("windowStart"))
    if failures < MAX_FAILURES or start is None:
        return None
    remaining = start + WINDOW_SECONDS - time.time()
    return max(1, math.ceil(remaining)) if remaining > 0 else None


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


def clear(email: str) -> None:
    table("login-attempts").delete_item(Key={"email": email})
