"""Attacks on sign-in and on invitations, through offline mode.

- Brute force: after 5 wrong passwords for an address, login answers 429 with Retry-After
  for the rest of the 15-minute window, even with the right password; an unknown address
  behaves exactly like a known one; the lock is per address.
- Invitation misuse: a code accepted by the wrong address (403), by an unverified user
  (403), a second time (409), after it expired (4xx), after it was revoked (4xx) all fail
  and leave no membership behind.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e import identity as idn
from tests.e2e.identity import assert_error

WINDOW = 15 * 60


def _login(offline, email: str, password: str):
    return offline.post("/auth/login", {"email": email, "password": password})


def _assert_locked(reply) -> int:
    assert_error(reply, 429, "rate_limited")
    wait = int(reply.headers["retry-after"])
    assert 0 < wait <= WINDOW, wait
    return wait


# ------------------------------------------------------------------ brute force

def test_five_wrong_passwords_lock_the_address(offline):
    user = idn.register(offline, verify=True)
    wrong = []
    for attempt in range(5):
        reply = _login(offline, user.email, f"wrong guess number {attempt}")
        wrong.append(assert_error(reply, 401, "invalid_credentials"))
    _assert_locked(_login(offline, user.email, user.password))          # the right password
    _assert_locked(_login(offline, f"  {user.email.upper()} ", user.password))  # same address
    _assert_locked(_login(offline, user.email, "yet another guess"))
    # Existing sessions are not affected by the lock.
    assert offline.get("/auth/profile", token=user.access).status == 200
    # The failures are in the account's activity, the lock too.
    events = offline.get("/activity?type=auth.login", token=user.access).json["data"]["items"]
    reasons = [e["details"].get("reason") for e in events if e["outcome"] == "failure"]
    assert reasons.count("wrong_password") == 5 and "locked" in reasons, reasons
    assert all(e["outcome"] == "failure" for e in events)    # no successful login got in
    assert "wrong guess" not in json.dumps(events) and user.password not in json.dumps(events)
    assert "wrong guess" not in offline.log_text()


def test_an_unknown_address_looks_the_same_and_locks_too(offline):
    known = idn.register(offline)
    unknown = idn.unique_email("nobody")
    a = _login(offline, known.email, "definitely wrong 1")
    b = _login(offline, unknown, "definitely wrong 1")
    assert_error(a, 401, "invalid_credentials")
    assert_error(b, 401, "invalid_credentials")
    assert a.json == b.json            # same message, same code: no account enumeration
    for attempt in range(4):
        assert_error(_login(offline, unknown, f"guess {attempt}"), 401, "invalid_credentials")
    _assert_locked(_login(offline, unknown, "guess 5"))


def test_the_lock_is_per_address(offline):
    victim, bystander = idn.register(offline), idn.register(offline)
    for attempt in range(5):
        _login(offline, victim.email, f"wrong {attempt}")
    _assert_locked(_login(offline, victim.email, victim.password))
    assert _login(offline, bystander.email, bystander.password).status == 200


def test_fewer_than_five_failures_then_success_resets_the_count(offline):
    user = idn.register(offline)
    for attempt in range(4):
        assert_error(_login(offline, user.email, f"wrong {attempt}"), 401, "invalid_credentials")
    assert _login(offline, user.email, user.password).status == 200
    for attempt in range(4):
        assert_error(_login(offline, user.email, f"again {attempt}"), 401, "invalid_credentials")
    assert _login(offline, user.email, user.password).status == 200


def test_the_lock_also_guards_the_password_change(offline):
    user = idn.register(offline)
    for attempt in range(5):
        reply = offline.request("PUT", "/account/password",
                                {"currentPassword": f"wrong {attempt}",
                                 "newPassword": "a new pass phrase 11"}, token=user.access)
        assert_error(reply, 401, "invalid_credentials")
    reply = offline.request("PUT", "/account/password",
                            {"currentPassword": user.password,
                             "newPassword": "a new pass phrase 11"}, token=user.access)
    _assert_locked(reply)
    _assert_locked(_login(offline, user.email, user.password))
    assert offline.get("/auth/profile", token=user.access).status == 200   # unchanged session


def test_a_password_reset_lifts_the_lock(offline):
    user = idn.register(offline)
    for attempt in range(5):
        _login(offline, user.email, f"wrong {attempt}")
    _assert_locked(_login(offline, user.email, user.password))
    before = len(idn.emails(offline, user.email))
    assert offline.post("/auth/forgot-password", {"email": user.email}).status == 200
    token = idn.reset_token(offline, user.email, after=before)
    reply = offline.post("/auth/reset-password", {"token": token, "password": "after the lock 77"})
    assert reply.status == 200, reply
    assert _login(offline, user.email, "after the lock 77").status == 200


def test_forgot_password_does_not_reveal_addresses(offline):
    known = idn.register(offline)
    unknown = idn.unique_email("ghost")
    a = offline.post("/auth/forgot-password", {"email": known.email})
    b = offline.post("/auth/forgot-password", {"email": unknown})
    assert a.status == b.status == 200 and a.json == b.json
    assert idn.emails(offline, unknown) == []


# ------------------------------------------------------------------ invitation misuse

@pytest.fixture
def inviter(offline):
    return idn.register(offline, name="Inviter", company="Inviting Co", verify=True)


def _members(offline, owner: idn.User) -> set[str]:
    reply = offline.get(f"/accounts/{owner.account_id}/members", token=owner.access)
    return {m["userId"] for m in reply.json["data"]["items"]}


def _status(offline, owner: idn.User, invite_id: str) -> str:
    items = offline.get(f"/accounts/{owner.account_id}/invitations",
                        token=owner.access).json["data"]["items"]
    return next(i["status"] for i in items if i["inviteId"] == invite_id)


def test_an_invitation_for_another_address_is_403(offline, inviter):
    invited = idn.register(offline, verify=True)
    intruder = idn.register(offline, verify=True)
    invitation, code = idn.invite(offline, inviter, inviter.account_id, invited, role="manager")
    reply = offline.post("/invitations/accept", {"inviteCode": code}, token=intruder.access)
    assert_error(reply, 403, "forbidden")
    assert intruder.user_id not in _members(offline, inviter)
    assert _status(offline, inviter, invitation["inviteId"]) == "pending"
    assert_error(offline.post("/accounts/switch", {"accountId": inviter.account_id},
                              token=intruder.access), 404, "not_found")
    # the invited address can still use it
    assert offline.post("/invitations/accept", {"inviteCode": code}, token=invited.access).status == 200


def test_an_unverified_address_cannot_accept(offline, inviter):
    invited = idn.register(offline)           # not verified
    invitation, code = idn.invite(offline, inviter, inviter.account_id, invited)
    assert_error(offline.post("/invitations/accept", {"inviteCode": code}, token=invited.access),
                 403, "forbidden")
    assert invited.user_id not in _members(offline, inviter)
    token = idn.verification_token(offline, invited.email)
    assert offline.post("/auth/verify", {"token": token}).status == 200
    assert offline.post("/invitations/accept", {"inviteCode": code}, token=invited.access).status == 200
    assert invited.user_id in _members(offline, inviter)


def test_a_used_invitation_is_409(offline, inviter):
    invited = idn.register(offline, verify=True)
    invitation, code = idn.invite(offline, inviter, inviter.account_id, invited, role="viewer")
    assert offline.post("/invitations/accept", {"inviteCode": code}, token=invited.access).status == 200
    assert_error(offline.post("/invitations/accept", {"inviteCode": code}, token=invited.access),
                 409, "conflict")
    other = idn.register(offline, verify=True)
    assert_error(offline.post("/invitations/accept", {"inviteCode": code}, token=other.access),
                 409, "conflict")
    assert other.user_id not in _members(offline, inviter)
    assert _status(offline, inviter, invitation["inviteId"]) == "accepted"
    # an accepted invitation cannot be revoked (remove the member instead)
    reply = offline.request("DELETE", f"/accounts/{inviter.account_id}/invitations/"
                            f"{invitation['inviteId']}", token=inviter.access)
    assert_error(reply, 409, "conflict")
    # and a member cannot be invited again
    reply = offline.post(f"/accounts/{inviter.account_id}/invitations",
                         {"email": invited.email, "role": "viewer"}, token=inviter.access)
    assert_error(reply, 409, "conflict")


def test_an_expired_invitation_fails(offline, inviter):
    invited = idn.register(offline, verify=True)
    invitation, code = idn.invite(offline, inviter, inviter.account_id, invited)
    idn.set_attribute(offline, "invitations",
                      {"accountId": inviter.account_id, "inviteId": invitation["inviteId"]},
                      "inviteExpiresAt", {"N": str(int(time.time()) - 60)})
    reply = offline.post("/invitations/accept", {"inviteCode": code}, token=invited.access)
    error = assert_error(reply, reply.status)
    assert 400 <= reply.status < 500 and error["code"] in ("conflict", "invalid_request", "not_found"), reply
    assert invited.user_id not in _members(offline, inviter)
    assert _status(offline, inviter, invitation["inviteId"]) == "expired"


def test_a_revoked_invitation_fails(offline, inviter):
    invited = idn.register(offline, verify=True)
    invitation, code = idn.invite(offline, inviter, inviter.account_id, invited)
    path = f"/accounts/{inviter.account_id}/invitations/{invitation['inviteId']}"
    reply = offline.request("DELETE", path, token=inviter.access)
    assert reply.status == 200 and reply.json["data"] is None, reply
    reply = offline.post("/invitations/accept", {"inviteCode": code}, token=invited.access)
    assert 400 <= reply.status < 500, reply
    assert_error(reply, reply.status)
    assert invited.user_id not in _members(offline, inviter)
    assert _status(offline, inviter, invitation["inviteId"]) == "revoked"
    assert offline.request("DELETE", path, token=inviter.access).status == 200   # idempotent
    assert _status(offline, inviter, invitation["inviteId"]) == "revoked"


def test_a_new_invitation_works_after_misuse(offline, inviter):
    """The misuse above leaves the address free to be invited again."""
    invited = idn.register(offline, verify=True)
    first, code = idn.invite(offline, inviter, inviter.account_id, invited)
    offline.request("DELETE", f"/accounts/{inviter.account_id}/invitations/{first['inviteId']}",
                    token=inviter.access)
    second, new_code = idn.invite(offline, inviter, inviter.account_id, invited)
    assert new_code != code
    assert offline.post("/invitations/accept", {"inviteCode": code}, token=invited.access).status >= 400
    assert offline.post("/invitations/accept", {"inviteCode": new_code},
                        token=invited.access).status == 200


def test_invitations_cannot_raise_a_role(offline, inviter):
    manager = idn.register(offline, verify=True)
    idn.join(offline, inviter, inviter.account_id, manager, role="manager")
    target = idn.unique_email("target")
    reply = offline.post(f"/accounts/{inviter.account_id}/invitations",
                         {"email": target, "role": "owner"}, token=manager.access)
    assert_error(reply, 403, "forbidden")
    assert idn.emails(offline, target) == []
    # nor can a manager promote anyone (themselves included) to owner
    reply = offline.request("PUT", f"/accounts/{inviter.account_id}/members/{manager.user_id}",
                            {"role": "owner"}, token=manager.access)
    assert_error(reply, 403, "forbidden")
    reply = offline.request("DELETE", f"/accounts/{inviter.account_id}/members/{inviter.user_id}",
                            token=manager.access)
    assert_error(reply, 403, "forbidden")
    # the last owner cannot demote or remove themselves
    reply = offline.request("PUT", f"/accounts/{inviter.account_id}/members/{inviter.user_id}",
                            {"role": "manager"}, token=inviter.access)
    assert_error(reply, 409, "conflict")
    reply = offline.request("DELETE", f"/accounts/{inviter.account_id}/members/{inviter.user_id}",
                            token=inviter.access)
    assert_error(reply, 409, "conflict")
    assert offline.get("/account", token=inviter.access).json["data"]["role"] == "owner"
