"""``POST /sources/{sourceId}/test`` through the real paging engine against a fake platform
on 127.0.0.1: success, rejected credentials, an unavailable platform, paused sources, and
OAuth tokens refreshed on the way and stored again, encrypted."""

from __future__ import annotations

import json
import time

import pytest

from handlers.shared import sources as store
from tests.handlers.test_sources_support import (  # noqa: F401  (fixtures)
    ACCESS_TOKEN, CLIENT_SECRET, REFRESH_TOKEN, REJECTED_KEY, STRIPE_KEY,
    create_stripe, events, get_row, logs, platform, raw_item, seed_tenant, sources_call, stage,
    stripe_customers)

pytestmark = pytest.mark.usefixtures("stage")


def test_a_working_key_records_a_successful_test(platform):
    platform.serve("stripe").on("GET /v1/customers", stripe_customers)
    user, account, me = seed_tenant()
    source = create_stripe(me)
    status, body = sources_call("POST /sources/{sourceId}/test", me, path={"sourceId": source["sourceId"]})
    assert status == 200, body
    data = body["data"]
    assert data["status"] == "active" and data["credentials"] == {"api_key": "set"}
    test = data["lastTest"]
    assert test["ok"] is True and test["status"] == 200 and "Stripe" in test["message"]
    assert test["at"].endswith("Z")
    [request] = platform.requests_to("/v1/customers")      # one page of the cheapest endpoint
    assert request.headers["authorization"] == f"Bearer {STRIPE_KEY}"
    row = get_row("sources", accountId=account["accountId"], sourceId=source["sourceId"])
    assert row["lastTest"]["ok"] is True
    [event] = events(account["accountId"], "sources.test")
    assert event["outcome"] == "success" and event["details"] == {"type": "stripe", "ok": True}
    assert event["actor"] == user["userId"]


def test_a_rejected_key_marks_the_source_error_with_the_reason(platform):
    platform.serve("stripe").on("GET /v1/customers", stripe_customers)
    _, account, me = seed_tenant()
    source = create_stripe(me, key=REJECTED_KEY)
    path = {"sourceId": source["sourceId"]}
    status, body = sources_call("POST /sources/{sourceId}/test", me, path=path)
    assert status == 200, body
    assert body["data"]["status"] == "error"
    test = body["data"]["lastTest"]
    assert test["ok"] is False and test["status"] == 401 and "refused" in test["message"]
    assert REJECTED_KEY not in json.dumps(body)
    [event] = events(account["accountId"], "sources.test")
    assert event["outcome"] == "failure" and event["details"]["kind"] == "auth"
    # the user fixes the key: the source may run again, and the next test proves it
    fixed = sources_call("PUT /sources/{sourceId}", me, path=path, body={"credentials": {"api_key": STRIPE_KEY}})
    assert fixed[1]["data"]["status"] == "active" and fixed[1]["data"]["lastTest"] is None
    body = sources_call("POST /sources/{sourceId}/test", me, path=path)[1]
    assert body["data"]["status"] == "active" and body["data"]["lastTest"]["ok"] is True


def test_a_platform_that_is_unavailable_does_not_blame_the_credentials(platform):
    platform.serve("stripe").on("GET /v1/customers", (429, {"error": "slow down"}, {"Retry-After": "3600"}))
    _, _, me = seed_tenant()
    source = create_stripe(me)
    body = sources_call("POST /sources/{sourceId}/test", me, path={"sourceId": source["sourceId"]})[1]
    assert body["data"]["status"] == "active"
    assert body["data"]["lastTest"]["ok"] is False and body["data"]["lastTest"]["status"] == 429


def test_an_unreachable_platform_is_a_failed_test_not_a_fault(platform, monkeypatch):
    platform.serve("stripe")
    monkeypatch.setenv("LISTBACKUP_PLATFORM_URLS", json.dumps({"stripe": "http://127.0.0.1:9"}))
    from handlers.shared.connectors import engine

    real_init = engine.Connector.__init__

    def quick(self, *args, **kwargs):   # the real engine, without waiting between retries
        kwargs["sleep"] = lambda seconds: None
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(engine.Connector, "__init__", quick)
    _, _, me = seed_tenant()
    source = create_stripe(me)
    status, body = sources_call("POST /sources/{sourceId}/test", me, path={"sourceId": source["sourceId"]})
    assert status == 200
    assert body["data"]["lastTest"]["ok"] is False and body["data"]["lastTest"]["status"] is None
    assert body["data"]["status"] == "active"


@pytest.mark.parametrize("key, ok", [(STRIPE_KEY, True), (REJECTED_KEY, False)])
def test_a_paused_source_stays_paused_whatever_the_outcome(platform, key, ok):
    platform.serve("stripe").on("GET /v1/customers", stripe_customers)
    _, _, me = seed_tenant()
    source = create_stripe(me, key=key)
    path = {"sourceId": source["sourceId"]}
    sources_call("PUT /sources/{sourceId}", me, path=path, body={"status": "paused"})
    body = sources_call("POST /sources/{sourceId}/test", me, path=path)[1]
    assert body["data"]["status"] == "paused" and body["data"]["lastTest"]["ok"] is ok


def hubspot_source(account_id: str, *, expires_at: int) -> dict:
    return store.create_source(account_id, name="HubSpot", type="hubspot", settings={},
                               credentials={"access_token": "old-" + ACCESS_TOKEN,
                                            "refresh_token": REFRESH_TOKEN,
                                            "token_type": "bearer", "expires_at": expires_at},
                               actor="usr_test")


def test_an_expiring_oauth_token_is_refreshed_and_the_new_tokens_stored_encrypted(platform, logs):
    fake = platform.serve("hubspot")
    fake.on("POST /oauth/v1/token", (200, {"access_token": ACCESS_TOKEN, "refresh_token": REFRESH_TOKEN + "-2",
                                           "expires_in": 1800, "token_type": "bearer"}, {}))

    def owners(seen):
        if seen.headers.get("authorization") != f"Bearer {ACCESS_TOKEN}":
            return 401, {"status": "error", "category": "EXPIRED_AUTHENTICATION"}, {}
        return 200, {"results": [{"id": "1", "email": "o@example.com"}]}, {}

    fake.on("GET /crm/v3/owners", owners)
    _, account, me = seed_tenant()
    row = hubspot_source(account["accountId"], expires_at=int(time.time()) + 10)
    status, body = sources_call("POST /sources/{sourceId}/test", me, path={"sourceId": row["sourceId"]})
    assert status == 200, body
    assert body["data"]["lastTest"]["ok"] is True and body["data"]["status"] == "active"
    [refresh] = fake.requests_to("/oauth/v1/token")
    assert refresh.form["grant_type"] == "refresh_token" and refresh.form["refresh_token"] == REFRESH_TOKEN
    assert refresh.form["client_id"] == "client-hubspot" and refresh.form["client_secret"] == CLIENT_SECRET
    stored = store.load_credentials(get_row("sources", accountId=account["accountId"], sourceId=row["sourceId"]))
    assert stored["access_token"] == ACCESS_TOKEN and stored["refresh_token"] == REFRESH_TOKEN + "-2"
    assert stored["expires_at"] > time.time() + 1700
    dumped = json.dumps(raw_item("sources", accountId=account["accountId"], sourceId=row["sourceId"]))
    assert ACCESS_TOKEN not in dumped and REFRESH_TOKEN not in dumped
    output = logs.read()
    assert ACCESS_TOKEN not in output and REFRESH_TOKEN not in output and CLIENT_SECRET not in output


def test_a_revoked_refresh_token_marks_the_oauth_source_error(platform):
    fake = platform.serve("hubspot")
    fake.on("POST /oauth/v1/token", (400, {"error": "invalid_grant"}, {}))
    _, account, me = seed_tenant()
    row = hubspot_source(account["accountId"], expires_at=int(time.time()) - 5)
    body = sources_call("POST /sources/{sourceId}/test", me, path={"sourceId": row["sourceId"]})[1]
    assert body["data"]["status"] == "error" and body["data"]["lastTest"]["ok"] is False
    assert fake.requests_to("/crm/v3/owners") == []


def test_an_oauth_source_without_a_configured_app_fails_its_test_with_a_config_reason(platform):
    from tests.handlers.test_sources_support import unconfigure

    platform.serve("hubspot")
    unconfigure("hubspot")
    _, account, me = seed_tenant()
    row = hubspot_source(account["accountId"], expires_at=int(time.time()) - 5)
    body = sources_call("POST /sources/{sourceId}/test", me, path={"sourceId": row["sourceId"]})[1]
    assert body["data"]["lastTest"]["ok"] is False and body["data"]["status"] == "active"
    assert "OAuth" in body["data"]["lastTest"]["message"]


def test_a_source_deleted_during_its_test_answers_404(platform, monkeypatch):
    platform.serve("stripe").on("GET /v1/customers", stripe_customers)
    _, account, me = seed_tenant()
    source = create_stripe(me)
    from handlers.sources import connection

    real_check = connection.check

    def check_then_delete(row):
        outcome = real_check(row)
        store.delete_source(row["accountId"], row["sourceId"])
        return outcome

    monkeypatch.setattr(connection, "check", check_then_delete)
    status, body = sources_call("POST /sources/{sourceId}/test", me, path={"sourceId": source["sourceId"]})
    assert status == 404
    assert get_row("sources", accountId=account["accountId"], sourceId=source["sourceId"]) is None
