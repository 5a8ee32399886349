"""Invitations on moto: create (e-mailed code), list, revoke, accept and its misuse."""

from __future__ import annotations

import hashlib
import re

import pytest

from handlers.shared import clock
from handlers.shared.clients import table
from tests.handlers.conftest import sent_emails
from tests.handlers.test_account_support import (events, get_row, no_scans, request, seed_account,  # noqa: F401
                                                 seed_member, seed_user, tampered, tenant, walk, who)

pytestmark = pytest.mark.usefixtures("no_scans")

CREATE = "POST /accounts/{accountId}/invitations"
LIST = "GET /accounts/{accountId}/invitations"
REVOKE = "DELETE /accounts/{accountId}/invitations/{inviteId}"
ACCEPT = "POST /invitations/accept"


@pytest.fixture
def host():
    owner, account, as_owner = tenant("owner", name="Host Co")
    manager = seed_user(name="Mo")
    seed_member(manager, account, "manager")
    return dict(owner=owner, account=account, as_owner=as_owner,
                as_manager=who(manager, account, "manager"), manager=manager)


def _invite(h, email="Guest@Example.com ", role="viewer", identity=None) -> tuple[dict, str]:
    status, body = request(CREATE, identity or h["as_owner"], path={"accountId": h["account"]["accountId"]},
                           body={"email": email, "role": role})
    assert status == 201, body
    code = re.search(r"enter this code: (\S+)", sent_emails()[-1]["text"]).group(1)
    return body["data"], code


def _guest(email="guest@example.com", verified=True):
    """The invited person, signed in to their own account."""
    user = seed_user(email, verified=verified)
    home = seed_account("Guest home")
    seed_member(user, home, "owner")
    return user, who(user, home, "owner")


def _row(h, invite):
    return get_row("invitations", accountId=h["account"]["accountId"], inviteId=invite["inviteId"])


# ------------------------------------------------------------------------- create

def test_an_invitation_is_mailed_with_a_code_stored_only_as_its_hash(host):
    h = host
    before = clock.epoch()
    invite, code = _invite(h)
    assert invite["email"] == "guest@example.com" and invite["role"] == "viewer"
    assert invite["status"] == "pending" and invite["inviteId"].startswith("inv_")
    assert invite["invitedBy"] == h["owner"]["userId"]
    assert code not in str(invite) and "codeHash" not in invite

    [mail] = sent_emails()
    assert mail["to"] == "guest@example.com" and "Host Co" in mail["subject"]
    assert f"https://app.test.listbackup.ai/invitations/accept?code={code}" in mail["text"]
    assert len(code) >= 32

    row = _row(h, invite)
    assert row["codeHash"] == hashlib.sha256(code.encode()).hexdigest()
    assert code not in str(row)
    assert before + 7 * 86400 <= row["inviteExpiresAt"] <= clock.epoch() + 7 * 86400
    assert row["expiresAt"] == row["inviteExpiresAt"] + 30 * 86400   # TTL: lingers for listing
    expires = clock.parse_iso(invite["expiresAt"]).timestamp()
    assert abs(expires - int(row["inviteExpiresAt"])) < 1

    [event] = events(h["account"]["accountId"], "account.invitation.create")
    assert event["resourceId"] == invite["inviteId"] and "guest" not in str(event)


def test_a_manager_invites_up_to_manager_but_only_an_owner_invites_an_owner(host):
    h = host
    _invite(h, email="m@example.com", role="manager", identity=h["as_manager"])
    status, body = request(CREATE, h["as_manager"], path={"accountId": h["account"]["accountId"]},
                           body={"email": "o@example.com", "role": "owner"})
    assert status == 403 and body["code"] == "forbidden"
    _invite(h, email="o@example.com", role="owner")
    assert len(sent_emails()) == 2


def test_a_viewer_cannot_invite_or_list(host):
    h = host
    viewer = seed_user()
    seed_member(viewer, h["account"], "viewer")
    as_viewer = who(viewer, h["account"], "viewer")
    path = {"accountId": h["account"]["accountId"]}
    assert request(CREATE, as_viewer, path=path, body={"email": "a@example.com", "role": "viewer"})[0] == 403
    assert request(LIST, as_viewer, path=path)[0] == 403
    assert sent_emails() == []


def test_inviting_an_existing_member_is_409(host):
    h = host
    status, body = request(CREATE, h["as_owner"], path={"accountId": h["account"]["accountId"]},
                           body={"email": h["manager"]["email"].upper(), "role": "viewer"})
    assert status == 409 and body["code"] == "conflict"
    assert sent_emails() == []


@pytest.mark.parametrize("body", [
    {"email": "not-an-address", "role": "viewer"},
    {"email": "a@example.com"},
    {"email": "a@example.com", "role": "admin"},
    {"email": "a@example.com", "role": "viewer", "code": "mine"},
    {"email": "a" * 250 + "@example.com", "role": "viewer"},
])
def test_invitation_input_is_validated(host, body):
    h = host
    status, reply = request(CREATE, h["as_owner"], path={"accountId": h["account"]["accountId"]}, body=body)
    assert status == 400 and reply["code"] == "validation_failed"
    assert sent_emails() == []
    assert request(LIST, h["as_owner"], path={"accountId": h["account"]["accountId"]})[1]["data"]["items"] == []


# ------------------------------------------------------------------------- list, revoke

def test_the_list_shows_each_invitations_status(host):
    h = host
    pending, _ = _invite(h, email="p@example.com")
    expired, _ = _invite(h, email="e@example.com")
    revoked, _ = _invite(h, email="r@example.com")
    accepted, code = _invite(h, email="guest@example.com")
    table("invitations").update_item(Key={"accountId": h["account"]["accountId"], "inviteId": expired["inviteId"]},
                                     UpdateExpression="SET inviteExpiresAt = :past",
                                     ExpressionAttributeValues={":past": clock.epoch() - 1})
    path = {"accountId": h["account"]["accountId"]}
    assert request(REVOKE, h["as_manager"], path={**path, "inviteId": revoked["inviteId"]})[0] == 200
    _, as_guest = _guest()
    assert request(ACCEPT, as_guest, body={"inviteCode": code})[0] == 200

    status, body = request(LIST, h["as_manager"], path=path)
    assert status == 200
    statuses = {i["inviteId"]: i["status"] for i in body["data"]["items"]}
    assert statuses == {pending["inviteId"]: "pending", expired["inviteId"]: "expired",
                        revoked["inviteId"]: "revoked", accepted["inviteId"]: "accepted"}
    paged = walk(LIST, h["as_owner"], path=path, limit=1)
    assert {i["inviteId"] for i in paged} == set(statuses)
    cursor = request(LIST, h["as_owner"], path=path, query={"limit": "1"})[1]["data"]["nextCursor"]
    status, body = request(LIST, h["as_owner"], path=path, query={"cursor": tampered(cursor)})
    assert status == 400 and body["code"] == "invalid_request"


def test_revoking_marks_it_revoked_and_records_it(host):
    h = host
    invite, _ = _invite(h)
    path = {"accountId": h["account"]["accountId"], "inviteId": invite["inviteId"]}
    status, body = request(REVOKE, h["as_manager"], path=path)
    assert status == 200 and body["data"] is None
    assert _row(h, invite)["status"] == "revoked"
    assert events(h["account"]["accountId"], "account.invitation.revoke")
    assert request(REVOKE, h["as_manager"], path=path)[0] == 200   # already revoked: no change
    assert len(events(h["account"]["accountId"], "account.invitation.revoke")) == 1


def test_revoking_unknown_or_accepted_invitations_fails(host):
    h = host
    status, body = request(REVOKE, h["as_owner"],
                           path={"accountId": h["account"]["accountId"], "inviteId": "inv_nope"})
    assert status == 404 and body["code"] == "not_found"
    invite, code = _invite(h)
    _, as_guest = _guest()
    request(ACCEPT, as_guest, body={"inviteCode": code})
    status, body = request(REVOKE, h["as_owner"],
                           path={"accountId": h["account"]["accountId"], "inviteId": invite["inviteId"]})
    assert status == 409 and _row(h, invite)["status"] == "accepted"


def test_invitation_routes_of_another_tenant_are_404(host):
    h = host
    invite, _ = _invite(h)
    _, _, outsider = tenant("owner")
    path = {"accountId": h["account"]["accountId"]}
    assert request(LIST, outsider, path=path)[0] == 404
    assert request(CREATE, outsider, path=path, body={"email": "x@example.com", "role": "viewer"})[0] == 404
    assert request(REVOKE, outsider, path={**path, "inviteId": invite["inviteId"]})[0] == 404
    # nor can another account's id be combined with this invitation id
    _, other_account, other = tenant("owner")
    status, _ = request(REVOKE, other, path={"accountId": other_account["accountId"],
                                             "inviteId": invite["inviteId"]})
    assert status == 404
    assert _row(h, invite)["status"] == "pending"


# ------------------------------------------------------------------------- accept

def test_accepting_creates_the_membership_once(host):
    h = host
    invite, code = _invite(h, role="manager")
    guest, as_guest = _guest()
    status, body = request(ACCEPT, as_guest, body={"inviteCode": code})
    assert status == 200, body
    assert body["data"]["accountId"] == h["account"]["accountId"] and body["data"]["role"] == "manager"
    assert body["data"]["name"] == "Host Co"
    assert get_row("users-accounts", userId=guest["userId"], accountId=h["account"]["accountId"])["role"] == "manager"
    row = _row(h, invite)
    assert row["status"] == "accepted" and row["acceptedBy"] == guest["userId"]
    [event] = events(h["account"]["accountId"], "account.invitation.accept")
    assert event["actor"] == guest["userId"] and event["resourceId"] == invite["inviteId"]
    # the new member sees the account and may switch into it
    accounts = request("GET /accounts", as_guest)[1]["data"]["items"]
    assert h["account"]["accountId"] in {a["accountId"] for a in accounts}
    assert request("POST /accounts/switch", as_guest, body={"accountId": h["account"]["accountId"]})[0] == 200

    status, body = request(ACCEPT, as_guest, body={"inviteCode": code})
    assert status == 409 and body["code"] == "conflict" and "used" in body["error"]


def test_a_used_code_cannot_be_reused_by_someone_else(host):
    h = host
    _, code = _invite(h)
    _, as_guest = _guest()
    assert request(ACCEPT, as_guest, body={"inviteCode": code})[0] == 200
    # even a second user with the same address (say, a duplicate) cannot use it again
    other = seed_user("other@example.com")
    home = seed_account("Other")
    seed_member(other, home, "owner")
    status, _ = request(ACCEPT, who(other, home, "owner"), body={"inviteCode": code})
    assert status == 409
    assert get_row("users-accounts", userId=other["userId"], accountId=h["account"]["accountId"]) is None


def test_the_wrong_email_is_403(host):
    h = host
    invite, code = _invite(h)
    intruder, as_intruder = _guest("intruder@example.com")
    status, body = request(ACCEPT, as_intruder, body={"inviteCode": code})
    assert status == 403 and body["code"] == "forbidden" and "different e-mail" in body["error"]
    assert get_row("users-accounts", userId=intruder["userId"], accountId=h["account"]["accountId"]) is None
    assert _row(h, invite)["status"] == "pending"


def test_an_unverified_email_is_403(host):
    h = host
    invite, code = _invite(h)
    guest, as_guest = _guest(verified=False)
    status, body = request(ACCEPT, as_guest, body={"inviteCode": code})
    assert status == 403 and "Verify" in body["error"]
    assert get_row("users-accounts", userId=guest["userId"], accountId=h["account"]["accountId"]) is None
    assert _row(h, invite)["status"] == "pending"


def test_an_expired_invitation_cannot_be_accepted(host):
    h = host
    invite, code = _invite(h)
    table("invitations").update_item(Key={"accountId": h["account"]["accountId"], "inviteId": invite["inviteId"]},
                                     UpdateExpression="SET inviteExpiresAt = :past",
                                     ExpressionAttributeValues={":past": clock.epoch() - 5})
    guest, as_guest = _guest()
    status, body = request(ACCEPT, as_guest, body={"inviteCode": code})
    assert status == 409 and "expired" in body["error"]
    assert get_row("users-accounts", userId=guest["userId"], accountId=h["account"]["accountId"]) is None


def test_a_revoked_invitation_cannot_be_accepted(host):
    h = host
    invite, code = _invite(h)
    request(REVOKE, h["as_owner"], path={"accountId": h["account"]["accountId"], "inviteId": invite["inviteId"]})
    guest, as_guest = _guest()
    status, body = request(ACCEPT, as_guest, body={"inviteCode": code})
    assert status == 409 and "revoked" in body["error"]
    assert get_row("users-accounts", userId=guest["userId"], accountId=h["account"]["accountId"]) is None


def test_unknown_codes_and_bad_bodies_fail(host):
    _, as_guest = _guest()
    status, body = request(ACCEPT, as_guest, body={"inviteCode": "made-up-code"})
    assert status == 404 and body["code"] == "not_found"
    for bad in ({}, {"inviteCode": ""}, {"inviteCode": 5}, {"inviteCode": "x" * 200}):
        status, body = request(ACCEPT, as_guest, body=bad)
        assert status == 400 and body["code"] == "validation_failed"


def test_an_existing_member_cannot_accept_again(host):
    h = host
    guest, as_guest = _guest()
    _, code = _invite(h)
    seed_member(guest, h["account"], "viewer")   # became a member some other way meanwhile
    status, body = request(ACCEPT, as_guest, body={"inviteCode": code})
    assert status == 409 and "already a member" in body["error"]
    assert get_row("users-accounts", userId=guest["userId"], accountId=h["account"]["accountId"])["role"] == "viewer"
