"""The OpenAPI 3.0.3 document of the HTTP API, generated from the assembled route table.

Served offline at ``/v2/openapi.json``; tools (schemathesis, client generators) read it.
No Lambda bundle imports this module.
"""

from __future__ import annotations

import re
from typing import Any

from handlers.routes import all_routes
from handlers.shared.routing import Route

ERROR_CODES = {
    "400": "invalid_request or validation_failed", "401": "unauthorized or invalid_credentials",
    "402": "plan_limit", "403": "forbidden", "404": "not_found", "409": "conflict",
    "413": "payload_too_large", "429": "rate_limited", "500": "internal", "503": "unavailable",
}


def _operation_id(route: Route) -> str:
    words = re.sub(r"[{}]", "", route.path).strip("/").replace("-", "/").split("/")
    return route.method.lower() + "".join(w[:1].upper() + w[1:] for w in words if w)


def document(server_url: str = "/v2") -> dict[str, Any]:
    paths: dict[str, dict] = {}
    for service, routes in sorted(all_routes().items()):
        for route in routes:
            operation: dict[str, Any] = {
                "operationId": _operation_id(route),
                "tags": [service],
                "summary": route.summary or route.route_key,
                "responses": {
                    str(route.status): {"description": "Success",
                                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Success"}}}},
                    **{code: {"description": why,
                              "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
                       for code, why in ERROR_CODES.items()},
                },
                "x-minimum-role": route.access,
            }
            params = re.findall(r"\{([^}]+)\}", route.path)
            if params:
                operation["parameters"] = [
                    {"name": p, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
                    for p in params]
            if route.body is not None:
                operation["requestBody"] = {"required": True, "content": {
                    "application/json": {"schema": dict(route.body)}}}
            operation["security"] = [] if route.public else [{"bearer": []}]
            paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.0.3",
        "info": {"title": "ListBackup API", "version": "v2",
                 "description": "Back up SaaS data into S3; browse, search, export and restore it."},
        "servers": [{"url": server_url}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "An access token (JWT) or an API key (lbk_...)"}},
            "schemas": {
                "Success": {"type": "object", "required": ["success", "data"],
                            "properties": {"success": {"type": "boolean", "enum": [True]},
                                           "data": {"nullable": True}}},
                "Error": {"type": "object", "required": ["success", "error", "code"],
                          "properties": {"success": {"type": "boolean", "enum": [False]},
                                         "error": {"type": "string"}, "code": {"type": "string"},
                                         "fields": {"type": "array", "items": {"type": "string"}}}},
            },
        },
    }
