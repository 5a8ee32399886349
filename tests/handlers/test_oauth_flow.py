"""OAuth initiate and callback on moto, with the platform's authorize and token URLs on a
local fake reached through ``LISTBACKUP_PLATFORM_URLS``: connect, reconnect, single-use and
expiring states, return URLs only on the stage's origins, and every failure after the
state is known sent back to the app as an error code."""

from __future__ import annotations

import hashlib
import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from handlers.shared import sources as store
from handlers.shared.clients import dynamodb, table
from tests.handlers.test_sources_support import (  # noqa: F401  (fixtures)
    ACCESS_TOKEN, API_BASE, APP_ORIGIN, CLIENT_SECRET, REFRESH_TOKEN, events, get_row,
    integrations_call, integrations_raw, logs, platform, raw_item, seed_tenant, source_count, stage,
    unconfigure)

pytestmark = pytest.mark.usefixtures("stage")

RETURN_URL = f"{APP_ORIGIN}/sources/connected?tab=crm"
CODE = "auth-code-0123456789-secret"
TOKENS = {"access_token": ACCESS_TOKEN, "refresh_token": REFRESH_TOKEN, "expires_in": 1800,
          "token_type": "bearer", "hub_id": 4242}


@pytest.fixture
def hubspot(platform):
    fake = platform.serve("hubspot", "google-drive", "box")
    fake.on("POST /oauth/v1/token", lambda seen: (200, TOKENS, {}) if seen.form.get("code") == CODE
            else (400, {"error": "invalid_grant"}, {}))
    return fake


def initiate(identity, platform_id="hubspot", **body):
    return integrations_call("POST /integrations/{type}/oauth/initiate", identity,
                             path={"type": platform_id}, body={"returnUrl": RETURN_URL, **body})


def callback(platform_id="hubspot", **query) -> dict:
    return integrations_raw("GET /integrations/{type}/oauth/callback", None,
                            path={"type": platform_id}, query=query)


def outcome(result: dict) -> tuple[str, dict]:
    """Where a callback redirect goes: (origin + path, its query)."""
    assert result["statusCode"] == 302, result
    location = result["headers"]["location"]
    parts = urlsplit(location)
    return f"{parts.scheme}://{parts.netloc}{parts.path}", {k: v[0] for k, v in parse_qs(parts.query).items()}


def state_row(state: str) -> dict | None:
    return get_row("oauth-states", state=hashlib.sha256(state.encode()).hexdigest())


def scan(table_name: str) -> list[dict]:   # tests may look at a whole (tiny) table
    return dynamodb().scan(TableName=table(table_name).name)["Items"]


# --------------------------------------------------------------------------- initiate

def test_initiate_answers_the_authorize_url_and_stores_only_the_states_hash(hubspot):
    user, account, me = seed_tenant("manager")
    status, body = initiate(me)
    assert status == 200, body
    state, auth_url = body["data"]["state"], body["data"]["authUrl"]
    assert len(state) >= 43                                   # 32 random bytes, URL-safe
    parts = urlsplit(auth_url)
    assert f"{parts.scheme}://{parts.netloc}" == hubspot.url and parts.path == "/oauth/authorize"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["client_id"] == "client-hubspot" and query["response_type"] == "code"
    assert query["redirect_uri"] == f"{API_BASE}/integrations/hubspot/oauth/callback"
    assert query["state"] == state and "crm.objects.contacts.read" in query["scope"].split(" ")
    assert CLIENT_SECRET not in auth_url
    row = state_row(state)
    assert row["userId"] == user["userId"] and row["accountId"] == account["accountId"]
    assert row["platform"] == "hubspot" and row["returnUrl"] == RETURN_URL and row["name"] == "HubSpot"
    assert "sourceId" not in row
    assert abs(int(row["expiresAt"]) - (time.time() + 600)) < 30
    assert state not in json.dumps([{k: str(v) for k, v in r.items()} for r in scan("oauth-states")])
    [event] = events(account["accountId"], "integrations.oauth.initiate")
    assert event["details"] == {"platform": "hubspot"}


def test_initiate_adds_the_platforms_authorize_parameters(hubspot):
    _, _, me = seed_tenant()
    body = initiate(me, "google-drive")[1]
    query = {k: v[0] for k, v in parse_qs(urlsplit(body["data"]["authUrl"]).query).items()}
    assert query["access_type"] == "offline" and query["prompt"] == "consent"
    assert query["scope"] == "https://www.googleapis.com/auth/drive.readonly"


FOREIGN_RETURN_URLS = (
    "https://evil.example.com/sources",
    "https://app.test.listbackup.ai.evil.com/",
    "https://app.test.listbackup.ai@evil.com/",
    "http://app.test.listbackup.ai/sources",              # the origin's scheme is https
    "https://app.test.listbackup.ai:8443/sources",
    "javascript:alert(1)//https://app.test.listbackup.ai",
    "//evil.example.com/x",
    "https://app.test.listbackup.ai/\r\nLocation: https://evil.example.com",
)


def test_a_return_url_off_the_stages_origins_is_refused(hubspot):
    _, account, me = seed_tenant()
    for return_url in FOREIGN_RETURN_URLS:
        status, body = integrations_call("POST /integrations/{type}/oauth/initiate", me,
                                         path={"type": "hubspot"}, body={"returnUrl": return_url})
        assert status == 400 and body["code"] == "validation_failed", (return_url, body)
    assert scan("oauth-states") == [] and events(account["accountId"]) == []


def test_return_urls_on_any_allowed_origin_are_accepted(hubspot):
    _, _, me = seed_tenant()
    for url in ("http://localhost:3000/cb", "HTTPS://APP.test.listbackup.ai:443/x"):
        status, body = integrations_call("POST /integrations/{type}/oauth/initiate", me,
                                         path={"type": "hubspot"}, body={"returnUrl": url})
        assert status == 200, (url, body)


def test_initiate_refuses_unknown_and_api_key_platforms_and_viewers(hubspot):
    _, _, me = seed_tenant()
    status, body = initiate(me, "no-such-platform")
    assert status == 404 and body["code"] == "not_found"
    status, body = initiate(me, "stripe")
    assert status == 400 and body["code"] == "invalid_request" and "POST /sources" in body["error"]
    status, body = initiate({**me, "role": "viewer"})
    assert status == 403 and body["code"] == "forbidden"
    assert scan("oauth-states") == []


def test_an_unconfigured_oauth_app_answers_503(hubspot):
    unconfigure("hubspot")
    _, _, me = seed_tenant()
    status, body = initiate(me)
    assert status == 503 and body["code"] == "unavailable"
    assert "not configured on this stage" in body["error"]
    assert scan("oauth-states") == []


def test_initiate_checks_settings_and_the_source_it_reconnects(hubspot):
    _, account, me = seed_tenant()
    _, other_account, _ = seed_tenant()
    status, body = initiate(me, "box", settings={"folder_id": "not-a-number"})
    assert status == 400 and body["fields"] == ["settings.folder_id"]
    status, body = initiate(me, settings={"anything": "x"})
    assert status == 400 and body["fields"] == ["settings.anything"]
    foreign = store.create_source(other_account["accountId"], name="Theirs", type="hubspot", settings={},
                                  credentials={"access_token": "t"}, actor="usr_x")
    box = store.create_source(account["accountId"], name="Box", type="box", settings={},
                              credentials={"access_token": "t"}, actor="usr_x")
    for source_id in (foreign["sourceId"], box["sourceId"], "src_missing"):
        status, body = initiate(me, sourceId=source_id)
        assert status == 404 and body["code"] == "not_found"
    assert scan("oauth-states") == []


def test_initiate_refuses_a_new_source_beyond_the_plan_limit(hubspot):
    _, account, me = seed_tenant(plan="free", source_count=3)
    status, body = initiate(me)
    assert status == 402 and body["code"] == "plan_limit"


# --------------------------------------------------------------------------- callback

def test_the_full_flow_creates_an_active_source_with_encrypted_tokens(hubspot, logs):
    user, account, me = seed_tenant()
    state = initiate(me, name="Our CRM")[1]["data"]["state"]
    result = callback(code=CODE, state=state)
    target, query = outcome(result)
    assert target == f"{APP_ORIGIN}/sources/connected"
    assert query["status"] == "connected" and query["tab"] == "crm" and "error" not in query
    source_id = query["sourceId"]
    row = get_row("sources", accountId=account["accountId"], sourceId=source_id)
    assert row["status"] == "active" and row["type"] == "hubspot" and row["name"] == "Our CRM"
    assert row["createdBy"] == user["userId"]
    stored = store.load_credentials(row)
    assert stored["access_token"] == ACCESS_TOKEN and stored["refresh_token"] == REFRESH_TOKEN
    assert stored["expires_at"] > time.time() + 1700 and stored["hub_id"] == 4242
    dumped = json.dumps(raw_item("sources", accountId=account["accountId"], sourceId=source_id))
    assert ACCESS_TOKEN not in dumped and REFRESH_TOKEN not in dumped
    assert source_count(account["accountId"]) == 1
    # the token endpoint saw the code, the client and the same redirect URI
    [exchange] = hubspot.requests_to("/oauth/v1/token")
    assert exchange.form == {"grant_type": "authorization_code", "code": CODE,
                             "redirect_uri": f"{API_BASE}/integrations/hubspot/oauth/callback",
                             "client_id": "client-hubspot", "client_secret": CLIENT_SECRET}
    assert state_row(state) is None                      # consumed
    [event] = events(account["accountId"], "sources.create")
    assert event["actor"] == user["userId"] and event["details"]["via"] == "oauth"
    # the API shows the connection without its tokens
    from tests.handlers.test_sources_support import sources_call

    view = sources_call("GET /sources/{sourceId}", me, path={"sourceId": source_id})[1]["data"]
    assert view["credentials"]["access_token"] == "set" and ACCESS_TOKEN not in json.dumps(view)
    output = logs.read()
    for secret in (ACCESS_TOKEN, REFRESH_TOKEN, CODE, state, CLIENT_SECRET):
        assert secret not in output and secret not in result["headers"]["location"]


def test_a_replayed_state_is_refused(hubspot):
    _, account, me = seed_tenant()
    state = initiate(me)[1]["data"]["state"]
    assert outcome(callback(code=CODE, state=state))[1]["status"] == "connected"
    result = callback(code=CODE, state=state)
    assert result["statusCode"] == 400 and json.loads(result["body"])["code"] == "invalid_request"
    assert source_count(account["accountId"]) == 1 and len(hubspot.requests_to("/oauth/v1/token")) == 1


def test_an_expired_state_is_refused_even_before_ttl_removes_it(hubspot):
    _, account, me = seed_tenant()
    state = initiate(me)[1]["data"]["state"]
    table("oauth-states").update_item(Key={"state": hashlib.sha256(state.encode()).hexdigest()},
                                      UpdateExpression="SET expiresAt = :past",
                                      ExpressionAttributeValues={":past": int(time.time()) - 1})
    result = callback(code=CODE, state=state)
    assert result["statusCode"] == 400 and json.loads(result["body"])["code"] == "invalid_request"
    assert hubspot.requests_to("/oauth/v1/token") == [] and source_count(account["accountId"]) == 0


def test_an_unknown_or_missing_state_answers_400_without_redirecting(hubspot):
    for query in ({}, {"code": CODE}, {"code": CODE, "state": "made-up"},
                  {"code": CODE, "state": "x" * 600}, {"error": "access_denied", "state": "made-up"}):
        result = callback(**query)
        assert result["statusCode"] == 400 and "location" not in result["headers"], query
        assert json.loads(result["body"])["code"] == "invalid_request"
    assert hubspot.requests_to("/oauth/v1/token") == []


@pytest.mark.parametrize("error, code", [("access_denied", "access_denied"),
                                         ("<script>alert(1)</script>", "authorization_failed")])
def test_a_platform_error_goes_back_to_the_app_as_a_code(hubspot, error, code):
    _, account, me = seed_tenant()
    state = initiate(me)[1]["data"]["state"]
    result = callback(state=state, error=error, error_description="The user said no")
    target, query = outcome(result)
    assert target == f"{APP_ORIGIN}/sources/connected"
    assert query == {"tab": "crm", "status": "error", "error": code}
    assert hubspot.requests_to("/oauth/v1/token") == [] and source_count(account["accountId"]) == 0
    [event] = events(account["accountId"], "integrations.oauth.callback")
    assert event["outcome"] == "failure" and event["details"] == {"error": code}
    assert state_row(state) is None


def test_a_refused_code_redirects_with_exchange_failed(hubspot):
    _, account, me = seed_tenant()
    state = initiate(me)[1]["data"]["state"]
    assert outcome(callback(code="wrong-code", state=state))[1]["error"] == "exchange_failed"
    assert source_count(account["accountId"]) == 0


def test_a_state_used_on_another_platforms_callback_is_a_mismatch(hubspot):
    _, account, me = seed_tenant()
    state = initiate(me)[1]["data"]["state"]
    assert outcome(callback("box", code=CODE, state=state))[1]["error"] == "platform_mismatch"
    assert state_row(state) is None and hubspot.requests_to("/oauth/v1/token") == []


def test_the_plan_limit_reached_meanwhile_redirects_with_plan_limit(hubspot):
    _, account, me = seed_tenant(plan="free", source_count=2)
    state = initiate(me)[1]["data"]["state"]
    table("accounts").update_item(Key={"accountId": account["accountId"]},
                                  UpdateExpression="SET sourceCount = :n", ExpressionAttributeValues={":n": 3})
    assert outcome(callback(code=CODE, state=state))[1]["error"] == "plan_limit"


def test_a_member_removed_meanwhile_cannot_complete_the_connection(hubspot):
    user, account, me = seed_tenant()
    state = initiate(me)[1]["data"]["state"]
    table("users-accounts").delete_item(Key={"userId": user["userId"], "accountId": account["accountId"]})
    assert outcome(callback(code=CODE, state=state))[1]["error"] == "forbidden"
    assert hubspot.requests_to("/oauth/v1/token") == [] and source_count(account["accountId"]) == 0


def test_an_app_unconfigured_meanwhile_redirects_with_not_configured(hubspot):
    _, _, me = seed_tenant()
    state = initiate(me)[1]["data"]["state"]
    unconfigure("hubspot")
    assert outcome(callback(code=CODE, state=state))[1]["error"] == "not_configured"


def test_an_unexpected_fault_redirects_with_internal_and_no_trace(hubspot, monkeypatch, logs):
    _, account, me = seed_tenant()
    state = initiate(me)[1]["data"]["state"]

    def broken(*args, **kwargs):
        raise RuntimeError("boom with a secret " + ACCESS_TOKEN)

    monkeypatch.setattr(store, "create_source", broken)
    result = callback(code=CODE, state=state)
    assert outcome(result)[1] == {"tab": "crm", "status": "error", "error": "internal"}
    output = logs.read()
    assert "RuntimeError" in output and "boom" not in output and ACCESS_TOKEN not in output
    assert result["body"] == ""


def test_reconnecting_a_source_stores_new_tokens_and_reactivates_it(hubspot):
    user, account, me = seed_tenant()
    row = store.create_source(account["accountId"], name="HubSpot", type="hubspot", settings={},
                              credentials={"access_token": "revoked", "refresh_token": "revoked"},
                              status="error", actor=user["userId"])
    table("sources").update_item(Key={"accountId": account["accountId"], "sourceId": row["sourceId"]},
                                 UpdateExpression="SET lastTest = :t",
                                 ExpressionAttributeValues={":t": {"ok": False, "status": 401}})
    status, body = initiate(me, sourceId=row["sourceId"])
    assert status == 200, body
    state = body["data"]["state"]
    assert state_row(state)["sourceId"] == row["sourceId"]
    _, query = outcome(callback(code=CODE, state=state))
    assert query["status"] == "connected" and query["sourceId"] == row["sourceId"]
    updated = get_row("sources", accountId=account["accountId"], sourceId=row["sourceId"])
    assert updated["status"] == "active" and "lastTest" not in updated and updated["name"] == "HubSpot"
    assert store.load_credentials(updated)["access_token"] == ACCESS_TOKEN
    assert source_count(account["accountId"]) == 1                 # no new source
    [event] = events(account["accountId"], "sources.update")
    assert event["details"]["via"] == "oauth"


def test_a_source_deleted_before_the_callback_is_reported(hubspot):
    user, account, me = seed_tenant()
    row = store.create_source(account["accountId"], name="HubSpot", type="hubspot", settings={},
                              credentials={"access_token": "t"}, actor=user["userId"])
    state = initiate(me, sourceId=row["sourceId"])[1]["data"]["state"]
    store.delete_source(account["accountId"], row["sourceId"])
    assert outcome(callback(code=CODE, state=state))[1]["error"] == "source_not_found"
    assert source_count(account["accountId"]) == 0


def test_settings_given_at_initiate_land_on_the_new_source(hubspot):
    fake = hubspot
    fake.on("POST /oauth2/token", (200, TOKENS, {}))
    _, account, me = seed_tenant()
    state = initiate(me, "box", settings={"folder_id": "12345"})[1]["data"]["state"]
    _, query = outcome(callback("box", code=CODE, state=state))
    assert query["status"] == "connected"
    row = get_row("sources", accountId=account["accountId"], sourceId=query["sourceId"])
    assert row["settings"] == {"folder_id": "12345"} and row["name"] == "Box"
