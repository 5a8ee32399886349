"""The cross-tenant and role matrices, built from the route table so a new route is covered
the day it is declared.

- Another tenant: user B (owner of their own account) using any of A's ids in any id-bearing
  route of the auth, account and activity services gets 404 (never 403, never 200), and
  nothing of A's changes.
- A viewer of A's account gets the handler's 403 on every route (of every service) whose
  minimum role is above viewer, and succeeds on every viewer route of the identity services;
  a manager gets 403 on every owner route.
"""

from __future__ import annotations

import re

import pytest

from handlers.routes import all_routes
from handlers.shared.routing import Route
from tests.e2e import identity as idn
from tests.e2e.identity import assert_error

IDENTITY_SERVICES = ("auth", "account", "activity")
PARAM = re.compile(r"\{(\w+)\}")


def _routes(services=None) -> list[Route]:
    table = all_routes()
    return [route for service, routes in sorted(table.items())
            if services is None or service in services for route in routes]


ID_ROUTES = [r for r in _routes(IDENTITY_SERVICES) if not r.public and PARAM.search(r.path)]
ABOVE_VIEWER = [r for r in _routes() if r.access in ("manager", "owner")]
OWNER_ONLY = [r for r in _routes() if r.access == "owner"]
VIEWER_ROUTES = [r for r in _routes(IDENTITY_SERVICES) if r.access == "viewer"]


def _fill(path: str, ids: dict[str, str], default: str | None = None) -> str:
    def one(match):
        name = match.group(1)
        if name not in ids and default is None:
            raise AssertionError(f"{path}: no id for {{{name}}}: give the tenant fixture one")
        return ids.get(name, default)

    return PARAM.sub(one, path)


@pytest.fixture(scope="module")
def tenant_a(offline):
    """A's account with something behind every kind of id: a sub-account, a pending
    invitation, an API key, activity events."""
    a = idn.register(offline, name="Alice Tenant", company="Tenant A", verify=True)
    sub = offline.post(f"/accounts/{a.account_id}/sub-accounts", {"name": "A East"}, token=a.access)
    assert sub.status == 201, sub
    invitation = offline.post(f"/accounts/{a.account_id}/invitations",
                              {"email": idn.unique_email("pending"), "role": "viewer"},
                              token=a.access)
    assert invitation.status == 201, invitation
    key = offline.post("/api-keys", {"name": "A key"}, token=a.access)
    assert key.status == 201, key
    events = offline.get("/activity", token=a.access).json["data"]["items"]
    assert events
    a.extra = {"accountId": a.account_id, "subAccountId": sub.json["data"]["accountId"],
               "userId": a.user_id, "inviteId": invitation.json["data"]["inviteId"],
               "keyId": key.json["data"]["keyId"], "eventId": events[-1]["eventId"]}
    return a


@pytest.fixture(scope="module")
def tenant_b(offline):
    b = idn.register(offline, name="Bob Tenant", company="Tenant B", verify=True)
    invitation = offline.post(f"/accounts/{b.account_id}/invitations",
                              {"email": idn.unique_email("b-pending"), "role": "viewer"},
                              token=b.access)
    key = offline.post("/api-keys", {"name": "B key"}, token=b.access)
    events = offline.get("/activity", token=b.access).json["data"]["items"]
    b.extra = {"accountId": b.account_id, "userId": b.user_id,
               "inviteId": invitation.json["data"]["inviteId"],
               "keyId": key.json["data"]["keyId"], "eventId": events[-1]["eventId"]}
    return b


@pytest.fixture(scope="module")
def viewer(offline, tenant_a):
    v = idn.register(offline, name="Vera Viewer", verify=True)
    v.extra["home"] = v.account_id
    idn.join(offline, tenant_a, tenant_a.account_id, v, role="viewer")
    assert offline.get("/account", token=v.access).json["data"]["role"] == "viewer"
    return v


def _snapshot(offline, a: idn.User) -> dict:
    """What B must not be able to change in A's account."""
    def items(path):
        reply = offline.get(path, token=a.access)
        assert reply.status == 200, reply
        return reply.json["data"]["items"]

    account = offline.get("/account", token=a.access).json["data"]
    return {
        "account": {k: account[k] for k in ("accountId", "name", "plan")},
        "hierarchy": sorted(x["accountId"] for x in items(f"/accounts/{a.account_id}/hierarchy")),
        "members": sorted((m["userId"], m["role"]) for m in items(f"/accounts/{a.account_id}/members")),
        "invitations": sorted((i["inviteId"], i["status"]) for i in
                              items(f"/accounts/{a.account_id}/invitations")),
        "keys": sorted((k["keyId"], k["revoked"]) for k in items("/api-keys")),
        "profile": offline.get("/auth/profile", token=a.access).json["data"]["name"],
    }


# ------------------------------------------------------------------ another tenant: 404

def test_the_matrices_cover_routes():
    keys = {r.route_key for r in ID_ROUTES}
    assert {"GET /accounts/{accountId}/members", "DELETE /api-keys/{keyId}",
            "GET /activity/{eventId}",
            "DELETE /accounts/{accountId}/invitations/{inviteId}"} <= keys
    assert "PUT /account" in {r.route_key for r in ABOVE_VIEWER}


@pytest.mark.parametrize("route", ID_ROUTES, ids=[r.route_key for r in ID_ROUTES])
def test_another_tenants_ids_are_404(offline, tenant_a, tenant_b, route):
    before = _snapshot(offline, tenant_a)
    a_ids, b_ids = tenant_a.extra, tenant_b.extra
    attempts = [_fill(route.path, a_ids)]                               # all of A's ids
    if "{accountId}" in route.path:
        attempts.append(_fill(route.path, {**a_ids, "accountId": a_ids["subAccountId"]}))
        if len(PARAM.findall(route.path)) > 1:                          # B's account, A's child id
            attempts.append(_fill(route.path, {**a_ids, "accountId": b_ids["accountId"]}))
    for path in attempts:
        body = idn.sample_body(route.body)
        reply = offline.request(route.method, path, body, token=tenant_b.access)
        assert_error(reply, 404, "not_found")
    assert _snapshot(offline, tenant_a) == before


def test_another_tenants_account_in_a_body_is_404(offline, tenant_a, tenant_b):
    for account_id in (tenant_a.account_id, tenant_a.extra["subAccountId"], "acc_nosuchaccount"):
        reply = offline.post("/accounts/switch", {"accountId": account_id}, token=tenant_b.access)
        assert_error(reply, 404, "not_found")
    # and A's events never show in B's feed
    feed = offline.get(f"/activity?resourceId={tenant_a.user_id}", token=tenant_b.access)
    assert feed.status == 200 and feed.json["data"]["items"] == [], feed


def test_another_tenants_api_key_sees_only_its_own_account(offline, tenant_a, tenant_b):
    key = offline.post("/api-keys", {"name": "B probe"}, token=tenant_b.access).json["data"]["key"]
    assert offline.get("/account", token=key).json["data"]["accountId"] == tenant_b.account_id
    reply = offline.get(f"/accounts/{tenant_a.account_id}/members", token=key)
    assert_error(reply, 404, "not_found")


# ------------------------------------------------------------------ a viewer: 403 above viewer

@pytest.mark.parametrize("route", ABOVE_VIEWER, ids=[r.route_key for r in ABOVE_VIEWER])
def test_a_viewer_is_refused_above_viewer(offline, tenant_a, viewer, route):
    path = _fill(route.path, {**tenant_a.extra, "userId": viewer.user_id}, default="x_unknown")
    reply = offline.request(route.method, path, idn.sample_body(route.body), token=viewer.access)
    assert_error(reply, 403, "forbidden")


@pytest.fixture(scope="module")
def manager(offline, tenant_a):
    m = idn.register(offline, name="Max Manager", verify=True)
    idn.join(offline, tenant_a, tenant_a.account_id, m, role="manager")
    return m


@pytest.mark.parametrize("route", OWNER_ONLY, ids=[r.route_key for r in OWNER_ONLY])
def test_a_manager_is_refused_on_owner_routes(offline, tenant_a, manager, route):
    path = _fill(route.path, tenant_a.extra, default="x_unknown")
    reply = offline.request(route.method, path, idn.sample_body(route.body), token=manager.access)
    assert_error(reply, 403, "forbidden")


def test_a_viewer_changed_nothing(offline, tenant_a, viewer):
    state = _snapshot(offline, tenant_a)
    assert (viewer.user_id, "viewer") in state["members"]
    assert all(role != "owner" for user_id, role in state["members"] if user_id != tenant_a.user_id)
    assert state["account"]["name"] == "Tenant A"
    assert len(state["hierarchy"]) == 2
    assert all(not revoked for _, revoked in state["keys"])


# ------------------------------------------------------------------ a viewer: self-service works

def test_a_viewer_succeeds_on_every_viewer_route(offline, tenant_a, viewer):
    a = tenant_a.extra
    third = idn.register(offline, name="Third Tenant")
    _, code = idn.invite(offline, third, third.account_id, viewer, role="viewer")

    def ok(reply, status=200):
        assert reply.status == status and reply.json["success"] is True, reply
        return reply.json["data"]

    def get(path):
        return ok(offline.get(path, token=viewer.access))

    def password(_):
        data = ok(offline.request("PUT", "/account/password",
                                  {"currentPassword": viewer.password,
                                   "newPassword": "viewer pass phrase 2"}, token=viewer.access))
        viewer.password = "viewer pass phrase 2"
        viewer.take(data)
        assert data["account"]["accountId"] == tenant_a.account_id
        assert data["account"]["role"] == "viewer"

    checks = {
        "GET /auth/profile": lambda r: get("/auth/profile")["userId"] == viewer.user_id,
        "PUT /auth/profile": lambda r: ok(offline.request(
            "PUT", "/auth/profile", {"name": "Vera V.", "preferences": {"theme": "dark"}},
            token=viewer.access))["preferences"] == {"theme": "dark"},
        "GET /account": lambda r: get("/account")["accountId"] == tenant_a.account_id,
        "GET /account/usage": lambda r: get("/account/usage")["accountId"] == tenant_a.account_id,
        "GET /accounts": lambda r: {x["accountId"] for x in get("/accounts")["items"]}
        == {viewer.extra["home"], tenant_a.account_id},
        "GET /accounts/{accountId}/hierarchy": lambda r: len(
            get(f"/accounts/{tenant_a.account_id}/hierarchy")["items"]) == 2,
        "GET /accounts/{accountId}/members": lambda r: viewer.user_id in {
            m["userId"] for m in get(f"/accounts/{tenant_a.account_id}/members")["items"]},
        "POST /accounts/switch": lambda r: ok(offline.post(
            "/accounts/switch", {"accountId": tenant_a.account_id},
            token=viewer.access))["account"]["role"] == "viewer",
        "POST /invitations/accept": lambda r: ok(offline.post(
            "/invitations/accept", {"inviteCode": code},
            token=viewer.access))["accountId"] == third.account_id,
        "GET /activity": lambda r: len(get("/activity")["items"]) > 0,
        "GET /activity/stats": lambda r: get("/activity/stats")["month"]["total"] > 0,
        "GET /activity/{eventId}": lambda r: get(f"/activity/{a['eventId']}")["eventId"] == a["eventId"],
        "PUT /account/password": lambda r: password(r) or True,
        "POST /auth/logout": lambda r: ok(offline.post("/auth/logout", token=viewer.access)) is None,
    }
    declared = {r.route_key for r in VIEWER_ROUTES}
    assert declared == set(checks), ("viewer routes without a self-service check",
                                     sorted(declared - set(checks)), sorted(set(checks) - declared))
    for route_key, check in checks.items():       # logout last: the order above
        assert check(route_key), route_key
    idn.assert_forbidden_by_gateway(offline.get("/account", token=viewer.access))
