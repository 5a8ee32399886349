"""Entry point of ``listbackup-api-{stage}-authorizer``: the HTTP API's Lambda authorizer.

REQUEST type, payload format 2.0, simple responses: ``{"isAuthorized": True, "context":
{"userId", "accountId", "role"}}`` or ``{"isAuthorized": False}`` (API Gateway then answers
403 itself). The only identity source is the ``Authorization`` header, which must be
exactly ``Bearer <credential>`` (DESIGN.md section 4):

- an API key (``lbk_...``) is looked up by its sha256 in the api-keys table; it must not be
  revoked, its user must exist and be active, and the user must still be a member of the
  key's account. The role passed on is the lower of the key's role and the membership's.
- anything else must be an access token (HS256 JWT, the stage's secret, read from SSM);
  its user must exist, be active and still have the token's version (logout bumps it),
  and the membership (sub, acc) must exist. The role passed on is the membership's, not
  the token's, so removing or demoting a member takes effect at once (within the
  authorizer cache TTL).

Anything that fails, including a DynamoDB or SSM fault, denies: the handler never raises,
since a raising authorizer makes API Gateway answer 500. Log lines carry the outcome, a
reason code and the user id when known, never the header, token or key.

Environment: ``STAGE``, ``DYNAMODB_TABLE_PREFIX``, ``JWT_SECRET_PARAM`` (SSM name of the
stage's access-token secret). IAM: ``dynamodb:GetItem`` on api-keys, ``dynamodb:BatchGetItem``
on users and users-accounts (a user's row and membership are one read); ``ssm:GetParameter``
on the secret (and ``kms:Decrypt`` if it uses a CMK).
"""

from __future__ import annotations

import os
import re
from typing import Any

from handlers.shared import apikeys, tokens
from handlers.shared.clients import table
from handlers.shared.dynamo import get_many
from handlers.shared.log import get_logger
from handlers.shared.params import get_parameter
from handlers.shared.roles import ROLES

logger = get_logger("api")

MAX_HEADER_CHARS = 8192
_BEARER = re.compile(r"([A-Za-z]+) (\S+)")
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")

DENY: dict = {"isAuthorized": False}


class _Deny(Exception):
    def __init__(self, reason: str, user_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.user_id = user_id


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: Any) -> dict:
    try:
        who, reason = _authorize(event)
    except _Deny as deny:
        _log_outcome("deny", deny.reason, deny.user_id)
        return dict(DENY)
    except Exception as exc:  # a fault of ours or of AWS: deny, never answer 500
        logger.error("deny: error", extra={"outcome": "deny", "reason": "error",
                                           "errorType": type(exc).__name__})
        return dict(DENY)
    _log_outcome("allow", reason, who["userId"], who["accountId"], who["role"])
    return {"isAuthorized": True, "context": who}


def _log_outcome(outcome: str, reason: str, user_id: str | None = None,
                 account_id: str | None = None, role: str | None = None) -> None:
    extra = {"outcome": outcome, "reason": reason}
    if user_id:
        extra["userId"] = user_id
    if account_id:
        extra["accountId"] = account_id
    if role:
        extra["role"] = role
    logger.info(f"{outcome}: {reason}", extra=extra)


# ------------------------------------------------------------------ the credential

def _header(event: dict) -> Any:
    headers = event.get("headers")
    if isinstance(headers, dict):
        value = headers.get("authorization")
        if value is None:  # payload 2.0 lowercases names; tolerate a caller that did not
            value = next((v for k, v in headers.items()
                          if isinstance(k, str) and k.lower() == "authorization"), None)
        if value is not None:
            return value
    sources = event.get("identitySource")
    if isinstance(sources, list) and sources:
        return sources[0]
    return None


def _credential(event: dict) -> str:
    value = _header(event)
    if value is None:
        raise _Deny("no_credential")
    if not isinstance(value, str) or len(value) > MAX_HEADER_CHARS:
        raise _Deny("malformed_header")
    match = _BEARER.fullmatch(value)
    if match is None or match.group(1).lower() != "bearer":
        raise _Deny("malformed_header")
    return match.group(2)


# ------------------------------------------------------------------ the checks

def _authorize(event: dict) -> tuple[dict, str]:
    if not isinstance(event, dict):
        raise _Deny("malformed_event")
    credential = _credential(event)
    if credential.startswith(apikeys.PREFIX):
        return _by_api_key(credential), "api_key"
    return _by_token(credential), "token"


def _by_token(token: str) -> dict:
    if _JWT_SHAPE.fullmatch(token) is None:
        raise _Deny("malformed_token")
    secret = get_parameter(os.environ["JWT_SECRET_PARAM"])
    try:
        claims = tokens.verify(token, secret, stage=os.environ["STAGE"], typ="access")
    except tokens.TokenError as error:
        raise _Deny(str(error)) from None
    user_id, account_id = claims["sub"], claims["acc"]
    user, membership = _user_and_membership(user_id, account_id)
    user = _active_user(user_id, user)
    if tokens.as_int(user.get("tokenVersion", 0)) != claims["ver"]:
        raise _Deny("stale_token_version", user_id)
    role = _membership_role(user_id, membership)
    return {"userId": user_id, "accountId": account_id, "role": role}


def _by_api_key(key: str) -> dict:
    if not apikeys.looks_like_key(key):
        raise _Deny("malformed_key")
    item = table("api-keys").get_item(Key={"keyHash": apikeys.hash_key(key)}).get("Item")
    if item is None:
        raise _Deny("unknown_key")
    user_id, account_id, key_role = item.get("userId"), item.get("accountId"), item.get("role")
    if "revokedAt" in item:
        raise _Deny("revoked_key", user_id if isinstance(user_id, str) else None)
    if not (_id(user_id) and _id(account_id)) or key_role not in ROLES:
        raise _Deny("invalid_key_row")
    user, membership = _user_and_membership(user_id, account_id)
    _active_user(user_id, user)
    member_role = _membership_role(user_id, membership)
    role = min(key_role, member_role, key=ROLES.index)
    return {"userId": user_id, "accountId": account_id, "role": role}


def _id(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _user_and_membership(user_id: str, account_id: str) -> tuple[dict | None, dict | None]:
    """The user's row and their membership of the account, in one BatchGetItem
    (eventually consistent, as a GetItem)."""
    user, membership = get_many(("users", {"userId": user_id}),
                                ("users-accounts", {"userId": user_id, "accountId": account_id}),
                                consistent=False)
    return user, membership


def _active_user(user_id: str, user: dict | None) -> dict:
    if user is None:
        raise _Deny("unknown_user", user_id)
    if user.get("status", "active") != "active":
        raise _Deny("user_not_active", user_id)
    return user


def _membership_role(user_id: str, row: dict | None) -> str:
    if row is None:
        raise _Deny("not_a_member", user_id)
    role = row.get("role")
    if role not in ROLES:
        raise _Deny("bad_membership_role", user_id)
    return role
