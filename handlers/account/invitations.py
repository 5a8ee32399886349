"""Invitations: create (the code is e-mailed), list, revoke, accept.

The code is shown only in the e-mail; the row keeps its sha256 (``codeHash``, the
code-index key). An invitation is valid for 7 days (``inviteExpiresAt``, epoch seconds)
and is used once: accepting changes its status from pending to accepted in the same
transaction that creates the membership. The table's TTL attribute ``expiresAt`` is set
30 days past the invitation's expiry, so expired, accepted and revoked invitations stay
listable for a while and then disappear on their own.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import secrets
from datetime import datetime, timezone
from urllib.parse import quote

from boto3.dynamodb.conditions import Key

from handlers.account.store import (AccountCache, as_int, path_account, path_account_with, query_page,
                                    table_name, transact)
from handlers.shared import activity, clock, cursors, mail
from handlers.shared.accounts import valid_id
from handlers.shared.dynamo import get_many
from handlers.shared.clients import table
from handlers.shared.http import ApiError, Request
from handlers.shared.ids import new_id
from handlers.shared.routing import ROLES

VALID_DAYS = 7
MAX_MEMBER_CHECKS = 10     # users the e-mail index may hold for one address (normally one)
LINGER_DAYS = 30
PENDING, ACCEPTED, REVOKED, EXPIRED = "pending", "accepted", "revoked", "expired"
# The rule registration applies (handlers.auth.api): no whitespace or control characters.
_ADDRESS = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s.\x00-\x1f\x7f]+(\.[^@\s.\x00-\x1f\x7f]+)+")


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


def normalise_email(email: str) -> str:
    return email.strip().lower()


def status_of(row: dict, now: int | None = None) -> str:
    status = row.get("status", PENDING)
    if status == PENDING and as_int(row.get("inviteExpiresAt")) <= (now or clock.epoch()):
        return EXPIRED
    return status


def _iso_epoch(seconds) -> str | None:
    if seconds is None:
        return None
    return clock.iso(datetime.fromtimestamp(as_int(seconds), timezone.utc))


def invitation_view(row: dict) -> dict:
    return {"inviteId": row["inviteId"], "accountId": row["accountId"], "email": row.get("email"),
            "role": row.get("role"), "status": status_of(row), "invitedBy": row.get("invitedBy"),
            "createdAt": row.get("createdAt"), "expiresAt": _iso_epoch(row.get("inviteExpiresAt")),
            "acceptedAt": row.get("acceptedAt"), "revokedAt": row.get("revokedAt")}


# --------------------------------------------------------------------------- create

def create_invitation(request: Request) -> dict:
    email = normalise_email(request.body["email"])
    if not _ADDRESS.fullmatch(email) or ".." in email:
        # The schema's "email" format admits spaces and line breaks, which no registered
        # user's address has and which cannot go into the mail's To header.
        raise ApiError("validation_failed", "Invalid email: not an e-mail address",
                       fields=["email"])
    role = request.body["role"]
    # the account, the caller's (scope) and the inviter's name for the mail: one read
    inviter_key = [("users", {"userId": request.user_id})] if valid_id(request.user_id) else []
    account, found, _ = path_account_with(request, *inviter_key)
    inviter = found[0] if found else None
    if ROLES.index(role) > ROLES.index(request.role or ROLES[0]):
        raise ApiError("forbidden", "You cannot invite someone with a role above your own"
                       if role != "owner" else "Only an owner can invite an owner")
    users = table("users").query(IndexName="email-index",
                                 KeyConditionExpression=Key("email").eq(email)).get("Items", [])

    code = secrets.token_urlsafe(24)
    expires = clock.epoch() + VALID_DAYS * 86400
    row = {"accountId": account["accountId"], "inviteId": new_id("inv"), "email": email,
           "role": role, "status": PENDING, "codeHash": code_hash(code),
           "invitedBy": request.user_id, "createdAt": clock.iso(), "inviteExpiresAt": expires,
           "expiresAt": expires + LINGER_DAYS * 86400}
    event = activity.request_items(request, "account.invitation.create", "invitation",
                                   row["inviteId"], account_id=account["accountId"],
                                   details={"role": role})
    # The address must not belong to a member already: checked in the transaction that
    # stores the invitation (and its audit event).
    not_members = [{"ConditionCheck": {
        "TableName": table_name("users-accounts"),
        "Key": {"userId": user["userId"], "accountId": account["accountId"]},
        "ConditionExpression": "attribute_not_exists(userId)"}}
        for user in users[:MAX_MEMBER_CHECKS] if valid_id(user.get("userId"))]
    reasons = transact([
        {"Put": {"TableName": table_name("invitations"), "Item": row,
                 "ConditionExpression": "attribute_not_exists(inviteId)"}},
        *not_members, *event.items])
    if reasons is not None:
        if "ConditionalCheckFailed" in reasons[1:1 + len(not_members)]:
            raise ApiError("conflict", "That address already belongs to a member of this account",
                           fields=["email"])
        raise ApiError("conflict", "The account changed meanwhile; try again")
    try:
        _send(email, code, account, role, inviter)
    except Exception:
        # A code nobody received must not stay valid; the feed says why it went.
        withdrawn = activity.request_items(request, "account.invitation.revoke", "invitation",
                                           row["inviteId"], account_id=account["accountId"],
                                           outcome="failure", details={"reason": "mail_not_sent"})
        transact([{"Delete": {"TableName": table_name("invitations"),
                              "Key": {"accountId": row["accountId"], "inviteId": row["inviteId"]}}},
                  *withdrawn.items])
        raise
    return invitation_view(row)


def _send(email: str, code: str, account: dict, role: str, inviter: dict | None) -> None:
    who = (inviter or {}).get("name") or (inviter or {}).get("email") or "A ListBackup user"
    link = f"{os.environ.get('APP_URL', '').rstrip('/')}/invitations/accept?code={quote(code)}"
    text = (f"{who} invited you to join the ListBackup account \"{account.get('name', '')}\" "
            f"as {role}.\n\n"
            f"Accept the invitation: {link}\n\n"
            f"Or sign in and enter this code: {code}\n\n"
            f"The invitation is for {email} only and expires in {VALID_DAYS} days. "
            "If you did not expect it, ignore this e-mail.")
    name = html.escape(str(account.get("name", "")))
    html_body = (
        "<!doctype html><html><body style=\"font-family:sans-serif\">"
        f"<p>{html.escape(who)} invited you to join the ListBackup account <b>{name}</b> as "
        f"{html.escape(role)}.</p>"
        f"<p><a href=\"{html.escape(link)}\">Accept the invitation</a></p>"
        f"<p>Or sign in and enter this code: <code>{html.escape(code)}</code></p>"
        f"<p>The invitation is for {html.escape(email)} only and expires in {VALID_DAYS} days. "
        "If you did not expect it, ignore this e-mail.</p></body></html>")
    title = " ".join(str(account.get("name") or "a ListBackup account").split())  # one header line
    mail.send(email, f"You are invited to {title}", text,
              html_body=html_body)


# --------------------------------------------------------------------------- list, revoke

def list_invitations(request: Request) -> dict:
    account = path_account(request)
    scope = f"{request.account_id}:invitations:{account['accountId']}"
    rows, last = query_page("invitations", request, scope,
                            KeyConditionExpression=Key("accountId").eq(account["accountId"]))
    return cursors.page([invitation_view(r) for r in rows], last, scope)


def revoke_invitation(request: Request) -> None:
    invite_id = request.path.get("inviteId")
    if not valid_id(invite_id):
        path_account(request)
        raise ApiError("not_found", "No such invitation")
    # the account (and scope) and the invitation, in one read
    account, (row,), _ = path_account_with(
        request, ("invitations", {"accountId": request.path.get("accountId"), "inviteId": invite_id}))
    key = {"accountId": account["accountId"], "inviteId": invite_id}
    if row is None:
        raise ApiError("not_found", "No such invitation")
    status = row.get("status", PENDING)
    if status == REVOKED:
        return None
    if status == ACCEPTED:
        raise ApiError("conflict", "This invitation has already been accepted; remove the "
                                   "member instead")
    event = activity.request_items(request, "account.invitation.revoke", "invitation",
                                   key["inviteId"], account_id=account["accountId"])
    reasons = transact([{"Update": {
        "TableName": table_name("invitations"), "Key": key,
        "UpdateExpression": "SET #status = :revoked, revokedAt = :now, revokedBy = :by",
        "ConditionExpression": "#status = :pending",
        "ExpressionAttributeNames": {"#status": "status"},
        "ExpressionAttributeValues": {":revoked": REVOKED, ":pending": PENDING,
                                      ":now": clock.iso(), ":by": request.user_id}}},
        *event.items])
    if reasons is not None:
        raise ApiError("conflict", "This invitation changed meanwhile; reload and try again")
    return None


# --------------------------------------------------------------------------- accept

def accept_invitation(request: Request) -> dict:
    hashed = code_hash(request.body["inviteCode"])
    rows = table("invitations").query(IndexName="code-index",
                                      KeyConditionExpression=Key("codeHash").eq(hashed)).get("Items", [])
    if not rows:
        raise ApiError("not_found", "No such invitation: check the code")
    row = rows[0]
    now = clock.epoch()
    status = status_of(row, now)
    if status == ACCEPTED:
        raise ApiError("conflict", "This invitation has already been used")
    if status == REVOKED:
        raise ApiError("conflict", "This invitation has been revoked")
    if status == EXPIRED:
        raise ApiError("conflict", "This invitation has expired; ask for a new one")

    # the caller, the invitation's account and any membership there, in one read
    user, account, member = get_many(
        ("users", {"userId": request.user_id}), ("accounts", {"accountId": row["accountId"]}),
        ("users-accounts", {"userId": request.user_id, "accountId": row["accountId"]}),
        consistent=False) if valid_id(request.user_id) and valid_id(row.get("accountId")) \
        else (None, None, None)
    if user is None:
        raise ApiError("forbidden", "Sign in as the invited user to accept this invitation")
    if not user.get("emailVerified"):
        raise ApiError("forbidden", "Verify your e-mail address before accepting an invitation")
    if normalise_email(str(user.get("email", ""))) != row.get("email"):
        raise ApiError("forbidden", "This invitation was sent to a different e-mail address")
    if account is None:
        raise ApiError("not_found", "The account of this invitation no longer exists")
    if member is not None:
        raise ApiError("conflict", "You are already a member of this account")

    moment = clock.iso()
    event = activity.request_items(request, "account.invitation.accept", "invitation",
                                   row["inviteId"], account_id=account["accountId"],
                                   details={"role": row["role"]})
    reasons = transact([
        {"Update": {
            "TableName": table_name("invitations"),
            "Key": {"accountId": row["accountId"], "inviteId": row["inviteId"]},
            "UpdateExpression": "SET #status = :accepted, acceptedAt = :now, acceptedBy = :user",
            "ConditionExpression": "#status = :pending AND inviteExpiresAt > :epoch",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":accepted": ACCEPTED, ":pending": PENDING, ":now": moment,
                                          ":user": user["userId"], ":epoch": now}}},
        {"Put": {
            "TableName": table_name("users-accounts"),
            "Item": {"userId": user["userId"], "accountId": account["accountId"],
                     "role": row["role"], "createdAt": moment},
            "ConditionExpression": "attribute_not_exists(userId)"}},
        *event.items,
    ])
    if reasons is not None:
        if reasons[0] == "ConditionalCheckFailed":
            raise ApiError("conflict", "This invitation has already been used")
        raise ApiError("conflict", "You are already a member of this account"
                       if reasons[1] == "ConditionalCheckFailed" else "Please try again")
    return AccountCache([account]).view(account, row["role"])
