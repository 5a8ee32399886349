"""Bad input through offline mode: malformed JSON, wrong types, missing and unknown fields,
bodies over 1 MB, bad query parameters and unknown ids each get a 4xx JSON error with a
code, never a 5xx, and change nothing (no user created, the account as it was, no activity
recorded)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.e2e import identity as idn
from tests.e2e.identity import assert_error

OVER_A_MEGABYTE = 1024 * 1024 + 10


@pytest.fixture(scope="module")
def owner(offline):
    return idn.register(offline, name="Bad Input Owner", company="Steady Co", verify=True)


def _account(offline, user: idn.User) -> dict:
    reply = offline.get("/account", token=user.access)
    assert reply.status == 200, reply
    return reply.json["data"]


def _event_count(offline, user: idn.User) -> int:
    return offline.get("/activity/stats", token=user.access).json["data"]["day"]["total"]


# ------------------------------------------------------------------ registration: no user created

REGISTER_CASES = {
    "malformed JSON": (b'{"email": "EMAIL", "password": "correct horse battery", "name": ',
                       400, "invalid_request"),
    "not UTF-8": (b'{"email": "EMAIL", "name": "\xff\xfe", "password": "correct horse battery"}',
                  400, "invalid_request"),
    "a JSON array": ([{"email": "EMAIL"}], 400, "validation_failed"),
    "a JSON string": ("EMAIL", 400, "validation_failed"),
    "JSON null": (b"null", 400, "validation_failed"),
    "empty object": ({}, 400, "validation_failed"),
    "missing password": ({"email": "EMAIL", "name": "N"}, 400, "validation_failed"),
    "missing e-mail": ({"password": "correct horse battery", "name": "N"}, 400, "validation_failed"),
    "password a number": ({"email": "EMAIL", "password": 1234567890123, "name": "N"},
                          400, "validation_failed"),
    "e-mail a list": ({"email": ["EMAIL"], "password": "correct horse battery", "name": "N"},
                      400, "validation_failed"),
    "name an object": ({"email": "EMAIL", "password": "correct horse battery", "name": {"a": 1}},
                       400, "validation_failed"),
    "name null": ({"email": "EMAIL", "password": "correct horse battery", "name": None},
                  400, "validation_failed"),
    "unknown field": ({"email": "EMAIL", "password": "correct horse battery", "name": "N",
                       "role": "owner"}, 400, "validation_failed"),
    "plan smuggled in": ({"email": "EMAIL", "password": "correct horse battery", "name": "N",
                          "plan": "enterprise"}, 400, "validation_failed"),
    "not an e-mail": ({"email": "not-an-address", "password": "correct horse battery", "name": "N"},
                      400, "validation_failed"),
    "short password": ({"email": "EMAIL", "password": "short", "name": "N"}, 400, "validation_failed"),
    "common password": ({"email": "EMAIL", "password": "password123", "name": "N"},
                        400, "validation_failed"),
    "password over 128": ({"email": "EMAIL", "password": "p" * 129, "name": "N"},
                          400, "validation_failed"),
    "blank name": ({"email": "EMAIL", "password": "correct horse battery", "name": "   "},
                   400, "validation_failed"),
    "body over 1 MB": ({"email": "EMAIL", "password": "correct horse battery",
                        "name": "N", "company": "c" * OVER_A_MEGABYTE}, 413, "payload_too_large"),
    "deeply nested": (b"[" * 50_000 + b"]" * 50_000, 400, "invalid_request"),
    "no body": (None, 400, "invalid_request"),
}


def _with_email(body, email: str):
    if isinstance(body, bytes):
        return body.replace(b"EMAIL", email.encode())
    if isinstance(body, str):
        return body.replace("EMAIL", email)
    if isinstance(body, list):
        return [_with_email(b, email) for b in body]
    if isinstance(body, dict):
        return {k: _with_email(v, email) for k, v in body.items()}
    return body


@pytest.mark.parametrize("case", list(REGISTER_CASES), ids=list(REGISTER_CASES))
def test_bad_registration_creates_no_user(offline, case):
    body, status, code = REGISTER_CASES[case]
    email = idn.unique_email("bad")
    mails_before = len(idn.emails(offline, email))
    reply = offline.post("/auth/register", _with_email(body, email))
    error = assert_error(reply, status, code)
    if code == "validation_failed":
        assert error.get("fields"), error
    assert idn.users_with_email(offline, email) == []
    assert len(idn.emails(offline, email)) == mails_before
    # The address is still free: the same registration done right succeeds.
    if case in ("missing password", "unknown field", "plan smuggled in", "body over 1 MB"):
        assert idn.register(offline, email=email).email == email


def test_validation_names_the_fields(offline):
    email = idn.unique_email("fields")
    reply = offline.post("/auth/register", {"email": email, "name": "N", "admin": True, "x": 1})
    error = assert_error(reply, 400, "validation_failed")
    assert set(error["fields"]) & {"password", "admin", "x"}, error
    reply = offline.post("/auth/register", {"email": email, "password": 5, "name": "N"})
    assert assert_error(reply, 400, "validation_failed")["fields"] == ["password"]


def test_a_duplicate_email_is_409_and_leaves_the_first_user(offline):
    first = idn.register(offline)
    reply = offline.post("/auth/register", {"email": f" {first.email.upper()}", "name": "Again",
                                            "password": "another good phrase 1"})
    assert_error(reply, 409, "conflict")
    assert len(idn.users_with_email(offline, first.email)) == 1
    idn.login(offline, first)          # the first user's password still holds


# ------------------------------------------------------------------ PUT /account: the account as it was

PUT_ACCOUNT_CASES = {
    "malformed JSON": (b'{"name": "Half', 400, "invalid_request"),
    "name a number": ({"name": 42}, 400, "validation_failed"),
    "name null": ({"name": None}, 400, "validation_failed"),
    "empty object": ({}, 400, "validation_failed"),
    "blank name": ({"name": "   "}, 400, "validation_failed"),
    "control characters": ({"name": "Evil\u0000Name"}, 400, "validation_failed"),
    "newline in name": ({"name": "Evil\r\nBcc: x@example.com"}, 400, "validation_failed"),
    "name over 100": ({"name": "n" * 101}, 400, "validation_failed"),
    "unknown field": ({"name": "Fine", "plan": "enterprise"}, 400, "validation_failed"),
    "only unknown fields": ({"accountId": "acc_other"}, 400, "validation_failed"),
    "a JSON list": ([{"name": "Fine"}], 400, "validation_failed"),
    "body over 1 MB": ({"name": "n" * OVER_A_MEGABYTE}, 413, "payload_too_large"),
    "no body": (None, 400, "invalid_request"),
}


@pytest.mark.parametrize("case", list(PUT_ACCOUNT_CASES), ids=list(PUT_ACCOUNT_CASES))
def test_a_bad_account_update_changes_nothing(offline, owner, case):
    body, status, code = PUT_ACCOUNT_CASES[case]
    before, events = _account(offline, owner), _event_count(offline, owner)
    reply = offline.request("PUT", "/account", body, token=owner.access)
    assert_error(reply, status, code)
    after = _account(offline, owner)
    assert after == before
    assert after["name"] == "Steady Co" and after["plan"] == "free"
    assert _event_count(offline, owner) == events


def test_bad_profile_updates_change_nothing(offline, owner):
    before = offline.get("/auth/profile", token=owner.access).json["data"]
    for body, code in (({}, "validation_failed"), ({"preferences": "dark"}, "validation_failed"),
                       ({"preferences": {"k": "v" * 5000}}, "validation_failed"),
                       ({"preferences": {f"k{i}": i for i in range(51)}}, "validation_failed"),
                       ({"email": "taken@example.com"}, "validation_failed"),
                       ({"name": "New", "emailVerified": False}, "validation_failed"),
                       ({"name": ""}, "validation_failed"),
                       ({"name": " \t "}, "validation_failed"),
                       (b"{'name': 'single quotes'}", "invalid_request")):
        assert_error(offline.request("PUT", "/auth/profile", body, token=owner.access), 400, code)
    assert offline.get("/auth/profile", token=owner.access).json["data"] == before


def test_bad_password_changes_change_nothing(offline):
    user = idn.register(offline)
    for body, status, code in (
            ({"currentPassword": user.password}, 400, "validation_failed"),
            ({"currentPassword": user.password, "newPassword": "short"}, 400, "validation_failed"),
            ({"currentPassword": user.password, "newPassword": 12345678901}, 400, "validation_failed"),
            ({"currentPassword": "not the password", "newPassword": "a fine new phrase 1"},
             401, "invalid_credentials")):
        assert_error(offline.request("PUT", "/account/password", body, token=user.access), status, code)
    # the session and the password are as they were
    assert offline.get("/auth/profile", token=user.access).status == 200
    idn.login(offline, user)


def test_bad_bodies_on_other_routes(offline, owner):
    a = owner.account_id
    guest = idn.unique_email("guest")
    cases = [
        ("POST", "/auth/login", {"email": owner.email}, 400, "validation_failed"),
        ("POST", "/auth/login", {"email": owner.email, "password": ["x"]}, 400, "validation_failed"),
        ("POST", "/auth/login", b"email=x&password=y", 400, "invalid_request"),
        ("POST", "/auth/refresh", {"refreshToken": 1}, 400, "validation_failed"),
        ("POST", "/auth/refresh", {"refreshToken": "garbage"}, 401, "unauthorized"),
        ("POST", "/auth/refresh", {"refreshToken": owner.access}, 401, "unauthorized"),
        ("POST", "/auth/verify", {"token": "no-such-token"}, 400, "invalid_request"),
        ("POST", "/auth/verify", {}, 400, "validation_failed"),
        ("POST", "/auth/reset-password", {"token": "no-such-token",
                                          "password": "a fine new phrase 1"}, 400, "invalid_request"),
        ("POST", "/auth/forgot-password", {"email": 7}, 400, "validation_failed"),
        ("POST", "/accounts/switch", {"accountId": 5}, 400, "validation_failed"),
        ("POST", "/accounts/switch", {"accountId": ""}, 400, "validation_failed"),
        ("POST", "/accounts/switch", {"accountId": "acc_nosuchaccount"}, 404, "not_found"),
        ("POST", f"/accounts/{a}/sub-accounts", {}, 400, "validation_failed"),
        ("POST", f"/accounts/{a}/sub-accounts", {"name": "Sub", "plan": "pro"}, 400, "validation_failed"),
        ("POST", f"/accounts/{a}/sub-accounts", {"name": "\u0007bell"}, 400, "validation_failed"),
        ("POST", f"/accounts/{a}/invitations", {"email": guest, "role": "admin"},
         400, "validation_failed"),
        ("POST", f"/accounts/{a}/invitations", {"email": "not-an-address", "role": "viewer"},
         400, "validation_failed"),
        ("POST", f"/accounts/{a}/invitations", {"email": guest}, 400, "validation_failed"),
        ("POST", f"/accounts/{a}/invitations", {"email": guest, "role": "viewer", "inviteCode": "mine"},
         400, "validation_failed"),
        ("PUT", f"/accounts/{a}/members/{owner.user_id}", {"role": "superuser"}, 400, "validation_failed"),
        ("POST", "/invitations/accept", {"inviteCode": ""}, 400, "validation_failed"),
        ("POST", "/invitations/accept", {"inviteCode": "no-such-code"}, 404, "not_found"),
        ("POST", "/api-keys", {}, 400, "validation_failed"),
        ("POST", "/api-keys", {"name": "k", "role": "root"}, 400, "validation_failed"),
        ("POST", "/api-keys", {"name": "   "}, 400, "validation_failed"),
        ("POST", "/api-keys", {"name": "k" * OVER_A_MEGABYTE}, 413, "payload_too_large"),
    ]
    before = idn.users_with_email(offline, owner.email)
    snapshot = _state(offline, owner)
    for method, path, body, status, code in cases:
        reply = offline.request(method, path, body, token=owner.access)
        assert (reply.status, reply.json.get("code")) == (status, code), (method, path, reply)
        assert_error(reply, status, code)
    assert _state(offline, owner) == snapshot
    assert idn.users_with_email(offline, owner.email) == before
    assert idn.emails(offline, guest) == []


def _state(offline, user: idn.User) -> dict:
    get = lambda path: offline.get(path, token=user.access).json["data"]  # noqa: E731
    return {"account": get("/account"),
            "hierarchy": get(f"/accounts/{user.account_id}/hierarchy")["items"],
            "members": get(f"/accounts/{user.account_id}/members")["items"],
            "invitations": get(f"/accounts/{user.account_id}/invitations")["items"],
            "keys": get("/api-keys")["items"]}


# ------------------------------------------------------------------ unknown ids and bad queries

def test_unknown_ids_are_404(offline, owner):
    a = owner.account_id
    long_id = "x" * 1000
    for method, path, body in (
            ("GET", "/accounts/acc_nosuchaccount/hierarchy", None),
            ("GET", f"/accounts/{long_id}/members", None),
            ("GET", "/accounts/acc_nosuchaccount/invitations", None),
            ("POST", "/accounts/acc_nosuchaccount/sub-accounts", {"name": "Orphan"}),
            ("PUT", f"/accounts/{a}/members/usr_nosuchuser", {"role": "viewer"}),
            ("DELETE", f"/accounts/{a}/members/usr_nosuchuser", None),
            ("DELETE", f"/accounts/{a}/members/{long_id}", None),
            ("DELETE", f"/accounts/{a}/invitations/inv_nosuchinvite", None),
            ("DELETE", f"/accounts/{a}/invitations/{long_id}", None),
            ("DELETE", "/api-keys/key_nosuchkey", None),
            ("DELETE", f"/api-keys/{long_id}", None),
            ("DELETE", f"/api-keys/{quote('key with spaces & %')}", None),
            ("GET", "/activity/evt_nosuchevent", None),
            ("GET", "/activity/evt_20240101T000000000000Z_00000000", None),
            ("GET", f"/activity/{long_id}", None),
            ("GET", f"/activity/{quote('évt_ünïcode')}", None)):
        assert_error(offline.request(method, path, body, token=owner.access), 404, "not_found")


@pytest.mark.parametrize("query", [
    "limit=0", "limit=101", "limit=-1", "limit=abc", "limit=1.5", "cursor=garbage",
    "cursor=" + "A" * 400, "from=yesterday", "to=2024-13-45", "from=2025-01-02T00:00:00Z&to=2025-01-01T00:00:00Z",
    "type=" + "t" * 300,
])
def test_bad_queries_are_400(offline, owner, query):
    reply = offline.get(f"/activity?{query}", token=owner.access)
    error = assert_error(reply, 400)
    assert error["code"] in ("validation_failed", "invalid_request"), error


def test_cursors_are_bound_to_their_list_and_tenant(offline, owner):
    feed = offline.get("/activity?limit=1", token=owner.access).json["data"]
    cursor = feed["nextCursor"]
    assert cursor
    # the same cursor on another list, with other filters, or by another tenant
    assert_error(offline.get(f"/accounts/{owner.account_id}/members?cursor={quote(cursor)}",
                             token=owner.access), 400, "invalid_request")
    assert_error(offline.get(f"/activity?limit=1&type=auth.login&cursor={quote(cursor)}",
                             token=owner.access), 400, "invalid_request")
    stranger = idn.register(offline)
    assert_error(offline.get(f"/activity?cursor={quote(cursor)}", token=stranger.access),
                 400, "invalid_request")
    # tampered: one character changed
    flipped = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]
    assert_error(offline.get(f"/activity?cursor={quote(flipped)}", token=owner.access),
                 400, "invalid_request")
    assert offline.get(f"/activity?limit=1&cursor={quote(cursor)}", token=owner.access).status == 200


# ------------------------------------------------------------------ text and numbers nothing downstream can hold

@pytest.fixture(scope="module")
def hostile_target(offline):
    return idn.register(offline, name="Hostile Target", verify=True)


HOSTILE = [
    ("POST", "/auth/register", b'{"email": "EMAIL", "password": "correct horse battery", "name": "\\ud800"}'),
    ("POST", "/auth/register", b'{"email": "EMAIL", "password": "correct horse \\udfff", "name": "N"}'),
    ("POST", "/auth/login", b'{"email": "EMAIL", "password": "\\ud800"}'),
    ("POST", "/auth/verify", b'{"token": "\\ud800"}'),
    ("POST", "/auth/reset-password", b'{"token": "\\ud800", "password": "correct horse battery"}'),
    ("PUT", "/auth/profile", b'{"name": "\\ud800"}'),
    ("PUT", "/auth/profile", b'{"preferences": {"x": NaN}}'),
    ("PUT", "/auth/profile", b'{"preferences": {"x": Infinity}}'),
    ("PUT", "/auth/profile", b'{"preferences": {"x": 1e400}}'),
    ("PUT", "/auth/profile", b'{"preferences": {"x": 1e-200}}'),
    ("PUT", "/auth/profile", b'{"preferences": {"x": 123456789012345678901234567890123456789012}}'),
    ("PUT", "/auth/profile", b'{"preferences": {"": 1}}'),
    ("PUT", "/auth/profile", b'{"preferences": {"a": {"": 1}}}'),
    ("PUT", "/account/password", b'{"currentPassword": "\\ud800", "newPassword": "correct horse battery"}'),
    ("PUT", "/account", b'{"name": "x\\ud800"}'),
    ("POST", "/accounts/ACCOUNT/sub-accounts", b'{"name": "\\udfff"}'),
    ("POST", "/accounts/ACCOUNT/invitations", b'{"email": "x@example.com\\nBcc: y@example.com", "role": "viewer"}'),
    ("POST", "/accounts/ACCOUNT/invitations", b'{"email": "a b@example.com", "role": "viewer"}'),
    ("POST", "/accounts/ACCOUNT/invitations", b'{"email": "\\ud800@example.com", "role": "viewer"}'),
    ("POST", "/invitations/accept", b'{"inviteCode": "\\ud800"}'),
    ("POST", "/api-keys", b'{"name": "\\udfff"}'),
]


@pytest.mark.parametrize("method, path, raw", HOSTILE,
                         ids=[f"{m} {p} {r[:60].decode()}" for m, p, r in HOSTILE])
def test_hostile_text_and_numbers_are_4xx_and_the_user_stays_usable(offline, hostile_target,
                                                                     method, path, raw):
    """Lone surrogate escapes, NaN/Infinity, numbers and keys DynamoDB cannot hold, e-mail
    addresses that cannot go into a mail header: a 4xx, never a 500, and the caller's own
    rows stay readable (an empty preferences key once made the user unreadable for good)."""
    user = hostile_target
    body = raw.replace(b"EMAIL", user.email.encode()).replace(b"ACCOUNT", user.account_id.encode())
    before = _state(offline, user)
    profile = offline.get("/auth/profile", token=user.access).json["data"]
    reply = offline.request(method, path.replace("ACCOUNT", user.account_id), body, token=user.access)
    error = assert_error(reply, 400)
    assert error["code"] in ("invalid_request", "validation_failed"), error
    assert offline.get("/auth/profile", token=user.access).json["data"] == profile
    assert _state(offline, user) == before
    idn.login(offline, user)


@pytest.mark.parametrize("address", ["a\x00b@example.com", "a\x1bb@example.com", "a\x7f@example.com"],
                         ids=["NUL", "ESC", "DEL"])
def test_control_characters_in_an_address_are_refused(offline, address):
    local, domain = address.split("@")
    address = f"{local}{idn.unique_email('c').split('@')[0]}@{domain}"
    reply = offline.post("/auth/register", {"email": address, "password": idn.PASSWORD, "name": "N"})
    assert_error(reply, 400, "validation_failed")
    assert idn.users_with_email(offline, address.lower()) == []
