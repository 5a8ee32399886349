"""The caller's account, its usage, the accounts a user belongs to, the hierarchy below an
account, sub-accounts and switching between accounts."""

from __future__ import annotations

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from handlers.account.store import (AccountCache, as_int, batch_get, path_account, query_page,
                                    table_name, transact)
from handlers.shared import activity, clock, cursors
from handlers.shared.accounts import MAX_DEPTH, account_view, effective_plan, get_account, is_within, valid_id
from handlers.shared.clients import table
from handlers.shared.http import ApiError, Request
from handlers.shared.ids import new_id
from handlers.shared.plans import limit_of, plan_view
from handlers.shared.dynamo import get_many
from handlers.shared.routing import ROLES
from handlers.shared.sessions import issue_pair


def _home(request: Request) -> dict:
    account = get_account(request.account_id)
    if account is None:
        raise ApiError("not_found", "No such account")
    return account


def _user_id(request: Request) -> str:
    if not request.user_id:
        raise ApiError("unauthorized", "This credential has no user")
    return request.user_id


def _with_plan(account: dict, role: str | None) -> dict:
    cache = AccountCache([account])
    view = cache.view(account, role)
    details = plan_view(cache.plan(account))
    view["planName"] = details["name"]
    view["limits"] = details["limits"]
    return view


# --------------------------------------------------------------------------- the account

def get_account_op(request: Request) -> dict:
    return _with_plan(_home(request), request.role)


def update_account(request: Request) -> dict:
    name = request.body["name"].strip()
    try:
        row = table("accounts").update_item(
            Key={"accountId": request.account_id},
            UpdateExpression="SET #name = :name, updatedAt = :now",
            ConditionExpression="attribute_exists(accountId)",
            ExpressionAttributeNames={"#name": "name"},
            ExpressionAttributeValues={":name": name, ":now": clock.iso()},
            ReturnValues="ALL_NEW")["Attributes"]
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            raise ApiError("not_found", "No such account") from None
        raise
    activity.record_request(request, "account.update", "account", request.account_id,
                            details={"name": name})
    return _with_plan(row, request.role)


def get_usage(request: Request) -> dict:
    account = _home(request)
    plan = effective_plan(account)
    month = clock.now().strftime("%Y-%m")
    runs = as_int(account.get("runsThisMonth")) if account.get("runsMonth") == month else 0

    def figure(used: int, limit: int | None) -> dict:
        return {"used": used, "limit": limit}

    return {
        "accountId": account["accountId"], "plan": plan.plan_id, "month": month,
        "sources": figure(as_int(account.get("sourceCount")), limit_of(plan, "sources")),
        "jobs": figure(as_int(account.get("jobCount")), limit_of(plan, "jobs")),
        "storageBytes": figure(as_int(account.get("storageBytes")), limit_of(plan, "storage_bytes")),
        "subAccounts": figure(as_int(account.get("subAccountCount")), limit_of(plan, "sub_accounts")),
        "runsThisMonth": figure(runs, None),
    }


# --------------------------------------------------------------------------- lists

def list_accounts(request: Request) -> dict:
    _user_id(request)
    scope = f"user:{request.user_id}:accounts"
    rows, last = query_page("users-accounts", request, scope,
                            KeyConditionExpression=Key("userId").eq(request.user_id))
    accounts = batch_get("accounts", rows, "accountId")
    cache = AccountCache(accounts.values())
    cache.prefetch(accounts.values())
    items = []
    for row in rows:
        account = accounts.get(row["accountId"])
        if account is None:
            continue
        view = cache.view(account, row.get("role"))
        view["current"] = account["accountId"] == request.account_id
        items.append(view)
    return cursors.page(items, last, scope)


def get_hierarchy(request: Request) -> dict:
    account = path_account(request)
    scope = f"{request.account_id}:hierarchy:{account['accountId']}"
    root = account.get("rootAccountId") or account["accountId"]
    path = account.get("path") or account["accountId"]
    rows, last = query_page(
        "accounts", request, scope, IndexName="root-path-index",
        KeyConditionExpression=Key("rootAccountId").eq(root) & Key("path").begins_with(path))
    cache = AccountCache([account, *rows])
    cache.prefetch([account, *rows])
    items = [cache.view(row) for row in rows if is_within(row, account)]
    return {"accountId": account["accountId"], **cursors.page(items, last, scope)}


# --------------------------------------------------------------------------- sub-accounts

def create_sub_account(request: Request) -> dict:
    name = request.body["name"].strip()
    creator = _user_id(request)
    parent = path_account(request)
    depth = as_int(parent.get("depth")) + 1
    if depth >= MAX_DEPTH:
        raise ApiError("conflict", f"Accounts nest at most {MAX_DEPTH - 1} levels below the top "
                                   "account; this account cannot have sub-accounts")
    plan = effective_plan(parent)
    limit = limit_of(plan, "sub_accounts")
    count = as_int(parent.get("subAccountCount"))
    if limit is not None and count >= limit:
        raise _over_limit(plan.name, limit)

    now = clock.iso()
    account_id = new_id("acc")
    root = parent.get("rootAccountId") or parent["accountId"]
    account = {
        "accountId": account_id, "name": name, "plan": "free", "ownSubscription": False,
        "parentAccountId": parent["accountId"], "rootAccountId": root,
        "path": f"{parent.get('path') or parent['accountId']}/{account_id}", "depth": depth,
        "createdBy": creator, "createdAt": now, "updatedAt": now,
        "sourceCount": 0, "jobCount": 0, "storageBytes": 0, "subAccountCount": 0,
    }
    bump = {"TableName": table_name("accounts"), "Key": {"accountId": parent["accountId"]},
            "UpdateExpression": "SET subAccountCount = if_not_exists(subAccountCount, :zero) + :one, "
                                "updatedAt = :now",
            "ExpressionAttributeValues": {":zero": 0, ":one": 1, ":now": now}}
    if limit is None:
        bump["ConditionExpression"] = "attribute_exists(accountId)"
    else:
        bump["ConditionExpression"] = ("attribute_exists(accountId) AND "
                                       "(attribute_not_exists(subAccountCount) OR subAccountCount < :limit)")
        bump["ExpressionAttributeValues"][":limit"] = limit
    reasons = transact([
        {"Update": bump},
        {"Put": {"TableName": table_name("accounts"), "Item": account,
                 "ConditionExpression": "attribute_not_exists(accountId)"}},
        {"Put": {"TableName": table_name("users-accounts"),
                 "Item": {"userId": creator, "accountId": account_id, "role": "owner",
                          "createdAt": now},
                 "ConditionExpression": "attribute_not_exists(userId)"}},
        *activity.request_items(request, "account.subaccount.create", "account", account_id,
                                account_id=parent["accountId"], details={"name": name}).items,
    ])
    if reasons is not None:
        if reasons[0] == "ConditionalCheckFailed" and limit is not None:
            raise _over_limit(plan.name, limit)
        raise ApiError("conflict", "The account changed meanwhile; try again")
    # a new sub-account uses its parent's plan, resolved above
    return account_view({**account, "plan": plan.plan_id, "ownSubscription": True}, "owner")


def _over_limit(plan_name: str, limit: int) -> ApiError:
    noun = "sub-account" if limit == 1 else "sub-accounts"
    return ApiError("plan_limit", f"The {plan_name} plan allows {limit} {noun} per account; "
                                  "upgrade to add more")


# --------------------------------------------------------------------------- switching

def switch_account(request: Request) -> dict:
    account_id = request.body["accountId"]
    user_id = _user_id(request)
    if not valid_id(account_id) or not valid_id(user_id):
        raise ApiError("not_found", "No such account")
    # the membership, the account and the user, in one read
    member, account, user = get_many(
        ("users-accounts", {"userId": user_id, "accountId": account_id}),
        ("accounts", {"accountId": account_id}), ("users", {"userId": user_id}))
    if member is None or account is None or member.get("role") not in ROLES:
        raise ApiError("not_found", "No such account")
    if user is None:
        raise ApiError("not_found", "No such account")
    if user.get("status", "active") != "active":
        raise ApiError("forbidden", "This user is disabled")
    pair, session = issue_pair(user, account, member["role"])
    # the new session, the account the next login starts in, and the audit event: together
    reasons = transact([
        session,
        {"Update": {"TableName": table_name("users"), "Key": {"userId": user_id},
                    "UpdateExpression": "SET lastAccountId = :acc",
                    "ConditionExpression": "attribute_exists(userId)",
                    "ExpressionAttributeValues": {":acc": account_id}}},
        *activity.request_items(request, "account.switch", "account", account_id,
                                account_id=account_id).items,
    ])
    if reasons is not None:
        raise ApiError("conflict", "The account changed meanwhile; try again")
    return pair
