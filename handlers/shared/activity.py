"""The one activity writer every service uses: who did what to which resource, when, from
where, and how it ended. Events expire after 90 days (TTL); a counter per account, day and
action feeds ``GET /activity/stats`` without reading the events themselves.

Event ids sort by time (``evt_<UTC timestamp>_<random>``), so the activity table's key
serves the feed newest first with a Query.
"""

from __future__ import annotations

import secrets
from typing import Any, Mapping

from handlers.shared import clock
from handlers.shared.clients import table

RETENTION_DAYS = 90


def new_event_id(moment=None) -> str:
    moment = moment or clock.now()
    return f"evt_{moment.strftime('%Y%m%dT%H%M%S%fZ')}_{secrets.token_hex(4)}"


def record(*, account_id: str, action: str, actor: str | None, resource_type: str,
           resource_id: str | None = None, outcome: str = "success", source_ip: str | None = None,
           details: Mapping[str, Any] | None = None) -> str:
    """Write one event (and bump its daily counter); returns the event id.

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
    table("activity").put_item(Item=item)
    table("activity-counters").update_item(
        Key={"accountId": account_id, "dayType": f"{moment.strftime('%Y-%m-%d')}#{action}"},
        UpdateExpression="ADD #count :one SET expiresAt = if_not_exists(expiresAt, :ttl)",
        ExpressionAttributeNames={"#count": "count"},
        ExpressionAttributeValues={":one": 1, ":ttl": clock.ttl_after(days=RETENTION_DAYS + 1)})
    return event_id


def record_request(request, action: str, resource_type: str, resource_id: str | None = None,
                   *, outcome: str = "success", account_id: str | None = None,
                   actor: str | None = None, details: Mapping[str, Any] | None = None) -> str:
    """``record`` with the actor, account and source IP taken from an API request."""
    source_ip = (((request.raw or {}).get("requestContext") or {}).get("http") or {}).get("sourceIp")
    return record(account_id=account_id or request.account_id, action=action,
                  actor=actor or request.user_id, resource_type=resource_type,
                  resource_id=resource_id, outcome=outcome, source_ip=source_ip, details=details)
