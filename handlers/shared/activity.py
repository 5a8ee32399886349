"""The one activity writer every service uses: who did what to which resource, when, from
where, and how it ended. Events expire after 90 days (TTL); a counter per account, day and
action feeds ``GET /activity/stats`` without reading the events themselves.

Event ids sort by time (``evt_<UTC timestamp>_<random>``), so the activity table's key
serves the feed newest first with a Query.

An event is two writes - its item and its day's counter - made as one transaction, so the
feed and the stats agree. A day's counter of an action is split over ``COUNTER_SHARDS``
rows (``<day>#<action>#<shard>``, the shard drawn at random) that the stats add up: a
burst of one action in one account (a script deleting files in parallel) spreads over
several items instead of queueing every transaction on one, which DynamoDB would cancel
as conflicting. A route that already commits its own change in a transaction
puts ``items(...)`` (or ``request_items(...)``) into that transaction instead of calling
``record`` afterwards: the change and its audit event then commit together, in one call.
"""

from __future__ import annotations

import secrets
from typing import Any, Mapping

from handlers.shared import clock
from handlers.shared.clients import table
from handlers.shared.dynamo import transact

RETENTION_DAYS = 90
COUNTER_SHARDS = 8


def counter_key(day: str, action: str) -> str:
    """The day type of one of the day's counter rows of ``action`` (a random shard)."""
    return f"{day}#{action}#{secrets.randbelow(COUNTER_SHARDS)}"


def parse_counter_key(day_type: str) -> tuple[str, str]:
    """``(day, action)`` of a counter row's day type (rows from before sharding have none)."""
    day, _, rest = day_type.partition("#")
    return day, rest.partition("#")[0]


def day_count(account_id: str, day: str, action: str) -> int:
    """The account's count of ``action`` on ``day`` (``YYYY-MM-DD``), all shards added."""
    from boto3.dynamodb.conditions import Key

    rows = table("activity-counters").query(
        KeyConditionExpression=Key("accountId").eq(account_id) & Key("dayType").begins_with(f"{day}#{action}"),
        ConsistentRead=True).get("Items", [])
    return sum(int(r.get("count") or 0) for r in rows
               if parse_counter_key(str(r["dayType"])) == (day, action))


def new_event_id(moment=None) -> str:
    moment = moment or clock.now()
    return f"evt_{moment.strftime('%Y%m%dT%H%M%S%fZ')}_{secrets.token_hex(4)}"


class Event:
    """One event ready to be written: its id and its two TransactWriteItems entries."""

    __slots__ = ("event_id", "items")

    def __init__(self, event_id: str, items: list[dict]) -> None:
        self.event_id, self.items = event_id, items


def items(*, account_id: str, action: str, actor: str | None, resource_type: str,
          resource_id: str | None = None, outcome: str = "success", source_ip: str | None = None,
          details: Mapping[str, Any] | None = None) -> Event:
    """The event (``Put``) and its counter bump (``Update``), as transaction entries.

    ``action`` is ``<service>.<verb>`` (``auth.login``, ``account.member.remove``);
    ``details`` must hold no secrets: ids and names only.
    """
    moment = clock.now()
    event_id = new_event_id(moment)
    item = {
        "accountId": account_id, "eventId": event_id, "type": action,
        "actor": actor or "anonymous", "resourceType": resource_type,
        "resourceId": resource_id or "", "outcome": outcome, "sourceIp": source_ip or "",
        "createdAt": clock.iso(moment), "expiresAt": clock.ttl_after(days=RETENTION_DAYS),
    }
    if details:
        item["details"] = dict(details)
    return Event(event_id, [
        {"Put": {"TableName": table("activity").name, "Item": item}},
        {"Update": {
            "TableName": table("activity-counters").name,
            "Key": {"accountId": account_id, "dayType": counter_key(moment.strftime("%Y-%m-%d"), action)},
            "UpdateExpression": "ADD #count :one SET expiresAt = if_not_exists(expiresAt, :ttl)",
            "ExpressionAttributeNames": {"#count": "count"},
            "ExpressionAttributeValues": {":one": 1,
                                          ":ttl": clock.ttl_after(days=RETENTION_DAYS + 1)}}},
    ])


def write(event: Event) -> str:
    """Commit an event on its own (one transaction); returns its id.

    A transaction that keeps conflicting with others on the same day's counter (a burst of
    one action in one account) is written as two plain writes rather than lost."""
    if transact(event.items) is not None:
        put, update = event.items[0]["Put"], event.items[1]["Update"]
        table("activity").put_item(Item=put["Item"])
        table("activity-counters").update_item(
            **{k: v for k, v in update.items() if k != "TableName"})
    return event.event_id


def record(*, account_id: str, action: str, actor: str | None, resource_type: str,
           resource_id: str | None = None, outcome: str = "success", source_ip: str | None = None,
           details: Mapping[str, Any] | None = None) -> str:
    """Write one event (and bump its daily counter) in one call; returns the event id."""
    return write(items(account_id=account_id, action=action, actor=actor,
                       resource_type=resource_type, resource_id=resource_id, outcome=outcome,
                       source_ip=source_ip, details=details))


def source_ip(request) -> str | None:
    return (((request.raw or {}).get("requestContext") or {}).get("http") or {}).get("sourceIp")


def request_items(request, action: str, resource_type: str, resource_id: str | None = None,
                  *, outcome: str = "success", account_id: str | None = None,
                  actor: str | None = None, details: Mapping[str, Any] | None = None) -> Event:
    """``items`` with the actor, account and source IP taken from an API request."""
    return items(account_id=account_id or request.account_id, action=action,
                 actor=actor or request.user_id, resource_type=resource_type,
                 resource_id=resource_id, outcome=outcome, source_ip=source_ip(request),
                 details=details)


def record_request(request, action: str, resource_type: str, resource_id: str | None = None,
                   *, outcome: str = "success", account_id: str | None = None,
                   actor: str | None = None, details: Mapping[str, Any] | None = None) -> str:
    """``record`` with the actor, account and source IP taken from an API request."""
    return write(request_items(request, action, resource_type, resource_id, outcome=outcome,
                               account_id=account_id, actor=actor, details=details))
