"""The HTTP contract every API function shares (DESIGN.md section 4), seen from the caller.

Each test drives an ``api_handler`` with the API Gateway HTTP API payload-2.0 event a real
request would produce and checks the status, the envelope and the logs.
"""

from __future__ import annotations

import base64
import importlib
import json

import pytest

from handlers.routes import all_routes
from handlers.shared.http import MAX_BODY_BYTES, ApiError, api_handler
from handlers.shared.log import get_logger
from handlers.shared.routing import PUBLIC, Route
from tests.support import logging_to_stdout

SECRET = "sk_live_FakeHunter2DoNotLog0000001"


# ---------------------------------------------------------------------------- helpers

class Context:
    """The parts of a Lambda context Powertools' ``inject_lambda_context`` reads."""

    def __init__(self, function_name: str = "listbackup-test-dev-api") -> None:
        self.function_name = function_name
        self.memory_limit_in_mb = 256
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.aws_request_id = "lambda-req-1"


def identity(role: str | None) -> dict:
    """What the Lambda authorizer hands the handler."""
    who = {"userId": "user-1", "accountId": "acct-1"}
    if role is not None:
        who["role"] = role
    return who


def http_event(route_key: str, *, body: str | None = None, base64_encoded: bool = False,
               who: dict | None = None, path: dict | None = None, query: dict | None = None,
               headers: dict | None = None, request_id: str = "apigw-req-1") -> dict:
    """An API Gateway HTTP API (payload format 2.0) event for ``route_key``."""
    method, _, raw_path = route_key.partition(" ")
    for name, value in (path or {}).items():
        raw_path = raw_path.replace("{" + name + "}", value)
    context = {
        "accountId": "123456789012", "apiId": "api123", "domainName": "api.example.test",
        "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1",
                 "sourceIp": "203.0.113.9", "userAgent": "pytest"},
        "requestId": request_id, "routeKey": route_key, "stage": "$default",
        "time": "01/Jan/2025:00:00:00 +0000", "timeEpoch": 1735689600000,
    }
    all_headers = {"content-type": "application/json", "host": "api.example.test"}
    if who is not None:
        context["authorizer"] = {"lambda": who}
        all_headers["authorization"] = "Bearer test-token"
    all_headers.update(headers or {})
    event = {
        "version": "2.0", "routeKey": route_key, "rawPath": raw_path,
        "rawQueryString": "&".join(f"{k}={v}" for k, v in (query or {}).items()),
        "headers": all_headers, "requestContext": context, "isBase64Encoded": base64_encoded,
    }
    if body is not None:
        event["body"] = body
    if path:
        event["pathParameters"] = path
    if query:
        event["queryStringParameters"] = query
    return event


def call(handler, event: dict, context: Context | None = None) -> tuple[int, dict]:
    """Invoke ``handler``; every answer, whatever the outcome, is JSON with its content type."""
    result = handler(event, context or Context())
    assert result["headers"]["content-type"] == "application/json"
    assert isinstance(result["body"], str)
    return result["statusCode"], json.loads(result["body"])


def assert_error(status: int, body: dict, expected_status: int, code: str) -> None:
    assert status == expected_status, body
    assert body["success"] is False
    assert body["code"] == code
    assert isinstance(body["error"], str) and body["error"]


def log_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# ---------------------------------------------------------------------------- the service

THING_SCHEMA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "note": {"type": "string", "nullable": True},
    },
    "additionalProperties": False,
}

ROUTES = (
    Route("GET", "/things", "list_things", PUBLIC),
    Route("POST", "/things", "create_thing", "manager", body=THING_SCHEMA, status=201),
    Route("DELETE", "/things/{thingId}", "delete_thing", "owner"),
    Route("POST", "/things/{thingId}/claim", "claim_thing", "viewer"),
    Route("GET", "/things/broken", "broken", "viewer"),
)


def list_things(request):
    return {"items": [{"thingId": "t1"}], "nextCursor": None, "query": dict(request.query)}


def create_thing(request):
    return {"thingId": "t2", "name": request.body["name"], "note": request.body.get("note"),
            "createdBy": request.user_id, "accountId": request.account_id}


def delete_thing(request):
    assert request.path == {"thingId": "t1"}
    return None


def claim_thing(request):
    raise ApiError("conflict", "This thing is already claimed")


def broken(request):
    raise RuntimeError(f"could not connect with password {SECRET}")


OPERATIONS = {"list_things": list_things, "create_thing": create_thing,
              "delete_thing": delete_thing, "claim_thing": claim_thing, "broken": broken}



@pytest.fixture
def logger():
    """The service's Powertools logger, writing to the stdout capsys captures."""
    with logging_to_stdout(get_logger("http-contract-test"), "INFO") as log:
        yield log


@pytest.fixture
def handler(logger):
    return logger.inject_lambda_context(api_handler(ROUTES, OPERATIONS, logger))


def create(handler, payload, role="manager", **kwargs):
    body = payload if isinstance(payload, str) else json.dumps(payload)
    return call(handler, http_event("POST /things", body=body, who=identity(role), **kwargs))


# ---------------------------------------------------------------------------- success

def test_public_get_answers_the_success_envelope(handler):
    status, body = call(handler, http_event("GET /things", query={"limit": "10"}))
    assert status == 200
    assert body == {"success": True, "data": {"items": [{"thingId": "t1"}], "nextCursor": None,
                                              "query": {"limit": "10"}}}


def test_create_answers_the_routes_status_with_the_identity_passed_through(handler):
    status, body = create(handler, {"name": "Widget"})
    assert status == 201
    assert body == {"success": True, "data": {"thingId": "t2", "name": "Widget", "note": None,
                                              "createdBy": "user-1", "accountId": "acct-1"}}


def test_delete_answers_null_data(handler):
    status, body = call(handler, http_event("DELETE /things/{thingId}", path={"thingId": "t1"},
                                            who=identity("owner")))
    assert (status, body) == (200, {"success": True, "data": None})


# ---------------------------------------------------------------------------- routing

@pytest.mark.parametrize("route_key", ["GET /nothing-here", "PUT /things", "$default", ""])
def test_unknown_route_is_404_not_found(handler, route_key):
    status, body = call(handler, http_event(route_key, who=identity("owner")))
    assert_error(status, body, 404, "not_found")


def test_event_without_route_key_is_404(handler):
    event = http_event("GET /things")
    del event["routeKey"]
    assert_error(*call(handler, event), 404, "not_found")


# ---------------------------------------------------------------------------- body parsing

@pytest.mark.parametrize("raw", [None, ""])
def test_missing_body_where_a_schema_exists_is_400_invalid_request(handler, raw):
    status, body = call(handler, http_event("POST /things", body=raw, who=identity("manager")))
    assert_error(status, body, 400, "invalid_request")


@pytest.mark.parametrize("raw", ["{", "{'name': 'x'}", "name=x", "\x00", "[1,]"])
def test_malformed_json_is_400_invalid_request(handler, raw):
    assert_error(*create(handler, raw), 400, "invalid_request")


def test_deeply_nested_json_is_400_not_500(handler):
    assert_error(*create(handler, "[" * 100_000 + "]" * 100_000), 400, "invalid_request")


def test_base64_body_is_decoded(handler):
    raw = base64.b64encode(json.dumps({"name": "Gadget ✓"}).encode()).decode()
    status, body = create(handler, raw, base64_encoded=True)
    assert status == 201
    assert body["data"]["name"] == "Gadget ✓"


@pytest.mark.parametrize("raw", [
    "not base64 at all!",
    "eyJuYW1lIjoieCJ9*",          # valid base64 of {"name":"x"} with a stray character
    "eyJuYW1lIjoieCJ",            # truncated
    "ëyJuYW1lIjoieCJ9",           # non-ASCII
])
def test_invalid_base64_is_400_invalid_request(handler, raw):
    status, body = create(handler, raw, base64_encoded=True)
    assert_error(status, body, 400, "invalid_request")
    assert "base64" in body["error"]


def test_body_over_one_mebibyte_is_413(handler):
    raw = json.dumps({"name": "x" * MAX_BODY_BYTES})
    assert_error(*create(handler, raw), 413, "payload_too_large")


def test_body_limit_counts_bytes_not_characters(handler):
    raw = json.dumps({"name": "é" * (MAX_BODY_BYTES // 2 + 10)}, ensure_ascii=False)
    assert len(raw) < MAX_BODY_BYTES < len(raw.encode())
    assert_error(*create(handler, raw), 413, "payload_too_large")


def test_base64_body_over_the_limit_is_413(handler):
    raw = base64.b64encode(json.dumps({"name": "x" * MAX_BODY_BYTES}).encode()).decode()
    assert_error(*create(handler, raw, base64_encoded=True), 413, "payload_too_large")


def test_body_just_under_the_limit_is_accepted(handler):
    name = "x" * (MAX_BODY_BYTES - len(json.dumps({"name": ""})))
    raw = json.dumps({"name": name})
    assert len(raw.encode()) == MAX_BODY_BYTES
    status, body = create(handler, raw)
    assert status == 201 and body["data"]["name"] == name


# ---------------------------------------------------------------------------- validation

@pytest.mark.parametrize("payload, fields", [
    ({}, ["name"]),                                    # missing required
    ({"note": "hi"}, ["name"]),                        # missing required, other field present
    ({"name": 5}, ["name"]),                           # wrong type
    ({"name": None}, ["name"]),                        # null where not nullable
    ({"name": ""}, ["name"]),                          # too short
    ({"name": "x", "note": 7}, ["note"]),              # wrong type on the optional field
    ({"name": "x", "colour": "red"}, ["colour"]),      # extra property
    ({"name": "x", "a": 1, "b": 2}, ["a", "b"]),       # several extra properties
    ([], ["body"]),                                    # not an object at all
    ('"a string"', ["body"]),                        # JSON, but a string
], ids=["missing", "missing-with-other", "wrong-type", "null", "too-short", "optional-wrong-type",
        "extra", "extras", "array", "string"])
def test_schema_violation_is_400_validation_failed_naming_the_field(handler, payload, fields):
    status, body = create(handler, payload)
    assert_error(status, body, 400, "validation_failed")
    assert body["fields"] == fields


@pytest.mark.parametrize("payload, message", [
    ({}, "Missing required field: name"),
    ({"name": "x", "colour": "red"}, "Unknown field: colour (not accepted here)"),
    ({"name": "x", "a": 1, "b": 2}, "Unknown fields: a, b (not accepted here)"),
    ({"name": 5}, "Invalid name: name must be string"),
])
def test_the_error_says_in_plain_words_what_is_wrong_with_the_body(handler, payload, message):
    status, body = create(handler, payload)
    assert (status, body["error"]) == (400, message)


@pytest.mark.parametrize("note", [None, "remember this"])
def test_nullable_field_accepts_null_and_its_type(handler, note):
    status, body = create(handler, {"name": "Widget", "note": note})
    assert status == 201
    assert body["data"]["note"] == note


# ---------------------------------------------------------------------------- roles

@pytest.mark.parametrize("route_key, role, allowed", [
    ("POST /things", "viewer", False),
    ("POST /things", "manager", True),
    ("POST /things", "owner", True),
    ("DELETE /things/{thingId}", "viewer", False),
    ("DELETE /things/{thingId}", "manager", False),
    ("DELETE /things/{thingId}", "owner", True),
    ("POST /things", "admin", False),                  # not a role we know
    ("POST /things", None, False),                     # an identity without a role
])
def test_role_checks(handler, route_key, role, allowed):
    event = http_event(route_key, body=json.dumps({"name": "Widget"}), who=identity(role),
                       path={"thingId": "t1"} if "{thingId}" in route_key else None)
    if route_key.startswith("DELETE"):
        event.pop("body")
    status, body = call(handler, event)
    if allowed:
        assert status in (200, 201) and body["success"] is True
    else:
        assert_error(status, body, 403, "forbidden")


def test_no_identity_on_a_non_public_route_is_403(handler):
    status, body = call(handler, http_event("POST /things", body=json.dumps({"name": "Widget"})))
    assert_error(status, body, 403, "forbidden")


def test_forbidden_caller_gets_403_whatever_the_body(handler):
    """A caller who may not use a route learns nothing about its schema."""
    for raw in (None, "{", json.dumps({"extra": 1})):
        status, body = call(handler, http_event("POST /things", body=raw, who=identity("viewer")))
        assert_error(status, body, 403, "forbidden")
        assert "fields" not in body


@pytest.mark.parametrize("who", [None, identity("viewer"), identity("owner")])
def test_public_route_needs_no_identity(handler, who):
    status, body = call(handler, http_event("GET /things", who=who))
    assert status == 200 and body["success"] is True


# ---------------------------------------------------------------------------- failures

def test_api_error_conflict_is_409(handler):
    status, body = call(handler, http_event("POST /things/{thingId}/claim", path={"thingId": "t1"},
                                            who=identity("viewer")))
    assert_error(status, body, 409, "conflict")
    assert body == {"success": False, "error": "This thing is already claimed", "code": "conflict"}


def test_unexpected_exception_is_a_generic_500_and_the_secret_stays_out(handler, capsys):
    status, body = call(handler, http_event("GET /things/broken", who=identity("viewer"),
                                            request_id="apigw-req-boom"))
    assert_error(status, body, 500, "internal")
    assert SECRET not in json.dumps(body)
    assert "password" not in body["error"]

    captured = capsys.readouterr()
    assert SECRET not in captured.out and SECRET not in captured.err
    # ...yet the failure is logged, as JSON, with what is needed to find it
    failures = [line for line in log_lines(captured.out) if line["message"] == "request failed"]
    assert len(failures) == 1
    assert failures[0]["level"] == "ERROR"
    assert failures[0]["request_id"] == "apigw-req-boom"
    assert failures[0]["route"] == "GET /things/broken"
    assert failures[0]["error_type"] == "RuntimeError"


def test_every_request_logs_json_lines_with_its_request_id(handler, capsys):
    call(handler, http_event("GET /things", request_id="apigw-req-a"))
    call(handler, http_event("POST /things", body="{", who=identity("manager"),
                             request_id="apigw-req-b"))
    lines = log_lines(capsys.readouterr().out)
    assert {line["request_id"] for line in lines} == {"apigw-req-a", "apigw-req-b"}
    refused = next(line for line in lines if line["request_id"] == "apigw-req-b")
    assert (refused["code"], refused["status"]) == ("invalid_request", 400)


def test_request_keys_do_not_leak_into_the_next_invocation(handler, logger, capsys):
    call(handler, http_event("GET /things", request_id="apigw-req-a"))
    logger.info("between invocations")
    between = [line for line in log_lines(capsys.readouterr().out)
               if line["message"] == "between invocations"]
    assert len(between) == 1 and "request_id" not in between[0]


@pytest.mark.parametrize("event", [
    http_event("GET /things"),
    http_event("POST /things", body=json.dumps({"name": "Widget"}), who=identity("manager")),
    http_event("POST /things", body="{", who=identity("manager")),
    http_event("POST /things", body=json.dumps({}), who=identity("manager")),
    http_event("POST /things", body=json.dumps({"name": "x" * MAX_BODY_BYTES}), who=identity("manager")),
    http_event("DELETE /things/{thingId}", path={"thingId": "t1"}, who=identity("viewer")),
    http_event("POST /things/{thingId}/claim", path={"thingId": "t1"}, who=identity("viewer")),
    http_event("GET /things/broken", who=identity("viewer")),
    http_event("GET /missing"),
], ids=["200", "201", "400-json", "400-schema", "413", "403", "409", "500", "404"])
def test_every_response_is_a_json_envelope(handler, event):
    result = handler(event, Context())
    assert result["headers"]["content-type"] == "application/json"
    body = json.loads(result["body"])
    assert body["success"] is (result["statusCode"] < 400)
    if body["success"]:
        assert set(body) == {"success", "data"}
    else:
        assert {"success", "error", "code"} <= set(body) <= {"success", "error", "code", "fields"}


# ---------------------------------------------------------------------------- the route table

def test_api_handler_refuses_to_build_without_every_implementation(logger):
    operations = {k: v for k, v in OPERATIONS.items() if k != "delete_thing"}
    with pytest.raises(RuntimeError, match="delete_thing"):
        api_handler(ROUTES, operations, logger)


ALL_ROUTES = [(service, route) for service, routes in all_routes().items() for route in routes]


@pytest.mark.parametrize("service, route", ALL_ROUTES,
                         ids=[f"{s}:{r.route_key}" for s, r in ALL_ROUTES])
def test_every_route_is_implemented_by_its_service(service, route):
    """Each service's API function dispatches every route the table gives it.

    The probe is an owner with a malformed body: a route the function knows gets as far as
    reading the body (400 invalid_request) without running any operation; one it does not
    know answers 404 "No such route".
    """
    api = importlib.import_module(f"handlers.{service}.api")
    path = {name.strip("{}"): f"probe-{name.strip('{}')}"
            for name in route.path.split("/") if name.startswith("{")}
    event = http_event(route.route_key, body="{not json", who=identity("owner"), path=path or None)
    status, body = call(api.handler, event, Context(f"listbackup-{service}-test-api"))
    assert not (status == 404 and body.get("error") == "No such route"), route.route_key
    assert_error(status, body, 400, "invalid_request")


def test_nullable_folds_into_type_and_enum_but_a_property_may_be_named_nullable():
    from handlers.shared.schema import to_json_schema

    schema = {"type": "object", "properties": {
        "nullable": {"type": "boolean"},
        "status": {"type": "string", "enum": ["active", "paused"], "nullable": True}}}
    out = to_json_schema(schema)
    assert out["properties"]["nullable"] == {"type": "boolean"}
    assert out["properties"]["status"] == {"type": ["string", "null"], "enum": ["active", "paused", None]}
