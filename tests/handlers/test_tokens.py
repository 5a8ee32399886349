"""Access/refresh tokens (handlers.shared.tokens) and API key format (handlers.shared.apikeys).

Every rejection ``verify`` promises is exercised with a token built the way an attacker or a
misconfigured stage would build it; each must raise ``TokenError`` with a short reason that
never repeats the token.
"""

from __future__ import annotations

import base64
import json
import time
from decimal import Decimal

import jwt
import pytest

from handlers.shared import apikeys, tokens
from handlers.shared.tokens import (ACCESS_TTL, AUDIENCE, CLAIMS, LEEWAY, REFRESH_TTL, TokenError,
                                    issue, verify)

SECRET = "access-secret-of-stage-test-" + "0123456789abcdef" * 3       # 76 bytes
OTHER_SECRET = "access-secret-of-stage-other-" + "0123456789abcdef" * 3
STAGE = "test"


def make(**overrides):
    args = dict(stage=STAGE, typ="access", user_id="user-1", account_id="acct-1",
                role="manager", version=0)
    args.update(overrides)
    return issue(SECRET, **args)


def b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def good_claims(**overrides) -> dict:
    now = int(time.time())
    claims = {"iss": tokens.issuer(STAGE), "aud": AUDIENCE, "typ": "access", "sub": "user-1",
              "acc": "acct-1", "role": "manager", "ver": 0, "jti": "jti-1", "iat": now,
              "exp": now + ACCESS_TTL}
    claims.update(overrides)
    return claims


def forge(claims: dict, secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def signed_by_hand(claims: dict, secret: str = SECRET) -> str:
    """HS256 without PyJWT, for claims PyJWT refuses to encode (a null ``iss``)."""
    import hashlib
    import hmac
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims)}"
    mac = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def unsigned(claims: dict, alg: str = "none") -> str:
    """``alg: none`` as the attack sends it: header, payload, empty signature."""
    return f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims)}."


def rejected(token, *, secret: str = SECRET, stage: str = STAGE, typ: str = "access",
             now: float | None = None) -> str:
    with pytest.raises(TokenError) as caught:
        verify(token, secret, stage=stage, typ=typ, now=now)
    reason = str(caught.value)
    assert reason and len(reason) < 40
    if isinstance(token, str) and token:
        assert token not in reason and secret not in reason
    assert caught.value.__cause__ is None  # PyJWT's message is not chained along
    return reason


# ------------------------------------------------------------------ issue and verify

def test_round_trip_access_token():
    token, claims = make()

    assert set(claims) == set(CLAIMS)
    assert claims["iss"] == "listbackup-test" and claims["aud"] == "listbackup-api"
    assert (claims["typ"], claims["sub"], claims["acc"], claims["role"], claims["ver"]) == (
        "access", "user-1", "acct-1", "manager", 0)
    assert isinstance(claims["iat"], int) and claims["exp"] - claims["iat"] == ACCESS_TTL
    assert abs(claims["iat"] - time.time()) < 5
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert verify(token, SECRET, stage=STAGE, typ="access") == claims


def test_round_trip_refresh_token_with_its_own_lifetime():
    token, claims = make(typ="refresh")
    assert claims["exp"] - claims["iat"] == REFRESH_TTL
    assert verify(token, SECRET, stage=STAGE, typ="refresh") == claims


def test_explicit_ttl_clock_and_decimal_version():
    token, claims = make(ttl=60, now=1_000_000, version=Decimal(7))
    assert (claims["iat"], claims["exp"], claims["ver"]) == (1_000_000, 1_000_060, 7)
    assert type(claims["ver"]) is int
    assert verify(token, SECRET, stage=STAGE, typ="access", now=1_000_030) == claims


def test_each_token_has_its_own_jti():
    assert make()[1]["jti"] != make()[1]["jti"]


@pytest.mark.parametrize("overrides", [
    {"typ": "id"}, {"role": "admin"}, {"user_id": ""}, {"account_id": ""}, {"version": -1},
    {"version": "0"}, {"version": True}, {"version": Decimal("1.5")}, {"ttl": 0},
])
def test_issue_refuses_bad_arguments(overrides):
    with pytest.raises(ValueError):
        make(**overrides)


def test_issue_refuses_a_short_secret():
    with pytest.raises(ValueError):
        issue("short", stage=STAGE, typ="access", user_id="u", account_id="a", role="viewer",
              version=0)


# ------------------------------------------------------------------ time

def test_expired():
    token, _ = make(now=time.time() - ACCESS_TTL - LEEWAY - 5)
    assert rejected(token) == "expired"


def test_expired_against_the_given_clock():
    token, claims = make(now=1_000_000)
    assert rejected(token, now=claims["exp"] + LEEWAY + 1) == "expired"


def test_expiry_within_the_leeway_is_tolerated():
    token, claims = make(now=time.time() - ACCESS_TTL - LEEWAY + 10)
    assert verify(token, SECRET, stage=STAGE, typ="access") == claims


def test_iat_in_the_future():
    token, _ = make(now=time.time() + 3600)
    assert rejected(token) == "not_yet_valid"


def test_iat_in_the_future_against_the_given_clock():
    token, claims = make(now=1_000_000)
    assert rejected(token, now=claims["iat"] - LEEWAY - 1) == "not_yet_valid"


def test_iat_a_little_ahead_is_clock_skew():
    token, claims = make(now=time.time() + LEEWAY - 10)
    assert verify(token, SECRET, stage=STAGE, typ="access") == claims


def test_nbf_in_the_future():
    token = forge(good_claims(nbf=int(time.time()) + 600))
    assert rejected(token) == "not_yet_valid"


def test_nbf_in_the_future_against_the_given_clock():
    claims = good_claims(iat=1_000_000, exp=1_000_900, nbf=1_000_500)
    assert rejected(forge(claims), now=1_000_100) == "not_yet_valid"


def test_nbf_in_the_past_is_fine():
    claims = good_claims(nbf=int(time.time()) - 10)
    assert verify(forge(claims), SECRET, stage=STAGE, typ="access") == claims


@pytest.mark.parametrize("overrides", [
    {"iat": "1700000000"}, {"exp": "9999999999"}, {"iat": 1.5}, {"exp": True},
])
def test_non_integer_times(overrides):
    # exp=true reads as 1 to PyJWT, long expired: refused either way
    assert rejected(forge(good_claims(**overrides))) in {"malformed", "bad_claims", "expired"}


# ------------------------------------------------------------------ who signed it, for whom

def test_wrong_secret():
    token, _ = make()
    assert rejected(token, secret=OTHER_SECRET) == "bad_signature"


def test_tampered_payload():
    token, _ = make(role="viewer")
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "owner"
    assert rejected(f"{header}.{b64(claims)}.{signature}") == "bad_signature"


def test_other_stage_issuer():
    token, _ = issue(SECRET, stage="other", typ="access", user_id="user-1", account_id="acct-1",
                     role="viewer", version=0)
    assert rejected(token) == "issuer"


def test_other_stage_token_with_its_own_secret():
    token, _ = issue(OTHER_SECRET, stage="other", typ="access", user_id="user-1",
                     account_id="acct-1", role="viewer", version=0)
    assert rejected(token) in {"bad_signature", "issuer"}


@pytest.mark.parametrize("aud", ["other-api", ["listbackup-api"], ["listbackup-api", "x"], 1])
def test_wrong_audience(aud):
    assert rejected(forge(good_claims(aud=aud))) == "audience"


def test_empty_audience():
    assert rejected(forge(good_claims(aud=""))) in {"audience", "missing_claim"}


def test_refresh_token_used_as_access():
    token, _ = make(typ="refresh")
    assert rejected(token, typ="access") == "wrong_type"


def test_access_token_used_as_refresh():
    token, _ = make()
    assert rejected(token, typ="refresh") == "wrong_type"


# ------------------------------------------------------------------ algorithms

@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", ""])
def test_alg_none(alg):
    assert rejected(unsigned(good_claims(), alg)) == "algorithm"


def test_alg_none_with_a_signature_still_fails():
    token, _ = make()
    _, payload, signature = token.split(".")
    assert rejected(f"{b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.{signature}") == "algorithm"


def test_header_without_alg():
    token, _ = make()
    _, payload, signature = token.split(".")
    assert rejected(f"{b64({'typ': 'JWT'})}.{payload}.{signature}") == "algorithm"


@pytest.mark.parametrize("alg", ["HS512", "HS384"])
def test_other_hmac_algorithm_with_the_same_secret(alg):
    token = forge(good_claims(), SECRET, alg)
    assert jwt.get_unverified_header(token)["alg"] == alg
    assert rejected(token) == "algorithm"


def test_rs256_header_on_an_hmac_signature():
    token, _ = make()
    _, payload, signature = token.split(".")
    assert rejected(f"{b64({'alg': 'RS256', 'typ': 'JWT'})}.{payload}.{signature}") == "algorithm"


# ------------------------------------------------------------------ claims

@pytest.mark.parametrize("claim", CLAIMS)
def test_missing_claim(claim):
    claims = good_claims()
    del claims[claim]
    assert rejected(forge(claims)) == "missing_claim"


@pytest.mark.parametrize("claim", CLAIMS)
def test_null_claim(claim):
    assert rejected(signed_by_hand(good_claims(**{claim: None}))) == "missing_claim"


def test_hand_signed_token_is_accepted():
    """The helper above signs as PyJWT does: the rejections it feeds are about the claims."""
    claims = good_claims()
    assert verify(signed_by_hand(claims), SECRET, stage=STAGE, typ="access") == claims


@pytest.mark.parametrize("overrides", [
    {"ver": "0"}, {"ver": 0.0}, {"ver": True}, {"ver": -1}, {"sub": ""}, {"acc": ""},
    {"acc": 12}, {"role": "admin"}, {"role": ""}, {"jti": ""},
])
def test_bad_claim_values(overrides):
    assert rejected(forge(good_claims(**overrides))) in {"bad_claims", "malformed"}


def test_non_string_subject():
    assert rejected(forge(good_claims(sub=42))) in {"bad_claims", "malformed"}


# ------------------------------------------------------------------ not tokens at all

@pytest.mark.parametrize("token", [
    "", "garbage", "a.b.c", "a.b", "....", "eyJhbGciOiJIUzI1NiJ9.!!!.x",
    f"{b64(b'not json')}.{b64({'sub': 'x'})}.", f"{b64([1, 2])}.{b64({'sub': 'x'})}.sig",
    "x" * 10_000, None, b"bytes.are.not.tokens", 12,
])
def test_garbage(token):
    assert rejected(token) == "malformed"


def test_short_secret_is_refused_when_verifying():
    token, _ = make()
    assert rejected(token, secret="short") == "weak_secret"


# ------------------------------------------------------------------ API keys

def test_generated_keys():
    key, key_hash = apikeys.generate()
    assert key.startswith("lbk_") and len(key) >= 44
    assert apikeys.looks_like_key(key)
    assert key_hash == apikeys.hash_key(key)
    assert len(key_hash) == 64 and int(key_hash, 16) >= 0
    assert apikeys.generate()[0] != key


def test_hash_is_sha256_of_the_whole_key():
    import hashlib
    assert apikeys.hash_key("lbk_abc") == hashlib.sha256(b"lbk_abc").hexdigest()
    assert apikeys.hash_key("lbk_abc") != apikeys.hash_key("abc")


@pytest.mark.parametrize("value", [
    "", "lbk_", "lbk_short", "LBK_" + "a" * 43, "xyz_" + "a" * 43, "lbk_" + "a" * 42 + "=",
    "lbk_" + "a" * 20 + " " + "a" * 20, "lbk_" + "a" * 200, "lbk_" + "é" * 43, None, 5,
    "lbk_" + "a" * 43 + "\n",
])
def test_not_keys(value):
    assert not apikeys.looks_like_key(value)
