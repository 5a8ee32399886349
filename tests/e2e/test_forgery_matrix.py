"""The forgery matrix through offline mode: every credential that is not a live, genuine
access token (or API key) of a current member is denied the way API Gateway denies on AWS:
401 ``{"message": "Unauthorized"}`` when there is no credential at all, 403
``{"message": "Forbidden"}`` otherwise, and the handler never runs (nothing changes).

Tokens are minted with ``handlers.shared.tokens.issue`` and the stage's real secrets, read
from the local SSM, so each forgery differs from a genuine token in one respect only.
"""

from __future__ import annotations

import base64
import json
import time

import pytest

from handlers.shared import tokens
from tests.e2e import identity as idn
from tests.e2e.identity import assert_forbidden_by_gateway, assert_unauthorized_by_gateway

# Routes a forged credential is tried on: reads, and writes that would leave a trace.
PROBES = (("GET", "/account", None), ("GET", "/auth/profile", None),
          ("PUT", "/auth/profile", {"name": "Forged"}), ("GET", "/activity", None),
          ("GET", "/system/status", None))


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).rstrip(b"=").decode()


def _unb64(part: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _tamper(token: str, **changes) -> str:
    """The token with its payload edited and its signature kept."""
    header, payload, signature = token.split(".")
    return ".".join([header, _b64({**_unb64(payload), **changes}), signature])


def _mint(secret: str, victim: idn.User, **overrides) -> str:
    arguments = dict(stage="dev", typ="access", user_id=victim.user_id,
                     account_id=victim.account_id, role="owner", version=0)
    arguments.update(overrides)
    token, _ = tokens.issue(secret, **arguments)
    return token


def _denied(offline, credential: str | None, *, raw_header: str | None = None,
            status: int = 403) -> None:
    """Every probe is refused by the gateway with ``status``."""
    headers = {"authorization": raw_header} if raw_header is not None else None
    for method, path, body in PROBES:
        reply = offline.request(method, path, body, token=credential, headers=headers)
        if status == 401:
            assert_unauthorized_by_gateway(reply)
        else:
            assert_forbidden_by_gateway(reply)


@pytest.fixture(scope="module")
def secrets(offline):
    access, refresh = idn.jwt_secrets(offline)
    return {"access": access, "refresh": refresh}


@pytest.fixture(scope="module")
def victim(offline):
    """A registered user whose genuine credentials keep working while forgeries fail."""
    return idn.register(offline, name="Victim", verify=True)


@pytest.fixture(scope="module")
def other(offline):
    return idn.register(offline, name="Other Tenant")


def _genuine_still_works(offline, victim: idn.User) -> None:
    reply = offline.get("/auth/profile", token=victim.access)
    assert reply.status == 200, reply
    assert reply.json["data"]["name"] == "Victim"   # no forged PUT got through


def test_the_genuine_token_works(offline, victim, secrets):
    _genuine_still_works(offline, victim)
    # and so does one minted like the forgeries below, but with nothing wrong in it
    reply = offline.get("/account", token=_mint(secrets["access"], victim))
    assert reply.status == 200 and reply.json["data"]["accountId"] == victim.account_id, reply


# ------------------------------------------------------------------ no credential or garbage

@pytest.mark.parametrize("raw", [None, ""], ids=["no header", "empty header"])
def test_no_credential_is_401(offline, raw):
    _denied(offline, None, raw_header=raw, status=401)


@pytest.mark.parametrize("header", [
    "Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Bearer a.b", "Bearer not-a-jwt",
    "Bearer a.b.c", "Token abc.def.ghi", "Bearer lbk_nosuchkey", "Bearer lbk_" + "A" * 43,
    "Bearer " + "a" * 9000,
], ids=["basic", "bearer-only", "bearer-space", "two-parts", "garbage", "three-garbage-parts",
        "other-scheme", "short-key", "unknown-key", "oversized"])
def test_malformed_credentials_are_403(offline, header):
    _denied(offline, None, raw_header=header)


# ------------------------------------------------------------------ forged tokens

def _alg_none(secrets, victim):
    genuine = _mint(secrets["access"], victim)
    _, payload, _ = genuine.split(".")
    return ".".join([_b64({"alg": "none", "typ": "JWT"}), payload, ""])


def _alg_none_signature_kept(secrets, victim):
    genuine = _mint(secrets["access"], victim)
    _, payload, signature = genuine.split(".")
    return ".".join([_b64({"alg": "none", "typ": "JWT"}), payload, signature])


def _alg_hs512(secrets, victim):
    import jwt

    genuine = _mint(secrets["access"], victim)
    claims = _unb64(genuine.split(".")[1])
    return jwt.encode(claims, secrets["access"], algorithm="HS512")


def _wrong_key(secrets, victim):
    return _mint("k" * 64, victim)


def _expired(secrets, victim):
    return _mint(secrets["access"], victim, ttl=60, now=time.time() - 3600)


def _not_yet_valid(secrets, victim):
    return _mint(secrets["access"], victim, now=time.time() + 3600)


def _refresh_as_access(secrets, victim):
    return victim.refresh          # the genuine refresh token from registration


def _refresh_type_with_access_secret(secrets, victim):
    return _mint(secrets["access"], victim, typ="refresh")


def _access_type_with_refresh_secret(secrets, victim):
    return _mint(secrets["refresh"], victim)


def _other_stage_issuer(secrets, victim):
    return _mint(secrets["access"], victim, stage="main")


def _other_stage_secret(secrets, victim):
    return _mint("m" * 64, victim, stage="main")


def _wrong_audience(secrets, victim):
    import jwt

    claims = _unb64(_mint(secrets["access"], victim).split(".")[1])
    return jwt.encode({**claims, "aud": "someone-else"}, secrets["access"], algorithm="HS256")


def _tampered_exp(secrets, victim):
    expired = _mint(secrets["access"], victim, ttl=60, now=time.time() - 3600)
    return _tamper(expired, exp=int(time.time()) + 3600)


def _tampered_typ(secrets, victim):
    return _tamper(_mint(secrets["access"], victim, typ="refresh"), typ="access")


def _tampered_version(secrets, victim):
    return _tamper(_mint(secrets["access"], victim), ver=7)


def _unknown_user(secrets, victim):
    return _mint(secrets["access"], victim, user_id="usr_doesnotexist")


def _stale_version(secrets, victim):
    return _mint(secrets["access"], victim, version=41)


FORGERIES = {
    "alg none": _alg_none,
    "alg none, signature kept": _alg_none_signature_kept,
    "alg HS512 with the right secret": _alg_hs512,
    "wrong key": _wrong_key,
    "expired": _expired,
    "issued in the future": _not_yet_valid,
    "refresh token as access": _refresh_as_access,
    "refresh type signed with the access secret": _refresh_type_with_access_secret,
    "access type signed with the refresh secret": _access_type_with_refresh_secret,
    "another stage's issuer": _other_stage_issuer,
    "another stage's secret": _other_stage_secret,
    "wrong audience": _wrong_audience,
    "tampered exp": _tampered_exp,
    "tampered typ": _tampered_typ,
    "tampered version": _tampered_version,
    "unknown user": _unknown_user,
    "stale token version": _stale_version,
}


@pytest.mark.parametrize("forge", list(FORGERIES.values()), ids=list(FORGERIES))
def test_forged_token_is_403(offline, secrets, victim, forge):
    _denied(offline, forge(secrets, victim))
    _genuine_still_works(offline, victim)


def test_tampered_account_claim_is_403(offline, victim, other):
    """A genuine token with ``acc`` edited to another tenant's account (or ``sub`` to
    another user, ``role`` changed, a claim added), signature kept."""
    for changes in ({"acc": other.account_id}, {"sub": other.user_id},
                    {"sub": other.user_id, "acc": other.account_id}, {"role": "viewer"}, {"admin": True},
                    {"acc": victim.account_id + "x"}):
        _denied(offline, _tamper(victim.access, **changes))
    assert offline.get("/account", token=other.access).json["data"]["accountId"] == other.account_id
    _genuine_still_works(offline, victim)


def test_raised_role_claim_is_ignored_or_denied(offline, secrets):
    """A viewer's token with its role claim edited is denied; and a correctly signed token
    claiming a higher role (as a stale token would) still gets the membership's role."""
    owner = idn.register(offline, name="Owner")
    viewer = idn.register(offline, name="Viewer", verify=True)
    idn.join(offline, owner, owner.account_id, viewer, role="viewer")
    _denied(offline, _tamper(viewer.access, role="owner"))
    # Signed with the real secret (as if the role in the token were stale): the authorizer
    # takes the role from the membership row, so the handler still refuses.
    minted = _mint(secrets["access"], viewer, role="owner")
    reply = offline.request("PUT", "/account", {"name": "Taken over"}, token=minted)
    assert reply.status == 403 and reply.json["code"] == "forbidden", reply
    assert offline.get("/account", token=owner.access).json["data"]["name"] != "Taken over"


# ------------------------------------------------------------------ revoked identities

def test_token_revoked_after_logout_is_403(offline):
    user = idn.register(offline)
    before_logout = user.access
    other_session = idn.login(offline, user)["accessToken"]
    assert offline.post("/auth/logout", token=user.access).status == 200
    for credential in (before_logout, other_session, user.access):
        _denied(offline, credential)
    # the refresh token died with them
    reply = offline.post("/auth/refresh", {"refreshToken": user.refresh})
    assert reply.status == 401 and reply.json["code"] == "unauthorized", reply


def test_disabled_user_is_403_and_cannot_sign_in(offline, secrets):
    user = idn.register(offline)
    key = offline.post("/api-keys", {"name": "k"}, token=user.access).json["data"]["key"]
    assert offline.get("/account", token=key).status == 200
    idn.disable_user(offline, user.user_id)
    _denied(offline, user.access)
    _denied(offline, key)
    _denied(offline, _mint(secrets["access"], user))          # even freshly minted
    reply = offline.post("/auth/login", {"email": user.email, "password": user.password})
    assert reply.status == 401 and reply.json["code"] == "invalid_credentials", reply
    reply = offline.post("/auth/refresh", {"refreshToken": user.refresh})
    assert reply.status == 401 and reply.json["code"] == "unauthorized", reply


def test_removed_member_is_403(offline, secrets):
    owner = idn.register(offline, name="Owner")
    member = idn.register(offline, name="Member", verify=True)
    idn.join(offline, owner, owner.account_id, member, role="manager")
    key_reply = offline.post("/api-keys", {"name": "owner key"}, token=owner.access)
    assert key_reply.status == 201
    assert offline.get("/account", token=member.access).status == 200
    reply = offline.request("DELETE", f"/accounts/{owner.account_id}/members/{member.user_id}",
                            token=owner.access)
    assert reply.status == 200, reply
    _denied(offline, member.access)
    _denied(offline, _mint(secrets["access"], member, account_id=owner.account_id, role="manager"))
    reply = offline.post("/auth/refresh", {"refreshToken": member.refresh})
    assert reply.status == 401 and reply.json["code"] == "unauthorized", reply
    reply = offline.post("/accounts/switch", {"accountId": owner.account_id},
                         token=idn.login(offline, member)["accessToken"])
    assert reply.status == 404 and reply.json["code"] == "not_found", reply


def test_tokens_from_before_a_password_change_are_403(offline):
    user = idn.register(offline)
    other_session = idn.login(offline, user)
    reply = offline.request("PUT", "/account/password",
                            {"currentPassword": user.password, "newPassword": "changed phrase 321"},
                            token=user.access)
    assert reply.status == 200, reply
    answered = reply.json["data"]["accessToken"]          # the pair the change answers works
    assert offline.get("/auth/profile", token=answered).status == 200
    _denied(offline, other_session["accessToken"])
    _denied(offline, user.access)
    reply = offline.post("/auth/refresh", {"refreshToken": other_session["refreshToken"]})
    assert reply.status == 401 and reply.json["code"] == "unauthorized", reply
    fresh = offline.get("/auth/profile", token=_data(offline, user, "changed phrase 321")["accessToken"])
    assert fresh.status == 200, fresh


def _data(offline, user: idn.User, password: str) -> dict:
    reply = offline.post("/auth/login", {"email": user.email, "password": password})
    assert reply.status == 200, reply
    return reply.json["data"]


def test_an_api_key_follows_its_creators_membership(offline):
    """A key acts with the lower of its role and its creator's current role, and dies with
    the creator's membership."""
    owner = idn.register(offline, name="First Owner")
    second = idn.register(offline, name="Second Owner", verify=True)
    idn.join(offline, owner, owner.account_id, second, role="owner")
    reply = offline.post("/api-keys", {"name": "second's key"}, token=second.access)
    assert reply.status == 201 and reply.json["data"]["role"] == "owner", reply
    key = reply.json["data"]["key"]
    assert offline.get("/api-keys", token=key).status == 200

    reply = offline.request("PUT", f"/accounts/{owner.account_id}/members/{second.user_id}",
                            {"role": "manager"}, token=owner.access)
    assert reply.status == 200, reply
    reply = offline.get("/api-keys", token=key)                 # owner route: now refused
    assert reply.status == 403 and reply.json["code"] == "forbidden", reply
    reply = offline.request("PUT", "/account", {"name": "Renamed by key"}, token=key)
    assert reply.status == 200, reply                           # manager route: allowed

    reply = offline.request("DELETE", f"/accounts/{owner.account_id}/members/{second.user_id}",
                            token=owner.access)
    assert reply.status == 200, reply
    _denied(offline, key)
