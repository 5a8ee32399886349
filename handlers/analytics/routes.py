"""The analytics service's part of the route table."""

from handlers.shared.routing import (COUNT, DATE, NULLABLE_STRING, NULLABLE_TIME, STRING, Route,
                                     nullable, obj)

_RUNS = obj({"total": COUNT, "completed": COUNT, "partial": COUNT, "failed": COUNT,
             "cancelled": COUNT}, title="RunCounts")
OVERVIEW = obj({
    "sources": COUNT, "jobs": COUNT, "runs": _RUNS, "records": COUNT, "bytes": COUNT,
    "storageBytes": COUNT,
    "bySource": {"type": "array", "items": obj({
        "sourceId": STRING, "storageBytes": COUNT, "runs": COUNT, "records": COUNT,
        "bytes": COUNT, "lastRunAt": NULLABLE_TIME, "lastStatus": NULLABLE_STRING,
        "lastBackupAt": NULLABLE_TIME}, title="SourceFigures")},
    "last30Days": obj({"since": DATE, "runs": _RUNS,
                       "successRate": nullable({"type": "number", "minimum": 0, "maximum": 1,
                                                "description": "null when no run finished"})}),
}, title="AnalyticsOverview")
TIMESERIES = obj({
    "days": {"type": "integer", "minimum": 1, "maximum": 365}, "from": DATE, "to": DATE,
    "points": {"type": "array", "items": obj({
        "date": DATE, "runs": COUNT, "completed": COUNT, "partial": COUNT, "failed": COUNT,
        "cancelled": COUNT, "records": COUNT, "bytes": COUNT}, title="DailyFigures")},
}, title="AnalyticsTimeseries")

ROUTES = (
    Route("GET", "/analytics/overview", "overview", "viewer",
          summary="Sources, jobs, runs by status, records and bytes backed up, storage and last "
                  "backup per source, success rate over the last 30 days",
          response=OVERVIEW),
    Route("GET", "/analytics/timeseries", "timeseries", "viewer",
          summary="Daily runs, failures, records and bytes for the last `days` UTC days "
                  "(1-365, default 30), oldest first",
          query={"type": "object", "additionalProperties": True, "properties": {
              "days": {"type": "integer", "minimum": 1, "maximum": 365, "default": 30}}},
          response=TIMESERIES),
)
