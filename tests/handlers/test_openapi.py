"""The OpenAPI document generated from the route table is valid, complete, published in
docs/openapi.json, and enforced: handlers validate query parameters with its schemas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft7Validator
from openapi_spec_validator import validate

from handlers.openapi import document, rendered
from handlers.routes import all_routes
from handlers.shared.http import api_handler
from handlers.shared.log import get_logger
from handlers.shared.routing import PAGE_QUERY, Route
from handlers.shared.schema import to_json_schema
from tests.support import LambdaContext, api_event, call

ROOT = Path(__file__).resolve().parent.parent.parent
COMMITTED = ROOT / "docs" / "openapi.json"
ROUTES = [route for routes in all_routes().values() for route in routes]
# What a response must never carry, whatever the route (stored secrets and their hashes).
SECRET_NAMES = {"passwordHash", "keyHash", "codeHash", "credentialsCiphertext", "tokenHash",
                "clientSecret", "password"}


def test_the_document_is_valid_openapi_3_0_3():
    validate(document())


def test_the_committed_document_is_current():
    assert COMMITTED.is_file(), "docs/openapi.json is missing: run `make openapi`"
    assert COMMITTED.read_text(encoding="utf-8") == rendered(), \
        "docs/openapi.json is stale: run `make openapi` and commit it"


def test_every_route_appears_once_with_its_security_body_query_and_response():
    doc = document()
    for route in ROUTES:
        operation = doc["paths"][route.path][route.method.lower()]
        assert (operation["security"] == []) is route.public
        assert ("requestBody" in operation) is (route.body is not None)
        assert operation["x-minimum-role"] == route.access
        queried = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        assert queried == set((route.query or {}).get("properties") or {}), route.route_key
        assert str(route.status) in operation["responses"]
        assert {"400", "401", "403", "404", "500"} <= set(operation["responses"])
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)) == len(ROUTES)


def test_every_route_declares_what_it_answers_as_draft_7():
    for route in ROUTES:
        if 300 <= route.status < 400:
            assert route.response is None, f"{route.route_key} redirects: it has no JSON body"
            continue
        assert route.response is not None, f"{route.route_key} declares no response schema"
        for schema in (route.response, route.query, route.body):
            if schema is not None:
                Draft7Validator.check_schema(to_json_schema(schema))


def test_objects_in_answers_list_their_properties():
    """An object with no properties is not a contract: every object schema in an answer
    names its properties, says what its values are (a map), or says why it is open."""
    def check(schema, where):
        if isinstance(schema, dict):
            if schema.get("type") == "object" and "enum" not in schema:
                extra = schema.get("additionalProperties")
                assert schema.get("properties") or isinstance(extra, dict) \
                    or (extra is True and schema.get("description")), f"{where}: no properties"
            for key, value in schema.items():
                check(value, f"{where}.{key}")
        elif isinstance(schema, list):
            for item in schema:
                check(item, where)

    for route in ROUTES:
        check(route.response, route.route_key)


def test_lists_answer_items_and_a_cursor_and_take_limit_and_cursor():
    for route in ROUTES:
        properties = (route.response or {}).get("properties") or {}
        if {"items", "nextCursor"} <= set(properties) and route.method == "GET" \
                and route.route_key not in ("GET /billing/plans", "GET /integrations"):
            query = (route.query or {}).get("properties") or {}
            assert query.get("limit") == PAGE_QUERY["properties"]["limit"], route.route_key
            assert "cursor" in query, route.route_key


def test_no_answer_declares_a_secret():
    def names(schema):
        if isinstance(schema, dict):
            yield from (schema.get("properties") or {})
            for value in schema.values():
                yield from names(value)
        elif isinstance(schema, list):
            for item in schema:
                yield from names(item)

    for route in ROUTES:
        assert not set(names(route.response)) & SECRET_NAMES, route.route_key


def test_creates_link_to_the_operations_that_take_their_id():
    doc = document()
    operations = {op["operationId"]: (path, op) for path, ops in doc["paths"].items()
                  for op in ops.values()}
    links = doc["paths"]["/sources"]["post"]["responses"]["201"]["links"]
    assert {"getSourcesSourceId", "putSourcesSourceId", "deleteSourcesSourceId"} <= set(links)
    assert links["getSourcesSourceId"]["parameters"] == {
        "sourceId": "$response.body#/data/sourceId"}
    expected = {("/jobs", "201", "getJobsJobId"), ("/api-keys", "201", "deleteApiKeysKeyId"),
                ("/accounts/{accountId}/invitations", "201",
                 "deleteAccountsAccountIdInvitationsInviteId"),
                ("/jobs/{jobId}/run", "202", "postJobsJobIdRunsRunIdCancel"),
                ("/data/export", "202", "getDataExportsExportId")}
    for path, status, target in expected:
        assert target in doc["paths"][path]["post"]["responses"][status]["links"], (path, target)
    for path, ops in doc["paths"].items():
        for op in ops.values():
            for answer in op["responses"].values():
                for link in answer.get("links", {}).values():
                    target_path, _ = operations[link["operationId"]]
                    assert set(link["parameters"]) == set(_params(target_path)), link


def _params(path: str) -> list[str]:
    import re

    return re.findall(r"\{([^}]+)\}", path)


def test_the_envelopes_and_the_error_shape_are_published():
    doc = document()
    health = doc["paths"]["/system/health"]["get"]["responses"]["200"]
    success = health["content"]["application/json"]["schema"]
    assert success["required"] == ["success", "data"]
    assert success["properties"]["data"]["required"] == ["status", "stage", "version", "time"]
    error = doc["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"success", "error", "code"}
    assert "validation_failed" in error["properties"]["code"]["enum"]
    callback = doc["paths"]["/integrations/{type}/oauth/callback"]["get"]["responses"]
    assert "302" in callback and "content" not in callback["302"]


def test_the_generator_prints_the_committed_document(capsys):
    from handlers.openapi import main

    assert main() == 0
    assert json.loads(capsys.readouterr().out) == document()


# --------------------------------------------------------------------------- enforcement

THINGS = Route("GET", "/things", "list_things", "viewer",
               query={"type": "object", "additionalProperties": False, "properties": {
                   **PAGE_QUERY["properties"], "deleted": {"type": "boolean"},
                   "sourceId": {"type": "string", "pattern": "^[a-z_0-9]+$"}}},
               response={"type": "object"})
SEEN: list = []
HANDLER = api_handler([THINGS],
                      {"list_things": lambda request: SEEN.append(dict(request.query)) or []},
                      get_logger("test"))
VIEWER = {"userId": "usr_1", "accountId": "acc_1", "role": "viewer"}


def things(query: dict | None, identity: dict | None = VIEWER):
    return call(HANDLER, api_event("GET /things", identity=identity, query=query),
                LambdaContext("listbackup-test-api"))


@pytest.mark.parametrize("query, field", [
    ({"limit": "0"}, "limit"), ({"limit": "101"}, "limit"), ({"limit": "ten"}, "limit"),
    ({"limit": "2.5"}, "limit"), ({"limit": "5\n"}, "limit"), ({"deleted": "yes"}, "deleted"),
    ({"deleted": ""}, "deleted"),
    ({"sourceId": "NOT OK"}, "sourceId"), ({"cursor": "c" * 4097}, "cursor"),
    ({"other": "x"}, "other"),
])
def test_query_parameters_are_validated_with_the_routes_schema(query, field):
    SEEN.clear()
    status, body = things(query)
    assert status == 400 and body["code"] == "validation_failed", body
    assert body["fields"] == [field] and field in body["error"]
    assert SEEN == []          # the operation never ran


def test_valid_parameters_reach_the_operation_as_the_strings_they_were():
    SEEN.clear()
    status, body = things({"limit": "25", "deleted": "false", "sourceId": "src_1", "cursor": "abc"})
    assert status == 200, body
    assert SEEN == [{"limit": "25", "deleted": "false", "sourceId": "src_1", "cursor": "abc"}]


def test_an_empty_parameter_is_checked_like_any_other():
    status, body = things({"limit": ""})
    assert status == 400 and body["fields"] == ["limit"]


def test_the_role_is_checked_before_the_query():
    status, body = things({"limit": "0"}, identity={**VIEWER, "role": "nobody"})
    assert status == 403 and body["code"] == "forbidden"


# What fuzzing found: an empty query value (``?cursor=``, ``?type=``, ``?to=``) broke the
# published schema (minLength, format) but was taken as absent; it is now refused like any
# other value that breaks it, by every service.
@pytest.mark.parametrize("service, route_key, query, field", [
    ("activity", "GET /activity", {"type": ""}, "type"),
    ("activity", "GET /activity", {"from": ""}, "from"),
    ("data", "GET /data/files", {"to": ""}, "to"),
    ("data", "GET /data/files", {"sourceId": ""}, "sourceId"),
    ("data", "GET /data/tree", {"sourceId": ""}, "sourceId"),
    ("jobs", "GET /jobs", {"cursor": ""}, "cursor"),
    ("sources", "GET /sources", {"limit": ""}, "limit"),
    ("account", "GET /accounts", {"cursor": ""}, "cursor"),
    ("auth", "GET /api-keys", {"cursor": ""}, "cursor"),
    ("billing", "GET /billing/invoices", {"cursor": ""}, "cursor"),
    ("analytics", "GET /analytics/timeseries", {"days": ""}, "days"),
])
def test_every_service_refuses_an_empty_query_value_its_schema_does_not_allow(
        backend, service, route_key, query, field):
    import importlib

    api = importlib.import_module(f"handlers.{service}.api")
    identity = {"userId": "usr_fuzz", "accountId": "acc_fuzz", "role": "owner"}
    status, body = call(api.handler, api_event(route_key, identity=identity, query=query),
                        LambdaContext(f"listbackup-{service}-test-api"))
    assert status == 400 and body["code"] == "validation_failed" and body["fields"] == [field], body
