"""The sources service's part of the route table (DESIGN.md section 4).

``POST /sources/{sourceId}/sync`` is served here; its logic is ``handlers.jobs.sync``.
"""

from handlers.shared.routing import (NO_DATA, NULLABLE_TIME, PAGE_QUERY, RUN, STRING, Route,
                                     nullable, obj, page)

# at least one visible character; no control characters
_NAME = {"type": "string", "minLength": 1, "maxLength": 100,
         "pattern": "^[^\\u0000-\\u001f\\u007f]*[^\\s\\u0000-\\u001f\\u007f][^\\u0000-\\u001f\\u007f]*$"}
_TYPE = {"type": "string", "minLength": 1, "maxLength": 64}
# Field names and values are checked against the platform's catalog entry by the service
# (unknown fields, required ones, patterns); the schema bounds their size.
_VALUES = {"type": "object", "maxProperties": 20,
           "additionalProperties": {"type": "string", "maxLength": 2048}}
# On update a credential may be null (or "") to remove an optional one.
_UPDATE_VALUES = {"type": "object", "maxProperties": 20,
                  "additionalProperties": {"type": "string", "maxLength": 2048, "nullable": True}}

# ------------------------------------------------------------------ answers

SOURCE = obj({
    "sourceId": STRING, "name": STRING,
    "type": nullable({"type": "string", "description": "the platform (GET /integrations)"}),
    "status": {"type": "string", "enum": ["active", "error", "paused", "pending"]},
    "settings": {"type": "object", "additionalProperties": STRING,
                 "description": "the platform's non-secret fields"},
    "credentials": {"type": "object", "additionalProperties": {"type": "string", "enum": ["set"]},
                    "description": "which credential fields are set; never their values"},
    "lastTest": nullable(obj({"ok": {"type": "boolean"}, "at": NULLABLE_TIME,
                              "status": {"type": "integer", "nullable": True,
                                         "description": "the platform's HTTP status"},
                              "message": {"type": "string", "nullable": True}},
                             title="ConnectionTest")),
    "lastRunAt": NULLABLE_TIME, "createdAt": NULLABLE_TIME, "updatedAt": NULLABLE_TIME,
}, title="Source")

ROUTES = (
    Route("GET", "/sources", "list_sources", "viewer",
          summary="The account's sources (credentials redacted: {field: \"set\"}); paginated",
          query=PAGE_QUERY, response=page(SOURCE)),
    Route("POST", "/sources", "create_source", "manager",
          summary="Connect an API-key platform: credentials are checked against the "
                  "platform's fields and stored encrypted; within the plan's source limit "
                  "(402 plan_limit). OAuth platforms connect through "
                  "POST /integrations/{type}/oauth/initiate",
          body={"type": "object", "additionalProperties": False,
                "required": ["name", "type", "credentials"],
                "properties": {"name": _NAME, "type": _TYPE, "settings": _VALUES,
                               "credentials": _VALUES},
                "example": {"name": "Stripe (live)", "type": "stripe",
                            "credentials": {"api_key": "sk_test_ExampleOnlyFakeKey"}}},
          status=201, response=SOURCE),
    Route("GET", "/sources/{sourceId}", "get_source", "viewer",
          summary="One source with its settings, which credential fields are set, the last "
                  "connection test and the last run",
          response=SOURCE),
    Route("PUT", "/sources/{sourceId}", "update_source", "manager",
          summary="Rename, change settings, replace credentials (given fields replace stored "
                  "ones; null removes an optional one), or pause/resume (status active|paused)",
          body={"type": "object", "additionalProperties": False, "minProperties": 1,
                "properties": {"name": _NAME, "settings": _VALUES,
                               "credentials": _UPDATE_VALUES,
                               "status": {"type": "string", "enum": ["active", "paused"]}}},
          response=SOURCE),
    Route("DELETE", "/sources/{sourceId}", "delete_source", "manager",
          summary="Remove a source and its stored credentials (409 conflict while one of its "
                  "runs is pending or running)",
          response=NO_DATA),
    Route("POST", "/sources/{sourceId}/test", "test_source", "manager",
          summary="Call the platform's cheapest endpoint with the stored credentials and "
                  "record the outcome (lastTest); rejected credentials mark the source error",
          response=SOURCE),
    Route("POST", "/sources/{sourceId}/sync", "sync_source", "manager",
          summary="Back the source up now through its default job (a manual job named after "
                  "the source is created when it has none, within the plan's job limit): "
                  "202 with the pending run; 409 conflict while one is pending or running",
          status=202, response=RUN),
)
