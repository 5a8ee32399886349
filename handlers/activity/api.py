"""Entry point of ``listbackup-activity-{stage}-api``.

Every read is a Query or GetItem on the caller's account's partition: the feed on the
activity table (event ids sort by time, so newest first is ``ScanIndexForward=False`` and a
time range is a key condition), the stats on the activity-counters table (one row per
account, UTC day and type).
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Mapping

from boto3.dynamodb.conditions import Attr, Key

from handlers.activity.routes import ROUTES
from handlers.shared import activity, clock, cursors
from handlers.shared.clients import table
from handlers.shared.http import ApiError, Request, api_handler
from handlers.shared.log import get_logger

logger = get_logger("activity")

# Query-string filter -> the event attribute it must equal.
ATTRIBUTE_FILTERS = {"type": "type", "resourceType": "resourceType", "resourceId": "resourceId"}
MAX_FILTER_LENGTH = 256
# A filtered feed may need several Query pages to fill one of ours; each request reads at
# most this many pages (of at most QUERY_BATCH events) and answers with a cursor after that
# (four calls at most: issue 12's request budget).
QUERY_BATCH = 400
MAX_QUERY_ROUNDS = 4
# Windows of GET /activity/stats in UTC days, today included.
WINDOWS = (("day", 1), ("week", 7), ("month", 30))
# The shape new_event_id produces: evt_<YYYYmmddTHHMMSSffffffZ>_<hex>.
EVENT_ID = re.compile(r"evt_\d{8}T\d{12}Z_[0-9a-f]{1,32}")
LOWEST, HIGHEST = "evt_", "evt_\uffff"


# ----------------------------------------------------------------------------- the feed

def list_events(request: Request) -> dict:
    account = request.account_id
    query = request.query
    limit = cursors.limit_of(query)
    filters = _attribute_filters(query)
    lower, upper = _time_bounds(query)
    scope = f"{account}:activity:{_filters_hash(filters, lower, upper)}"
    start = cursors.decode(query.get("cursor"), scope)
    if start is not None and (start.get("accountId") != account
                              or not isinstance(start.get("eventId"), str)):
        raise ApiError("invalid_request", "The cursor is not valid for this list",
                       fields=["cursor"])

    arguments: dict[str, Any] = {
        "KeyConditionExpression": (Key("accountId").eq(account)
                                   & Key("eventId").between(lower, upper)),
        "ScanIndexForward": False,
    }
    condition = None
    for attribute, value in filters.items():
        clause = Attr(attribute).eq(value)
        condition = clause if condition is None else condition & clause
    if condition is not None:
        arguments["FilterExpression"] = condition

    items: list[dict] = []
    last_key = start
    for _ in range(MAX_QUERY_ROUNDS):
        # One more than the page holds tells whether another page exists, so the last page
        # never carries a cursor to an empty one.
        batch = QUERY_BATCH if condition is not None else limit + 1 - len(items)
        if last_key:
            arguments["ExclusiveStartKey"] = last_key
        response = table("activity").query(Limit=batch, **arguments)
        items.extend(response.get("Items", []))
        last_key = response.get("LastEvaluatedKey")
        if len(items) > limit or not last_key:
            break
    if len(items) > limit:
        items = items[:limit]
        last_key = {"accountId": account, "eventId": items[-1]["eventId"]}
    return cursors.page([event_view(item) for item in items], last_key, scope)


def _attribute_filters(query: Mapping[str, str]) -> dict[str, str]:
    filters = {}
    for name, attribute in ATTRIBUTE_FILTERS.items():
        value = query.get(name)
        if value is None or value == "":
            continue
        if len(value) > MAX_FILTER_LENGTH:
            raise ApiError("validation_failed",
                           f"{name} must be at most {MAX_FILTER_LENGTH} characters", fields=[name])
        filters[attribute] = value
    return filters


def _time_bounds(query: Mapping[str, str]) -> tuple[str, str]:
    """The event-id range of the ``from``..``to`` window, both ends included."""
    moments: dict[str, datetime] = {}
    for name in ("from", "to"):
        text = query.get(name)
        if text is None or text == "":
            continue
        try:
            moments[name] = clock.parse_iso(text).astimezone(timezone.utc)
        except (ValueError, OverflowError):
            raise ApiError("validation_failed", f"{name} must be an ISO-8601 time",
                           fields=[name]) from None
    if "from" in moments and "to" in moments and moments["from"] > moments["to"]:
        raise ApiError("validation_failed", "from must not be after to", fields=["from", "to"])
    lower = f"evt_{_stamp(moments['from'])}" if "from" in moments else LOWEST
    upper = f"evt_{_stamp(moments['to'])}_\uffff" if "to" in moments else HIGHEST
    return lower, upper


def _stamp(moment: datetime) -> str:
    # The layout of new_event_id's timestamp, zero-padded whatever the year.
    return (f"{moment.year:04d}{moment.month:02d}{moment.day:02d}T{moment.hour:02d}"
            f"{moment.minute:02d}{moment.second:02d}{moment.microsecond:06d}Z")


def _filters_hash(filters: Mapping[str, str], lower: str, upper: str) -> str:
    """Binds a cursor to the filters it was issued for."""
    canonical = json.dumps({"f": dict(filters), "lo": lower, "hi": upper}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


# ----------------------------------------------------------------------------- one event

def get_event(request: Request) -> dict:
    event_id = request.path.get("eventId") or ""
    if not EVENT_ID.fullmatch(event_id):
        raise ApiError("not_found", "No such event")
    item = table("activity").get_item(
        Key={"accountId": request.account_id, "eventId": event_id}).get("Item")
    if item is None:
        raise ApiError("not_found", "No such event")
    return event_view(item)


def event_view(item: Mapping[str, Any]) -> dict:
    return {
        "eventId": item["eventId"], "type": item.get("type"), "actor": item.get("actor"),
        "resourceType": item.get("resourceType"), "resourceId": item.get("resourceId") or None,
        "outcome": item.get("outcome"), "sourceIp": item.get("sourceIp") or None,
        "createdAt": item.get("createdAt"), "details": _plain(item.get("details") or {}),
    }


def _plain(value: Any) -> Any:
    """DynamoDB's Decimals as JSON numbers."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    return value


# ----------------------------------------------------------------------------- stats

def stats(request: Request) -> dict:
    today = clock.now().date()
    first = today - timedelta(days=max(days for _, days in WINDOWS) - 1)
    windows = {name: {"since": (today - timedelta(days=days - 1)).isoformat(), "total": 0,
                      "byType": {}} for name, days in WINDOWS}
    arguments: dict[str, Any] = {
        "KeyConditionExpression": Key("accountId").eq(request.account_id)
        & Key("dayType").between(f"{first.isoformat()}#", f"{today.isoformat()}#\uffff"),
    }
    while True:
        response = table("activity-counters").query(**arguments)
        for row in response.get("Items", []):
            _count(windows, today, row)
        if not response.get("LastEvaluatedKey"):
            break
        arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    for window in windows.values():
        window["byType"] = dict(sorted(window["byType"].items()))
    return windows


def _count(windows: dict, today: date, row: Mapping[str, Any]) -> None:
    day_text, action = activity.parse_counter_key(str(row.get("dayType", "")))
    try:
        age = (today - date.fromisoformat(day_text)).days
    except ValueError:
        return
    count = int(row.get("count") or 0)
    for name, days in WINDOWS:
        if 0 <= age < days and count:
            window = windows[name]
            window["total"] += count
            window["byType"][action] = window["byType"].get(action, 0) + count


handler = logger.inject_lambda_context(api_handler(
    ROUTES, {"list_events": list_events, "get_event": get_event, "stats": stats}, logger))
