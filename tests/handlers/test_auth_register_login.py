"""The auth service against moto: register, login (lockout included) and e-mail
verification, as a caller sees them and as they leave the tables."""

from __future__ import annotations

import hashlib
import json
import re
import time

import boto3
import pytest

from handlers.auth import api
from handlers.shared import passwords
from tests.handlers.conftest import sent_emails
from tests.support import PREFIX, LambdaContext, api_event, call

PASSWORD = "Quiet-Lantern-Harbor-42"
APP_URL = "https://app.test.listbackup.ai"


def tbl(name: str):
    return boto3.resource("dynamodb").Table(PREFIX + name)


def rows(name: str) -> list[dict]:
    return tbl(name).scan()["Items"]   # tests may scan; handlers never do


def post(route_key: str, body, identity: dict | None = None):
    return call(api.handler, api_event(route_key, body=body, identity=identity))


def raw_post(route_key: str, body) -> dict:
    return api.handler(api_event(route_key, body=body), LambdaContext())


def register(email="ada@example.test", password=PASSWORD, name="Ada Lovelace", **extra) -> dict:
    status, body = post("POST /auth/register",
                        {"email": email, "password": password, "name": name, **extra})
    assert status == 201, body
    return body["data"]


def login(email="ada@example.test", password=PASSWORD):
    return post("POST /auth/login", {"email": email, "password": password})


def claims(token: str) -> dict:
    import jwt
    return jwt.decode(token, options={"verify_signature": False})


def events(account_id: str, action: str | None = None) -> list[dict]:
    items = tbl("activity").query(KeyConditionExpression="accountId = :a",
                                  ExpressionAttributeValues={":a": account_id})["Items"]
    return [e for e in items if action is None or e["type"] == action]


def token_from(mail: dict, path: str) -> str:
    match = re.search(re.escape(f"{APP_URL}{path}?token=") + r"([A-Za-z0-9_-]+)", mail["text"])
    assert match, mail["text"]
    return match.group(1)


# ------------------------------------------------------------------ register

def test_register_creates_user_account_and_owner_membership_and_answers_tokens(backend):
    pair = register(email="  Ada@Example.TEST ", company="Analytical Engines")

    assert pair["tokenType"] == "Bearer" and pair["expiresIn"] == 900
    assert pair["user"]["email"] == "ada@example.test"
    assert pair["user"]["emailVerified"] is False
    assert pair["account"]["plan"] == "free" and pair["account"]["role"] == "owner"
    user_id, account_id = pair["user"]["userId"], pair["account"]["accountId"]
    access = claims(pair["accessToken"])
    assert (access["sub"], access["acc"], access["role"], access["typ"], access["ver"]) == \
        (user_id, account_id, "owner", "access", 0)
    assert claims(pair["refreshToken"])["typ"] == "refresh"
    assert "passwordHash" not in json.dumps(pair) and "scrypt$" not in json.dumps(pair)

    [user] = rows("users")
    assert user["email"] == "ada@example.test" and user["name"] == "Ada Lovelace"
    assert user["company"] == "Analytical Engines" and user["status"] == "active"
    assert user["passwordHash"].startswith("scrypt$") and user["tokenVersion"] == 0
    assert passwords.verify_password(PASSWORD, user["passwordHash"])
    account = tbl("accounts").get_item(Key={"accountId": account_id})["Item"]
    assert account["plan"] == "free" and account["rootAccountId"] == account_id
    assert account["path"] == account_id and account["depth"] == 0
    assert "parentAccountId" not in account
    assert account["sourceCount"] == account["jobCount"] == account["storageBytes"] == 0
    assert account["subAccountCount"] == 0
    member = tbl("users-accounts").get_item(Key={"userId": user_id, "accountId": account_id})["Item"]
    assert member["role"] == "owner"

    [mail] = sent_emails()
    assert mail["to"] == "ada@example.test"
    token = token_from(mail, "/verify")
    row = tbl("auth-tokens").get_item(
        Key={"tokenId": "verify#" + hashlib.sha256(token.encode()).hexdigest()})["Item"]
    assert row["userId"] == user_id and token not in json.dumps(row, default=str)
    assert 24 * 3600 - 60 < int(row["expiresAt"]) - time.time() <= 24 * 3600

    [event] = events(account_id, "auth.register")
    assert event["actor"] == user_id and event["resourceId"] == user_id
    assert event["sourceIp"] == "203.0.113.9"


@pytest.mark.parametrize("body, field", [
    ({"email": "not-an-address", "password": PASSWORD, "name": "Ada"}, "email"),
    ({"email": "ada@localhost", "password": PASSWORD, "name": "Ada"}, "email"),
    ({"email": "ada@example.test", "password": "short", "name": "Ada"}, "password"),
    ({"email": "ada@example.test", "password": "password123", "name": "Ada"}, "password"),
    ({"email": "ada@example.test", "password": "x" * 129 + "yzw", "name": "Ada"}, "password"),
    ({"email": "ada@example.test", "password": "Ada@Example.test", "name": "Ada"}, "password"),
    ({"email": "ada@example.test", "password": PASSWORD}, "name"),
    ({"email": "ada@example.test", "password": PASSWORD, "name": "   "}, "name"),
    ({"email": "ada@example.test", "password": PASSWORD, "name": "A" * 101}, "name"),
    ({"email": "ada@example.test", "password": 12345678901, "name": "Ada"}, "password"),
    ({"email": "ada@example.test", "password": PASSWORD, "name": "Ada", "role": "owner"}, "role"),
])
def test_register_refuses_bad_input_and_creates_nothing(backend, body, field):
    status, answer = post("POST /auth/register", body)
    assert status == 400 and answer["code"] == "validation_failed", answer
    assert field in answer["fields"]
    assert rows("users") == [] and rows("accounts") == [] and rows("users-accounts") == []
    assert rows("auth-tokens") == [] and sent_emails() == []


def test_register_refuses_a_body_that_is_not_json(backend):
    status, answer = post("POST /auth/register", "{nope")
    assert (status, answer["code"]) == (400, "invalid_request")


def test_a_second_registration_of_an_address_is_a_conflict(backend):
    register()
    status, answer = post("POST /auth/register",
                          {"email": " ADA@example.test", "password": PASSWORD + "!", "name": "Eve"})
    assert status == 409 and answer["code"] == "conflict"
    assert len(rows("users")) == 1 and len(rows("accounts")) == 1
    assert len(sent_emails()) == 1


def test_the_uniqueness_guard_holds_when_the_index_has_not_seen_the_first_user_yet(backend):
    # As if a concurrent registration had committed its transaction a moment ago: the
    # e-mail index check passes, the guard item decides.
    tbl("auth-tokens").put_item(Item={"tokenId": "email#ada@example.test", "kind": "email",
                                      "userId": "usr_racer"})
    status, answer = post("POST /auth/register",
                          {"email": "ada@example.test", "password": PASSWORD, "name": "Ada"})
    assert status == 409 and answer["code"] == "conflict"
    assert rows("users") == [] and rows("accounts") == [] and rows("users-accounts") == []
    assert sent_emails() == []


# ------------------------------------------------------------------ login

def test_login_answers_a_token_pair_and_records_it(backend):
    pair = register()
    account_id = pair["account"]["accountId"]
    status, answer = login(email=" ADA@example.test ")
    assert status == 200, answer
    data = answer["data"]
    assert data["user"]["userId"] == pair["user"]["userId"]
    assert data["account"] == {"accountId": account_id, "name": "Ada Lovelace", "plan": "free",
                               "role": "owner"}
    assert claims(data["accessToken"])["acc"] == account_id
    [event] = events(account_id, "auth.login")
    assert event["outcome"] == "success" and event["actor"] == pair["user"]["userId"]
    assert "lastLoginAt" in tbl("users").get_item(Key={"userId": pair["user"]["userId"]})["Item"]


def test_wrong_password_and_unknown_address_get_the_same_answer_after_the_same_work(
        backend, monkeypatch):
    pair = register()
    import hashlib as hashlib_module
    real_scrypt, calls = hashlib_module.scrypt, []

    def counting_scrypt(*args, **kwargs):
        calls.append(kwargs.get("n"))
        return real_scrypt(*args, **kwargs)

    monkeypatch.setattr(hashlib_module, "scrypt", counting_scrypt)
    wrong = login(password=PASSWORD + "x")
    wrong_calls, calls[:] = list(calls), []
    unknown = login(email="nobody@example.test")
    assert wrong == unknown
    assert wrong[0] == 401 and wrong[1]["code"] == "invalid_credentials"
    # Both cases run one scrypt with today's parameters (a dummy hash for the unknown one).
    assert wrong_calls == calls == [passwords.N]

    [failure] = events(pair["account"]["accountId"], "auth.login")
    assert failure["outcome"] == "failure" and failure["details"] == {"reason": "wrong_password"}
    assert failure["actor"] == "anonymous" and failure["resourceId"] == pair["user"]["userId"]
    assert len(rows("activity")) == 2   # register and this failure; nothing for the stranger


def test_five_failures_lock_the_address_for_the_rest_of_the_window(backend):
    pair = register()
    register(email="grace@example.test", name="Grace")
    for _ in range(5):
        status, answer = login(password="Not-The-Password-1")
        assert (status, answer["code"]) == (401, "invalid_credentials")

    locked = raw_post("POST /auth/login", {"email": "ada@example.test", "password": PASSWORD})
    body = json.loads(locked["body"])
    assert locked["statusCode"] == 429 and body["code"] == "rate_limited"
    retry_after = int(locked["headers"]["Retry-After"])
    assert 0 < retry_after <= 15 * 60
    assert "accessToken" not in locked["body"]
    # Still locked with the right password, and the window does not move.
    again = raw_post("POST /auth/login", {"email": "ada@example.test", "password": PASSWORD})
    assert again["statusCode"] == 429 and int(again["headers"]["Retry-After"]) <= retry_after
    # Another address is not affected.
    assert login(email="grace@example.test")[0] == 200
    failures = [e for e in events(pair["account"]["accountId"], "auth.login")]
    assert len(failures) == 7 and {e["outcome"] for e in failures} == {"failure"}
    assert sum(e["details"]["reason"] == "locked" for e in failures) == 2

    # Once the window is over the right password works, and success resets the count.
    tbl("login-attempts").update_item(
        Key={"email": "ada@example.test"}, UpdateExpression="SET windowStart = :old",
        ExpressionAttributeValues={":old": int(time.time()) - 15 * 60 - 1})
    assert login()[0] == 200
    assert tbl("login-attempts").get_item(Key={"email": "ada@example.test"}).get("Item") is None


def test_failures_older_than_the_window_start_a_new_count(backend):
    register()
    for _ in range(4):
        assert login(password="Not-The-Password-1")[0] == 401
    tbl("login-attempts").update_item(
        Key={"email": "ada@example.test"}, UpdateExpression="SET windowStart = :old",
        ExpressionAttributeValues={":old": int(time.time()) - 15 * 60 - 1})
    assert login(password="Not-The-Password-1")[0] == 401
    row = tbl("login-attempts").get_item(Key={"email": "ada@example.test"})["Item"]
    assert row["failures"] == 1 and row["expiresAt"] > time.time()
    assert login()[0] == 200


def test_a_disabled_user_cannot_log_in(backend):
    pair = register()
    tbl("users").update_item(Key={"userId": pair["user"]["userId"]},
                             UpdateExpression="SET #s = :d", ExpressionAttributeNames={"#s": "status"},
                             ExpressionAttributeValues={":d": "disabled"})
    assert login() == login(email="nobody@example.test")
    assert login()[0] == 401
    reasons = [e["details"]["reason"] for e in events(pair["account"]["accountId"], "auth.login")]
    assert reasons == ["disabled", "disabled"]


def test_login_uses_the_last_account_while_a_member_else_the_first_membership(backend):
    pair = register()
    user_id, home = pair["user"]["userId"], pair["account"]["accountId"]
    other = "acc_zzzzother"
    tbl("accounts").put_item(Item={"accountId": other, "name": "Other Co", "plan": "pro",
                                   "ownSubscription": True, "rootAccountId": other,
                                   "path": other, "depth": 0})
    tbl("users-accounts").put_item(Item={"userId": user_id, "accountId": other, "role": "viewer"})
    tbl("users").update_item(Key={"userId": user_id}, UpdateExpression="SET lastAccountId = :a",
                             ExpressionAttributeValues={":a": other})
    status, answer = login()
    assert status == 200
    assert answer["data"]["account"] == {"accountId": other, "name": "Other Co", "plan": "pro",
                                         "role": "viewer"}
    assert claims(answer["data"]["accessToken"])["role"] == "viewer"

    tbl("users-accounts").delete_item(Key={"userId": user_id, "accountId": other})
    status, answer = login()
    assert answer["data"]["account"]["accountId"] == home
    assert tbl("users").get_item(Key={"userId": user_id})["Item"]["lastAccountId"] == home


def test_a_user_without_any_account_is_refused(backend):
    pair = register()
    tbl("users-accounts").delete_item(Key={"userId": pair["user"]["userId"],
                                           "accountId": pair["account"]["accountId"]})
    status, answer = login()
    assert (status, answer["code"]) == (403, "forbidden")


def test_a_hash_with_weaker_parameters_is_upgraded_at_login(backend):
    import base64
    pair = register()
    salt = b"0123456789abcdef"
    weak = hashlib.scrypt(PASSWORD.encode(), salt=salt, n=2 ** 10, r=8, p=1, dklen=32)
    stored = f"scrypt${2 ** 10}$8$1${base64.b64encode(salt).decode()}${base64.b64encode(weak).decode()}"
    key = {"userId": pair["user"]["userId"]}
    tbl("users").update_item(Key=key, UpdateExpression="SET passwordHash = :h",
                             ExpressionAttributeValues={":h": stored})
    assert login()[0] == 200
    upgraded = tbl("users").get_item(Key=key)["Item"]["passwordHash"]
    assert upgraded.startswith(f"scrypt${passwords.N}$") and not passwords.needs_rehash(upgraded)
    assert login()[0] == 200


def test_login_input_is_validated(backend):
    status, answer = post("POST /auth/login", {"email": "ada@example.test"})
    assert (status, answer["code"], answer["fields"]) == (400, "validation_failed", ["password"])
    status, answer = post("POST /auth/login", {"email": "ada", "password": PASSWORD})
    assert (status, answer["code"]) == (400, "validation_failed")
    assert rows("login-attempts") == []


# ------------------------------------------------------------------ verify

def test_the_verification_link_works_once(backend):
    pair = register()
    token = token_from(sent_emails()[0], "/verify")
    status, answer = post("POST /auth/verify", {"token": token})
    assert (status, answer["data"]) == (200, {"emailVerified": True})
    user = tbl("users").get_item(Key={"userId": pair["user"]["userId"]})["Item"]
    assert user["emailVerified"] is True
    assert events(pair["account"]["accountId"], "auth.verify")
    assert login()[1]["data"]["user"]["emailVerified"] is True

    status, answer = post("POST /auth/verify", {"token": token})
    assert (status, answer["code"]) == (400, "invalid_request")


@pytest.mark.parametrize("token", ["bogus", "x" * 43])
def test_an_unknown_verification_token_is_refused(backend, token):
    register()
    status, answer = post("POST /auth/verify", {"token": token})
    assert (status, answer["code"]) == (400, "invalid_request")
    assert rows("users")[0]["emailVerified"] is False


def test_an_expired_verification_token_is_refused(backend):
    pair = register()
    token = token_from(sent_emails()[0], "/verify")
    tbl("auth-tokens").update_item(
        Key={"tokenId": "verify#" + hashlib.sha256(token.encode()).hexdigest()},
        UpdateExpression="SET expiresAt = :past", ExpressionAttributeValues={":past": int(time.time()) - 1})
    status, answer = post("POST /auth/verify", {"token": token})
    assert (status, answer["code"]) == (400, "invalid_request")
    assert tbl("users").get_item(Key={"userId": pair["user"]["userId"]})["Item"]["emailVerified"] is False


def test_a_reset_token_is_not_a_verification_token(backend):
    register()
    post("POST /auth/forgot-password", {"email": "ada@example.test"})
    reset = token_from(sent_emails()[1], "/reset-password")
    status, answer = post("POST /auth/verify", {"token": reset})
    assert (status, answer["code"]) == (400, "invalid_request")
