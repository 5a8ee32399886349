"""The activity service's part of the route table.

API Gateway matches the literal ``/activity/stats`` before ``/activity/{eventId}``.
"""

from handlers.shared.routing import Route

ROUTES = (
    Route("GET", "/activity", "list_events", "viewer",
          summary="The account's activity, newest first; filters type, resourceType, "
                  "resourceId, from and to (ISO-8601); limit and cursor"),
    Route("GET", "/activity/stats", "stats", "viewer",
          summary="Event counts by type for the last day, week (7 days) and month (30 days)"),
    Route("GET", "/activity/{eventId}", "get_event", "viewer",
          summary="One event of the account"),
)
