"""An account's members: list, change role, remove.

Rules: only an owner grants, changes or removes the owner role; the last owner of an
account can be neither demoted nor removed. The authorizer reads the membership row on
every request, so a removal or demotion holds for the member's next request.

"Not the last owner" is enforced atomically without a counter: demoting or removing an
owner is one transaction that also checks another owner's row still says owner, so two
owners demoting each other at once cannot both succeed.
"""

from __future__ import annotations

from boto3.dynamodb.conditions import Attr, Key

from handlers.account.store import batch_get, path_account, path_account_with, query_page, table_name, transact
from handlers.shared import activity, cursors
from handlers.shared.accounts import membership, valid_id
from handlers.shared.clients import table
from handlers.shared.http import ApiError, Request

OWNER = "owner"
_TRIES = 3


def member_view(row: dict, user: dict | None) -> dict:
    user = user or {}
    return {"userId": row["userId"], "email": user.get("email"), "name": user.get("name", ""),
            "role": row.get("role"), "joinedAt": row.get("createdAt")}


def _users(rows: list[dict]) -> dict[str, dict]:
    return batch_get("users", rows, "userId", projection="userId, email, #name",
                     names={"#name": "name"})


def list_members(request: Request) -> dict:
    account = path_account(request)
    scope = f"{request.account_id}:members:{account['accountId']}"
    rows, last = query_page("users-accounts", request, scope, IndexName="account-index",
                            KeyConditionExpression=Key("accountId").eq(account["accountId"]))
    users = _users(rows)
    return cursors.page([member_view(r, users.get(r["userId"])) for r in rows], last, scope)


def _target(request: Request, *more: tuple[str, dict]) -> tuple[dict, dict, list]:
    """The account, the member's row there and the rows ``more`` names: one read."""
    user_id = request.path.get("userId")
    if not valid_id(user_id):
        path_account(request)
        raise ApiError("not_found", "No such member")
    account, rows, _ = path_account_with(
        request, ("users-accounts", {"userId": user_id, "accountId": request.path.get("accountId")}),
        *more)
    if rows[0] is None:
        raise ApiError("not_found", "No such member")
    return account, rows[0], rows[1:]


def _other_owner(account_id: str, user_id: str) -> dict | None:
    """Another owner's membership row of the account, if there is one."""
    kwargs = {"IndexName": "account-index",
              "KeyConditionExpression": Key("accountId").eq(account_id),
              "FilterExpression": Attr("role").eq(OWNER)}
    while True:
        reply = table("users-accounts").query(**kwargs)
        for row in reply.get("Items", []):
            if row["userId"] != user_id:
                return row
        if not reply.get("LastEvaluatedKey"):
            return None
        kwargs["ExclusiveStartKey"] = reply["LastEvaluatedKey"]


def _change(row: dict, write: dict, extra: list[dict]) -> None:
    """Apply ``write`` (an Update or Delete of the member's row, conditioned on its role
    being unchanged) with ``extra`` entries (its audit event); when the row is an owner's,
    only while another owner remains."""
    key = {"userId": row["userId"], "accountId": row["accountId"]}
    for _ in range(_TRIES):
        items = [write]
        if row["role"] == OWNER:
            other = _other_owner(row["accountId"], row["userId"])
            if other is None:
                raise ApiError("conflict", "An account must keep at least one owner: make "
                                           "someone else an owner first")
            items.append({"ConditionCheck": {
                "TableName": table_name("users-accounts"),
                "Key": {"userId": other["userId"], "accountId": other["accountId"]},
                "ConditionExpression": "#role = :owner",
                "ExpressionAttributeNames": {"#role": "role"},
                "ExpressionAttributeValues": {":owner": OWNER}}})
        reasons = transact([*items, *extra])
        if reasons is None:
            return
        if reasons[0] == "ConditionalCheckFailed":
            raise ApiError("conflict", "The member changed meanwhile; reload and try again")
        current = membership(key["userId"], key["accountId"])
        if current is None or current.get("role") != row["role"]:
            raise ApiError("conflict", "The member changed meanwhile; reload and try again")
    raise ApiError("conflict", "The account's owners changed meanwhile; try again")


def _only_owner_touches_owner(request: Request, *roles: str) -> None:
    if OWNER in roles and request.role != OWNER:
        raise ApiError("forbidden", "Only an owner can grant, change or remove the owner role")


def update_member(request: Request) -> dict:
    new_role = request.body["role"]
    account, row, (user,) = _target(request, ("users", {"userId": request.path.get("userId")}))
    old_role = row.get("role")
    _only_owner_touches_owner(request, old_role, new_role)
    if new_role != old_role:
        _change(row, {"Update": {
            "TableName": table_name("users-accounts"),
            "Key": {"userId": row["userId"], "accountId": row["accountId"]},
            "UpdateExpression": "SET #role = :new",
            "ConditionExpression": "#role = :old",
            "ExpressionAttributeNames": {"#role": "role"},
            "ExpressionAttributeValues": {":new": new_role, ":old": old_role}}},
            activity.request_items(request, "account.member.update", "member", row["userId"],
                                   account_id=account["accountId"],
                                   details={"from": old_role, "to": new_role}).items)
    row = {**row, "role": new_role}
    return member_view(row, user)


def remove_member(request: Request) -> None:
    account, row, _ = _target(request)
    _only_owner_touches_owner(request, row.get("role"))
    _change(row, {"Delete": {
        "TableName": table_name("users-accounts"),
        "Key": {"userId": row["userId"], "accountId": row["accountId"]},
        "ConditionExpression": "#role = :old",
        "ExpressionAttributeNames": {"#role": "role"},
        "ExpressionAttributeValues": {":old": row.get("role")}}},
        activity.request_items(request, "account.member.remove", "member", row["userId"],
                               account_id=account["accountId"], details={"role": row.get("role")}).items)
    return None
