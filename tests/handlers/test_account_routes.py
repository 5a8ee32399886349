"""The account service's route table, and the cross-tenant and role matrices over it."""

from __future__ import annotations

import pytest

from handlers.account.routes import ROUTES
from tests.handlers.conftest import sent_emails
from tests.handlers.test_account_support import (events, no_scans, request, seed_account,  # noqa: F401
                                                 seed_member, seed_user, tenant, who)

EXPECTED = {   # DESIGN section 4: route -> (minimum role, success status)
    "GET /account": ("viewer", 200),
    "PUT /account": ("manager", 200),
    "GET /account/usage": ("viewer", 200),
    "GET /accounts": ("viewer", 200),
    "GET /accounts/{accountId}/hierarchy": ("viewer", 200),
    "POST /accounts/{accountId}/sub-accounts": ("manager", 201),
    "POST /accounts/switch": ("viewer", 200),
    "GET /accounts/{accountId}/members": ("viewer", 200),
    "PUT /accounts/{accountId}/members/{userId}": ("manager", 200),
    "DELETE /accounts/{accountId}/members/{userId}": ("manager", 200),
    "GET /accounts/{accountId}/invitations": ("manager", 200),
    "POST /accounts/{accountId}/invitations": ("manager", 201),
    "DELETE /accounts/{accountId}/invitations/{inviteId}": ("manager", 200),
    "POST /invitations/accept": ("viewer", 200),
}

BODIES = {
    "PUT /account": {"name": "Taken over"},
    "POST /accounts/{accountId}/sub-accounts": {"name": "Intruder"},
    "POST /accounts/switch": {"accountId": "acc_x"},
    "PUT /accounts/{accountId}/members/{userId}": {"role": "viewer"},
    "POST /accounts/{accountId}/invitations": {"email": "x@example.com", "role": "viewer"},
    "POST /invitations/accept": {"inviteCode": "whatever"},
}


def test_the_route_table_matches_the_design():
    assert {r.route_key: (r.access, r.status) for r in ROUTES} == EXPECTED


def test_every_body_schema_is_closed_and_bounded():
    for route in ROUTES:
        if route.body is None:
            continue
        assert route.body["type"] == "object" and route.body["additionalProperties"] is False
        for name, prop in route.body["properties"].items():
            if prop.get("type") == "string" and "enum" not in prop:
                assert "maxLength" in prop, (route.route_key, name)


@pytest.fixture
def victim(backend):
    """Another tenant: an account with a sub-account, members and a pending invitation."""
    owner, account, as_owner = tenant("owner", plan="pro", name="Victim")
    child = seed_account("Victim child", parent=account)
    member = seed_user()
    seed_member(member, account, "viewer")
    status, body = request("POST /accounts/{accountId}/invitations", as_owner,
                           path={"accountId": account["accountId"]},
                           body={"email": "invitee@example.com", "role": "viewer"})
    assert status == 201
    return dict(account=account, child=child, member=member, invite=body["data"]["inviteId"])


def _path_for(route, account_id, v):
    path = {}
    if "{accountId}" in route.path:
        path["accountId"] = account_id
    if "{userId}" in route.path:
        path["userId"] = v["member"]["userId"]
    if "{inviteId}" in route.path:
        path["inviteId"] = v["invite"]
    return path


SCOPED = [r for r in ROUTES if "{accountId}" in r.path]


@pytest.mark.usefixtures("no_scans")
@pytest.mark.parametrize("route", SCOPED, ids=[r.route_key for r in SCOPED])
@pytest.mark.parametrize("target", ["account", "child"])
def test_another_tenants_account_id_is_404_and_nothing_changes(victim, route, target):
    v = victim
    _, _, attacker = tenant("owner", plan="enterprise")
    activity_before = len(events(v["account"]["accountId"]))
    status, body = request(route.route_key, attacker, body=BODIES.get(route.route_key),
                           path=_path_for(route, v[target]["accountId"], v))
    assert status == 404 and body["code"] == "not_found", body
    assert len(events(v["account"]["accountId"])) == activity_before
    assert len(sent_emails()) == 1   # only the victim's own invitation


MANAGER_ROUTES = [r for r in ROUTES if r.access == "manager"]


@pytest.mark.usefixtures("no_scans")
@pytest.mark.parametrize("route", MANAGER_ROUTES, ids=[r.route_key for r in MANAGER_ROUTES])
def test_a_viewer_gets_403_on_every_manager_route(victim, route):
    v = victim
    as_viewer = who(v["member"], v["account"], "viewer")
    status, body = request(route.route_key, as_viewer, body=BODIES.get(route.route_key),
                           path=_path_for(route, v["account"]["accountId"], v))
    assert status == 403 and body["code"] == "forbidden"


VIEWER_ROUTES = [r for r in ROUTES if r.access == "viewer" and r.method == "GET"]


@pytest.mark.usefixtures("no_scans")
@pytest.mark.parametrize("route", VIEWER_ROUTES, ids=[r.route_key for r in VIEWER_ROUTES])
def test_a_viewer_reads_every_viewer_route(victim, route):
    v = victim
    as_viewer = who(v["member"], v["account"], "viewer")
    status, body = request(route.route_key, as_viewer, path=_path_for(route, v["account"]["accountId"], v))
    assert status == 200, body


def test_a_request_without_identity_is_refused(backend):
    status, body = request("GET /account", None)
    assert status == 403 and body["code"] == "forbidden"
