"""Entry point of ``listbackup-analytics-{stage}-api``.

Both routes read counters that are kept when runs finish (``handlers.shared.analytics``),
never the runs themselves, so a read costs the same whatever the length of the history:

- overview: GetItem of the account (source and job counts, storage), GetItem of the
  ``total`` counter, one Query of the last 30 ``day#`` counters, one Query of the
  ``source#`` counters (one item per source the account ever backed up);
- timeseries: one Query of the ``day#`` counters of the window (at most 365 items).

Runs are counted when they finish, by their finishing UTC day; runs still pending or
running are not in these figures. The success rate is completed runs over finished runs
(completed, partial, failed; cancelled runs are left out), null when none finished.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Mapping

from boto3.dynamodb.conditions import Key

from handlers.analytics.routes import ROUTES
from handlers.shared import analytics, clock
from handlers.shared.accounts import get_account
from handlers.shared.clients import table
from handlers.shared.dynamo import as_int
from handlers.shared.http import ApiError, Request, api_handler
from handlers.shared.log import get_logger

logger = get_logger("analytics")

STATUSES = analytics.FINISHED
SUCCESS_WINDOW_DAYS = 30
MAX_DAYS = 365
DEFAULT_DAYS = 30


def _query_all(**arguments: Any) -> list[dict]:
    items: list[dict] = []
    while True:
        response = table("analytics").query(**arguments)
        items += response.get("Items", [])
        if not response.get("LastEvaluatedKey"):
            return items
        arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def _days(account_id: str, first: str, last: str) -> dict[str, dict]:
    rows = _query_all(KeyConditionExpression=Key("accountId").eq(account_id) & Key("counter").between(
        analytics.day_key(first), analytics.day_key(last)))
    return {row["counter"][len(analytics.DAY_PREFIX):]: row for row in rows}


def _runs(row: Mapping[str, Any] | None) -> dict[str, int]:
    row = row or {}
    return {"total": as_int(row.get("runs")), **{s: as_int(row.get(s)) for s in STATUSES}}


def _success_rate(runs: Mapping[str, int]) -> float | None:
    finished = runs["completed"] + runs["partial"] + runs["failed"]
    return round(runs["completed"] / finished, 4) if finished else None


def overview(request: Request) -> dict:
    account_id = request.account_id
    account = get_account(account_id)
    if account is None:
        raise ApiError("not_found", "No such account")
    total = table("analytics").get_item(
        Key={"accountId": account_id, "counter": analytics.TOTAL}).get("Item")
    today = clock.now().date()
    since = today - timedelta(days=SUCCESS_WINDOW_DAYS - 1)
    window = {s: 0 for s in ("total", *STATUSES)}
    for row in _days(account_id, since.isoformat(), today.isoformat()).values():
        for name, count in _runs(row).items():
            window[name] += count
    sources = []
    for row in _query_all(KeyConditionExpression=Key("accountId").eq(account_id)
                          & Key("counter").begins_with(analytics.SOURCE_PREFIX)):
        sources.append({
            "sourceId": row.get("sourceId") or row["counter"][len(analytics.SOURCE_PREFIX):],
            "storageBytes": max(0, as_int(row.get("storageBytes"))),
            "runs": as_int(row.get("runs")), "records": as_int(row.get("records")),
            "bytes": as_int(row.get("bytes")),
            "lastRunAt": row.get("lastRunAt"), "lastStatus": row.get("lastStatus"),
            "lastBackupAt": row.get("lastBackupAt")})
    sources.sort(key=lambda s: (-s["storageBytes"], s["sourceId"]))
    return {
        "sources": as_int(account.get("sourceCount")),
        "jobs": as_int(account.get("jobCount")),
        "runs": _runs(total),
        "records": as_int((total or {}).get("records")),
        "bytes": as_int((total or {}).get("bytes")),
        "storageBytes": max(0, as_int(account.get("storageBytes"))),
        "bySource": sources,
        "last30Days": {"since": since.isoformat(), "runs": window,
                       "successRate": _success_rate(window)},
    }


def timeseries(request: Request) -> dict:
    raw = (request.query or {}).get("days")
    days = DEFAULT_DAYS
    if raw is not None:
        if not str(raw).isdigit() or not 1 <= int(raw) <= MAX_DAYS:
            raise ApiError("validation_failed", f"days must be a whole number from 1 to {MAX_DAYS}",
                           fields=["days"])
        days = int(raw)
    today = clock.now().date()
    first = today - timedelta(days=days - 1)
    rows = _days(request.account_id, first.isoformat(), today.isoformat())
    points = []
    for n in range(days):
        day = (first + timedelta(days=n)).isoformat()
        row = rows.get(day) or {}
        points.append({"date": day, "runs": as_int(row.get("runs")), "completed": as_int(row.get("completed")),
                       "partial": as_int(row.get("partial")), "failed": as_int(row.get("failed")),
                       "cancelled": as_int(row.get("cancelled")), "records": as_int(row.get("records")),
                       "bytes": as_int(row.get("bytes"))})
    return {"days": days, "from": first.isoformat(), "to": today.isoformat(), "points": points}


handler = logger.inject_lambda_context(api_handler(
    ROUTES, {"overview": overview, "timeseries": timeseries}, logger))
