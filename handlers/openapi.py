"""The OpenAPI 3.0.3 document of the HTTP API, generated from the assembled route table.

Every route's contract comes from its row (``handlers/<service>/routes.py``): the request
body and query parameters (the very schemas the handlers validate with), the ``data`` of
the success envelope, the minimum role and whether it is public. This module adds what is
the same for every route: the envelopes, the error statuses, the security scheme, and
links from what a create answers to the operations that take its id, so a client (or a
stateful fuzzer) can follow a created resource to its reads, updates and deletes.

Offline mode serves the document at ``/v2/openapi.json``; ``python -m handlers.openapi``
prints it (``make openapi`` writes ``docs/openapi.json``, which a test keeps current).
No Lambda bundle imports this module.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from typing import Any, Mapping

from handlers.routes import all_routes
from handlers.shared.http import _STATUS_CODES
from handlers.shared.routing import Route

ERROR_CODES = {
    "400": "invalid_request or validation_failed (naming the fields)",
    "401": "unauthorized or invalid_credentials; API Gateway's own {\"message\": \"Unauthorized\"} "
           "when no credential is sent",
    "402": "plan_limit", "403": "forbidden; API Gateway's own {\"message\": \"Forbidden\"} when "
                                "the authorizer refuses the credential",
    "404": "not_found", "409": "conflict", "413": "payload_too_large",
    "429": "rate_limited (with Retry-After)", "500": "internal", "503": "unavailable",
}
CODES = list(_STATUS_CODES)     # the error codes api_handler answers with
_JSON = "application/json"


def _operation_id(route: Route) -> str:
    words = re.sub(r"[{}]", "", route.path).strip("/").replace("-", "/").split("/")
    return route.method.lower() + "".join(w[:1].upper() + w[1:] for w in words if w)


def _path_parameters(route: Route) -> list[str]:
    return re.findall(r"\{([^}]+)\}", route.path)


def _hoist(schema: Any, named: dict[str, Any]) -> Any:
    """``schema`` with every titled sub-schema moved to ``components/schemas`` (by title) and
    referenced, so a shape used by many routes (Source, Job, Run...) is declared once."""
    if isinstance(schema, list):
        return [_hoist(item, named) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "patternProperties") and isinstance(value, Mapping):
            out[key] = {name: _hoist(sub, named) for name, sub in value.items()}
        elif key in ("enum", "default", "example", "title", "description"):
            out[key] = copy.deepcopy(value)
        else:
            out[key] = _hoist(value, named)
    title = out.get("title")
    if isinstance(title, str) and not out.get("nullable"):
        if title in named and named[title] != out:
            raise ValueError(f"two different schemas are titled {title!r}")
        named[title] = out
        return {"$ref": f"#/components/schemas/{title}"}
    return out


def _json(schema: Mapping[str, Any], description: str) -> dict:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def _success(route: Route, named: dict[str, Any]) -> tuple[str, dict]:
    if 300 <= route.status < 400:
        return str(route.status), {
            "description": "A redirect (no body)",
            "headers": {"Location": {"description": "where to go", "required": True,
                                     "schema": {"type": "string"}}}}
    data = _hoist(route.response, named)
    envelope = {"type": "object", "required": ["success", "data"], "additionalProperties": False,
                "properties": {"success": {"type": "boolean", "enum": [True]}, "data": data}}
    return str(route.status), _json(envelope, "Success: the answer is in data")


def _error_answers() -> dict[str, Any]:
    """``components/responses``: one failure answer per status, shared by every route."""
    answers = {}
    for status, why in ERROR_CODES.items():
        schema: dict[str, Any] = {"$ref": "#/components/schemas/Error"}
        if status in ("401", "403", "404", "413", "500", "503"):
            # API Gateway (and offline mode) answer these themselves in some cases
            schema = {"anyOf": [schema, {"$ref": "#/components/schemas/GatewayMessage"}]}
        answer = _json(schema, why)
        if status == "429":
            answer["headers"] = {"Retry-After": {"description": "seconds to wait",
                                                 "schema": {"type": "integer"}}}
        answers[f"Error{status}"] = answer
    return answers


_ERRORS = {status: {"$ref": f"#/components/responses/Error{status}"} for status in ERROR_CODES}


def _query_parameters(route: Route, named: dict[str, Any]) -> list[dict]:
    schema = route.query or {}
    required = set(schema.get("required") or [])
    parameters = []
    for name, sub in (schema.get("properties") or {}).items():
        parameter = {"name": name, "in": "query", "required": name in required,
                     "schema": _hoist(sub, named)}
        if isinstance(sub, Mapping) and sub.get("description"):
            parameter["description"] = sub["description"]
        parameters.append(parameter)
    return parameters


def _description(route: Route) -> str:
    who = "Public (no credential)." if route.public else f"Needs the {route.access} role or above."
    lines = [who]
    if route.query is not None and route.query.get("additionalProperties") is False:
        lines.append("Any other query parameter is refused (400 validation_failed).")
    return " ".join(lines)


def _links(routes: list[Route], operation_ids: dict[str, str]) -> dict[str, dict[str, dict]]:
    """route key -> links: from what a create (201) or a started background work (202)
    answers to every other operation that takes the id of what was created (the answer's
    first ``...Id`` property) in its path, its other path parameters coming from the answer
    too or from the request's own path."""
    found: dict[str, dict[str, dict]] = {}
    for source in routes:
        if source.method != "POST" or source.status not in (201, 202) or source.response is None:
            continue
        answered = list(source.response.get("properties") or {})
        created = next((name for name in answered if name.endswith("Id")), None)
        own = set(_path_parameters(source))
        for target in routes:
            wanted = _path_parameters(target)
            if target is source or created not in wanted:
                continue
            if not set(wanted) <= set(answered) | own:
                continue
            parameters = {name: (f"$response.body#/data/{name}" if name in answered
                                 else f"$request.path.{name}") for name in wanted}
            found.setdefault(source.route_key, {})[operation_ids[target.route_key]] = {
                "operationId": operation_ids[target.route_key], "parameters": parameters,
                "description": f"{target.route_key} with the {', '.join(sorted(wanted))} "
                               f"of this answer"}
    return found


def document(server_url: str = "/v2") -> dict[str, Any]:
    named: dict[str, Any] = {}
    routes = [(service, route) for service, rs in sorted(all_routes().items()) for route in rs]
    operation_ids = {route.route_key: _operation_id(route) for _, route in routes}
    paths: dict[str, dict] = {}
    for service, route in routes:
        operation: dict[str, Any] = {
            "operationId": operation_ids[route.route_key],
            "tags": [service],
            "summary": route.summary or route.route_key,
            "description": _description(route),
        }
        parameters = [{"name": p, "in": "path", "required": True,
                       "schema": {"type": "string", "minLength": 1}}
                      for p in _path_parameters(route)]
        parameters += _query_parameters(route, named)
        if parameters:
            operation["parameters"] = parameters
        if route.body is not None:
            operation["requestBody"] = {"required": True, "content": {
                _JSON: {"schema": _hoist(route.body, named)}}}
        status, success = _success(route, named)
        operation["responses"] = {status: success, **_ERRORS}
        operation["security"] = [] if route.public else [{"bearer": []}]
        operation["x-minimum-role"] = route.access
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    for route_key, links in _links([r for _, r in routes], operation_ids).items():
        method, path = route_key.split(" ", 1)
        operation = paths[path][method.lower()]
        status = next(s for s in operation["responses"] if s.startswith("2"))
        operation["responses"][status]["links"] = dict(sorted(links.items()))
    return {
        "openapi": "3.0.3",
        "info": {"title": "ListBackup API", "version": "v2",
                 "description": "Back up SaaS data into S3; browse, search, export and restore it. "
                                "Every answer is JSON: {\"success\": true, \"data\": ...} or "
                                "{\"success\": false, \"error\": ..., \"code\": ...}. Lists take "
                                "limit (1-100, default 25) and cursor, and answer {items, "
                                "nextCursor}."},
        "servers": [{"url": server_url}],
        "tags": [{"name": service} for service in sorted({s for s, _ in routes})],
        "paths": dict(sorted(paths.items())),
        "components": {
            "responses": _error_answers(),
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "An access token (JWT) or an API key (lbk_...)"}},
            "schemas": {
                "Error": {
                    "type": "object", "required": ["success", "error", "code"],
                    "additionalProperties": False,
                    "properties": {
                        "success": {"type": "boolean", "enum": [False]},
                        "error": {"type": "string", "minLength": 1,
                                  "description": "for a human"},
                        "code": {"type": "string", "enum": CODES},
                        "fields": {"type": "array", "items": {"type": "string"},
                                   "description": "the offending fields or parameters"},
                        "details": {"description": "more about the failure, by code"}}},
                "GatewayMessage": {
                    "type": "object", "required": ["message"], "additionalProperties": False,
                    "description": "written by API Gateway itself, not by a handler",
                    "properties": {"message": {"type": "string"}}},
                **dict(sorted(named.items())),
            },
        },
    }


def main() -> int:
    """Print the document (``python -m handlers.openapi > docs/openapi.json``)."""
    sys.stdout.write(rendered())
    return 0


def rendered(server_url: str = "/v2") -> str:
    """The document as committed: two-space indent, ASCII only, a final newline."""
    return json.dumps(document(server_url), indent=2, ensure_ascii=True) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
