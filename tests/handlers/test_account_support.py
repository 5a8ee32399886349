"""Helpers for the account service's tests (imported by test_account_*.py; holds no tests):
users, accounts and memberships seeded straight into moto as the auth service writes them,
and calls through the service's Lambda handler as API Gateway delivers them."""

from __future__ import annotations

import pytest
from boto3.dynamodb.conditions import Key

from handlers.shared.clients import dynamodb, table
from handlers.shared.ids import new_id
from tests.support import api_event, call


def now_iso() -> str:
    from handlers.shared import clock

    return clock.iso()


def seed_user(email: str | None = None, *, name: str = "Test User", verified: bool = True,
              status: str = "active") -> dict:
    user_id = new_id("usr")
    user = {"userId": user_id, "email": email or f"{user_id}@example.com", "name": name,
            "passwordHash": "scrypt$not-a-real-hash", "emailVerified": verified,
            "status": status, "tokenVersion": 0, "createdAt": now_iso(), "updatedAt": now_iso(),
            "preferences": {}}
    table("users").put_item(Item=user)
    return user


def seed_account(name: str = "Acme", *, parent: dict | None = None, plan: str = "free",
                 own_subscription: bool = False, **extra) -> dict:
    account_id = new_id("acc")
    account = {"accountId": account_id, "name": name, "plan": plan,
               "ownSubscription": own_subscription if parent else True,
               "createdAt": now_iso(), "updatedAt": now_iso(), "sourceCount": 0, "jobCount": 0,
               "storageBytes": 0, "subAccountCount": 0, **extra}
    if parent is None:
        account.update(rootAccountId=account_id, path=account_id, depth=0)
    else:
        account.update(parentAccountId=parent["accountId"], rootAccountId=parent["rootAccountId"],
                       path=f"{parent['path']}/{account_id}", depth=int(parent["depth"]) + 1)
    table("accounts").put_item(Item=account)
    return account


def seed_member(user: dict, account: dict, role: str) -> dict:
    row = {"userId": user["userId"], "accountId": account["accountId"], "role": role,
           "createdAt": now_iso()}
    table("users-accounts").put_item(Item=row)
    return row


def tenant(role: str = "owner", *, plan: str = "free", email: str | None = None,
           name: str = "Acme") -> tuple[dict, dict, dict]:
    """A user, their root account and the identity the authorizer passes for them."""
    user = seed_user(email)
    account = seed_account(name, plan=plan)
    seed_member(user, account, role)
    return user, account, who(user, account, role)


def who(user: dict, account: dict, role: str) -> dict:
    return {"userId": user["userId"], "accountId": account["accountId"], "role": role}


def request(route_key: str, identity: dict | None, *, body=None, path: dict | None = None,
            query: dict | None = None) -> tuple[int, dict]:
    from handlers.account import api

    return call(api.handler, api_event(route_key, identity=identity, body=body, path=path,
                                       query=query))


def get_row(short: str, **key) -> dict | None:
    return table(short).get_item(Key=key).get("Item")


def events(account_id: str, action: str | None = None) -> list[dict]:
    rows = table("activity").query(KeyConditionExpression=Key("accountId").eq(account_id))["Items"]
    return [r for r in rows if action is None or r["type"] == action]


def walk(route_key: str, identity: dict, *, path: dict | None = None, limit: int = 1) -> list[dict]:
    """Every item of a list, one page of ``limit`` at a time."""
    items, cursor, pages = [], None, 0
    while True:
        query = {"limit": str(limit), **({"cursor": cursor} if cursor else {})}
        status, body = request(route_key, identity, path=path, query=query)
        assert status == 200, body
        assert len(body["data"]["items"]) <= limit
        items += body["data"]["items"]
        cursor, pages = body["data"]["nextCursor"], pages + 1
        assert pages < 50
        if not cursor:
            return items


def tampered(cursor: str) -> str:
    """The cursor with one character of its signature changed."""
    flipped = "A" if cursor[5] != "A" else "B"
    return cursor[:5] + flipped + cursor[6:]


@pytest.fixture
def no_scans(backend):
    """Every read the service makes must be GetItem, Query or BatchGetItem."""
    def refuse(**kwargs):
        raise AssertionError("the account service must not Scan")

    events_ = dynamodb().meta.events
    events_.register("before-call.dynamodb.Scan", refuse)
    yield
