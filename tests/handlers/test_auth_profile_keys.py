"""The profile and the account's API keys against moto; the real authorizer decides
whether a created key works and a revoked one stops."""

from __future__ import annotations

import hashlib
import json

import boto3
import pytest

from handlers.api import authorizer
from handlers.auth import api
from handlers.shared.http import ApiError, Request
from tests.support import PREFIX, LambdaContext, api_event, call

PASSWORD = "Quiet-Lantern-Harbor-42"


def tbl(name: str):
    return boto3.resource("dynamodb").Table(PREFIX + name)


def send(route_key: str, identity: dict | None, body=None, path=None, query=None):
    return call(api.handler, api_event(route_key, identity=identity, body=body, path=path,
                                       query=query))


def register(email="ada@example.test") -> dict:
    status, body = send("POST /auth/register", None,
                        {"email": email, "password": PASSWORD, "name": "Ada", "company": "Engines"})
    assert status == 201, body
    return body["data"]


def identity(pair: dict, role: str | None = None) -> dict:
    return {"userId": pair["user"]["userId"], "accountId": pair["account"]["accountId"],
            "role": role or pair["account"]["role"]}


def authorize(credential: str) -> dict:
    event = {"version": "2.0", "type": "REQUEST", "routeKey": "GET /sources",
             "headers": {"authorization": f"Bearer {credential}"}}
    return authorizer.handler(event, LambdaContext("listbackup-api-test-authorizer"))


def events(account_id: str, action: str) -> list[dict]:
    items = tbl("activity").query(KeyConditionExpression="accountId = :a",
                                  ExpressionAttributeValues={":a": account_id})["Items"]
    return [e for e in items if e["type"] == action]


@pytest.fixture
def owner(backend) -> dict:
    return register()


# ------------------------------------------------------------------ profile

def test_the_profile_shows_the_user_without_secrets(owner):
    status, answer = send("GET /auth/profile", identity(owner, "viewer"))
    assert status == 200
    profile = answer["data"]
    assert profile == {"userId": owner["user"]["userId"], "email": "ada@example.test",
                       "name": "Ada", "company": "Engines", "emailVerified": False,
                       "preferences": {}, "createdAt": profile["createdAt"]}
    assert profile["createdAt"].endswith("Z")


def test_the_profile_can_be_changed(owner):
    me = identity(owner, "viewer")
    preferences = {"theme": "dark", "pageSize": 50, "ratio": 0.75, "alerts": {"email": True},
                   "pinned": ["src_1", "src_2"]}
    status, answer = send("PUT /auth/profile", me,
                          {"name": "  Ada King ", "company": None, "preferences": preferences})
    assert status == 200, answer
    assert answer["data"]["name"] == "Ada King" and answer["data"]["company"] is None
    assert answer["data"]["preferences"] == preferences
    assert send("GET /auth/profile", me)[1]["data"] == answer["data"]
    row = tbl("users").get_item(Key={"userId": owner["user"]["userId"]})["Item"]
    assert "company" not in row and row["name"] == "Ada King"
    [event] = events(owner["account"]["accountId"], "auth.profile.update")
    assert event["details"] == {"fields": ["company", "name", "preferences"]}

    status, answer = send("PUT /auth/profile", me, {"company": "Difference Engines"})
    assert answer["data"]["company"] == "Difference Engines"
    assert answer["data"]["name"] == "Ada King" and answer["data"]["preferences"] == preferences


@pytest.mark.parametrize("body, field", [
    ({}, "body"),
    ({"name": "   "}, "name"),
    ({"name": "x" * 101}, "name"),
    ({"preferences": "dark"}, "preferences"),
    ({"preferences": {"blob": "x" * 5000}}, "preferences"),
    ({"preferences": {f"k{i}": i for i in range(51)}}, "preferences"),
    ({"preferences": json.loads("[" * 0 + '{"a":' * 10 + "1" + "}" * 10)}, "preferences"),
    ({"email": "eve@example.test"}, "email"),
    ({"passwordHash": "scrypt$1$1$1$a$b"}, "passwordHash"),
])
def test_bad_profile_changes_are_refused_and_change_nothing(owner, body, field):
    before = tbl("users").get_item(Key={"userId": owner["user"]["userId"]})["Item"]
    status, answer = send("PUT /auth/profile", identity(owner), body)
    assert (status, answer["code"]) == (400, "validation_failed"), answer
    assert field in answer["fields"]
    assert tbl("users").get_item(Key={"userId": owner["user"]["userId"]})["Item"] == before


def test_the_profile_needs_a_caller(backend):
    assert send("GET /auth/profile", None)[0] == 403


# ------------------------------------------------------------------ API keys

def create(pair: dict, body: dict, role: str | None = None):
    return send("POST /api-keys", identity(pair, role), body)


def test_an_api_key_is_shown_once_stored_as_a_hash_and_authorizes(owner):
    status, answer = create(owner, {"name": "  CI pipeline "})
    assert status == 201, answer
    data = answer["data"]
    key = data["key"]
    assert key.startswith("lbk_") and data["name"] == "CI pipeline" and data["role"] == "owner"
    assert data["keyId"].startswith("key_") and data["prefix"] == key[:12]

    [row] = tbl("api-keys").scan()["Items"]
    assert row["keyHash"] == hashlib.sha256(key.encode()).hexdigest()
    assert key not in json.dumps(row, default=str)
    assert (row["accountId"], row["userId"], row["role"], row["keyId"]) == \
        (owner["account"]["accountId"], owner["user"]["userId"], "owner", data["keyId"])

    assert authorize(key) == {"isAuthorized": True, "context": identity(owner)}
    [event] = events(owner["account"]["accountId"], "auth.apikey.create")
    assert event["resourceId"] == data["keyId"] and key not in json.dumps(event, default=str)


def test_a_key_with_a_lower_role_authorizes_with_that_role(owner):
    status, answer = create(owner, {"name": "dashboard", "role": "viewer"})
    assert status == 201 and answer["data"]["role"] == "viewer"
    assert authorize(answer["data"]["key"])["context"]["role"] == "viewer"


def test_a_key_cannot_have_a_role_above_its_creator(owner):
    # The route admits owners only, so this is the operation's own guard, called as the
    # dispatcher would call it for a caller whose role is below the one asked for.
    route = next(r for r in api.ROUTES if r.route_key == "POST /api-keys")
    request = Request(route=route, body={"name": "too strong", "role": "owner"}, path={}, query={},
                      headers={}, user_id=owner["user"]["userId"],
                      account_id=owner["account"]["accountId"], role="manager",
                      raw=api_event("POST /api-keys"))
    with pytest.raises(ApiError) as refused:
        api.create_api_key(request)
    assert refused.value.code == "forbidden" and refused.value.fields == ["role"]
    assert tbl("api-keys").scan()["Items"] == []


@pytest.mark.parametrize("body, field", [
    ({}, "name"), ({"name": ""}, "name"), ({"name": "   "}, "name"), ({"name": "x" * 101}, "name"),
    ({"name": "k", "role": "admin"}, "role"), ({"name": "k", "accountId": "acc_x"}, "accountId"),
])
def test_bad_key_requests_are_refused(owner, body, field):
    status, answer = create(owner, body)
    assert (status, answer["code"]) == (400, "validation_failed") and field in answer["fields"]
    assert tbl("api-keys").scan()["Items"] == []


@pytest.mark.parametrize("role", ["viewer", "manager"])
def test_api_keys_are_for_owners_only(owner, role):
    key_id = create(owner, {"name": "k"})[1]["data"]["keyId"]
    me = identity(owner, role)
    assert send("GET /api-keys", me)[1]["code"] == "forbidden"
    assert send("POST /api-keys", me, {"name": "mine"})[0] == 403
    assert send("DELETE /api-keys/{keyId}", me, path={"keyId": key_id})[0] == 403
    [row] = tbl("api-keys").scan()["Items"]
    assert "revokedAt" not in row


def test_the_key_list_pages_and_never_shows_a_key_or_hash(owner):
    created = [create(owner, {"name": f"key {i}"})[1]["data"] for i in range(3)]
    stranger = register("eve@example.test")
    create(stranger, {"name": "eve's"})

    seen, cursor, pages = [], None, 0
    while True:
        status, answer = send("GET /api-keys", identity(owner),
                              query={"limit": "2", **({"cursor": cursor} if cursor else {})})
        assert status == 200, answer
        page = answer["data"]
        text = json.dumps(page)
        for item in page["items"]:
            assert set(item) == {"keyId", "name", "prefix", "role", "createdAt", "lastUsedAt",
                                 "revoked", "revokedAt"}
        assert "keyHash" not in text and "lbk_" not in text.replace('"prefix": "lbk_', "")
        for key in created:
            assert key["key"] not in text
        for row in tbl("api-keys").scan()["Items"]:
            assert row["keyHash"] not in text and row["keyHash"] not in (page["nextCursor"] or "")
        seen += page["items"]
        pages += 1
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert pages == 2
    assert sorted(i["keyId"] for i in seen) == sorted(k["keyId"] for k in created)
    assert {i["prefix"] for i in seen} == {k["prefix"] for k in created}

    first = send("GET /api-keys", identity(owner), query={"limit": "2"})[1]["data"]["nextCursor"]
    # Another account's cursor, a tampered one and a bad limit are refused.
    assert send("GET /api-keys", identity(stranger), query={"cursor": first})[1]["code"] == \
        "invalid_request"
    tampered = first[:-2] + ("AA" if not first.endswith("AA") else "BB")
    assert send("GET /api-keys", identity(owner), query={"cursor": tampered})[0] == 400
    assert send("GET /api-keys", identity(owner), query={"limit": "0"})[0] == 400
    assert len(send("GET /api-keys", identity(stranger))[1]["data"]["items"]) == 1


def test_a_revoked_key_stops_authorizing(owner):
    data = create(owner, {"name": "temporary"})[1]["data"]
    assert authorize(data["key"])["isAuthorized"] is True
    status, answer = send("DELETE /api-keys/{keyId}", identity(owner), path={"keyId": data["keyId"]})
    assert (status, answer) == (200, {"success": True, "data": None})
    assert authorize(data["key"]) == {"isAuthorized": False}
    [item] = send("GET /api-keys", identity(owner))[1]["data"]["items"]
    assert item["revoked"] is True and item["revokedAt"]
    [event] = events(owner["account"]["accountId"], "auth.apikey.revoke")
    assert event["resourceId"] == data["keyId"]
    # Again: nothing more happens.
    assert send("DELETE /api-keys/{keyId}", identity(owner), path={"keyId": data["keyId"]})[0] == 200
    assert len(events(owner["account"]["accountId"], "auth.apikey.revoke")) == 1


def test_another_accounts_key_or_an_unknown_one_is_not_found(owner):
    stranger = register("eve@example.test")
    theirs = create(stranger, {"name": "eve's"})[1]["data"]
    for key_id in (theirs["keyId"], "key_unknown", "k" * 2000):
        status, answer = send("DELETE /api-keys/{keyId}", identity(owner), path={"keyId": key_id})
        assert (status, answer["code"]) == (404, "not_found")
    assert authorize(theirs["key"])["isAuthorized"] is True
