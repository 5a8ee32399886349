"""Sessions against moto: refresh rotation, reuse detection, membership re-read, logout,
with the real authorizer deciding whether an access token still works."""

from __future__ import annotations

import jwt
import boto3

from handlers.api import authorizer
from handlers.auth import api
from handlers.shared import tokens
from tests.handlers.conftest import SECRETS
from tests.support import PREFIX, STAGE, LambdaContext, api_event, call

PASSWORD = "Quiet-Lantern-Harbor-42"


def tbl(name: str):
    return boto3.resource("dynamodb").Table(PREFIX + name)


def post(route_key: str, body=None, identity: dict | None = None):
    return call(api.handler, api_event(route_key, body=body, identity=identity))


def register(email="ada@example.test") -> dict:
    status, body = post("POST /auth/register", {"email": email, "password": PASSWORD, "name": "Ada"})
    assert status == 201, body
    return body["data"]


def refresh(token: str):
    return post("POST /auth/refresh", {"refreshToken": token})


def identity(pair: dict) -> dict:
    return {"userId": pair["user"]["userId"], "accountId": pair["account"]["accountId"],
            "role": pair["account"]["role"]}


def authorize(credential: str) -> dict:
    """What the HTTP API's authorizer answers for ``Authorization: Bearer <credential>``."""
    event = {"version": "2.0", "type": "REQUEST", "routeKey": "GET /auth/profile",
             "rawPath": "/auth/profile", "headers": {"authorization": f"Bearer {credential}"},
             "requestContext": {"http": {"method": "GET", "path": "/auth/profile"}}}
    return authorizer.handler(event, LambdaContext("listbackup-api-test-authorizer"))


def version_of(user_id: str) -> int:
    return int(tbl("users").get_item(Key={"userId": user_id})["Item"]["tokenVersion"])


def jti(token: str) -> str:
    return jwt.decode(token, options={"verify_signature": False})["jti"]


def events(account_id: str, action: str) -> list[dict]:
    items = tbl("activity").query(KeyConditionExpression="accountId = :a",
                                  ExpressionAttributeValues={":a": account_id})["Items"]
    return [e for e in items if e["type"] == action]


def test_the_access_token_of_a_new_user_passes_the_authorizer(backend):
    pair = register()
    assert authorize(pair["accessToken"]) == {"isAuthorized": True, "context": identity(pair)}
    assert authorize(pair["refreshToken"]) == {"isAuthorized": False}   # not an access token


def test_refresh_rotates_the_refresh_token(backend):
    pair = register()
    status, answer = refresh(pair["refreshToken"])
    assert status == 200, answer
    fresh = answer["data"]
    assert fresh["refreshToken"] != pair["refreshToken"]
    assert fresh["account"] == pair["account"] and fresh["user"] == pair["user"]
    assert authorize(fresh["accessToken"])["isAuthorized"] is True
    old = tbl("auth-tokens").get_item(Key={"tokenId": f"refresh#{jti(pair['refreshToken'])}"})["Item"]
    assert "rotatedAt" in old
    new = tbl("auth-tokens").get_item(Key={"tokenId": f"refresh#{jti(fresh['refreshToken'])}"})["Item"]
    assert "rotatedAt" not in new and new["userId"] == pair["user"]["userId"]
    # The new one rotates in turn.
    assert refresh(fresh["refreshToken"])[0] == 200


def test_a_reused_refresh_token_revokes_every_session(backend):
    pair = register()
    user_id = pair["user"]["userId"]
    status, answer = refresh(pair["refreshToken"])
    assert status == 200
    second = answer["data"]
    assert version_of(user_id) == 0

    status, answer = refresh(pair["refreshToken"])          # replayed: someone copied it
    assert (status, answer["code"]) == (401, "unauthorized")
    assert version_of(user_id) == 1
    # Every token issued before carries ver 0 now stale: all of them stop working.
    assert jwt.decode(pair["accessToken"], options={"verify_signature": False})["ver"] == 0
    assert authorize(pair["accessToken"]) == {"isAuthorized": False}
    assert authorize(second["accessToken"]) == {"isAuthorized": False}
    assert refresh(second["refreshToken"])[1]["code"] == "unauthorized"
    [event] = events(pair["account"]["accountId"], "auth.refresh.reuse")
    assert event["outcome"] == "failure" and event["resourceId"] == user_id
    # A new login still works and carries the new version.
    status, answer = post("POST /auth/login", {"email": "ada@example.test", "password": PASSWORD})
    assert status == 200 and authorize(answer["data"]["accessToken"])["isAuthorized"] is True


def test_a_removed_member_cannot_refresh_into_the_account(backend):
    pair = register()
    tbl("users-accounts").delete_item(Key={"userId": pair["user"]["userId"],
                                           "accountId": pair["account"]["accountId"]})
    status, answer = refresh(pair["refreshToken"])
    assert (status, answer["code"]) == (401, "unauthorized")
    row = tbl("auth-tokens").get_item(Key={"tokenId": f"refresh#{jti(pair['refreshToken'])}"})["Item"]
    assert "rotatedAt" not in row


def test_refresh_takes_the_role_from_the_membership_not_the_token(backend):
    pair = register()
    tbl("users-accounts").update_item(
        Key={"userId": pair["user"]["userId"], "accountId": pair["account"]["accountId"]},
        UpdateExpression="SET #r = :v", ExpressionAttributeNames={"#r": "role"},
        ExpressionAttributeValues={":v": "viewer"})
    status, answer = refresh(pair["refreshToken"])
    assert status == 200 and answer["data"]["account"]["role"] == "viewer"
    assert jwt.decode(answer["data"]["accessToken"], options={"verify_signature": False})["role"] == "viewer"


def test_refresh_refuses_what_is_not_a_live_refresh_token(backend):
    pair = register()
    user_id, account_id = pair["user"]["userId"], pair["account"]["accountId"]
    other_stage, _ = tokens.issue(SECRETS[f"/listbackup/{STAGE}/jwt-refresh-secret"], stage="prod",
                                  typ="refresh", user_id=user_id, account_id=account_id,
                                  role="owner", version=0)
    wrong_key, _ = tokens.issue("z" * 48, stage=STAGE, typ="refresh", user_id=user_id,
                                account_id=account_id, role="owner", version=0)
    # Signed right but never issued by us: no row for its id.
    unrecorded, _ = tokens.issue(SECRETS[f"/listbackup/{STAGE}/jwt-refresh-secret"], stage=STAGE,
                                 typ="refresh", user_id=user_id, account_id=account_id,
                                 role="owner", version=0)
    for candidate in (pair["accessToken"], other_stage, wrong_key, unrecorded, "garbage"):
        status, answer = refresh(candidate)
        assert (status, answer["code"]) == (401, "unauthorized")
    assert version_of(user_id) == 0     # none of these is a reuse of one of ours
    assert refresh(pair["refreshToken"])[0] == 200


def test_a_disabled_user_cannot_refresh(backend):
    pair = register()
    tbl("users").update_item(Key={"userId": pair["user"]["userId"]}, UpdateExpression="SET #s = :d",
                             ExpressionAttributeNames={"#s": "status"},
                             ExpressionAttributeValues={":d": "disabled"})
    assert refresh(pair["refreshToken"])[0] == 401


def test_refresh_needs_a_token(backend):
    status, answer = post("POST /auth/refresh", {})
    assert (status, answer["code"], answer["fields"]) == (400, "validation_failed", ["refreshToken"])
    status, answer = post("POST /auth/refresh")
    assert (status, answer["code"]) == (400, "invalid_request")


def test_logout_revokes_every_token_of_the_user(backend):
    pair = register()
    status, answer = post("POST /auth/login", {"email": "ada@example.test", "password": PASSWORD})
    other_session = answer["data"]
    assert authorize(pair["accessToken"])["isAuthorized"] is True

    status, answer = post("POST /auth/logout", identity=identity(pair))
    assert (status, answer) == (200, {"success": True, "data": None})
    assert version_of(pair["user"]["userId"]) == 1
    assert authorize(pair["accessToken"]) == {"isAuthorized": False}
    assert authorize(other_session["accessToken"]) == {"isAuthorized": False}
    assert refresh(pair["refreshToken"])[0] == 401
    assert refresh(other_session["refreshToken"])[0] == 401
    [event] = events(pair["account"]["accountId"], "auth.logout")
    assert event["actor"] == pair["user"]["userId"]


def test_logout_needs_a_caller(backend):
    status, answer = post("POST /auth/logout")
    assert (status, answer["code"]) == (403, "forbidden")
