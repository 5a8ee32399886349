"""Bodies that are JSON-shaped but cannot be text or numbers anywhere downstream, found by
the end-to-end bad-input matrix: each answers a 4xx and changes nothing (it used to be a
500, and an empty preferences key made the user's row unreadable)."""

from __future__ import annotations

import re

import boto3
import pytest

from handlers.auth import api
from handlers.auth.store import storable
from tests.handlers.conftest import sent_emails
from tests.handlers.test_account_support import request, tenant
from tests.support import PREFIX, api_event, call

PASSWORD = "Quiet-Lantern-Harbor-42"


def send(route_key: str, identity: dict | None, body=None):
    return call(api.handler, api_event(route_key, identity=identity, body=body))


def users() -> list[dict]:
    return boto3.resource("dynamodb").Table(PREFIX + "users").scan()["Items"]


@pytest.fixture
def owner(backend) -> dict:
    status, body = send("POST /auth/register", None,
                        {"email": "ada@example.test", "password": PASSWORD, "name": "Ada"})
    assert status == 201, body
    pair = body["data"]
    return {"userId": pair["user"]["userId"], "accountId": pair["account"]["accountId"],
            "role": "owner"}


# ------------------------------------------------------------------ unpaired surrogates

@pytest.mark.parametrize("raw", [
    '{"email": "a\\ud800@example.test", "password": "Quiet-Lantern-Harbor-42", "name": "A"}',
    '{"email": "b@example.test", "password": "Quiet-Lantern-Harbor-42", "name": "\\udfff"}',
    '{"email": "c@example.test", "password": "Quiet-Lantern-\\ud83d", "name": "C"}',
])
def test_a_lone_surrogate_in_a_registration_is_400(backend, raw):
    status, body = send("POST /auth/register", None, raw)
    assert status == 400 and body["code"] == "invalid_request", body
    assert users() == []


@pytest.mark.parametrize("route_key, raw", [
    ("POST /auth/login", '{"email": "ada@example.test", "password": "\\ud800"}'),
    ("POST /auth/verify", '{"token": "\\ud800"}'),
    ("POST /auth/reset-password", '{"token": "\\ud800", "password": "Quiet-Lantern-Harbor-43"}'),
    ("PUT /auth/profile", '{"name": "\\ud800"}'),
    ("PUT /auth/profile", '{"preferences": {"x": "\\udc00"}}'),
    ("PUT /account/password", '{"currentPassword": "\\ud800", "newPassword": "Quiet-Lantern-Harbor-43"}'),
    ("POST /api-keys", '{"name": "\\udfff"}'),
])
def test_a_lone_surrogate_anywhere_in_an_auth_body_is_400(owner, route_key, raw):
    before = users()
    status, body = send(route_key, owner, raw)
    assert status == 400 and body["code"] == "invalid_request", body
    assert users() == before


def test_paired_surrogate_escapes_are_ordinary_text(owner):
    status, body = send("PUT /auth/profile", owner, '{"name": "Ada \\ud83d\\ude80"}')
    assert status == 200 and body["data"]["name"] == "Ada \U0001F680", body


@pytest.mark.parametrize("raw", ['{"name": NaN}', '{"preferences": {"x": Infinity}}',
                                 '{"preferences": {"x": -Infinity}}'])
def test_nan_and_infinity_are_not_json(owner, raw):
    status, body = send("PUT /auth/profile", owner, raw)
    assert status == 400 and body["code"] == "invalid_request", body


def test_a_lone_surrogate_in_account_bodies_is_400(backend):
    _, account, who = tenant("owner", name="Steady")
    for route_key, raw, path in (
            ("PUT /account", '{"name": "x\\ud800"}', None),
            ("POST /accounts/{accountId}/sub-accounts", '{"name": "\\udfff"}',
             {"accountId": account["accountId"]}),
            ("POST /invitations/accept", '{"inviteCode": "\\ud800"}', None),
            ("POST /accounts/{accountId}/invitations", '{"email": "\\ud800@example.com", "role": "viewer"}',
             {"accountId": account["accountId"]})):
        status, body = request(route_key, who, body=raw, path=path)
        assert status == 400 and body["code"] == "invalid_request", (route_key, body)
    status, body = request("GET /account", who)
    assert body["data"]["name"] == "Steady"


# ------------------------------------------------------------------ preferences DynamoDB cannot hold

@pytest.mark.parametrize("preferences", [
    '{"": 1}', '{"a": {"": true}}', '{"x": 1e400}', '{"x": 123456789012345678901234567890123456789012}',
    '{"x": 1e-200}', '{"x": [1, {"": 2}]}',
], ids=["empty key", "nested empty key", "overflow", "42 digits", "underflow", "empty key in a list"])
def test_preferences_dynamodb_cannot_hold_are_400_and_the_user_stays_readable(owner, preferences):
    status, body = send("PUT /auth/profile", owner, '{"preferences": %s}' % preferences)
    assert status == 400 and body["code"] == "validation_failed", body
    assert body["fields"] == ["preferences"]
    status, body = send("GET /auth/profile", owner)
    assert status == 200 and body["data"]["preferences"] == {}, body


def test_storable_accepts_what_dynamodb_holds():
    assert storable({"theme": "dark", "n": 10 ** 37, "r": 0.1, "tiny": 1e-120, "big": 1e125,
                     "list": [1, "a", None, True, {"k": []}], "empty": ""})
    assert not storable({"x": float("nan")}) and not storable({"x": float("inf")})


# ------------------------------------------------------------------ e-mail addresses

@pytest.mark.parametrize("email", ["a\x00b@example.test", "a\x1b@example.test", "a\x7f@example.test",
                                   "x@exam\x01ple.test"])
def test_registration_refuses_control_characters_in_the_address(backend, email):
    status, body = send("POST /auth/register", None,
                        {"email": email, "password": PASSWORD, "name": "A"})
    assert status == 400 and body["code"] == "validation_failed" and body["fields"] == ["email"]
    assert users() == []


@pytest.mark.parametrize("email", ["x@example.com\nBcc: y", "a b@example.com", "x@exa mple.com",
                                   "a\x85b@example.com", "a\x00b@example.com", "a..b@example.com"])
def test_an_invitation_needs_a_plain_address(backend, email):
    _, account, who = tenant("owner", name="Host")
    status, body = request("POST /accounts/{accountId}/invitations", who,
                           body={"email": email, "role": "viewer"},
                           path={"accountId": account["accountId"]})
    assert status == 400 and body["code"] == "validation_failed" and body["fields"] == ["email"], body
    assert sent_emails() == []
    status, body = request("GET /accounts/{accountId}/invitations", who,
                           path={"accountId": account["accountId"]})
    assert body["data"]["items"] == []


def test_an_invitation_to_an_ordinary_address_still_works(backend):
    _, account, who = tenant("owner", name="Host")
    status, body = request("POST /accounts/{accountId}/invitations", who,
                           body={"email": " Guest.Name+tag@Sub.Example.com ", "role": "viewer"},
                           path={"accountId": account["accountId"]})
    assert status == 201 and body["data"]["email"] == "guest.name+tag@sub.example.com", body
    assert re.search(r"enter this code: (\S+)", sent_emails()[-1]["text"])
