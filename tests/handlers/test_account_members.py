"""Members of an account on moto: list, change role, remove; owner rules and the last
owner."""

from __future__ import annotations

import pytest

from tests.handlers.test_account_support import (events, get_row, no_scans, request, seed_account,  # noqa: F401
                                                 seed_member, seed_user, tampered, tenant, walk, who)

pytestmark = pytest.mark.usefixtures("no_scans")

LIST = "GET /accounts/{accountId}/members"
PUT = "PUT /accounts/{accountId}/members/{userId}"
DELETE = "DELETE /accounts/{accountId}/members/{userId}"


@pytest.fixture
def team():
    """An account with an owner, a manager and two viewers."""
    owner, account, as_owner = tenant("owner", name="Team")
    manager = seed_user(name="Mona Manager")
    seed_member(manager, account, "manager")
    viewers = [seed_user(name=f"Viewer {i}") for i in range(2)]
    for viewer in viewers:
        seed_member(viewer, account, "viewer")
    return dict(account=account, owner=owner, manager=manager, viewers=viewers, as_owner=as_owner,
                as_manager=who(manager, account, "manager"))


def _role(user: dict, account: dict) -> str | None:
    row = get_row("users-accounts", userId=user["userId"], accountId=account["accountId"])
    return row and row["role"]


def _path(t, user):
    return {"accountId": t["account"]["accountId"], "userId": user["userId"]}


# ------------------------------------------------------------------------- list

def test_members_are_listed_with_name_email_and_role(team):
    t = team
    status, body = request(LIST, t["as_manager"], path={"accountId": t["account"]["accountId"]})
    assert status == 200, body
    got = {m["userId"]: m for m in body["data"]["items"]}
    assert len(got) == 4 and body["data"]["nextCursor"] is None
    mona = got[t["manager"]["userId"]]
    assert mona == {"userId": t["manager"]["userId"], "email": t["manager"]["email"],
                    "name": "Mona Manager", "role": "manager", "joinedAt": mona["joinedAt"]}
    assert got[t["owner"]["userId"]]["role"] == "owner"
    assert "passwordHash" not in str(body)


def test_a_viewer_may_list_members_and_pages_walk_the_whole_list(team):
    t = team
    as_viewer = who(t["viewers"][0], t["account"], "viewer")
    paged = walk(LIST, as_viewer, path={"accountId": t["account"]["accountId"]}, limit=1)
    assert len({m["userId"] for m in paged}) == 4


def test_a_tampered_members_cursor_is_400(team):
    t = team
    path = {"accountId": t["account"]["accountId"]}
    cursor = request(LIST, t["as_owner"], path=path, query={"limit": "1"})[1]["data"]["nextCursor"]
    status, body = request(LIST, t["as_owner"], path=path, query={"limit": "1", "cursor": tampered(cursor)})
    assert status == 400 and body["code"] == "invalid_request"


def test_another_tenants_members_are_404(team):
    _, _, outsider = tenant("owner")
    status, body = request(LIST, outsider, path={"accountId": team["account"]["accountId"]})
    assert status == 404 and body["code"] == "not_found"


# ------------------------------------------------------------------------- change role

def test_an_owner_changes_a_role_and_it_is_recorded(team):
    t = team
    viewer = t["viewers"][0]
    status, body = request(PUT, t["as_owner"], path=_path(t, viewer), body={"role": "manager"})
    assert status == 200, body
    assert body["data"]["role"] == "manager" and body["data"]["email"] == viewer["email"]
    assert _role(viewer, t["account"]) == "manager"
    [event] = events(t["account"]["accountId"], "account.member.update")
    assert event["resourceId"] == viewer["userId"] and event["details"] == {"from": "viewer", "to": "manager"}


def test_an_owner_grants_the_owner_role(team):
    t = team
    status, _ = request(PUT, t["as_owner"], path=_path(t, t["manager"]), body={"role": "owner"})
    assert status == 200 and _role(t["manager"], t["account"]) == "owner"


def test_a_manager_changes_roles_below_owner(team):
    t = team
    viewer = t["viewers"][1]
    assert request(PUT, t["as_manager"], path=_path(t, viewer), body={"role": "manager"})[0] == 200
    assert request(PUT, t["as_manager"], path=_path(t, viewer), body={"role": "viewer"})[0] == 200
    assert _role(viewer, t["account"]) == "viewer"


def test_a_manager_can_neither_grant_nor_change_the_owner_role(team):
    t = team
    status, body = request(PUT, t["as_manager"], path=_path(t, t["viewers"][0]), body={"role": "owner"})
    assert status == 403 and body["code"] == "forbidden"
    status, body = request(PUT, t["as_manager"], path=_path(t, t["owner"]), body={"role": "viewer"})
    assert status == 403 and body["code"] == "forbidden"
    status, _ = request(PUT, t["as_manager"], path=_path(t, t["manager"]), body={"role": "owner"})
    assert status == 403
    assert _role(t["viewers"][0], t["account"]) == "viewer"
    assert _role(t["owner"], t["account"]) == "owner" and _role(t["manager"], t["account"]) == "manager"
    assert events(t["account"]["accountId"]) == []


def test_the_last_owner_cannot_be_demoted(team):
    t = team
    status, body = request(PUT, t["as_owner"], path=_path(t, t["owner"]), body={"role": "manager"})
    assert status == 409 and body["code"] == "conflict" and "owner" in body["error"]
    assert _role(t["owner"], t["account"]) == "owner"


def test_with_two_owners_one_may_step_down_but_not_the_second(team):
    t = team
    request(PUT, t["as_owner"], path=_path(t, t["manager"]), body={"role": "owner"})
    status, _ = request(PUT, t["as_owner"], path=_path(t, t["owner"]), body={"role": "viewer"})
    assert status == 200 and _role(t["owner"], t["account"]) == "viewer"
    as_new_owner = who(t["manager"], t["account"], "owner")
    status, body = request(PUT, as_new_owner, path=_path(t, t["manager"]), body={"role": "manager"})
    assert status == 409 and _role(t["manager"], t["account"]) == "owner"


def test_two_owners_demoting_each_other_at_once_leave_one_owner(team, monkeypatch):
    """The other owner found before the write is checked inside the transaction: if it was
    demoted meanwhile, this demotion fails instead of leaving the account ownerless."""
    from handlers.account import members
    from handlers.shared.clients import table

    t = team
    second = t["manager"]
    request(PUT, t["as_owner"], path=_path(t, second), body={"role": "owner"})
    real = members._other_owner

    def racing(account_id, user_id):
        found = real(account_id, user_id)
        if found and found["userId"] == second["userId"]:
            table("users-accounts").update_item(
                Key={"userId": second["userId"], "accountId": account_id},
                UpdateExpression="SET #r = :v", ExpressionAttributeNames={"#r": "role"},
                ExpressionAttributeValues={":v": "viewer"})
        return found

    monkeypatch.setattr(members, "_other_owner", racing)
    status, body = request(PUT, t["as_owner"], path=_path(t, t["owner"]), body={"role": "viewer"})
    assert status == 409 and body["code"] == "conflict"
    assert _role(t["owner"], t["account"]) == "owner"


@pytest.mark.parametrize("body", [{}, {"role": "admin"}, {"role": None}, {"role": "viewer", "x": 1}])
def test_a_role_change_is_validated(team, body):
    t = team
    status, reply = request(PUT, t["as_owner"], path=_path(t, t["viewers"][0]), body=body)
    assert status == 400 and reply["code"] == "validation_failed"
    assert _role(t["viewers"][0], t["account"]) == "viewer"


def test_unknown_members_are_404(team):
    t = team
    stranger = seed_user()
    for route, body in ((PUT, {"role": "viewer"}), (DELETE, None)):
        status, reply = request(route, t["as_owner"], path=_path(t, stranger), body=body)
        assert status == 404 and reply["code"] == "not_found"
        status, _ = request(route, t["as_owner"], body=body,
                            path={"accountId": t["account"]["accountId"], "userId": "usr_nobody"})
        assert status == 404


def test_a_viewer_cannot_change_or_remove_members(team):
    t = team
    as_viewer = who(t["viewers"][0], t["account"], "viewer")
    status, _ = request(PUT, as_viewer, path=_path(t, t["viewers"][1]), body={"role": "manager"})
    assert status == 403
    status, _ = request(DELETE, as_viewer, path=_path(t, t["viewers"][1]))
    assert status == 403
    assert _role(t["viewers"][1], t["account"]) == "viewer"


# ------------------------------------------------------------------------- remove

def test_removing_a_member_deletes_the_membership_at_once(team):
    t = team
    viewer = t["viewers"][0]
    status, body = request(DELETE, t["as_manager"], path=_path(t, viewer))
    assert status == 200 and body == {"success": True, "data": None}
    assert _role(viewer, t["account"]) is None
    [event] = events(t["account"]["accountId"], "account.member.remove")
    assert event["resourceId"] == viewer["userId"] and event["actor"] == t["manager"]["userId"]
    members = request(LIST, t["as_owner"], path={"accountId": t["account"]["accountId"]})[1]["data"]["items"]
    assert viewer["userId"] not in {m["userId"] for m in members}


def test_a_manager_cannot_remove_an_owner_and_the_last_owner_stays(team):
    t = team
    status, body = request(DELETE, t["as_manager"], path=_path(t, t["owner"]))
    assert status == 403 and body["code"] == "forbidden"
    status, body = request(DELETE, t["as_owner"], path=_path(t, t["owner"]))
    assert status == 409 and body["code"] == "conflict"
    assert _role(t["owner"], t["account"]) == "owner"


def test_an_owner_removes_another_owner_and_a_manager_may_leave(team):
    t = team
    request(PUT, t["as_owner"], path=_path(t, t["viewers"][0]), body={"role": "owner"})
    assert request(DELETE, t["as_owner"], path=_path(t, t["viewers"][0]))[0] == 200
    assert _role(t["viewers"][0], t["account"]) is None
    assert request(DELETE, t["as_manager"], path=_path(t, t["manager"]))[0] == 200
    assert _role(t["manager"], t["account"]) is None


def test_members_of_a_sub_account_are_managed_from_the_parent(team):
    t = team
    child = seed_account("Child", parent=t["account"])
    child_owner = seed_user()
    seed_member(child_owner, child, "owner")
    helper = seed_user()
    seed_member(helper, child, "viewer")
    path = {"accountId": child["accountId"], "userId": helper["userId"]}
    status, body = request(LIST, t["as_manager"], path={"accountId": child["accountId"]})
    assert status == 200 and len(body["data"]["items"]) == 2
    assert request(PUT, t["as_manager"], path=path, body={"role": "manager"})[0] == 200
    assert events(child["accountId"], "account.member.update")
    # the parent's manager is not an owner, so the child's owner is out of reach
    status, _ = request(DELETE, t["as_manager"],
                        path={"accountId": child["accountId"], "userId": child_owner["userId"]})
    assert status == 403
    # and the child's members cannot reach the parent
    as_child_owner = who(child_owner, child, "owner")
    status, _ = request(DELETE, as_child_owner, path=_path(t, t["viewers"][0]))
    assert status == 404 and _role(t["viewers"][0], t["account"]) == "viewer"


def test_cross_tenant_member_routes_are_404_and_change_nothing(team):
    t = team
    _, _, outsider = tenant("owner")
    viewer = t["viewers"][0]
    status, _ = request(PUT, outsider, path=_path(t, viewer), body={"role": "owner"})
    assert status == 404
    status, _ = request(DELETE, outsider, path=_path(t, viewer))
    assert status == 404
    assert _role(viewer, t["account"]) == "viewer"
