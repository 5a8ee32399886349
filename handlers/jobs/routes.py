"""The jobs service's part of the route table (DESIGN.md section 4).

``POST /sources/{sourceId}/sync`` is bound by the sources service (its routes module);
its logic is ``handlers.jobs.sync``.
"""

from handlers.shared.routing import (COUNT, NO_DATA, NULLABLE_STRING, NULLABLE_TIME,
                                     PAGE_QUERY, RUN, RUN_STATUSES, STRING, Route, nullable, obj,
                                     page)
from handlers.shared.schedules import FREQUENCIES, TIME_PATTERN

_NAME = {"type": "string", "minLength": 1, "maxLength": 100,
         "pattern": "^[^\\u0000-\\u001f\\u007f]*[^\\s\\u0000-\\u001f\\u007f][^\\u0000-\\u001f\\u007f]*$"}
_ID = {"type": "string", "minLength": 1, "maxLength": 128}
SCHEDULE = {
    "type": "object", "additionalProperties": False, "required": ["frequency"],
    "properties": {
        "frequency": {"type": "string", "enum": list(FREQUENCIES)},
        "time": {"type": "string", "pattern": TIME_PATTERN, "nullable": True,
                 "description": "HH:MM, UTC (hourly: only the minute counts)"},
        "dayOfWeek": {"type": "integer", "minimum": 0, "maximum": 6, "nullable": True,
                      "description": "weekly: 0 = Monday ... 6 = Sunday"},
        "dayOfMonth": {"type": "integer", "minimum": 1, "maximum": 28, "nullable": True,
                       "description": "monthly: 1-28"},
    },
}
_ENDPOINTS = {"type": "array", "minItems": 1, "maxItems": 100, "uniqueItems": True, "nullable": True,
              "items": {"type": "string", "minLength": 1, "maxLength": 64},
              "description": "names of the platform's endpoints; null = all of them"}
_STATUS = {"type": "string", "enum": ["active", "paused"]}

# ------------------------------------------------------------------ answers

JOB = obj({
    "jobId": STRING, "sourceId": NULLABLE_STRING, "name": STRING,
    "schedule": obj({"frequency": {"type": "string", "enum": list(FREQUENCIES)},
                     "time": nullable({"type": "string", "pattern": TIME_PATTERN}),
                     "dayOfWeek": {"type": "integer", "nullable": True},
                     "dayOfMonth": {"type": "integer", "nullable": True}}, title="Schedule"),
    "endpoints": nullable({"type": "array", "items": STRING,
                           "description": "null = every endpoint of the platform"}),
    "status": {"type": "string", "enum": ["active", "paused"]},
    "nextRunAt": NULLABLE_TIME, "lastRunAt": NULLABLE_TIME,
    "stats": obj({"runs": COUNT, "completed": COUNT, "partial": COUNT, "failed": COUNT,
                  "cancelled": COUNT, "records": COUNT, "bytes": COUNT,
                  "lastStatus": nullable({"type": "string", "enum": RUN_STATUSES})},
                 title="JobStats"),
    "activeRunId": nullable({"type": "string", "description": "the pending or running run"}),
    "isDefault": {"type": "boolean", "description": "the job POST /sources/{id}/sync uses"},
    "createdAt": NULLABLE_TIME, "updatedAt": NULLABLE_TIME,
}, title="Job")
ROUTES = (
    Route("GET", "/jobs", "list_jobs", "viewer", summary="The account's backup jobs; paginated",
          query=PAGE_QUERY, response=page(JOB)),
    Route("POST", "/jobs", "create_job", "manager",
          summary="A backup job of one of the account's sources: a schedule no more frequent "
                  "than the plan allows (402 plan_limit), an optional subset of the platform's "
                  "endpoints; within the plan's job limit (402 plan_limit)",
          body={"type": "object", "additionalProperties": False,
                "required": ["sourceId", "name", "schedule"],
                "properties": {"sourceId": _ID, "name": _NAME, "schedule": SCHEDULE,
                               "endpoints": _ENDPOINTS, "status": _STATUS}},
          status=201, response=JOB),
    Route("GET", "/jobs/{jobId}", "get_job", "viewer",
          summary="One job with its schedule, next and last run, and statistics",
          response=JOB),
    Route("PUT", "/jobs/{jobId}", "update_job", "manager",
          summary="Rename, reschedule, change the endpoints, or pause/resume (status)",
          body={"type": "object", "additionalProperties": False, "minProperties": 1,
                "properties": {"name": _NAME, "schedule": SCHEDULE, "endpoints": _ENDPOINTS,
                               "status": _STATUS}},
          response=JOB),
    Route("DELETE", "/jobs/{jobId}", "delete_job", "manager",
          summary="Remove a job (409 conflict while one of its runs is pending or running); "
                  "its past runs stay readable",
          response=NO_DATA),
    Route("POST", "/jobs/{jobId}/run", "run_job", "manager",
          summary="Start a backup now: a pending run, queued for the worker (409 conflict while "
                  "one is pending or running)", status=202, response=RUN),
    Route("GET", "/jobs/{jobId}/runs", "list_runs", "viewer",
          summary="The job's runs, newest first; paginated",
          query=PAGE_QUERY, response=page(RUN)),
    Route("GET", "/runs/{runId}", "get_run", "viewer",
          summary="One run: status, records, bytes, per-endpoint results and errors",
          response=RUN),
    Route("POST", "/jobs/{jobId}/runs/{runId}/cancel", "cancel_run", "manager",
          summary="Cancel a run: a pending one ends cancelled at once, a running one stops at "
                  "its next page (cancelRequested); 409 conflict once it has finished",
          response=RUN),
)
