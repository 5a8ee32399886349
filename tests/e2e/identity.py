"""Helpers for the identity end-to-end tests: users registered over HTTP, e-mails read from
``/_offline/emails``, tokens minted with the stage's secrets from the local SSM, and the
few direct writes to the local DynamoDB that the API cannot make (disabling a user,
expiring an invitation).

Everything here talks to an ``OfflineServer`` (the session's ``offline`` fixture).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.e2e.harness import OfflineServer

STAGE = "dev"
PASSWORD = "correct horse battery staple 42"
TABLE = "listbackup-dev-{}"

# What the handlers write in their e-mails (handlers/auth/api.py, handlers/account/invitations.py).
_VERIFY_CODE = re.compile(r"Or enter this code in the app: (\S+)")
_RESET_LINK = re.compile(r"/reset-password\?token=([A-Za-z0-9_\-]+)")
_INVITE_CODE = re.compile(r"Or sign in and enter this code: (\S+)")


def unique_email(tag: str = "user") -> str:
    return f"{tag}-{uuid.uuid4().hex[:12]}@example.com"


@dataclass
class User:
    """A user registered over HTTP, with the token pair of its latest sign-in."""

    email: str
    password: str
    user_id: str
    account_id: str
    access: str
    refresh: str
    name: str = ""
    extra: dict = field(default_factory=dict)

    def take(self, tokens: dict) -> "User":
        """Adopt a token pair answered by login, refresh, switch or a password change."""
        self.access, self.refresh = tokens["accessToken"], tokens["refreshToken"]
        self.account_id = tokens["account"]["accountId"]
        return self


# ------------------------------------------------------------------ e-mails

def emails(server: OfflineServer, to: str | None = None) -> list[dict[str, Any]]:
    reply = server.get("", base="/_offline/emails")
    assert reply.status == 200, reply
    items = reply.json
    if to is not None:
        items = [m for m in items if to in m.get("to", [])]
    return items


def latest_match(server: OfflineServer, to: str, pattern: re.Pattern, *,
                 subject: str | None = None, after: int = 0) -> str:
    """The first group of ``pattern`` in the newest e-mail to ``to`` (optionally whose
    subject contains ``subject``), polling briefly; ``after`` skips that many older mails."""

    def find():
        for mail in reversed(emails(server, to)[after:]):
            if subject is not None and subject.lower() not in (mail.get("subject") or "").lower():
                continue
            match = pattern.search(mail.get("text") or "")
            if match:
                return match.group(1)
        return None

    return server.eventually(find, timeout=10)


def verification_token(server: OfflineServer, email: str) -> str:
    return latest_match(server, email, _VERIFY_CODE, subject="confirm")


def reset_token(server: OfflineServer, email: str, after: int = 0) -> str:
    return latest_match(server, email, _RESET_LINK, subject="reset", after=after)


def invitation_code(server: OfflineServer, email: str, after: int = 0) -> str:
    return latest_match(server, email, _INVITE_CODE, subject="invited", after=after)


# ------------------------------------------------------------------ users

def register(server: OfflineServer, *, email: str | None = None, password: str = PASSWORD,
             name: str = "E2E User", company: str | None = None, verify: bool = False) -> User:
    email = email or unique_email()
    body = {"email": email, "password": password, "name": name}
    if company:
        body["company"] = company
    reply = server.post("/auth/register", body)
    assert reply.status == 201, reply
    data = reply.json["data"]
    user = User(email=email, password=password, user_id=data["user"]["userId"],
                account_id=data["account"]["accountId"], access=data["accessToken"],
                refresh=data["refreshToken"], name=name)
    if verify:
        token = verification_token(server, email)
        done = server.post("/auth/verify", {"token": token})
        assert done.status == 200, done
    return user


def login(server: OfflineServer, user: User) -> dict:
    reply = server.post("/auth/login", {"email": user.email, "password": user.password})
    assert reply.status == 200, reply
    user.take(reply.json["data"])
    return reply.json["data"]


def switch(server: OfflineServer, user: User, account_id: str) -> dict:
    reply = server.post("/accounts/switch", {"accountId": account_id}, token=user.access)
    assert reply.status == 200, reply
    user.take(reply.json["data"])
    return reply.json["data"]


def invite(server: OfflineServer, inviter: User, account_id: str, invitee: User,
           role: str = "viewer") -> tuple[dict, str]:
    """Invite ``invitee`` into ``account_id``; the invitation and its code from the e-mail."""
    before = len(emails(server, invitee.email))
    reply = server.post(f"/accounts/{account_id}/invitations",
                        {"email": invitee.email, "role": role}, token=inviter.access)
    assert reply.status == 201, reply
    return reply.json["data"], invitation_code(server, invitee.email, after=before)


def join(server: OfflineServer, inviter: User, account_id: str, invitee: User,
         role: str = "viewer") -> None:
    """``invitee`` (verified) becomes a member of ``account_id`` with ``role`` and switches
    into it."""
    _, code = invite(server, inviter, account_id, invitee, role)
    reply = server.post("/invitations/accept", {"inviteCode": code}, token=invitee.access)
    assert reply.status == 200, reply
    switch(server, invitee, account_id)


# ------------------------------------------------------------------ local AWS

def parameter(server: OfflineServer, name: str) -> str:
    return server.aws("ssm").get_parameter(Name=f"/listbackup/{STAGE}/{name}",
                                           WithDecryption=True)["Parameter"]["Value"]


def jwt_secrets(server: OfflineServer) -> tuple[str, str]:
    """(access secret, refresh secret) of the stage."""
    return parameter(server, "jwt-secret"), parameter(server, "jwt-refresh-secret")


def get_row(server: OfflineServer, table: str, key: dict[str, str]) -> dict | None:
    item = server.aws("dynamodb").get_item(
        TableName=TABLE.format(table), Key={k: {"S": v} for k, v in key.items()},
        ConsistentRead=True).get("Item")
    return item


def set_attribute(server: OfflineServer, table: str, key: dict[str, str], name: str,
                  value: dict) -> None:
    """SET one attribute (``value`` in DynamoDB's typed form) on an existing row."""
    server.aws("dynamodb").update_item(
        TableName=TABLE.format(table), Key={k: {"S": v} for k, v in key.items()},
        UpdateExpression="SET #n = :v", ConditionExpression="attribute_exists(#k)",
        ExpressionAttributeNames={"#n": name, "#k": next(iter(key))},
        ExpressionAttributeValues={":v": value})


def disable_user(server: OfflineServer, user_id: str) -> None:
    set_attribute(server, "users", {"userId": user_id}, "status", {"S": "disabled"})


def users_with_email(server: OfflineServer, email: str) -> list[dict]:
    return server.aws("dynamodb").query(
        TableName=TABLE.format("users"), IndexName="email-index",
        KeyConditionExpression="email = :e",
        ExpressionAttributeValues={":e": {"S": email}}).get("Items", [])


# ------------------------------------------------------------------ assertions

def assert_error(reply, status: int, code: str | None = None) -> dict:
    """A 4xx in our envelope: ``{"success": false, "error": ..., "code": ...}``."""
    assert reply.status == status, reply
    assert reply.headers.get("content-type", "").startswith("application/json"), reply.headers
    body = reply.json
    assert body["success"] is False and isinstance(body["error"], str) and body["error"], body
    assert isinstance(body.get("code"), str), body
    if code is not None:
        assert body["code"] == code, body
    return body


def assert_forbidden_by_gateway(reply) -> None:
    """The authorizer denied: API Gateway's own 403, not our envelope."""
    assert reply.status == 403 and reply.json == {"message": "Forbidden"}, reply


def assert_unauthorized_by_gateway(reply) -> None:
    assert reply.status == 401 and reply.json == {"message": "Unauthorized"}, reply


# ------------------------------------------------------------------ request bodies from the route table

def sample_body(schema: dict | None) -> Any:
    """A small body that satisfies ``schema`` (a route's JSON Schema): the required
    properties (or, with none required, the first property) with plausible values, so a
    request fails for what it is about (role, scope, a missing id) and not for its body."""
    if schema is None:
        return None
    return _sample(schema, "body")


def _sample(schema: dict, name: str) -> Any:
    if "enum" in schema:
        return schema["enum"][0]          # roles list the lowest one first
    kind = schema.get("type")
    kind = next((t for t in kind if t != "null"), None) if isinstance(kind, list) else kind
    if kind == "object":
        properties = schema.get("properties") or {}
        wanted = list(schema.get("required") or [])
        if not wanted and schema.get("minProperties") and properties:
            wanted = [next(iter(properties))]
        return {key: _sample(properties.get(key, {"type": "string"}), key) for key in wanted}
    if kind == "array":
        return [_sample(schema.get("items") or {"type": "string"}, name)
                for _ in range(schema.get("minItems", 0))]
    if kind == "integer" or kind == "number":
        return schema.get("minimum", 1)
    if kind == "boolean":
        return False
    if schema.get("format") == "email" or "email" in name.lower():
        return unique_email("sample")
    if "password" in name.lower():
        return "sample pass phrase 123"
    if "url" in name.lower():
        return "https://example.com/return"
    text = "Sample"
    minimum = schema.get("minLength", 0)
    return text + "x" * max(0, minimum - len(text))
