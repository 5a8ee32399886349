"""Entry point of ``listbackup-auth-{stage}-api``: the auth service's operations.

Every operation validates all of its input before it writes anything; writes that must
agree go in one transaction or carry a condition. The rows an operation needs are read
together (BatchGetItem) and what it writes - its audit event included - commits in one
transaction, so no route makes more than four DynamoDB calls (issue 12). Passwords,
tokens, codes and keys are never logged or returned (API keys: once, when created);
e-mail addresses are not logged.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any, Optional, Tuple

from botocore.exceptions import ClientError

from handlers.auth import keys, lockout, onetime, store
from handlers.auth.routes import ROUTES
from handlers.shared import activity, clock, dynamo, mail, passwords, sessions, tokens
from handlers.shared.accounts import valid_id
from handlers.shared.clients import table
from handlers.shared.dynamo import BATCH_GET_KEYS, get_many
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
# An account id with its membership and account rows, read already (or None).
Known = Optional[Tuple[str, Optional[dict], Optional[dict]]]
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
    if not valid_id(user_id):
        return None
    return table("users").get_item(Key={"userId": user_id}, ConsistentRead=True).get("Item")


def _indexed_user(email: str) -> dict | None:
    """The user the e-mail index holds for ``email``. The index is eventually consistent
    (a copy of the row, maybe a moment old): the row itself is read before anything is
    decided on it."""
    reply = table("users").query(IndexName="email-index", KeyConditionExpression="email = :e",
                                 ExpressionAttributeValues={":e": email})
    items = reply.get("Items", [])
    return items[0] if items and valid_id(items[0].get("userId")) else None


def _active(user: dict | None) -> bool:
    return user is not None and user.get("status", "active") == "active"


def _current_user(request: Request) -> dict:
    user = _user(request.user_id)
    if user is None:
        raise ApiError("not_found", "No such user")
    return user


def _home_keys(user_id: str, account_id: str) -> list[tuple[str, dict]]:
    return [("users-accounts", {"userId": user_id, "accountId": account_id}),
            ("accounts", {"accountId": account_id})]


def _user_with_home(user_id: Any, hint: Any, *more: tuple[str, dict]) -> tuple[dict | None, Known, list]:
    """The user's row and, in the same BatchGetItem, the membership and account of ``hint``
    - the account the user most likely belongs to: their last one, as the e-mail index or
    a token row saw it - and ``more`` rows; ``(user, known, more rows)``, ``known`` for
    ``_home``."""
    if not valid_id(user_id):
        return None, None, (get_many(*more) if more else [])
    keys: list[tuple[str, dict]] = [("users", {"userId": user_id})]
    if valid_id(hint):
        keys += _home_keys(user_id, hint)
    rows = get_many(*keys, *more)
    if valid_id(hint):
        return rows[0], (hint, rows[1], rows[2]), rows[3:]
    return rows[0], None, rows[1:]


def _home(user: dict, known: Known = None) -> tuple[dict, str] | None:
    """The account a login is scoped to, with the user's role there: the last one used if
    the user is still a member, else their first membership. ``known``: the membership and
    account rows of one account id, already read."""
    user_id = user["userId"]
    last = user.get("lastAccountId")
    if valid_id(last):
        if known is not None and known[0] == last:
            row, account = known[1], known[2]
        else:
            row, account = get_many(*_home_keys(user_id, last), consistent=False)
        if row is not None and row.get("role") in ROLES and account is not None:
            return account, row["role"]
    query = {"KeyConditionExpression": "userId = :u", "ExpressionAttributeValues": {":u": user_id}}
    for _ in range(MAX_MEMBERSHIP_PAGES):
        reply = table("users-accounts").query(**query)
        rows = [row for row in reply.get("Items", []) if row.get("role") in ROLES
                and valid_id(row.get("accountId"))]
        for start in range(0, len(rows), BATCH_GET_KEYS):
            chunk = rows[start:start + BATCH_GET_KEYS]
            accounts = get_many(*(("accounts", {"accountId": row["accountId"]}) for row in chunk),
                                consistent=False)
            for row, account in zip(chunk, accounts):
                if account is not None:
                    return account, row["role"]
        if not reply.get("LastEvaluatedKey"):
            break
        query["ExclusiveStartKey"] = reply["LastEvaluatedKey"]
    return None


def _event_for_user(request: Request, user: dict, action: str, *, outcome: str = "success",
                    actor: str | None = None, details: dict | None = None,
                    known: Known = None) -> activity.Event | None:
    """An activity event in the user's home account (public routes have no account); None
    when the user has none."""
    home = _home(user, known)
    if home is None:
        logger.info("no account to record activity in", extra={"action": action,
                                                               "userId": user["userId"]})
        return None
    return activity.request_items(request, action, "user", user["userId"],
                                  account_id=home[0]["accountId"], actor=actor, outcome=outcome,
                                  details=details)


def _record_for_user(request: Request, user: dict, action: str, *, outcome: str = "success",
                     actor: str | None = None, details: dict | None = None,
                     known: Known = None) -> None:
    event = _event_for_user(request, user, action, outcome=outcome, actor=actor,
                            details=details, known=known)
    if event is not None:
        activity.write(event)


def _events(event: activity.Event | None) -> list[dict]:
    return event.items if event is not None else []


def _count_failure(email: str, attempts: dict | None, event: activity.Event | None) -> None:
    """Count a failed password for ``email`` (the lockout) and write its event, in one
    transaction conditional on the attempts row read before. If that row changed meanwhile
    (another failure was counted), the failure is counted as ``lockout.note_failure``
    always does and the event written on its own: no failure goes uncounted."""
    if dynamo.transact([lockout.failure_item(email, attempts), *_events(event)]) is None:
        return
    lockout.note_failure(email)
    if event is not None:
        activity.write(event)


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


def _send_verification(user: dict, token: str) -> None:
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
    if _indexed_user(email) is not None:
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
    token, verification = onetime.new(onetime.VERIFY, user, {"homeAccountId": account_id})
    pair, session = sessions.issue_pair(user, account, "owner")
    event = activity.request_items(request, "auth.register", "user", user_id,
                                   account_id=account_id, actor=user_id)
    try:
        # Everything a registration creates commits together: the user, the account, the
        # membership, the verification token, the first session and the audit event.
        store.transact(
            # The uniqueness guard: two registrations racing for one address both pass the
            # index check above, but only one can create this item.
            store.put("auth-tokens", {"tokenId": f"email#{email}", "kind": "email",
                                      "userId": user_id, "createdAt": now},
                      "attribute_not_exists(tokenId)"),
            store.put("users", user, "attribute_not_exists(userId)"),
            store.put("accounts", account, "attribute_not_exists(accountId)"),
            store.put("users-accounts", member, "attribute_not_exists(userId)"),
            verification, session, *event.items)
    except store.Cancelled:
        raise ApiError("conflict", "An account already uses this e-mail address",
                       fields=["email"]) from None

    _send_verification(user, token)
    return pair


def login(request: Request) -> dict:
    """At most four DynamoDB calls, whatever the outcome: the e-mail index; one batch read
    of the address's failures, the user's row and their last account (membership and
    row); the account's ancestors when a sub-account inherits its plan; one transaction
    of everything written (failures or their reset, the user's row, the session, the
    audit event)."""
    email = _email(request.body["email"])
    password = request.body["password"]
    candidate = _indexed_user(email)
    user, known, (attempts,) = _user_with_home(
        candidate and candidate["userId"], candidate and candidate.get("lastAccountId"),
        lockout.key(email))
    if user is not None and user.get("email") != email:
        user = None          # the index was behind a change of address
    wait = lockout.wait_of(attempts)
    if wait is not None:
        if user is not None:
            _record_for_user(request, user, "auth.login", outcome="failure",
                             details={"reason": "locked"}, known=known)
        raise ApiError("rate_limited", "Too many failed logins for this address; try again later",
                       headers={"Retry-After": str(wait)})

    # Checked against a dummy hash when there is no user, so both cases take as long.
    matches = passwords.verify_password(password, user.get("passwordHash") if user else None)
    if not matches or not _active(user):
        event = None
        if user is not None:
            reason = "wrong_password" if not matches else "disabled"
            event = _event_for_user(request, user, "auth.login", outcome="failure",
                                    details={"reason": reason}, known=known)
        _count_failure(email, attempts, event)
        raise ApiError("invalid_credentials", "Wrong e-mail address or password")

    home = _home(user, known)
    if home is None:
        raise ApiError("forbidden", "This user is not a member of any account")
    account, role = home
    sets = {"lastLoginAt": clock.iso(), "lastAccountId": account["accountId"]}
    if passwords.needs_rehash(user["passwordHash"]):
        sets["passwordHash"] = passwords.hash_password(password)
    pair, session = sessions.issue_pair(user, account, role)
    event = activity.request_items(request, "auth.login", "user", user["userId"],
                                   account_id=account["accountId"], actor=user["userId"])
    try:
        store.transact(
            lockout.clear_item(email),
            store.update("users", {"userId": user["userId"]},
                         "SET " + ", ".join(f"#{k} = :{k}" for k in sets),
                         names={f"#{k}": k for k in sets},
                         values={f":{k}": v for k, v in sets.items()},
                         condition="attribute_exists(userId)"),
            session, *event.items)
    except store.Cancelled:      # the user was deleted meanwhile
        raise ApiError("invalid_credentials", "Wrong e-mail address or password") from None
    return pair


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
    if not (valid_id(user_id) and valid_id(account_id) and valid_id(claims.get("jti"))):
        raise _unauthorized()
    token_id = f"refresh#{claims['jti']}"
    # Every row the decision needs, in one read: the claims name them all.
    user, row, member, account = get_many(
        ("users", {"userId": user_id}), ("auth-tokens", {"tokenId": token_id}),
        *_home_keys(user_id, account_id))
    if not _active(user) or tokens.as_int(user.get("tokenVersion", 0)) != claims["ver"]:
        raise _unauthorized()
    if row is None or row.get("userId") != user_id:
        raise _unauthorized()
    if "rotatedAt" in row:
        _reuse_detected(request, user_id, account_id)
    if member is None or member.get("role") not in ROLES or account is None:
        raise _unauthorized("You are no longer a member of this account")
    pair, session = sessions.issue_pair(user, account, member["role"])
    try:
        store.transact(
            store.update("auth-tokens", {"tokenId": token_id}, "SET rotatedAt = :now",
                         values={":now": clock.iso()},
                         condition="attribute_exists(tokenId) AND attribute_not_exists(rotatedAt)"),
            session)
    except store.Cancelled:
        _reuse_detected(request, user_id, account_id)   # lost a race with another rotation
    return pair


def _reuse_detected(request: Request, user_id: str, account_id: str) -> None:
    """A rotated refresh token came back: it was copied. Every session of the user ends."""
    event = activity.request_items(request, "auth.refresh.reuse", "user", user_id,
                                   account_id=account_id, actor=user_id, outcome="failure")
    store.transact(sessions.revoke_item(user_id), *event.items)
    logger.warning("refresh token reuse: every session revoked", extra={"userId": user_id})
    raise _unauthorized("This refresh token was already used; every session has been signed out")


def logout(request: Request) -> None:
    event = activity.request_items(request, "auth.logout", "user", request.user_id)
    store.transact(sessions.revoke_item(request.user_id), *event.items)
    return None


# ------------------------------------------------------------------ e-mail verification

def verify(request: Request) -> dict:
    row = onetime.find(onetime.VERIFY, request.body["token"])
    user, known, _ = _user_with_home(row.get("userId"), row.get("homeAccountId")) if row \
        else (None, None, [])
    if row is None or user is None or user.get("email") != row.get("email"):
        raise _invalid_link()
    event = _event_for_user(request, user, "auth.verify", actor=user["userId"], known=known)
    try:
        store.transact(
            onetime.consume(row),
            store.update("users", {"userId": user["userId"]},
                         "SET emailVerified = :yes, updatedAt = :now",
                         values={":yes": True, ":now": clock.iso(), ":e": row["email"]},
                         condition="attribute_exists(userId) AND email = :e"),
            *_events(event))
    except store.Cancelled:
        raise _invalid_link() from None
    return {"emailVerified": True}


# ------------------------------------------------------------------ passwords

def forgot_password(request: Request) -> dict:
    email = _email(request.body["email"])
    candidate = _indexed_user(email)
    user, known, _ = _user_with_home(candidate["userId"], candidate.get("lastAccountId")) \
        if candidate else (None, None, [])
    if _active(user) and user.get("email") == email:
        home = _home(user, known)
        extra = {"passwordMark": _password_mark(user)}
        if home is not None:
            extra["homeAccountId"] = home[0]["accountId"]
        token, entry = onetime.new(onetime.RESET, user, extra)
        event = activity.request_items(request, "auth.password.forgot", "user", user["userId"],
                                       account_id=home[0]["accountId"]) if home else None
        store.transact(entry, *_events(event))
        _mail("reset", email, "Reset your ListBackup password", (
            f"Hello {user.get('name', '')},\n\n"
            "Someone asked to reset the password of your ListBackup account. To choose a new "
            "password, open this link:\n"
            f"{_link('/reset-password', token)}\n\n"
            "The link works once, for one hour. If you did not ask for this, ignore this "
            "message: your password stays as it is."))
    return {"message": FORGOT_MESSAGE}


def reset_password(request: Request) -> None:
    row = onetime.find(onetime.RESET, request.body["token"])
    user, known, _ = _user_with_home(row.get("userId"), row.get("homeAccountId")) if row \
        else (None, None, [])
    if (row is None or not _active(user) or user.get("email") != row.get("email")
            or row.get("passwordMark") != _password_mark(user)):
        raise _invalid_link()
    password = request.body["password"]
    _policy(password, user["email"], "password")
    event = _event_for_user(request, user, "auth.password.reset", actor=user["userId"],
                            known=known)
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
                         condition="attribute_exists(userId) AND passwordHash = :old"),
            # a new password lifts a login lockout
            lockout.clear_item(user["email"]),
            *_events(event))
    except store.Cancelled:
        raise _invalid_link() from None
    return None


def change_password(request: Request) -> dict:
    user = _current_user(request)
    body = request.body
    attempts, member, account = get_many(lockout.key(user["email"]),
                                         *_home_keys(user["userId"], request.account_id)) \
        if valid_id(request.account_id) else (get_many(lockout.key(user["email"]))[0], None, None)
    wait = lockout.wait_of(attempts)
    if wait is not None:
        raise ApiError("rate_limited", "Too many wrong passwords; try again later",
                       headers={"Retry-After": str(wait)})
    if not passwords.verify_password(body["currentPassword"], user.get("passwordHash")):
        _count_failure(user["email"], attempts, activity.request_items(
            request, "auth.password.change", "user", user["userId"], outcome="failure",
            details={"reason": "wrong_password"}))
        raise ApiError("invalid_credentials", "The current password is wrong",
                       fields=["currentPassword"])
    _policy(body["newPassword"], user["email"], "newPassword")
    if account is None or member is None or member.get("role") not in ROLES:
        raise ApiError("not_found", "No such account")
    version = tokens.as_int(user.get("tokenVersion")) or 0
    updated = {**user, "passwordHash": passwords.hash_password(body["newPassword"]),
               "updatedAt": clock.iso(), "tokenVersion": version + 1}
    # Every token issued before carries the old version; this pair carries the new one.
    pair, session = sessions.issue_pair(updated, account, member["role"])
    values = {":h": updated["passwordHash"], ":now": updated["updatedAt"],
              ":next": version + 1, ":old": user.get("passwordHash", "")}
    condition = "attribute_exists(userId) AND passwordHash = :old"
    if "tokenVersion" in user:      # nothing revoked the sessions meanwhile either
        condition += " AND tokenVersion = :ver"
        values[":ver"] = user["tokenVersion"]
    else:
        condition += " AND attribute_not_exists(tokenVersion)"
    event = activity.request_items(request, "auth.password.change", "user", user["userId"])
    try:
        store.transact(
            store.update("users", {"userId": user["userId"]},
                         "SET passwordHash = :h, updatedAt = :now, tokenVersion = :next",
                         values=values, condition=condition),
            session, *event.items)
    except store.Cancelled:   # changed meanwhile by another request
        raise ApiError("conflict", "The password was changed meanwhile; try again") from None
    return pair


# ------------------------------------------------------------------ profile

def get_profile(request: Request) -> dict:
    return profile_view(_current_user(request))


def update_profile(request: Request) -> dict:
    body = request.body
    if not valid_id(request.user_id):
        raise ApiError("not_found", "No such user")
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
            Key={"userId": request.user_id}, UpdateExpression=expression,
            ConditionExpression="attribute_exists(userId)",
            ExpressionAttributeNames={f"#{k}": k for k in [*sets, *removes]},
            ExpressionAttributeValues={f":{k}": v for k, v in sets.items()},
            ReturnValues="ALL_NEW")["Attributes"]
    except ClientError as error:
        if store.conditional_failure(error):
            raise ApiError("not_found", "No such user") from None
        raise
    activity.record_request(request, "auth.profile.update", "user", request.user_id,
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
