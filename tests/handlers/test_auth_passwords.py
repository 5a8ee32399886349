"""Password reset by e-mail and password change against moto: single use, expiry, the same
answer for an unknown address, and every other session ending."""

from __future__ import annotations

import hashlib
import re
import time

import boto3
import pytest

from handlers.api import authorizer
from handlers.auth import api
from tests.handlers.conftest import sent_emails
from tests.support import PREFIX, LambdaContext, api_event, call

PASSWORD = "Quiet-Lantern-Harbor-42"
NEW_PASSWORD = "Silver-Orchard-Window-77"
APP_URL = "https://app.test.listbackup.ai"


def tbl(name: str):
    return boto3.resource("dynamodb").Table(PREFIX + name)


def post(route_key: str, body=None, identity: dict | None = None):
    return call(api.handler, api_event(route_key, body=body, identity=identity))


def register(email="ada@example.test") -> dict:
    status, body = post("POST /auth/register", {"email": email, "password": PASSWORD, "name": "Ada"})
    assert status == 201, body
    return body["data"]


def login(password=PASSWORD, email="ada@example.test"):
    return post("POST /auth/login", {"email": email, "password": password})


def identity(pair: dict) -> dict:
    return {"userId": pair["user"]["userId"], "accountId": pair["account"]["accountId"],
            "role": pair["account"]["role"]}


def authorized(token: str) -> bool:
    event = {"version": "2.0", "type": "REQUEST", "routeKey": "GET /auth/profile",
             "headers": {"authorization": f"Bearer {token}"}}
    return authorizer.handler(event, LambdaContext("listbackup-api-test-authorizer"))["isAuthorized"]


def forgot(email="ada@example.test") -> str:
    """Ask for a reset; the token from the e-mail that arrives."""
    before = len(sent_emails())
    status, answer = post("POST /auth/forgot-password", {"email": email})
    assert status == 200
    mails = sent_emails()[before:]
    assert len(mails) == 1
    match = re.search(re.escape(f"{APP_URL}/reset-password?token=") + r"([A-Za-z0-9_-]+)",
                      mails[0]["text"])
    assert match and mails[0]["to"] == email
    return match.group(1)


def reset(token: str, password=NEW_PASSWORD):
    return post("POST /auth/reset-password", {"token": token, "password": password})


def events(account_id: str, action: str) -> list[dict]:
    items = tbl("activity").query(KeyConditionExpression="accountId = :a",
                                  ExpressionAttributeValues={":a": account_id})["Items"]
    return [e for e in items if e["type"] == action]


def reset_rows() -> list[dict]:
    return [r for r in tbl("auth-tokens").scan()["Items"] if r["tokenId"].startswith("reset#")]


# ------------------------------------------------------------------ forgot-password

def test_forgot_password_mails_a_one_hour_link_to_a_known_address(backend):
    pair = register()
    status, answer = post("POST /auth/forgot-password", {"email": " ADA@example.test "})
    assert status == 200 and answer["data"] == {"message": api.FORGOT_MESSAGE}
    mail = sent_emails()[-1]
    assert mail["to"] == "ada@example.test" and "/reset-password?token=" in mail["text"]
    [row] = reset_rows()
    assert row["userId"] == pair["user"]["userId"]
    assert 3600 - 60 < int(row["expiresAt"]) - time.time() <= 3600
    assert events(pair["account"]["accountId"], "auth.password.forgot")


def test_forgot_password_answers_the_same_for_an_unknown_address_and_sends_nothing(backend):
    register()
    known = post("POST /auth/forgot-password", {"email": "ada@example.test"})
    mails = len(sent_emails())
    unknown = post("POST /auth/forgot-password", {"email": "nobody@example.test"})
    assert known == unknown
    assert len(sent_emails()) == mails and len(reset_rows()) == 1


def test_forgot_password_validates_the_address(backend):
    status, answer = post("POST /auth/forgot-password", {"email": "nope"})
    assert (status, answer["code"], answer["fields"]) == (400, "validation_failed", ["email"])


# ------------------------------------------------------------------ reset-password

def test_reset_sets_the_password_once_and_ends_every_session(backend):
    pair = register()
    token = forgot()
    status, answer = reset(token)
    assert (status, answer) == (200, {"success": True, "data": None})

    assert login()[0] == 401
    assert login(NEW_PASSWORD)[0] == 200
    assert not authorized(pair["accessToken"])
    assert post("POST /auth/refresh", {"refreshToken": pair["refreshToken"]})[0] == 401
    user = tbl("users").get_item(Key={"userId": pair["user"]["userId"]})["Item"]
    assert user["emailVerified"] is True     # the link came through the mailbox
    assert events(pair["account"]["accountId"], "auth.password.reset")

    status, answer = reset(token, "Another-Fresh-Password-9")
    assert (status, answer["code"]) == (400, "invalid_request")
    assert login(NEW_PASSWORD)[0] == 200


def test_an_expired_reset_link_is_refused(backend):
    register()
    token = forgot()
    tbl("auth-tokens").update_item(
        Key={"tokenId": "reset#" + hashlib.sha256(token.encode()).hexdigest()},
        UpdateExpression="SET expiresAt = :past", ExpressionAttributeValues={":past": int(time.time()) - 1})
    status, answer = reset(token)
    assert (status, answer["code"]) == (400, "invalid_request")
    assert login()[0] == 200


@pytest.mark.parametrize("token", ["bogus", "A" * 43])
def test_an_unknown_reset_token_is_refused(backend, token):
    register()
    assert reset(token)[1]["code"] == "invalid_request"
    assert login()[0] == 200


def test_a_refused_new_password_leaves_the_link_usable(backend):
    pair = register()
    token = forgot()
    for bad in ("short", "password123", "ada@example.test"):
        status, answer = reset(token, bad)
        assert (status, answer["code"], answer["fields"]) == (400, "validation_failed", ["password"])
    assert login()[0] == 200 and authorized(pair["accessToken"])
    assert reset(token)[0] == 200


def test_an_older_link_dies_once_the_password_changed(backend):
    register()
    first, second = forgot(), forgot()
    assert reset(second)[0] == 200
    assert reset(first, "Yet-Another-Password-31")[1]["code"] == "invalid_request"
    assert login(NEW_PASSWORD)[0] == 200


def test_a_reset_lifts_a_login_lockout(backend):
    register()
    for _ in range(5):
        login("Not-The-Password-1")
    assert login()[0] == 429
    assert reset(forgot())[0] == 200
    assert login(NEW_PASSWORD)[0] == 200


# ------------------------------------------------------------------ PUT /account/password

def change(pair: dict, current: str, new: str):
    return post("PUT /account/password", {"currentPassword": current, "newPassword": new},
                identity=identity(pair))


def test_a_password_change_keeps_this_session_and_ends_every_other(backend):
    pair = register()
    other = login()[1]["data"]
    status, answer = change(pair, PASSWORD, NEW_PASSWORD)
    assert status == 200, answer
    fresh = answer["data"]
    assert fresh["account"] == pair["account"] and fresh["user"]["userId"] == pair["user"]["userId"]
    assert authorized(fresh["accessToken"])
    assert not authorized(pair["accessToken"]) and not authorized(other["accessToken"])
    assert post("POST /auth/refresh", {"refreshToken": other["refreshToken"]})[0] == 401
    assert post("POST /auth/refresh", {"refreshToken": fresh["refreshToken"]})[0] == 200
    assert login()[0] == 401 and login(NEW_PASSWORD)[0] == 200
    [event] = events(pair["account"]["accountId"], "auth.password.change")
    assert event["outcome"] == "success" and event["actor"] == pair["user"]["userId"]


def test_a_wrong_current_password_changes_nothing(backend):
    pair = register()
    status, answer = change(pair, "Not-The-Password-1", NEW_PASSWORD)
    assert (status, answer["code"]) == (401, "invalid_credentials")
    assert authorized(pair["accessToken"]) and login()[0] == 200
    [event] = events(pair["account"]["accountId"], "auth.password.change")
    assert event["outcome"] == "failure"


def test_a_refused_new_password_changes_nothing(backend):
    pair = register()
    status, answer = change(pair, PASSWORD, "password123")
    assert (status, answer["code"], answer["fields"]) == (400, "validation_failed", ["newPassword"])
    assert authorized(pair["accessToken"]) and login()[0] == 200


def test_the_password_route_is_for_every_member_and_validates_its_body(backend):
    pair = register()
    viewer = {**identity(pair), "role": "viewer"}
    status, answer = post("PUT /account/password", {"currentPassword": PASSWORD}, identity=viewer)
    assert (status, answer["fields"]) == (400, ["newPassword"])
    status, answer = post("PUT /account/password", {"currentPassword": PASSWORD,
                                                    "newPassword": NEW_PASSWORD, "x": 1}, identity=viewer)
    assert (status, answer["code"]) == (400, "validation_failed")
    assert post("PUT /account/password", {"currentPassword": PASSWORD,
                                          "newPassword": NEW_PASSWORD})[0] == 403   # no caller
    status, answer = post("PUT /account/password", {"currentPassword": PASSWORD,
                                                    "newPassword": NEW_PASSWORD}, identity=viewer)
    assert status == 200 and answer["data"]["account"]["role"] == "owner"   # from the membership


def test_wrong_current_passwords_count_towards_the_lockout(backend):
    pair = register()
    for _ in range(5):
        assert change(pair, "Not-The-Password-1", NEW_PASSWORD)[0] == 401
    result = api.handler(api_event("PUT /account/password", identity=identity(pair),
                                   body={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}),
                         LambdaContext())
    assert result["statusCode"] == 429 and int(result["headers"]["Retry-After"]) > 0
    assert login()[0] == 429
