"""The account's API keys (owner only).

A key is shown once, in the answer that creates it; the api-keys table is keyed by its
sha256, which the authorizer looks up. The row also carries the account, the creating
user, a name, a role no higher than the creator's and a short prefix (``lbk_`` and eight
characters) by which an owner tells keys apart. Revoking sets ``revokedAt``; the
authorizer denies any row that has it.
"""

from __future__ import annotations

from handlers.auth import store
from handlers.shared import activity, apikeys, clock, cursors
from handlers.shared.clients import table
from handlers.shared.http import ApiError, Request
from handlers.shared.ids import new_id
from handlers.shared.routing import ROLES

PREFIX_CHARS = len(apikeys.PREFIX) + 8
MAX_KEY_ID_CHARS = 100


def key_view(row: dict) -> dict:
    return {"keyId": row["keyId"], "name": row.get("name", ""), "prefix": row.get("prefix", ""),
            "role": row.get("role"), "createdAt": row.get("createdAt"),
            "lastUsedAt": row.get("lastUsedAt"), "revoked": "revokedAt" in row,
            "revokedAt": row.get("revokedAt")}


def create(request: Request) -> dict:
    name = request.body["name"].strip()
    if not name:
        raise ApiError("validation_failed", "Invalid name: must not be blank", fields=["name"])
    creator_role = request.role if request.role in ROLES else None
    if creator_role is None:
        raise ApiError("forbidden", "Your role does not allow this")
    role = request.body.get("role") or creator_role
    if ROLES.index(role) > ROLES.index(creator_role):
        raise ApiError("forbidden", f"A key cannot have a role above yours ({creator_role})",
                       fields=["role"])
    key, key_hash = apikeys.generate()
    row = {"keyHash": key_hash, "keyId": new_id("key"), "accountId": request.account_id,
           "userId": request.user_id, "name": name, "role": role, "prefix": key[:PREFIX_CHARS],
           "createdAt": clock.iso()}
    event = activity.request_items(request, "auth.apikey.create", "apiKey", row["keyId"],
                                   details={"name": name, "role": role})
    store.transact(store.put("api-keys", row, "attribute_not_exists(keyHash)"), *event.items)
    return {"keyId": row["keyId"], "name": name, "role": role, "key": key,
            "prefix": row["prefix"], "createdAt": row["createdAt"]}


def list_keys(request: Request) -> dict:
    """Newest ids first is not promised: keys come in key id order, a page at a time.

    The index's own LastEvaluatedKey holds the key hash (the table key), which must not
    reach a client even inside a signed cursor, so the cursor carries only the last key id
    and the next page starts after it."""
    limit = cursors.limit_of(request.query)
    scope = f"{request.account_id}:api-keys"
    after = cursors.decode(request.query.get("cursor"), scope)
    condition, values = "accountId = :a", {":a": request.account_id}
    if after is not None:
        if not isinstance(after.get("keyId"), str):
            raise ApiError("invalid_request", "The cursor is not valid for this list",
                           fields=["cursor"])
        condition += " AND keyId > :k"
        values[":k"] = after["keyId"]
    reply = table("api-keys").query(IndexName="account-index", KeyConditionExpression=condition,
                                    ExpressionAttributeValues=values, Limit=limit)
    items = [key_view(row) for row in reply.get("Items", [])]
    last = {"keyId": items[-1]["keyId"]} if reply.get("LastEvaluatedKey") and items else None
    return cursors.page(items, last, scope)


def revoke(request: Request) -> None:
    key_id = request.path.get("keyId", "")
    row = _find(request.account_id, key_id)
    if row is None:
        raise ApiError("not_found", "No such API key")
    if "revokedAt" in row:
        return None   # already revoked: nothing changes
    event = activity.request_items(request, "auth.apikey.revoke", "apiKey", key_id,
                                   details={"name": row.get("name", "")})
    try:
        store.transact(
            store.update("api-keys", {"keyHash": row["keyHash"]},
                         "SET revokedAt = :now, revokedBy = :who",
                         values={":now": clock.iso(), ":who": request.user_id,
                                 ":a": request.account_id},
                         condition="attribute_exists(keyHash) AND accountId = :a"),
            *event.items)
    except store.Cancelled:
        raise ApiError("not_found", "No such API key") from None
    return None


def _find(account_id: str | None, key_id: str) -> dict | None:
    if not account_id or not key_id or len(key_id) > MAX_KEY_ID_CHARS:
        return None
    reply = table("api-keys").query(
        IndexName="account-index", KeyConditionExpression="accountId = :a AND keyId = :k",
        ExpressionAttributeValues={":a": account_id, ":k": key_id})
    items = reply.get("Items", [])
    return items[0] if items else None
