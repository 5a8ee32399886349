"""The HTTP side of every API function: one envelope, one error mapping, one dispatch.

API Gateway (HTTP API, payload 2.0) has already matched the route; ``api_handler``
dispatches on the event's ``routeKey`` through the service's route table, checks the
caller's role against the route's minimum, validates the query string and parses and
validates the JSON body against the route's schemas, and
shapes every outcome as ``{"success": true, "data": ...}`` or
``{"success": false, "error": ..., "code": ...}``.
"""

from __future__ import annotations

import base64
import json
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from handlers.shared.routing import Route, allows

MAX_BODY_BYTES = 1024 * 1024

_STATUS_CODES = {
    "invalid_request": 400, "validation_failed": 400, "unauthorized": 401,
    "invalid_credentials": 401, "plan_limit": 402, "forbidden": 403, "not_found": 404,
    "conflict": 409, "payload_too_large": 413, "rate_limited": 429, "internal": 500,
    "unavailable": 503,
}


class ApiError(Exception):
    """An outcome for the caller: a 4xx they can act on, or a 5xx fault of ours."""

    def __init__(self, code: str, message: str, *, fields: Iterable[str] = (),
                 headers: Mapping[str, str] | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.details = details
        self.code = code
        self.status = _STATUS_CODES[code]
        self.message = message
        self.fields = sorted(set(fields))
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class Request:
    route: Route
    body: Any
    path: Mapping[str, str]
    query: Mapping[str, str]
    headers: Mapping[str, str]
    user_id: str | None = None
    account_id: str | None = None
    role: str | None = None
    request_id: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


def response(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> dict:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", **(headers or {})},
        "body": json.dumps(payload, separators=(",", ":"), default=str),
    }


def success(data: Any, status: int = 200) -> dict:
    return response(status, {"success": True, "data": data})


def failure(error: ApiError) -> dict:
    payload = {"success": False, "error": error.message, "code": error.code}
    if error.fields:
        payload["fields"] = error.fields
    if error.details is not None:
        payload["details"] = error.details
    return response(error.status, payload, error.headers)


class RawResponse(dict):
    """An operation's answer that is not the JSON envelope (a redirect): passed through."""


def redirect(location: str, status: int = 302) -> RawResponse:
    return RawResponse(statusCode=status, headers={"location": location, "cache-control": "no-store"},
                       body="")


Operation = Callable[[Request], Any]


def api_handler(routes: Iterable[Route], operations: Mapping[str, Operation], logger) -> Callable:
    """The Lambda entry point of a service's API function."""
    table = {route.route_key: route for route in routes}
    missing = sorted(r.operation for r in table.values() if r.operation not in operations)
    if missing:
        raise RuntimeError(f"routes without an implementation: {missing}")

    def handler(event: Mapping[str, Any], context: Any) -> dict:
        request_id = (event.get("requestContext") or {}).get("requestId", "")
        logger.append_keys(request_id=request_id, route=event.get("routeKey"))
        try:
            route = table.get(event.get("routeKey", ""))
            if route is None:
                raise ApiError("not_found", "No such route")
            # The role is checked before the body is read: a caller who may not use the
            # route learns nothing about its schema.
            if not allows(route, _identity(event).get("role")):
                raise ApiError("forbidden", "Your role does not allow this")
            request = _request(route, event, request_id)
            data = operations[route.operation](request)
            if isinstance(data, RawResponse):
                logger.info("request handled", extra={"status": data.get("statusCode")})
                return dict(data)
            logger.info("request handled", extra={"status": route.status})
            return success(data, route.status)
        except ApiError as error:
            logger.info("request refused", extra={"code": error.code, "status": error.status})
            return failure(error)
        except Exception as exc:
            # An exception's text can carry request data or secrets: log its type and
            # where it was raised, never its message.
            frames = traceback.extract_tb(exc.__traceback__)
            logger.error("request failed", extra={
                "error_type": type(exc).__name__,
                "stack": [f"{f.filename}:{f.lineno} in {f.name}" for f in frames]})
            return failure(ApiError("internal", "Something went wrong on our side"))
        finally:
            logger.remove_keys(["request_id", "route"])

    return handler


def _identity(event: Mapping[str, Any]) -> Mapping[str, Any]:
    return ((event.get("requestContext") or {}).get("authorizer") or {}).get("lambda") or {}


def _request(route: Route, event: Mapping[str, Any], request_id: str) -> Request:
    identity = _identity(event)
    query = dict(event.get("queryStringParameters") or {})
    if route.query is not None:
        from handlers.shared.schema import validate_query  # as for bodies: only routes with one

        validate_query(route, query)
    return Request(
        route=route,
        body=_body(route, event),
        path=dict(event.get("pathParameters") or {}),
        query=query,
        headers={k.lower(): v for k, v in (event.get("headers") or {}).items()},
        user_id=identity.get("userId"),
        account_id=identity.get("accountId"),
        role=identity.get("role"),
        request_id=request_id,
        raw=event,
    )


def _body(route: Route, event: Mapping[str, Any]) -> Any:
    raw = event.get("body")
    if raw is None or raw == "":
        if route.body is not None:
            raise ApiError("invalid_request", "A JSON body is required")
        return None
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(raw, validate=True)
        except ValueError:  # binascii.Error is a ValueError
            raise ApiError("invalid_request", "The body is not valid base64") from None
    size = len(raw.encode("utf-8", "surrogatepass")) if isinstance(raw, str) else len(raw)
    if size > MAX_BODY_BYTES:
        raise ApiError("payload_too_large", f"The body is over {MAX_BODY_BYTES} bytes")
    try:
        # NaN and Infinity are not JSON, though Python's parser accepts them.
        body = json.loads(raw, parse_constant=_not_json)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: deep nesting
        raise ApiError("invalid_request", "The body is not valid JSON") from None
    try:
        # A "\ud800" escape decodes to a lone surrogate, which is not text: it cannot be
        # encoded, hashed or stored, so whatever touched it would fail with a 500.
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError("invalid_request", "The body holds text that is not valid Unicode "
                                          "(an unpaired surrogate escape)") from None
    except RecursionError:
        raise ApiError("invalid_request", "The body is not valid JSON") from None
    if route.body is not None:
        from handlers.shared.schema import validate  # only routes with a body pay for it

        validate(route, body)
    return body


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")
