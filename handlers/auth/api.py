"""Entry point of ``listbackup-auth-{stage}-api``: the auth service's operations.

Every operation validates all of its input before it writes anything; writes that must
agree go in one transaction or carry a condition. Passwords, tokens, codes and keys are
never logged or returned (API keys: once, when created); e-mail addresses are not logged.
"""

from __future__ import annotations

import hashlib
import json
import os
import re

from botocore.exceptions import ClientError

from handlers.auth import keys, lockout, onetime, store
from handlers.auth.routes import ROUTES
from handlers.shared import activity, clock, mail, passwords, sessions, tokens
from handlers.shared.accounts import get_account, membership
from handlers.shared.clients import table
from handlers.shared.http import ApiError, Request, api_handler
from handlers.shared.ids import new_id
from handlers.shared.log import get_logger
from handlers.shared.routing import ROLES

logger = get_logger("auth")

MAX_EMAIL_CHARS = 254
# No whitespace, no control characters (the address goes into a mail header).
_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s.\x00-\x1f\x7f]+(\.[^@\s.\x00-\x1f\x7f]+)+")
MAX_PREFERENCES_BYTES = 4096
MAX_PREFERENCES_DEPTH = 8
MAX_MEMBERSHIP_PAGES = 10
FORGOT_MESSAGE = ("If an account uses that address, we have sent it a link to reset the "
                  "password. The link works once, for one hour.")


# ------------------------------------------------------------------ helpers

def _email(raw: str) -> str:
    """Trimmed and lowercased; 400 naming ``email`` when it is not an address."""
    email = raw.strip().lower()
    if len(email) > MAX_EMAIL_CHARS or not _EMAIL.fullmatch(email) or ".." in email:
        raise ApiError("validation_failed", "Invalid email: not an e-mail address",
                       fields=["email"])
    return email


def _text(raw: str, field: str) -> str:
    value = raw.strip()
    if not value:
        raise ApiError("validation_failed", f"Invalid {field}: must not be blank", fields=[field])
    return value


def _policy(password: str, email: str, field: str) -> None:
    problem = passwords.policy_problem(password, email)
    if problem:
        raise ApiError("validation_failed", f"Invalid {field}: {problem}", fields=[field])


def _user(user_id: str | None) -> dict | None:
    if not user_id:
        return None
    return table("users").get_item(Key={"userId": user_id}, ConsistentRead=True).get("Item")


def _user_by_email(email: str) -> dict | None:
    reply = table("users").query(IndexName="email-index", KeyConditionExpression="email = :e",
                                 ExpressionAttributeValues={":e": email})
    items = reply.get("Items", [])
    return _user(items[0]["userId"]) if items else None


def _active(user: dict | None) -> bool:
    return user is not None and user.get("status", "active") == "active"


def _current_user(request: Request) -> dict:
    user = _user(request.user_id)
    if user is None:
        raise ApiError("not_found", "No such user")
    return user


def _home(user: dict) -> tuple[dict, str] | None:
    """The account a login is scoped to, with the user's role there: the last one used if
    the user is still a member, else their first membership."""
    user_id = user["userId"]
    last = user.get("lastAccountId")
    if isinstance(last, str) and last:
        row = membership(user_id, last)
        if row is not None and row.get("role") in ROLES:
            account = get_account(last)
            if account is not None:
                return account, row["role"]
    query = {"KeyConditionExpression": "userId = :u", "ExpressionAttributeValues": {":u": user_id}}
    for _ in range(MAX_MEMBERSHIP_PAGES):
        reply = table("users-accounts").query(**query)
        for row in reply.get("Items", []):
            if row.get("role") in ROLES:
                account = get_account(row["accountId"])
                if account is not None:
                    return account, row["role"]
        if not reply.get("LastEvaluatedKey"):
            break
        query["ExclusiveStartKey"] = reply["LastEvaluatedKey"]
    return None


def _home_account_id(user: dict) -> str | None:
    home = _home(user)
    return home[0]["accountId"] if home else None


def _record_for_user(request: Request, user: dict, action: str, *, outcome: str = "success",
                     actor: str | None = None, details: dict | None = None) -> None:
    """An activity event in the user's home account (public routes have no account)."""
    account_id = _home_account_id(user)
    if account_id is None:
        logger.info("no account to record activity in", extra={"action": action,
                                                               "userId": user["userId"]})
        return
    activity.record_request(request, action, "user", user["userId"], account_id=account_id,
                            actor=actor, outcome=outcome, details=details)


def _password_mark(user: dict) -> str:
    """A fingerprint of the current password hash: a reset link dies once the password
    changes (by that link, another one, or the password route)."""
    return hashlib.sha256(str(user.get("passwordHash", "")).encode()).hexdigest()[:16]


def _link(path: str, token: str) -> str:
    return f"{os.environ.get('APP_URL', '').rstrip('/')}{path}?token={token}"


def _mail(kind: str, to: str, subject: str, text: str) -> None:
    """Send, but a mail fault does not undo what the request already did (nor, for
    forgot-password, reveal that the address exists)."""
    try:
        mail.send(to, subject, text)
    except Exception as exc:
        logger.error("e-mail not sent", extra={"kind": kind, "error_type": type(exc).__name__})


def _send_verification(user: dict) -> None:
    token = onetime.issue(onetime.VERIFY, user)
    _mail("verify", user["email"], "Confirm your e-mail address for ListBackup", (
        f"Hello {user.get('name', '')},\n\n"
        "Please confirm your e-mail address by opening this link:\n"
        f"{_link('/verify', token)}\n\n"
        f"Or enter this code in the app: {token}\n\n"
        "The link works once, for 24 hours. If you did not sign up for ListBackup, you can "
        "ignore this message."))


def _invalid_link() -> ApiError:
    return ApiError("invalid_request", "This link is not valid, was already used or has expired",
                    fields=["token"])


def profile_view(user: dict) -> dict:
    return {"userId": user["userId"], "email": user["email"], "name": user.get("name", ""),
            "company": user.get("company"), "emailVerified": bool(user.get("emailVerified")),
            "preferences": store.plain(user.get("preferences") or {}),
            "createdAt": user.get("createdAt")}


# ------------------------------------------------------------------ register and login

def register(request: Request) -> dict:
    body = request.body
    email = _email(body["email"])
    name = _text(body["name"], "name")
    company = (body.get("company") or "").strip() or None
    _policy(body["password"], email, "password")
    if _user_by_email(email) is not None:
        raise ApiError("conflict", "An account already uses this e-mail address", fields=["email"])

    now = clock.iso()
    user_id, account_id = new_id("usr"), new_id("acc")
    user = {"userId": user_id, "email": email, "name": name,
            "passwordHash": passwords.hash_password(body["password"]), "emailVerified": False,
            "status": "active", "tokenVersion": 0, "preferences": {}, "lastAccountId": account_id,
            "createdAt": now, "updatedAt": now}
    if company:
        user["company"] = company
    account = {"accountId": account_id, "name": company or name, "plan": "free",
               "ownSubscription": True, "rootAccountId": account_id, "path": account_id,
               "depth": 0, "sourceCount": 0, "jobCount": 0, "storageBytes": 0,
               "subAccountCount": 0, "runsMonth": now[:7], "runsThisMonth": 0,
               "createdBy": user_id, "createdAt": now, "updatedAt": now}
    member = {"userId": user_id, "accountId": account_id, "role": "owner", "createdAt": now}
    try:
        store.transact(
            # The uniqueness guard: two registrations racing for one address both pass the
            # index check above, but only one can create this item.
            store.put("auth-tokens", {"tokenId": f"email#{email}", "kind": "email",
                                      "userId": user_id, "createdAt": now},
                      "attribute_not_exists(tokenId)"),
            store.put("users", user, "attribute_not_exists(userId)"),
            store.put("accounts", account, "attribute_not_exists(accountId)"),
            store.put("users-accounts", member, "attribute_not_exists(userId)"))
    except store.Cancelled:
        raise ApiError("conflict", "An account already uses this e-mail address",
                       fields=["email"]) from None

    _send_verification(user)
    activity.record_request(request, "auth.register", "user", user_id, account_id=account_id,
                            actor=user_id)
    return sessions.token_pair(user, account, "owner")


def login(request: Request) -> dict:
    email = _email(request.body["email"])
    password = request.body["password"]
    wait = lockout.retry_after(email)
    if wait is not None:
        user = _user_by_email(email)
        if user is not None:
            _record_for_user(request, user, "auth.login", outcome="failure",
                             details={"reason": "locked"})
        raise ApiError("rate_limited", "Too many failed logins for this address; try again later",
                       headers={"Retry-After": str(wait)})

    user = _user_by_email(email)
    # Checked against a dummy hash when there is no user, so both cases take as long.
    matches = passwords.verify_password(password, user.get("passwordHash") if user else None)
    if not matches or not _active(user):
        lockout.note_failure(email)
        if user is not None:
            reason = "wrong_password" if not matches else "disabled"
            _record_for_user(request, user, "auth.login", outcome="failure",
                             details={"reason": reason})
        raise ApiError("invalid_credentials", "Wrong e-mail address or password")

    home = _home(user)
    if home is None:
        raise ApiError("forbidden", "This user is not a member of any account")
    account, role = home
    lockout.clear(email)
    sets = {"lastLoginAt": clock.iso(), "lastAccountId": account["accountId"]}
    if passwords.needs_rehash(user["passwordHash"]):
        sets["passwordHash"] = passwords.hash_password(password)
    table("users").update_item(
        Key={"userId": user["userId"]},
        UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in sets),
        ExpressionAttributeNames={f"#{k}": k for k in sets},
        ExpressionAttributeValues={f":{k}": v for k, v in sets.items()})
    activity.record_request(request, "auth.login", "user", user["userId"],
                            account_id=account["accountId"], actor=user["userId"])
    return sessions.token_pair(user, account, role)


# ------------------------------------------------------------------ sessions

def _unauthorized(message: str = "The refresh token is not valid") -> ApiError:
    return ApiError("unauthorized", message)


def refresh(request: Request) -> dict:
    try:
        claims = tokens.verify(request.body["refreshToken"], sessions.refresh_secret(),
                               stage=os.environ["STAGE"], typ="refresh")
    except tokens.TokenError as error:
        logger.info("refresh token refused", extra={"reason": str(error)})
        raise _unauthorized() from None
    user_id, account_id = claims["sub"], claims["acc"]
    user = _user(user_id)
    if not _active(user) or tokens.as_int(user.get("tokenVersion", 0)) != claims["ver"]:
        raise _unauthorized()
    token_id = f"refresh#{claims['jti']}"
    row = table("auth-tokens").get_item(Key={"tokenId": token_id}, ConsistentRead=True).get("Item")
    if row is None or row.get("userId") != user_id:
        raise _unauthorized()
    if "rotatedAt" in row:
        _reuse_detected(request, user_id, account_id)
    member = membership(user_id, account_id)
    account = get_account(account_id)
    if member is None or member.get("role") not in ROLES or account is None:
        raise _unauthorized("You are no longer a member of this account")
    try:
        table("auth-tokens").update_item(
            Key={"tokenId": token_id}, UpdateExpression="SET rotatedAt = :now",
            ConditionExpression="attribute_exists(tokenId) AND attribute_not_exists(rotatedAt)",
            ExpressionAttributeValues={":now": clock.iso()})
    except ClientError as error:
        if not store.conditional_failure(error):
            raise
        _reuse_detected(request, user_id, account_id)   # lost a race with another rotation
    return sessions.token_pair(user, account, member["role"])


def _reuse_detected(request: Request, user_id: str, account_id: str) -> None:
    """A rotated refresh token came back: it was copied. Every session of the user ends."""
    sessions.revoke_all(user_id)
    logger.warning("refresh token reuse: every session revoked", extra={"userId": user_id})
    activity.record_request(request, "auth.refresh.reuse", "user", user_id,
                            account_id=account_id, actor=user_id, outcome="failure")
    raise _unauthorized("This refresh token was already used; every session has been signed out")


def logout(request: Request) -> None:
    sessions.revoke_all(request.user_id)
    activity.record_request(request, "auth.logout", "user", request.user_id)
    return None


# ------------------------------------------------------------------ e-mail verification

def verify(request: Request) -> dict:
    row = onetime.find(onetime.VERIFY, request.body["token"])
    user = _user(row.get("userId")) if row else None
    if row is None or user is None or user.get("email") != row.get("email"):
        raise _invalid_link()
    try:
        store.transact(
            onetime.consume(row),
            store.update("users", {"userId": user["userId"]},
                         "SET emailVerified = :yes, updatedAt = :now",
                         values={":yes": True, ":now": clock.iso(), ":e": row["email"]},
                         condition="attribute_exists(userId) AND email = :e"))
    except store.Cancelled:
        raise _invalid_link() from None
    _record_for_user(request, user, "auth.verify", actor=user["userId"])
    return {"emailVerified": True}


# ------------------------------------------------------------------ passwords

def forgot_password(request: Request) -> dict:
    email = _email(request.body["email"])
    user = _user_by_email(email)
    if _active(user):
        token = onetime.issue(onetime.RESET, user, {"passwordMark": _password_mark(user)})
        _mail("reset", email, "Reset your ListBackup password", (
            f"Hello {user.get('name', '')},\n\n"
            "Someone asked to reset the password of your ListBackup account. To choose a new "
            "password, open this link:\n"
            f"{_link('/reset-password', token)}\n\n"
            "The link works once, for one hour. If you did not ask for this, ignore this "
            "message: your password stays as it is."))
        _record_for_user(request, user, "auth.password.forgot")
    return {"message": FORGOT_MESSAGE}



def reset_password(request: Request) -> None:
    row = onetime.find(onetime.RESET, request.body["token"])
    user = _user(row.get("userId")) if row else None
    if (row is None or not _active(user) or user.get("email") != row.get("email")
            or row.get("passwordMark") != _password_mark(user)):
        raise _invalid_link()
    password = request.body["password"]
    _policy(password, user["email"], "password")
    try:
        store.transact(
            onetime.consume(row),
            # The new hash, and every existing session ends (token version bump). The link
            # came through the mailbox, so the address is now verified too.
            store.update("users", {"userId": user["userId"]},
                         "SET passwordHash = :h, emailVerified = :yes, updatedAt = :now "
                         "ADD tokenVersion :one",
                         values={":h": passwords.hash_password(password), ":yes": True,
                                 ":now": clock.iso(), ":one": 1,
                                 ":old": user.get("passwordHash", "")},
                         condition="attribute_exists(userId) AND passwordHash = :old"))
    except store.Cancelled:
        raise _invalid_link() from None
    lockout.clear(user["email"])
    _record_for_user(request, user, "auth.password.reset", actor=user["userId"])
    return None


def change_password(request: Request) -> dict:
    user = _current_user(request)
    body = request.body
    wait = lockout.retry_after(user["email"])
    if wait is not None:
        raise ApiError("rate_limited", "Too many wrong passwords; try again later",
                       headers={"Retry-After": str(wait)})
    if not passwords.verify_password(body["currentPassword"], user.get("passwordHash")):
        lockout.note_failure(user["email"])
        activity.record_request(request, "auth.password.change", "user", user["userId"],
                                outcome="failure", details={"reason": "wrong_password"})
        raise ApiError("invalid_credentials", "The current password is wrong",
                       fields=["currentPassword"])
    _policy(body["newPassword"], user["email"], "newPassword")
    account = get_account(request.account_id)
    member = membership(user["userId"], request.account_id)
    if account is None or member is None or member.get("role") not in ROLES:
        raise ApiError("not_found", "No such account")
    try:
        updated = table("users").update_item(
            Key={"userId": user["userId"]},
            UpdateExpression="SET passwordHash = :h, updatedAt = :now ADD tokenVersion :one",
            ConditionExpression="attribute_exists(userId) AND passwordHash = :old",
            ExpressionAttributeValues={":h": passwords.hash_password(body["newPassword"]),
                                       ":now": clock.iso(), ":one": 1,
                                       ":old": user.get("passwordHash", "")},
            ReturnValues="ALL_NEW")["Attributes"]
    except ClientError as error:
        if store.conditional_failure(error):   # changed meanwhile by another request
            raise ApiError("conflict", "The password was changed meanwhile; try again") from None
        raise
    activity.record_request(request, "auth.password.change", "user", user["userId"])
    # Every token issued before carries the old version; this pair carries the new one.
    return sessions.token_pair(updated, account, member["role"])


# ------------------------------------------------------------------ profile

def get_profile(request: Request) -> dict:
    return profile_view(_current_user(request))


def update_profile(request: Request) -> dict:
    body = request.body
    user = _current_user(request)
    sets: dict = {}
    removes: list[str] = []
    if "name" in body:
        sets["name"] = _text(body["name"], "name")
    if "company" in body:
        company = (body["company"] or "").strip()
        if company:
            sets["company"] = company
        else:
            removes.append("company")
    if "preferences" in body:
        preferences = body["preferences"]
        size = len(json.dumps(preferences, separators=(",", ":")).encode("utf-8"))
        if size > MAX_PREFERENCES_BYTES or store.depth_of(preferences) > MAX_PREFERENCES_DEPTH:
            raise ApiError("validation_failed",
                           f"Invalid preferences: at most {MAX_PREFERENCES_BYTES} bytes of JSON, "
                           f"nested at most {MAX_PREFERENCES_DEPTH} deep", fields=["preferences"])
        if not store.storable(preferences):
            raise ApiError("validation_failed",
                           "Invalid preferences: keys must not be empty and numbers must be "
                           "finite, with at most 38 significant digits", fields=["preferences"])
        sets["preferences"] = store.to_dynamo(preferences)
    sets["updatedAt"] = clock.iso()
    expression = "SET " + ", ".join(f"#{k} = :{k}" for k in sets)
    if removes:
        expression += " REMOVE " + ", ".join(f"#{k}" for k in removes)
    try:
        updated = table("users").update_item(
            Key={"userId": user["userId"]}, UpdateExpression=expression,
            ConditionExpression="attribute_exists(userId)",
            ExpressionAttributeNames={f"#{k}": k for k in [*sets, *removes]},
            ExpressionAttributeValues={f":{k}": v for k, v in sets.items()},
            ReturnValues="ALL_NEW")["Attributes"]
    except ClientError as error:
        if store.conditional_failure(error):
            raise ApiError("not_found", "No such user") from None
        raise
    activity.record_request(request, "auth.profile.update", "user", user["userId"],
                            details={"fields": sorted(k for k in body)})
    return profile_view(updated)


# ------------------------------------------------------------------ API keys

def list_api_keys(request: Request) -> dict:
    return keys.list_keys(request)


def create_api_key(request: Request) -> dict:
    return keys.create(request)


def revoke_api_key(request: Request) -> None:
    return keys.revoke(request)


OPERATIONS = {
    "register": register, "login": login, "refresh": refresh, "logout": logout,
    "verify": verify, "forgot_password": forgot_password, "reset_password": reset_password,
    "get_profile": get_profile, "update_profile": update_profile,
    "change_password": change_password, "list_api_keys": list_api_keys,
    "create_api_key": create_api_key, "revoke_api_key": revoke_api_key,
}

handler = logger.inject_lambda_context(api_handler(ROUTES, OPERATIONS, logger))
