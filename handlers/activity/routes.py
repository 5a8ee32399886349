"""The activity service's part of the route table.

API Gateway matches the literal ``/activity/stats`` before ``/activity/{eventId}``.
"""

from handlers.shared.routing import (ANY_OBJECT, COUNT, DATE, NULLABLE_STRING, NULLABLE_TIME,
                                     STRING, TIME, Route, nullable, obj, page, page_query)

_FILTER = {"type": "string", "minLength": 1, "maxLength": 256}
EVENT = obj({
    "eventId": STRING,
    "type": nullable({"type": "string", "description": "e.g. sources.create, auth.login"}),
    "actor": nullable({"type": "string", "description": "a user id, or stripe, scheduler..."}),
    "resourceType": NULLABLE_STRING, "resourceId": NULLABLE_STRING,
    "outcome": nullable({"type": "string", "description": "success or failure"}),
    "sourceIp": NULLABLE_STRING, "createdAt": NULLABLE_TIME,
    "details": {**ANY_OBJECT, "description": "what the action was about (never a secret)"},
}, title="ActivityEvent")
_WINDOW = obj({"since": DATE, "total": COUNT,
               "byType": {"type": "object", "additionalProperties": COUNT}},
              title="ActivityWindow")

ROUTES = (
    Route("GET", "/activity", "list_events", "viewer",
          summary="The account's activity, newest first; filters type, resourceType, "
                  "resourceId, from and to (ISO-8601); limit and cursor",
          query=page_query(type=_FILTER, resourceType=_FILTER, resourceId=_FILTER,
                           **{"from": TIME, "to": TIME}),
          response=page(EVENT)),
    Route("GET", "/activity/stats", "stats", "viewer",
          summary="Event counts by type for the last day, week (7 days) and month (30 days)",
          response=obj({"day": _WINDOW, "week": _WINDOW, "month": _WINDOW})),
    Route("GET", "/activity/{eventId}", "get_event", "viewer",
          summary="One event of the account", response=EVENT),
)
