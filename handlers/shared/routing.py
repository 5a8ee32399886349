"""The route table's row type. Each service declares its rows in ``handlers/<service>/routes.py``
beside its code; ``handlers.routes`` assembles them for everything else that reads the
table (the Pulumi program, offline mode, the OpenAPI document, the tests).

A row carries the contract of its route: the request ``body`` and the ``query`` parameters
(both validated by ``handlers.shared.http`` before the operation runs) and the
``response``, the ``data`` of the success envelope (published in the OpenAPI document and
checked against real answers by the tests). All three are JSON Schema draft 7 within what
OpenAPI 3.0.3 can express; the schema pieces at the end of this module are shared by
every service's rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from handlers.shared.roles import ROLES  # each includes what the ones before it may do

PUBLIC = "public"
ACCESS = (PUBLIC, *ROLES)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class Route:
    method: str
    path: str              # API Gateway syntax: /sources/{sourceId}
    operation: str         # name of the function in the service's api module
    access: str            # "public" or the minimum role
    summary: str = ""
    body: Mapping[str, Any] | None = None   # JSON Schema (draft 7, OpenAPI 3.0.3 subset)
    status: int = 200      # status of a success (3xx: the operation answers a redirect)
    # The query string as an object of strings; a property typed integer or boolean
    # is converted before validation. None: the route reads no query parameter.
    query: Mapping[str, Any] | None = None
    # The ``data`` of a success; ``NO_DATA`` for routes answering ``"data": null``, None for
    # a redirect (no JSON body).
    response: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"{self.route_key}: unknown method")
        if self.access not in ACCESS:
            raise ValueError(f"{self.route_key}: access must be one of {ACCESS}")
        if not self.path.startswith("/") or self.path.endswith("/") and self.path != "/":
            raise ValueError(f"{self.route_key}: path must start, and not end, with '/'")

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def public(self) -> bool:
        return self.access == PUBLIC


def allows(route: Route, role: str | None) -> bool:
    """Whether a caller with ``role`` may use ``route``."""
    if route.public:
        return True
    return role in ROLES and ROLES.index(role) >= ROLES.index(route.access)


# --------------------------------------------------------------------------- schema pieces
# Shared by the services' rows. Views always carry every key they list, so ``obj`` marks
# every property required unless told otherwise; a value that may be null says so.

def nullable(schema: Mapping[str, Any]) -> dict:
    return {**schema, "nullable": True}


def obj(properties: Mapping[str, Any], *, optional: tuple[str, ...] = (),
        additional: bool | Mapping[str, Any] = False, **extra: Any) -> dict:
    """An object with exactly ``properties`` (all required but ``optional``)."""
    schema: dict[str, Any] = {"type": "object", "properties": dict(properties),
                              "additionalProperties": additional, **extra}
    required = [name for name in properties if name not in optional]
    if required:
        schema["required"] = required
    return schema


STRING = {"type": "string"}
NULLABLE_STRING = {"type": "string", "nullable": True}
INTEGER = {"type": "integer"}
COUNT = {"type": "integer", "minimum": 0}
BOOLEAN = {"type": "boolean"}
TIME = {"type": "string", "format": "date-time", "description": "ISO-8601, UTC"}
NULLABLE_TIME = nullable(TIME)
DATE = {"type": "string", "format": "date"}
ROLE = {"type": "string", "enum": list(ROLES)}
ANY_OBJECT = {"type": "object", "additionalProperties": True}
# ``"data": null``: deletes, logout, password reset.
NO_DATA = {"type": "object", "nullable": True, "enum": [None], "description": "always null"}

LIMIT = {"type": "integer", "minimum": 1, "maximum": 100, "default": 25,
         "description": "items per page"}
CURSOR = {"type": "string", "minLength": 1, "maxLength": 4096,
          "description": "the nextCursor of the previous page (opaque, signed)"}
PAGE_QUERY = {"type": "object", "properties": {"limit": LIMIT, "cursor": CURSOR},
              "additionalProperties": True}


def page(item: Mapping[str, Any], **more: Any) -> dict:
    """A list's answer: ``{items, nextCursor}`` (plus ``more`` properties)."""
    return obj({"items": {"type": "array", "items": dict(item)},
                "nextCursor": nullable({**STRING, "description": "null on the last page"}),
                **more})


def page_query(**more: Any) -> dict:
    """``limit`` and ``cursor`` plus ``more`` query parameters; unknown ones are ignored."""
    return {**PAGE_QUERY, "properties": {**PAGE_QUERY["properties"], **more}}


# ------------------------------------------------------------- shapes several services answer

# A token pair: register, login, refresh, a password change (auth) and switch (account).
TOKENS = obj({
    "accessToken": {"type": "string", "minLength": 1, "description": "JWT, 15 minutes"},
    "refreshToken": {"type": "string", "minLength": 1, "description": "JWT, 30 days, used once"},
    "tokenType": {"type": "string", "enum": ["Bearer"]},
    "expiresIn": {"type": "integer", "minimum": 1, "description": "seconds"},
    "user": obj({"userId": STRING, "email": STRING, "name": STRING, "emailVerified": BOOLEAN},
                title="SessionUser"),
    "account": obj({"accountId": STRING, "name": STRING, "plan": STRING, "role": ROLE},
                   title="SessionAccount"),
}, title="Tokens")

# A plan's limits (null = unlimited): the plan catalog (billing) and the account (account).
_LIMIT = {"type": "integer", "minimum": 0, "nullable": True, "description": "null = unlimited"}
PLAN_LIMITS = obj({"sources": _LIMIT, "jobs": _LIMIT, "storageBytes": COUNT,
                   "retentionDays": COUNT, "subAccounts": _LIMIT,
                   "mostFrequentSchedule": {"type": "string", "enum": ["hourly", "daily"]}},
                  title="PlanLimits")

# A backup run: the jobs service's routes and POST /sources/{sourceId}/sync (sources).
RUN_STATUSES = ["pending", "running", "completed", "partial", "failed", "cancelled"]
RUN = obj({
    "runId": STRING, "jobId": NULLABLE_STRING, "sourceId": NULLABLE_STRING,
    "status": {"type": "string", "enum": RUN_STATUSES},
    "trigger": nullable({"type": "string", "description": "manual, sync or schedule"}),
    "createdAt": NULLABLE_TIME, "startedAt": NULLABLE_TIME, "finishedAt": NULLABLE_TIME,
    "records": INTEGER, "bytes": INTEGER,
    "endpoints": {"type": "array", "items": obj({
        "name": NULLABLE_STRING, "status": STRING, "records": INTEGER, "bytes": INTEGER,
        "error": NULLABLE_STRING}, title="RunEndpoint")},
    "error": NULLABLE_STRING, "cancelRequested": BOOLEAN,
}, title="Run")
