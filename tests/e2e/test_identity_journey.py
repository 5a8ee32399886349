"""The identity journey end to end, over HTTP through offline mode, as a client lives it:
register, verify from the e-mail, sign in, rotate and reuse refresh tokens, sign out,
reset a forgotten password, sub-accounts and switching, an invited member's whole life,
API keys, the public plan catalog and the activity feed that recorded all of it."""

from __future__ import annotations

import json
from urllib.parse import quote

from tests.e2e import identity as idn
from tests.e2e.identity import assert_error, assert_forbidden_by_gateway

NEW_PASSWORD = "a brand new pass phrase 7"


def _account_of(offline, token: str) -> dict:
    reply = offline.get("/account", token=token)
    assert reply.status == 200, reply
    return reply.json["data"]


def test_the_identity_journey(offline):
    email = idn.unique_email("journey")

    # --- register: 201 and a token pair, the account on the free plan, not yet verified
    reply = offline.post("/auth/register", {"email": f"  {email.upper()} ", "password": idn.PASSWORD,
                                            "name": "Ada Journey", "company": "Journey Ltd"})
    assert reply.status == 201, reply
    data = reply.json["data"]
    assert data["tokenType"] == "Bearer" and data["expiresIn"] == 900
    assert data["accessToken"] and data["refreshToken"]
    assert data["user"]["email"] == email and data["user"]["emailVerified"] is False
    assert data["account"]["plan"] == "free" and data["account"]["role"] == "owner"
    assert data["account"]["name"] == "Journey Ltd"
    ada = idn.User(email=email, password=idn.PASSWORD, user_id=data["user"]["userId"],
                   account_id=data["account"]["accountId"], access=data["accessToken"],
                   refresh=data["refreshToken"], name="Ada Journey")
    root = ada.account_id
    assert _account_of(offline, ada.access)["accountId"] == root

    # --- the verification e-mail, then verify (the token works once)
    mails = idn.emails(offline, email)
    assert len(mails) == 1 and "confirm" in mails[0]["subject"].lower()
    token = idn.verification_token(offline, email)
    reply = offline.post("/auth/verify", {"token": token})
    assert reply.status == 200 and reply.json["data"] == {"emailVerified": True}, reply
    assert_error(offline.post("/auth/verify", {"token": token}), 400, "invalid_request")
    assert offline.get("/auth/profile", token=ada.access).json["data"]["emailVerified"] is True

    # --- login, refresh (rotation), reuse of the rotated refresh token
    first = idn.login(offline, ada)
    assert first["user"]["emailVerified"] is True and first["account"]["accountId"] == root
    reply = offline.post("/auth/refresh", {"refreshToken": first["refreshToken"]})
    assert reply.status == 200, reply
    second = reply.json["data"]
    assert second["refreshToken"] != first["refreshToken"]
    assert second["accessToken"] != first["accessToken"]
    assert offline.get("/auth/profile", token=second["accessToken"]).status == 200

    reused = offline.post("/auth/refresh", {"refreshToken": first["refreshToken"]})
    assert_error(reused, 401, "unauthorized")
    # Reuse detection ended every session: the current pair is dead too.
    assert_forbidden_by_gateway(offline.get("/auth/profile", token=second["accessToken"]))
    assert_error(offline.post("/auth/refresh", {"refreshToken": second["refreshToken"]}),
                 401, "unauthorized")

    # --- logout revokes the token
    idn.login(offline, ada)
    assert offline.get("/auth/profile", token=ada.access).status == 200
    reply = offline.post("/auth/logout", token=ada.access)
    assert reply.status == 200 and reply.json == {"success": True, "data": None}, reply
    assert_forbidden_by_gateway(offline.get("/auth/profile", token=ada.access))
    assert_error(offline.post("/auth/refresh", {"refreshToken": ada.refresh}), 401, "unauthorized")

    # --- forgot password -> the e-mail -> reset: old sessions end, the new password works
    session = idn.login(offline, ada)
    before = len(idn.emails(offline, email))
    reply = offline.post("/auth/forgot-password", {"email": email})
    assert reply.status == 200 and "message" in reply.json["data"], reply
    reset = idn.reset_token(offline, email, after=before)
    reply = offline.post("/auth/reset-password", {"token": reset, "password": NEW_PASSWORD})
    assert reply.status == 200, reply
    assert_forbidden_by_gateway(offline.get("/account", token=session["accessToken"]))
    assert_error(offline.post("/auth/refresh", {"refreshToken": session["refreshToken"]}),
                 401, "unauthorized")
    assert_error(offline.post("/auth/reset-password", {"token": reset, "password": "yet another phrase 9"}),
                 400, "invalid_request")
    assert_error(offline.post("/auth/login", {"email": email, "password": idn.PASSWORD}),
                 401, "invalid_credentials")
    ada.password = NEW_PASSWORD
    idn.login(offline, ada)
    root_access = ada.access

    # --- a sub-account, switching into it; the free plan allows one
    reply = offline.post(f"/accounts/{root}/sub-accounts", {"name": "Team East"}, token=ada.access)
    assert reply.status == 201, reply
    sub = reply.json["data"]
    assert sub["parentAccountId"] == root and sub["role"] == "owner" and sub["depth"] == 1
    hierarchy = offline.get(f"/accounts/{root}/hierarchy", token=ada.access).json["data"]
    assert [a["accountId"] for a in hierarchy["items"]] == [root, sub["accountId"]]

    switched = idn.switch(offline, ada, sub["accountId"])
    assert switched["account"]["accountId"] == sub["accountId"]
    assert switched["account"]["role"] == "owner" and switched["account"]["plan"] == "free"
    assert _account_of(offline, ada.access)["accountId"] == sub["accountId"]
    accounts = offline.get("/accounts", token=ada.access).json["data"]["items"]
    assert {a["accountId"]: a["current"] for a in accounts} == {root: False, sub["accountId"]: True}

    over = offline.post(f"/accounts/{root}/sub-accounts", {"name": "Team West"}, token=root_access)
    assert_error(over, 402, "plan_limit")
    usage = offline.get("/account/usage", token=root_access).json["data"]
    assert usage["subAccounts"] == {"used": 1, "limit": 1}
    # A token scoped to the sub-account cannot reach above it.
    assert_error(offline.get(f"/accounts/{root}/members", token=ada.access), 404, "not_found")
    idn.switch(offline, ada, root)

    # --- invite a second user, who reads the code from the e-mail and accepts
    bob = idn.register(offline, email=idn.unique_email("bob"), name="Bob Invitee", verify=True)
    invitation, code = idn.invite(offline, ada, root, bob, role="manager")
    assert invitation["status"] == "pending" and invitation["email"] == bob.email
    reply = offline.post("/invitations/accept", {"inviteCode": code}, token=bob.access)
    assert reply.status == 200, reply
    assert reply.json["data"]["accountId"] == root and reply.json["data"]["role"] == "manager"
    idn.switch(offline, bob, root)
    assert _account_of(offline, bob.access)["role"] == "manager"
    members = offline.get(f"/accounts/{root}/members", token=ada.access).json["data"]["items"]
    assert {m["userId"]: m["role"] for m in members} == {ada.user_id: "owner", bob.user_id: "manager"}

    # A manager may rename the account ...
    reply = offline.request("PUT", "/account", {"name": "Renamed by Bob"}, token=bob.access)
    assert reply.status == 200 and reply.json["data"]["name"] == "Renamed by Bob", reply

    # --- demote: the same token is now a viewer's (the authorizer reads the membership)
    reply = offline.request("PUT", f"/accounts/{root}/members/{bob.user_id}", {"role": "viewer"},
                            token=ada.access)
    assert reply.status == 200 and reply.json["data"]["role"] == "viewer", reply
    assert_error(offline.request("PUT", "/account", {"name": "Bob again"}, token=bob.access),
                 403, "forbidden")
    assert_error(offline.post(f"/accounts/{root}/invitations",
                              {"email": idn.unique_email(), "role": "viewer"}, token=bob.access),
                 403, "forbidden")
    assert _account_of(offline, bob.access)["name"] == "Renamed by Bob"

    # --- remove: their token is refused by the authorizer, and refresh cannot bring it back
    reply = offline.request("DELETE", f"/accounts/{root}/members/{bob.user_id}", token=ada.access)
    assert reply.status == 200 and reply.json == {"success": True, "data": None}, reply
    assert_forbidden_by_gateway(offline.get("/account", token=bob.access))
    assert_error(offline.post("/auth/refresh", {"refreshToken": bob.refresh}), 401, "unauthorized")
    # Bob still has his own account.
    idn.login(offline, bob)
    assert bob.account_id != root

    # --- API keys (owner): create, use, list, revoke
    reply = offline.post("/api-keys", {"name": "ci"}, token=ada.access)
    assert reply.status == 201, reply
    created = reply.json["data"]
    key = created["key"]
    assert key.startswith("lbk_") and created["role"] == "owner"
    reply = offline.get("/account", token=key)
    assert reply.status == 200 and reply.json["data"]["accountId"] == root, reply
    listed = offline.get("/api-keys", token=ada.access).json["data"]["items"]
    assert [k["keyId"] for k in listed] == [created["keyId"]]
    assert "key" not in listed[0] and key.startswith(listed[0]["prefix"])
    assert listed[0]["lastUsedAt"] is None or isinstance(listed[0]["lastUsedAt"], str)
    reply = offline.request("DELETE", f"/api-keys/{created['keyId']}", token=ada.access)
    assert reply.status == 200 and reply.json["data"] is None, reply
    assert_forbidden_by_gateway(offline.get("/account", token=key))
    assert offline.get("/api-keys", token=ada.access).json["data"]["items"][0]["revoked"] is True

    # --- the plan catalog is public
    reply = offline.get("/billing/plans")
    assert reply.status == 200, reply
    plans = {p["planId"]: p for p in reply.json["data"]["items"]}
    assert list(plans) == ["free", "starter", "pro", "enterprise"]
    assert plans["free"]["limits"]["subAccounts"] == 1 and plans["free"]["monthlyPrice"] == 0
    assert plans["starter"]["monthlyPrice"] == 29 and plans["enterprise"]["limits"]["sources"] is None

    # --- nothing secret reached the logs of any function (or the gateway)
    secrets = {"password": idn.PASSWORD, "new password": NEW_PASSWORD, "verify token": token,
               "reset token": reset, "invitation code": code, "api key": key,
               "access token": root_access, "refresh token": first["refreshToken"],
               "bob's access token": bob.access}
    logs = offline.log_text()
    leaked = [name for name, value in secrets.items() if value in logs]
    assert leaked == [], leaked

    # --- the activity feed recorded it all, newest first, and the stats count it
    events = _all_events(offline, ada.access)
    types = [e["type"] for e in events]
    expected = {"auth.register", "auth.verify", "auth.login", "auth.refresh.reuse", "auth.logout",
                "auth.password.forgot", "auth.password.reset", "account.subaccount.create",
                "account.switch", "account.invitation.create", "account.invitation.accept",
                "account.update", "account.member.update", "account.member.remove",
                "auth.apikey.create", "auth.apikey.revoke"}
    assert expected <= set(types), sorted(expected - set(types))
    stamps = [e["createdAt"] for e in events]
    assert stamps == sorted(stamps, reverse=True)
    assert all(e["actor"] for e in events)
    feed = json.dumps(events)
    assert not [name for name, value in secrets.items() if value in feed]
    removal = next(e for e in events if e["type"] == "account.member.remove")
    assert removal["actor"] == ada.user_id and removal["resourceId"] == bob.user_id
    assert removal["outcome"] == "success" and removal["details"] == {"role": "viewer"}
    one = offline.get(f"/activity/{removal['eventId']}", token=ada.access)
    assert one.status == 200 and one.json["data"] == removal, one
    filtered = offline.get("/activity?type=auth.apikey.create", token=ada.access).json["data"]
    assert [e["type"] for e in filtered["items"]] == ["auth.apikey.create"]

    stats = offline.get("/activity/stats", token=ada.access)
    assert stats.status == 200, stats
    # (the week, not the day: the journey may straddle midnight UTC)
    week = stats.json["data"]["week"]
    for action in set(types):
        assert week["byType"].get(action) == types.count(action), (action, week["byType"])
    assert week["total"] == len(types)
    assert stats.json["data"]["month"]["total"] == week["total"]
    assert 0 < stats.json["data"]["day"]["total"] <= week["total"]


def _all_events(offline, token: str) -> list[dict]:
    events, cursor = [], None
    while True:
        path = "/activity?limit=100" + (f"&cursor={quote(cursor)}" if cursor else "")
        reply = offline.get(path, token=token)
        assert reply.status == 200, reply
        events += reply.json["data"]["items"]
        cursor = reply.json["data"]["nextCursor"]
        if not cursor:
            return events
