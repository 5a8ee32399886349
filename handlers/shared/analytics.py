"""Backup analytics counters, kept incrementally so reading them costs the same whatever
the length of an account's history.

The ``analytics`` table holds, per account (``accountId`` + ``counter``):

- ``total``: runs by status, records and bytes, since the account began;
- ``day#YYYY-MM-DD``: the same for the runs that finished that UTC day (``expiresAt``:
  400 days later, beyond the longest timeseries);
- ``source#<sourceId>``: the same per source, plus ``lastRunAt``/``lastStatus``,
  ``lastBackupAt`` (the last run that stored data: completed or partial), and
  ``storageBytes`` (kept by the file indexer with the account's ``storageBytes``).

Whoever ends a run (the backup worker, the scheduler for a stuck run, a cancel of a
pending run, a run that could not be queued) puts :func:`finished_run_items` into the
*same* DynamoDB transaction as the run's conditional status change, so a run is counted
exactly once or not at all. Only finished runs are counted; statuses are the finished ones.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from handlers.shared import clock
from handlers.shared.clients import table

FINISHED = ("completed", "partial", "failed", "cancelled")
TOTAL = "total"
DAY_PREFIX = "day#"
SOURCE_PREFIX = "source#"
DAY_KEEP_DAYS = 400


def day_key(day: str) -> str:
    return f"{DAY_PREFIX}{day}"


def source_key(source_id: str) -> str:
    return f"{SOURCE_PREFIX}{source_id}"


def finished_run_items(account_id: str, *, source_id: str | None, status: str, records: int,
                       bytes_: int, finished_at: str, runs: int = 1) -> list[dict]:
    """TransactWriteItems entries counting one finished run (status, records, bytes) on the
    account's total, the finishing day, and the run's source; ``runs`` counts several runs
    of one source, status and day at once (their records and bytes summed), as a recount
    from the runs table would."""
    if status not in FINISHED:
        raise ValueError(f"not a finished status: {status}")
    if runs < 1:
        raise ValueError("runs must be at least 1")
    moment = clock.parse_iso(finished_at)
    name = table("analytics").name
    counts = "ADD runs :one, #st :one, records :r, #b :b"
    values: dict[str, Any] = {":one": int(runs), ":r": int(records or 0), ":b": int(bytes_ or 0)}
    names = {"#st": status, "#b": "bytes"}
    items = [
        {"Update": {"TableName": name, "Key": {"accountId": account_id, "counter": TOTAL},
                    "UpdateExpression": counts, "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": values}},
        {"Update": {"TableName": name,
                    "Key": {"accountId": account_id, "counter": day_key(moment.strftime("%Y-%m-%d"))},
                    "UpdateExpression": f"{counts} SET expiresAt = if_not_exists(expiresAt, :exp)",
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": {
                        **values, ":exp": clock.epoch(moment + timedelta(days=DAY_KEEP_DAYS))}}},
    ]
    if source_id:
        sets = "lastRunAt = :at, lastStatus = :status, sourceId = :src"
        source_values = {**values, ":at": finished_at, ":status": status, ":src": source_id}
        if status in ("completed", "partial"):
            sets += ", lastBackupAt = :at"
        items.append({"Update": {
            "TableName": name, "Key": {"accountId": account_id, "counter": source_key(source_id)},
            "UpdateExpression": f"{counts} SET {sets}", "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": source_values}})
    return items


def storage_item(account_id: str, source_id: str, delta: int) -> dict:
    """A TransactWriteItems entry moving one source's stored bytes by ``delta``."""
    return {"Update": {
        "TableName": table("analytics").name,
        "Key": {"accountId": account_id, "counter": source_key(source_id)},
        "UpdateExpression": "ADD storageBytes :delta SET sourceId = :src",
        "ExpressionAttributeValues": {":delta": int(delta), ":src": source_id}}}
