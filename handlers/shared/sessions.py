"""Token pairs: what register, login, refresh, switch and a password change answer.

The access token (15 minutes) is signed with the stage's access secret, the refresh token
(30 days) with the refresh secret; both carry the user's token version, so bumping it
revokes every session. Each refresh token's id is recorded (auth-tokens table) so a
rotation can be done once and a replay detected: ``issue_pair`` answers that record as a
transaction entry, so it commits with whatever else the request writes.
"""

from __future__ import annotations

import os

from handlers.shared import tokens
from handlers.shared.accounts import effective_plan
from handlers.shared.clients import table
from handlers.shared.params import get_parameter


def access_secret() -> str:
    return get_parameter(os.environ["JWT_SECRET_PARAM"])


def refresh_secret() -> str:
    return get_parameter(os.environ["JWT_REFRESH_SECRET_PARAM"])


def user_view(user: dict) -> dict:
    return {"userId": user["userId"], "email": user["email"], "name": user.get("name", ""),
            "emailVerified": bool(user.get("emailVerified"))}


def issue_pair(user: dict, account: dict, role: str, *, plan_id: str | None = None) -> tuple[dict, dict]:
    """A token pair (the answer) and the transaction entry (``Put``) that records its
    refresh token: a caller that writes other things too commits them together.
    ``plan_id``: the account's effective plan when the caller has resolved it already."""
    stage = os.environ["STAGE"]
    version = tokens.as_int(user.get("tokenVersion")) or 0
    common = dict(stage=stage, user_id=user["userId"], account_id=account["accountId"],
                  role=role, version=version)
    access, _ = tokens.issue(access_secret(), typ="access", **common)
    refresh, claims = tokens.issue(refresh_secret(), typ="refresh", **common)
    record = {"Put": {"TableName": table("auth-tokens").name, "Item": {
        "tokenId": f"refresh#{claims['jti']}", "kind": "refresh", "userId": user["userId"],
        "accountId": account["accountId"], "expiresAt": claims["exp"]}}}
    return {
        "accessToken": access, "refreshToken": refresh, "tokenType": "Bearer",
        "expiresIn": tokens.ACCESS_TTL, "user": user_view(user),
        "account": {"accountId": account["accountId"], "name": account.get("name", ""),
                    "plan": plan_id or effective_plan(account).plan_id, "role": role},
    }, record


def revoke_item(user_id: str) -> dict:
    """The transaction entry that ends every session of the user: the authorizer and
    refresh check the token version, which this bumps."""
    return {"Update": {"TableName": table("users").name, "Key": {"userId": user_id},
                       "UpdateExpression": "ADD tokenVersion :one",
                       "ExpressionAttributeValues": {":one": 1}}}
