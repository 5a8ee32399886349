"""The account service on moto: the caller's account, usage, the accounts a user belongs
to, the hierarchy, sub-accounts and switching."""

from __future__ import annotations

import pytest
from boto3.dynamodb.conditions import Key

from handlers.shared import clock, tokens
from handlers.shared.clients import table
from handlers.shared.plans import GB
from tests.handlers.test_account_support import (events, get_row, no_scans, request, seed_account,  # noqa: F401
                                                 seed_member, seed_user, tampered, tenant, walk, who)

pytestmark = pytest.mark.usefixtures("no_scans")


# ------------------------------------------------------------------------- GET|PUT /account

def test_get_account_shows_the_view_role_and_the_plan_limits():
    user, account, me = tenant("manager", name="Acme Ltd")
    status, body = request("GET /account", me)
    assert status == 200, body
    data = body["data"]
    assert data["accountId"] == account["accountId"] and data["name"] == "Acme Ltd"
    assert data["role"] == "manager" and data["plan"] == "free" and data["depth"] == 0
    assert data["parentAccountId"] is None
    assert data["limits"] == {"sources": 3, "jobs": 5, "storageBytes": 5 * GB, "retentionDays": 30,
                              "subAccounts": 1, "mostFrequentSchedule": "daily"}
    assert "passwordHash" not in str(body)


def test_a_sub_account_shows_its_parents_plan():
    user, root, _ = tenant("owner", plan="pro")
    child = seed_account("Child", parent=root)
    seed_member(user, child, "viewer")
    status, body = request("GET /account", who(user, child, "viewer"))
    assert status == 200
    assert body["data"]["plan"] == "pro" and body["data"]["limits"]["sources"] == 50
    assert body["data"]["parentAccountId"] == root["accountId"] and body["data"]["depth"] == 1


def test_put_account_renames_it_and_records_the_change():
    user, account, me = tenant("manager")
    status, body = request("PUT /account", me, body={"name": "  Renamed Co  "})
    assert status == 200, body
    assert body["data"]["name"] == "Renamed Co" and body["data"]["role"] == "manager"
    row = get_row("accounts", accountId=account["accountId"])
    assert row["name"] == "Renamed Co" and row["updatedAt"] >= account["updatedAt"]
    [event] = events(account["accountId"], "account.update")
    assert event["actor"] == user["userId"] and event["resourceId"] == account["accountId"]
    assert event["outcome"] == "success" and event["sourceIp"] == "203.0.113.9"


@pytest.mark.parametrize("body, code", [
    ({}, "validation_failed"),
    ({"name": ""}, "validation_failed"),
    ({"name": "   "}, "validation_failed"),
    ({"name": "x" * 101}, "validation_failed"),
    ({"name": "Evil\r\nBcc: x@example.com"}, "validation_failed"),
    ({"name": 42}, "validation_failed"),
    ({"name": "ok", "plan": "enterprise"}, "validation_failed"),
    ("{broken", "invalid_request"),
])
def test_put_account_refuses_bad_input_and_changes_nothing(body, code):
    _, account, me = tenant("owner")
    status, reply = request("PUT /account", me, body=body)
    assert status == 400 and reply["code"] == code
    assert get_row("accounts", accountId=account["accountId"]) == account
    assert events(account["accountId"]) == []


def test_a_viewer_cannot_rename_the_account():
    _, account, me = tenant("viewer")
    status, body = request("PUT /account", me, body={"name": "Mine now"})
    assert status == 403 and body["code"] == "forbidden"
    assert get_row("accounts", accountId=account["accountId"])["name"] == "Acme"


# ------------------------------------------------------------------------- usage

def test_usage_reports_each_counter_against_the_plan():
    _, account, me = tenant("viewer")
    table("accounts").update_item(
        Key={"accountId": account["accountId"]},
        UpdateExpression="SET sourceCount = :s, jobCount = :j, storageBytes = :b, "
                         "subAccountCount = :a, runsThisMonth = :r, runsMonth = :m",
        ExpressionAttributeValues={":s": 2, ":j": 4, ":b": 123456789, ":a": 1, ":r": 17,
                                   ":m": clock.now().strftime("%Y-%m")})
    status, body = request("GET /account/usage", me)
    assert status == 200, body
    data = body["data"]
    assert data["plan"] == "free" and data["month"] == clock.now().strftime("%Y-%m")
    assert data["sources"] == {"used": 2, "limit": 3}
    assert data["jobs"] == {"used": 4, "limit": 5}
    assert data["storageBytes"] == {"used": 123456789, "limit": 5 * GB}
    assert data["subAccounts"] == {"used": 1, "limit": 1}
    assert data["runsThisMonth"] == {"used": 17, "limit": None}


def test_usage_of_a_new_month_starts_at_zero_and_unlimited_plans_say_null():
    _, account, me = tenant("viewer", plan="enterprise")
    table("accounts").update_item(
        Key={"accountId": account["accountId"]},
        UpdateExpression="SET runsThisMonth = :r, runsMonth = :m",
        ExpressionAttributeValues={":r": 40, ":m": "2001-01"})
    data = request("GET /account/usage", me)[1]["data"]
    assert data["runsThisMonth"]["used"] == 0
    assert data["sources"] == {"used": 0, "limit": None}
    assert data["jobs"]["limit"] is None and data["subAccounts"]["limit"] is None
    assert data["storageBytes"]["limit"] == 1024 * GB


# ------------------------------------------------------------------------- GET /accounts

def test_accounts_lists_every_account_of_the_user_with_their_role():
    user, first, me = tenant("owner", name="First")
    second = seed_account("Second", plan="starter")
    seed_member(user, second, "viewer")
    third = seed_account("Third")
    seed_member(user, third, "manager")
    stranger = seed_account("Not mine")
    seed_member(seed_user(), stranger, "owner")

    status, body = request("GET /accounts", me)
    assert status == 200, body
    got = {i["accountId"]: i for i in body["data"]["items"]}
    assert set(got) == {first["accountId"], second["accountId"], third["accountId"]}
    assert got[first["accountId"]]["role"] == "owner" and got[first["accountId"]]["current"] is True
    assert got[second["accountId"]]["role"] == "viewer" and got[second["accountId"]]["plan"] == "starter"
    assert got[third["accountId"]]["role"] == "manager" and got[third["accountId"]]["current"] is False
    assert body["data"]["nextCursor"] is None

    paged = walk("GET /accounts", me, limit=1)
    assert sorted(i["accountId"] for i in paged) == sorted(got)


def test_accounts_refuses_a_tampered_cursor_or_another_users_cursor():
    user, account, me = tenant("owner")
    seed_member(user, seed_account("Second"), "viewer")
    cursor = request("GET /accounts", me, query={"limit": "1"})[1]["data"]["nextCursor"]
    assert cursor
    status, body = request("GET /accounts", me, query={"limit": "1", "cursor": tampered(cursor)})
    assert status == 400 and body["code"] == "invalid_request"
    other, other_account, them = tenant("owner")
    seed_member(other, seed_account("Theirs"), "viewer")
    status, body = request("GET /accounts", them, query={"cursor": cursor})
    assert status == 400
    for bad in ("0", "101", "abc"):
        status, body = request("GET /accounts", me, query={"limit": bad})
        assert status == 400 and body["code"] == "validation_failed"


# ------------------------------------------------------------------------- hierarchy

@pytest.fixture
def forest():
    """root -> a -> a1 -> a1x, root -> b -> b1; plus another tenant's tree."""
    user, root, me = tenant("owner", plan="pro", name="Root")
    a = seed_account("A", parent=root)
    a1 = seed_account("A1", parent=a)
    a1x = seed_account("A1x", parent=a1)
    b = seed_account("B", parent=root)
    b1 = seed_account("B1", parent=b)
    _, other_root, _ = tenant("owner")
    seed_account("Other child", parent=other_root)
    return dict(user=user, me=me, root=root, a=a, a1=a1, a1x=a1x, b=b, b1=b1, other=other_root)


def _ids(items):
    return [i["accountId"] for i in items]


def test_hierarchy_returns_the_subtree_in_tree_order_and_nothing_else(forest):
    f = forest
    status, body = request("GET /accounts/{accountId}/hierarchy", f["me"],
                           path={"accountId": f["a"]["accountId"]})
    assert status == 200, body
    data = body["data"]
    assert data["accountId"] == f["a"]["accountId"]
    assert _ids(data["items"]) == [f["a"]["accountId"], f["a1"]["accountId"], f["a1x"]["accountId"]]
    a1 = data["items"][1]
    assert a1["parentAccountId"] == f["a"]["accountId"] and a1["depth"] == 2 and a1["plan"] == "pro"
    assert data["nextCursor"] is None

    everything = request("GET /accounts/{accountId}/hierarchy", f["me"],
                         path={"accountId": f["root"]["accountId"]})[1]["data"]["items"]
    order = _ids(everything)
    assert set(order) == {f[k]["accountId"] for k in ("root", "a", "a1", "a1x", "b", "b1")}
    assert order[0] == f["root"]["accountId"]
    for item in everything[1:]:  # parents come before their children
        assert order.index(item["parentAccountId"]) < order.index(item["accountId"])


def test_hierarchy_is_one_query_on_the_root_path_index(forest, monkeypatch):
    from handlers.account import tree

    calls = []
    real = tree.query_page

    def spy(table_name, request_, scope, **kwargs):
        calls.append((table_name, kwargs.get("IndexName")))
        return real(table_name, request_, scope, **kwargs)

    monkeypatch.setattr(tree, "query_page", spy)
    status, _ = request("GET /accounts/{accountId}/hierarchy", forest["me"],
                        path={"accountId": forest["b"]["accountId"]})
    assert status == 200 and calls == [("accounts", "root-path-index")]


def test_hierarchy_pages_with_a_signed_cursor(forest):
    f = forest
    path = {"accountId": f["root"]["accountId"]}
    paged = walk("GET /accounts/{accountId}/hierarchy", f["me"], path=path, limit=1)
    assert len(paged) == 6 and len(set(_ids(paged))) == 6
    cursor = request("GET /accounts/{accountId}/hierarchy", f["me"], path=path,
                     query={"limit": "1"})[1]["data"]["nextCursor"]
    status, body = request("GET /accounts/{accountId}/hierarchy", f["me"], path=path,
                           query={"limit": "1", "cursor": tampered(cursor)})
    assert status == 400 and body["code"] == "invalid_request"
    # a cursor of one subtree is not valid for another
    status, _ = request("GET /accounts/{accountId}/hierarchy", f["me"],
                        path={"accountId": f["a"]["accountId"]}, query={"cursor": cursor})
    assert status == 400


def test_hierarchy_outside_the_callers_scope_is_404(forest):
    f = forest
    for account_id in (f["other"]["accountId"], "acc_missing"):
        status, body = request("GET /accounts/{accountId}/hierarchy", f["me"],
                               path={"accountId": account_id})
        assert status == 404 and body["code"] == "not_found"
    # from inside a sub-account, neither its parent nor its sibling is in scope
    seed_member(f["user"], f["a"], "owner")
    in_a = who(f["user"], f["a"], "owner")
    for key in ("root", "b", "b1"):
        status, _ = request("GET /accounts/{accountId}/hierarchy", in_a,
                            path={"accountId": f[key]["accountId"]})
        assert status == 404, key
    assert request("GET /accounts/{accountId}/hierarchy", in_a,
                   path={"accountId": f["a1x"]["accountId"]})[0] == 200


# ------------------------------------------------------------------------- sub-accounts

SUB = "POST /accounts/{accountId}/sub-accounts"


def _children(account_id: str) -> list[dict]:
    return table("accounts").query(IndexName="parent-index",
                                   KeyConditionExpression=Key("parentAccountId").eq(account_id))["Items"]


def test_creating_a_sub_account_makes_the_creator_its_owner():
    user, root, me = tenant("manager")
    status, body = request(SUB, me, path={"accountId": root["accountId"]}, body={"name": "Client A"})
    assert status == 201, body
    view = body["data"]
    assert view["name"] == "Client A" and view["role"] == "owner" and view["plan"] == "free"
    assert view["parentAccountId"] == root["accountId"] and view["depth"] == 1
    row = get_row("accounts", accountId=view["accountId"])
    assert row["rootAccountId"] == root["accountId"] and row["path"] == f"{root['path']}/{view['accountId']}"
    assert row["plan"] == "free" and row["ownSubscription"] is False
    assert get_row("users-accounts", userId=user["userId"], accountId=view["accountId"])["role"] == "owner"
    assert get_row("accounts", accountId=root["accountId"])["subAccountCount"] == 1
    [event] = events(root["accountId"], "account.subaccount.create")
    assert event["resourceId"] == view["accountId"] and event["actor"] == user["userId"]


def test_the_free_plan_allows_one_sub_account_and_a_second_is_402():
    _, root, me = tenant("owner")
    assert request(SUB, me, path={"accountId": root["accountId"]}, body={"name": "One"})[0] == 201
    status, body = request(SUB, me, path={"accountId": root["accountId"]}, body={"name": "Two"})
    assert status == 402 and body["code"] == "plan_limit" and "Free" in body["error"]
    assert len(_children(root["accountId"])) == 1
    assert get_row("accounts", accountId=root["accountId"])["subAccountCount"] == 1


def test_the_starter_plan_allows_two():
    _, root, me = tenant("owner")
    table("accounts").update_item(Key={"accountId": root["accountId"]},
                                  UpdateExpression="SET #p = :p", ExpressionAttributeNames={"#p": "plan"},
                                  ExpressionAttributeValues={":p": "starter"})
    for name in ("One", "Two"):
        assert request(SUB, me, path={"accountId": root["accountId"]}, body={"name": name})[0] == 201
    status, body = request(SUB, me, path={"accountId": root["accountId"]}, body={"name": "Three"})
    assert status == 402 and body["code"] == "plan_limit"
    assert len(_children(root["accountId"])) == 2


def test_the_limit_holds_against_a_concurrent_create(monkeypatch):
    """The check is in the transaction: a sub-account created between the read and the
    write makes this one fail with 402, and nothing is written."""
    from handlers.account import tree

    user, root, me = tenant("owner")
    real = tree.effective_plan

    def racing(account):
        table("accounts").update_item(Key={"accountId": root["accountId"]},
                                      UpdateExpression="SET subAccountCount = :one",
                                      ExpressionAttributeValues={":one": 1})
        return real(account)

    monkeypatch.setattr(tree, "effective_plan", racing)
    status, body = request(SUB, me, path={"accountId": root["accountId"]}, body={"name": "Late"})
    assert status == 402 and body["code"] == "plan_limit"
    assert _children(root["accountId"]) == []
    memberships = table("users-accounts").query(KeyConditionExpression=Key("userId").eq(user["userId"]))
    assert [m["accountId"] for m in memberships["Items"]] == [root["accountId"]]


def test_a_sub_account_below_a_sub_account_uses_the_inherited_plan_and_the_depth_limit():
    user, root, me = tenant("owner", plan="enterprise")
    parent = root
    for depth in range(1, 5):
        status, body = request(SUB, me, path={"accountId": parent["accountId"]},
                               body={"name": f"Level {depth}"})
        assert status == 201, body
        assert body["data"]["depth"] == depth and body["data"]["plan"] == "enterprise"
        parent = get_row("accounts", accountId=body["data"]["accountId"])
    status, body = request(SUB, me, path={"accountId": parent["accountId"]}, body={"name": "Too deep"})
    assert status == 409 and body["code"] == "conflict" and "levels" in body["error"]
    assert _children(parent["accountId"]) == []
    # the deepest account is still within the caller's scope and in the hierarchy
    items = request("GET /accounts/{accountId}/hierarchy", me,
                    path={"accountId": root["accountId"]})[1]["data"]["items"]
    assert [i["depth"] for i in items] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": " "}, {"name": "x" * 101}, {"name": "a\tb"},
                                  {"name": "ok", "plan": "pro"}])
def test_sub_account_input_is_validated(body):
    _, root, me = tenant("owner")
    status, reply = request(SUB, me, path={"accountId": root["accountId"]}, body=body)
    assert status == 400 and reply["code"] == "validation_failed"
    assert _children(root["accountId"]) == []


def test_a_viewer_cannot_create_sub_accounts_nor_anyone_outside_the_tree():
    _, root, viewer = tenant("viewer")
    status, body = request(SUB, viewer, path={"accountId": root["accountId"]}, body={"name": "X"})
    assert status == 403 and body["code"] == "forbidden"
    _, _, outsider = tenant("owner")
    status, body = request(SUB, outsider, path={"accountId": root["accountId"]}, body={"name": "X"})
    assert status == 404 and body["code"] == "not_found"
    assert _children(root["accountId"]) == []


# ------------------------------------------------------------------------- switch

def _claims(token: str) -> dict:
    from handlers.shared.sessions import access_secret

    return tokens.verify(token, access_secret(), stage="test", typ="access")


def test_switch_issues_a_token_pair_for_the_target_account():
    user, home, me = tenant("owner")
    target = seed_account("Client", plan="starter")
    seed_member(user, target, "viewer")
    status, body = request("POST /accounts/switch", me, body={"accountId": target["accountId"]})
    assert status == 200, body
    data = body["data"]
    claims = _claims(data["accessToken"])
    assert claims["acc"] == target["accountId"] and claims["sub"] == user["userId"]
    assert claims["role"] == "viewer"
    assert data["tokenType"] == "Bearer" and data["refreshToken"]
    assert data["account"] == {"accountId": target["accountId"], "name": "Client",
                               "plan": "starter", "role": "viewer"}
    assert data["user"]["userId"] == user["userId"]
    assert get_row("users", userId=user["userId"])["lastAccountId"] == target["accountId"]
    assert events(target["accountId"], "account.switch")


def test_switch_into_a_sub_account_created_by_the_caller():
    user, root, me = tenant("manager")
    child = request(SUB, me, path={"accountId": root["accountId"]}, body={"name": "Kid"})[1]["data"]
    status, body = request("POST /accounts/switch", me, body={"accountId": child["accountId"]})
    assert status == 200
    assert _claims(body["data"]["accessToken"])["acc"] == child["accountId"]
    assert body["data"]["account"]["role"] == "owner"


def test_switch_to_an_account_the_user_is_not_a_member_of_is_404():
    user, home, me = tenant("owner")
    _, theirs, _ = tenant("owner")
    child = seed_account("My child, no membership", parent=home)
    for account_id in (theirs["accountId"], "acc_unknown", child["accountId"]):
        status, body = request("POST /accounts/switch", me, body={"accountId": account_id})
        assert status == 404 and body["code"] == "not_found"
    assert "lastAccountId" not in get_row("users", userId=user["userId"])
    status, body = request("POST /accounts/switch", me, body={})
    assert status == 400 and body["code"] == "validation_failed"


def test_a_sub_account_of_a_parent_past_its_payment_grace_shows_the_free_plan():
    """Limits and every account view agree: a parent whose payment has failed for longer
    than the grace period is on free limits, and so is its sub-account."""
    from handlers.shared import clock
    from handlers.shared.accounts import PAST_DUE_GRACE_DAYS

    user, parent, me = tenant("owner", plan="pro")
    child = seed_account("Child", parent=parent)
    seed_member(user, child, "owner")
    status, body = request("GET /accounts", me)
    assert {i["accountId"]: i["plan"] for i in body["data"]["items"]} == \
        {parent["accountId"]: "pro", child["accountId"]: "pro"}
    table_row = {**parent, "pastDueSince": clock.epoch() - (PAST_DUE_GRACE_DAYS * 86400 + 60)}
    from handlers.shared.clients import table
    table("accounts").put_item(Item=table_row)
    status, body = request("GET /accounts", me)
    assert {i["accountId"]: i["plan"] for i in body["data"]["items"]} == \
        {parent["accountId"]: "free", child["accountId"]: "free"}
