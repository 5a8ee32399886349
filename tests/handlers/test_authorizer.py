"""The HTTP API's Lambda authorizer against moto: tables from their specs, the secret in SSM.

Each test sends ``handler`` the payload-2.0 REQUEST event API Gateway would send for
``GET /system/status`` and checks the simple response, and that neither the secret nor the
credential shows up in the log output.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import jwt
import pytest
from moto import mock_aws

from components.tables import API_TABLES, CORE_TABLES, create_table_kwargs
from handlers.shared import apikeys, clients, params, tokens
from tests.support import logging_to_stdout

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "listbackup-test-"
PARAM = "/listbackup/test/jwt-secret"
SECRET = "jwt-secret-of-stage-test-" + "Zq8vR2mK" * 6
OTHER_SECRET = "jwt-secret-of-stage-other-" + "Pw4nX7cJ" * 6
USER, ACCOUNT = "user-1", "acct-1"
ROUTE_ARN = "arn:aws:execute-api:us-east-1:123456789012:api123/$default/GET/system/status"
CONTEXT = SimpleNamespace(
    function_name="listbackup-api-test-authorizer", memory_limit_in_mb=256,
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:listbackup-api-test-authorizer",
    aws_request_id="req-auth-1")
TABLES = ("users", "users-accounts", "api-keys")



@pytest.fixture
def aws(monkeypatch):
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SSM", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("DYNAMODB_TABLE_PREFIX", PREFIX)
    monkeypatch.setenv("STAGE", "test")
    monkeypatch.setenv("JWT_SECRET_PARAM", PARAM)
    with mock_aws():
        clients.reset()
        params.clear_cache()
        # The handler's own (cached) clients: each boto3 client costs ~0.1 s to make.
        ddb, ssm = clients.dynamodb(), clients.client("ssm")
        for spec in CORE_TABLES + API_TABLES:
            if spec.name in TABLES:
                ddb.create_table(**create_table_kwargs(spec, PREFIX + spec.name))
        ssm.put_parameter(Name=PARAM, Type="SecureString", Value=SECRET)
        ns = SimpleNamespace(
            ddb=ddb, ssm=ssm, users=clients.Table(PREFIX + "users"),
            members=clients.Table(PREFIX + "users-accounts"), keys=clients.Table(PREFIX + "api-keys"))
        ns.users.put_item(Item={"userId": USER, "email": "ada@example.test", "status": "active",
                                "tokenVersion": 0})
        ns.members.put_item(Item={"userId": USER, "accountId": ACCOUNT, "role": "manager"})
        yield ns
        clients.reset()
        params.clear_cache()


@pytest.fixture
def authorizer():
    from handlers.api import authorizer
    with logging_to_stdout(authorizer.logger):
        yield authorizer


@pytest.fixture
def call(aws, authorizer, capsys):
    """Authorize one ``Authorization`` value; returns (response, log lines as dicts).
    Every call also checks that no secret, token or key reached the logs."""
    def run(authorization: str | None, *, event: dict | None = None):
        response = authorizer.handler(event or request(authorization), CONTEXT)
        out = capsys.readouterr()
        text = out.out + out.err
        assert SECRET not in text and OTHER_SECRET not in text
        if authorization:
            for part in {authorization, *authorization.split(" ")}:
                if len(part) >= 16:
                    assert part not in text
        lines = [json.loads(line) for line in out.out.splitlines() if line.strip()]
        return response, lines
    return run


def request(authorization: str | None, *, headers: bool = True, identity_source: bool = True) -> dict:
    """A payload-2.0 REQUEST authorizer event for GET /system/status."""
    hdrs = {"host": "api.example.test", "user-agent": "pytest", "accept": "application/json"}
    if authorization is not None:
        hdrs["authorization"] = authorization
    event = {
        "version": "2.0", "type": "REQUEST", "routeArn": ROUTE_ARN,
        "routeKey": "GET /system/status", "rawPath": "/system/status", "rawQueryString": "",
        "cookies": [], "requestContext": {
            "accountId": "123456789012", "apiId": "api123", "domainName": "api.example.test",
            "http": {"method": "GET", "path": "/system/status", "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.9", "userAgent": "pytest"},
            "requestId": "apigw-req-1", "routeKey": "GET /system/status", "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000", "timeEpoch": 1767225600000},
    }
    if headers:
        event["headers"] = hdrs
    if identity_source and authorization is not None:
        event["identitySource"] = [authorization]
    return event


def token(*, secret: str = SECRET, stage: str = "test", typ: str = "access", user: str = USER,
          account: str = ACCOUNT, role: str = "manager", ver: int = 0, now: float | None = None) -> str:
    return tokens.issue(secret, stage=stage, typ=typ, user_id=user, account_id=account,
                        role=role, version=ver, now=now)[0]


def claims(**overrides) -> dict:
    now = int(time.time())
    out = {"iss": "listbackup-test", "aud": "listbackup-api", "typ": "access", "sub": USER,
           "acc": ACCOUNT, "role": "manager", "ver": 0, "jti": "jti-1", "iat": now,
           "exp": now + tokens.ACCESS_TTL}
    out.update(overrides)
    return out


def b64(data: dict) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def add_key(aws, *, role: str = "owner", user: str = USER, account: str = ACCOUNT, **extra) -> str:
    key, key_hash = apikeys.generate()
    aws.keys.put_item(Item={"keyHash": key_hash, "keyId": "key-1", "accountId": account,
                            "userId": user, "role": role, "name": "ci",
                            "createdAt": "2026-01-01T00:00:00Z", **extra})
    return key


def allowed(response: dict, role: str, user: str = USER, account: str = ACCOUNT) -> bool:
    return response == {"isAuthorized": True,
                        "context": {"userId": user, "accountId": account, "role": role}}


DENIED = {"isAuthorized": False}


def outcome(lines: list[dict]) -> dict:
    """The one line that says allow or deny."""
    found = [line for line in lines if line.get("outcome") in ("allow", "deny")]
    assert len(found) == 1, lines
    return found[0]


# ------------------------------------------------------------------ accept

def test_valid_access_token(call):
    response, lines = call(f"Bearer {token()}")
    assert allowed(response, "manager")
    log = outcome(lines)
    assert log["message"] == "allow: token" and log["userId"] == USER
    assert log["function_request_id"] == "req-auth-1"


def test_role_comes_from_the_membership_not_the_token(aws, call):
    aws.members.put_item(Item={"userId": USER, "accountId": ACCOUNT, "role": "viewer"})
    response, _ = call(f"Bearer {token(role='owner')}")
    assert allowed(response, "viewer")


def test_promotion_also_takes_effect_at_once(aws, call):
    aws.members.put_item(Item={"userId": USER, "accountId": ACCOUNT, "role": "owner"})
    response, _ = call(f"Bearer {token(role='viewer')}")
    assert allowed(response, "owner")


def test_scheme_is_case_insensitive(call):
    assert allowed(call(f"bearer {token()}")[0], "manager")
    assert allowed(call(f"BEARER {token()}")[0], "manager")


def test_identity_source_is_used_when_headers_are_missing(authorizer, call):
    value = f"Bearer {token()}"
    response, _ = call(value, event=request(value, headers=False))
    assert allowed(response, "manager")


def test_mixed_case_header_name_is_found(call):
    value = f"Bearer {token()}"
    event = request(None, identity_source=False)
    event["headers"]["Authorization"] = value
    assert allowed(call(value, event=event)[0], "manager")


def test_user_without_status_counts_as_active(aws, call):
    aws.users.put_item(Item={"userId": USER, "email": "ada@example.test", "tokenVersion": 0})
    assert allowed(call(f"Bearer {token()}")[0], "manager")


def test_user_without_token_version_is_version_zero(aws, call):
    aws.users.put_item(Item={"userId": USER, "email": "ada@example.test", "status": "active"})
    assert allowed(call(f"Bearer {token()}")[0], "manager")


def test_token_version_stored_as_a_dynamodb_number(aws, call):
    aws.users.update_item(Key={"userId": USER}, UpdateExpression="SET tokenVersion = :v",
                          ExpressionAttributeValues={":v": Decimal(3)})
    assert allowed(call(f"Bearer {token(ver=3)}")[0], "manager")


@pytest.mark.parametrize("key_role, member_role, effective", [
    ("owner", "manager", "manager"),
    ("viewer", "manager", "viewer"),
    ("manager", "manager", "manager"),
    ("owner", "owner", "owner"),
    ("manager", "viewer", "viewer"),
])
def test_api_key_role_is_the_lower_of_key_and_membership(aws, call, key_role, member_role, effective):
    aws.members.put_item(Item={"userId": USER, "accountId": ACCOUNT, "role": member_role})
    response, lines = call(f"Bearer {add_key(aws, role=key_role)}")
    assert allowed(response, effective)
    log = outcome(lines)
    assert log["message"] == "allow: api_key" and log["userId"] == USER


def test_api_key_never_reads_the_secret(aws, call):
    """An API key is checked without SSM: a missing parameter does not matter to it."""
    aws.ssm.delete_parameter(Name=PARAM)
    assert allowed(call(f"Bearer {add_key(aws)}")[0], "manager")


# ------------------------------------------------------------------ deny: the header

@pytest.mark.parametrize("value", [
    "Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Bearer a b", "Bearer  x", " Bearer x",
    "Bearer x ", "Bearer\tx", "Token abc", "", "Bearer\nx", "Bearer a,Bearer b",
])
def test_malformed_authorization_header(call, value):
    response, lines = call(value)
    assert response == DENIED
    assert outcome(lines)["message"] in {"deny: malformed_header", "deny: malformed_token"}


def test_no_header(call):
    response, lines = call(None)
    assert response == DENIED
    assert outcome(lines)["message"] == "deny: no_credential"


def test_token_without_scheme(call):
    assert call(token())[0] == DENIED


def test_basic_with_a_valid_token_inside(call):
    assert call(f"Basic {token()}")[0] == DENIED


def test_header_of_the_wrong_type(call):
    event = request(None)
    event["headers"]["authorization"] = ["Bearer", token()]
    assert call(None, event=event)[0] == DENIED


def test_not_an_event(authorizer, aws):
    assert authorizer.handler("nonsense", CONTEXT) == DENIED
    assert authorizer.handler({}, CONTEXT) == DENIED


# ------------------------------------------------------------------ deny: the token

def deny_reason(call, value: str) -> str:
    response, lines = call(f"Bearer {value}")
    assert response == DENIED
    message = outcome(lines)["message"]
    assert message.startswith("deny: ")
    return message.removeprefix("deny: ")


@pytest.mark.parametrize("value", ["garbage", "a.b.c", "x" * 5000, "....", "a.b.c.d",
                                   "eyJhbGciOiJIUzI1NiJ9..sig", "Ym9ndXM.e30.c2ln"])
def test_malformed_token(call, value):
    assert deny_reason(call, value) in {"malformed_token", "malformed"}


def test_hs256_header_without_a_signature(call):
    assert deny_reason(call, f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims())}.") == "bad_signature"


def test_alg_none(call):
    forged = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}."
    assert deny_reason(call, forged) == "algorithm"


@pytest.mark.parametrize("alg", ["HS512", "HS384"])
def test_other_hmac_algorithm(call, alg):
    assert deny_reason(call, jwt.encode(claims(), SECRET, algorithm=alg)) == "algorithm"


def test_wrong_signature(call):
    header, payload, signature = token().split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert deny_reason(call, f"{header}.{payload}.{flipped}") == "bad_signature"


def test_role_escalation_by_editing_the_payload(call):
    header, _, signature = token(role="viewer").split(".")
    assert deny_reason(call, f"{header}.{b64(claims(role='owner'))}.{signature}") == "bad_signature"


def test_expired(call):
    stale = token(now=time.time() - tokens.ACCESS_TTL - tokens.LEEWAY - 60)
    assert deny_reason(call, stale) == "expired"


def test_iat_in_the_future(call):
    assert deny_reason(call, token(now=time.time() + 3600)) == "not_yet_valid"


def test_nbf_in_the_future(call):
    early = jwt.encode(claims(nbf=int(time.time()) + 3600), SECRET, algorithm="HS256")
    assert deny_reason(call, early) == "not_yet_valid"


def test_refresh_token(call):
    assert deny_reason(call, token(typ="refresh")) == "wrong_type"


def test_other_stage_token(call):
    assert deny_reason(call, token(stage="other", secret=OTHER_SECRET)) in {"bad_signature", "issuer"}


def test_other_stage_issuer_even_with_our_secret(call):
    assert deny_reason(call, token(stage="other")) == "issuer"


def test_our_issuer_signed_with_another_secret(call):
    assert deny_reason(call, token(secret=OTHER_SECRET)) == "bad_signature"


def test_unknown_user(call):
    response, lines = call(f"Bearer {token(user='user-404')}")
    assert response == DENIED
    log = outcome(lines)
    assert log["message"] == "deny: unknown_user" and log["userId"] == "user-404"


@pytest.mark.parametrize("status", ["disabled", "deleted", "pending", ""])
def test_user_not_active(aws, call, status):
    aws.users.update_item(Key={"userId": USER}, UpdateExpression="SET #s = :s",
                          ExpressionAttributeNames={"#s": "status"},
                          ExpressionAttributeValues={":s": status})
    assert deny_reason(call, token()) == "user_not_active"


def test_stale_token_version(aws, call):
    issued = token(ver=0)
    aws.users.update_item(Key={"userId": USER}, UpdateExpression="SET tokenVersion = :v",
                          ExpressionAttributeValues={":v": 1})
    assert deny_reason(call, issued) == "stale_token_version"


def test_token_version_ahead_of_the_user(call):
    assert deny_reason(call, token(ver=1)) == "stale_token_version"


def test_membership_removed(aws, call):
    issued = token()
    aws.members.delete_item(Key={"userId": USER, "accountId": ACCOUNT})
    assert deny_reason(call, issued) == "not_a_member"


def test_token_for_another_account(aws, call):
    aws.members.put_item(Item={"userId": USER, "accountId": "acct-2", "role": "owner"})
    assert allowed(call(f"Bearer {token(account='acct-2')}")[0], "owner", account="acct-2")
    assert deny_reason(call, token(account="acct-3")) == "not_a_member"


def test_membership_with_an_unknown_role(aws, call):
    aws.members.put_item(Item={"userId": USER, "accountId": ACCOUNT, "role": "admin"})
    assert deny_reason(call, token()) == "bad_membership_role"


# ------------------------------------------------------------------ deny: API keys

def test_unknown_api_key(call):
    key, _ = apikeys.generate()
    assert deny_reason(call, key) == "unknown_key"


def test_revoked_api_key(aws, call):
    key = add_key(aws, revokedAt="2026-02-01T00:00:00Z")
    response, lines = call(f"Bearer {key}")
    assert response == DENIED
    log = outcome(lines)
    assert log["message"] == "deny: revoked_key" and log["userId"] == USER


def test_api_key_whose_creator_left_the_account(aws, call):
    key = add_key(aws)
    aws.members.delete_item(Key={"userId": USER, "accountId": ACCOUNT})
    assert deny_reason(call, key) == "not_a_member"


def test_api_key_of_a_disabled_user(aws, call):
    key = add_key(aws)
    aws.users.update_item(Key={"userId": USER}, UpdateExpression="SET #s = :s",
                          ExpressionAttributeNames={"#s": "status"},
                          ExpressionAttributeValues={":s": "disabled"})
    assert deny_reason(call, key) == "user_not_active"


def test_api_key_of_a_deleted_user(aws, call):
    key = add_key(aws)
    aws.users.delete_item(Key={"userId": USER})
    assert deny_reason(call, key) == "unknown_user"


def test_api_key_row_with_a_bad_role(aws, call):
    assert deny_reason(call, add_key(aws, role="admin")) == "invalid_key_row"


def test_malformed_api_key(call):
    assert deny_reason(call, "lbk_short") == "malformed_key"


def test_api_key_is_not_a_jwt_and_a_jwt_is_not_a_key(aws, call):
    """A key's hash row is never consulted for a token, nor a token verified as a key."""
    valid = token()
    aws.keys.put_item(Item={"keyHash": apikeys.hash_key(valid), "keyId": "k", "userId": USER,
                            "accountId": ACCOUNT, "role": "viewer"})
    assert allowed(call(f"Bearer {valid}")[0], "manager")  # verified as a token, not the row


# ------------------------------------------------------------------ faults deny, never raise

def test_dynamodb_fault_denies(aws, call):
    aws.ddb.delete_table(TableName=PREFIX + "users")
    response, lines = call(f"Bearer {token()}")
    assert response == DENIED
    log = outcome(lines)
    assert log["message"] == "deny: error" and log["level"] == "ERROR"
    assert log["errorType"] == "ResourceNotFoundException"
    assert "exception" not in log  # no traceback, no message text


def test_dynamodb_fault_denies_an_api_key(aws, call):
    key = add_key(aws)
    aws.ddb.delete_table(TableName=PREFIX + "api-keys")
    response, lines = call(f"Bearer {key}")
    assert response == DENIED and outcome(lines)["message"] == "deny: error"


def test_missing_ssm_parameter_denies(aws, call):
    aws.ssm.delete_parameter(Name=PARAM)
    response, lines = call(f"Bearer {token()}")
    assert response == DENIED
    log = outcome(lines)
    assert log["message"] == "deny: error" and log["errorType"] == "ParameterNotFound"


def test_missing_environment_denies(call, monkeypatch):
    monkeypatch.delenv("JWT_SECRET_PARAM")
    assert call(f"Bearer {token()}")[0] == DENIED


def test_logs_never_hold_the_secret_or_credentials(aws, call, capsys):
    """All outcomes in one go (``call`` asserts on each); then the raw output once more."""
    key = add_key(aws)
    values = [f"Bearer {token()}", f"Bearer {key}", f"Bearer {token(secret=OTHER_SECRET)}",
              f"Bearer {token(typ='refresh')}", f"Basic {SECRET}", f"Bearer {SECRET}",
              f"Bearer lbk_{SECRET}", f"Bearer {token()} extra"]
    for value in values:
        call(value)
    aws.ddb.delete_table(TableName=PREFIX + "users")
    call(f"Bearer {token()}")
    call(f"Bearer {key}")


# ------------------------------------------------------------------ the SSM cache

def test_parameter_is_cached_for_five_minutes(aws):
    assert params.get_parameter(PARAM) == SECRET
    aws.ssm.put_parameter(Name=PARAM, Type="SecureString", Value=OTHER_SECRET, Overwrite=True)
    assert params.get_parameter(PARAM) == SECRET  # still cached
    value, fetched_at = params._cache[PARAM]
    params._cache[PARAM] = (value, fetched_at - params.CACHE_SECONDS - 1)
    assert params.get_parameter(PARAM) == OTHER_SECRET


def test_parameter_fault_is_not_cached(aws):
    aws.ssm.delete_parameter(Name=PARAM)
    with pytest.raises(Exception):
        params.get_parameter(PARAM)
    aws.ssm.put_parameter(Name=PARAM, Type="SecureString", Value=SECRET)
    assert params.get_parameter(PARAM) == SECRET


def test_rotated_secret_is_used_after_the_cache_expires(aws, call):
    old = token()
    assert allowed(call(f"Bearer {old}")[0], "manager")  # the secret is now cached
    aws.ssm.put_parameter(Name=PARAM, Type="SecureString", Value=OTHER_SECRET, Overwrite=True)
    assert allowed(call(f"Bearer {old}")[0], "manager")  # cached secret still in use
    params.clear_cache()
    assert call(f"Bearer {old}")[0] == DENIED
    assert allowed(call(f"Bearer {token(secret=OTHER_SECRET)}")[0], "manager")


def test_importable_without_aws_environment():
    """Lambda imports the module at cold start: no AWS call, no env read, boto3 deferred."""
    code = ("import sys, handlers.api.authorizer as m; "
            "assert callable(m.handler); assert 'boto3' not in sys.modules")
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True, timeout=120)
