"""The sources service on moto: create, list, read, update and delete, with the catalog's
field rules, the plan's source limit, the account counter, the active-run guard, roles,
tenant scoping and the activity feed."""

from __future__ import annotations

import pytest

from handlers.shared import clock
from handlers.shared import sources as store
from handlers.shared.clients import table
from handlers.shared.ids import new_id
from tests.handlers.test_sources_support import (  # noqa: F401  (fixtures)
    OTHER_STRIPE_KEY, STRIPE_KEY, create_stripe, events, get_row, seed_tenant, source_count,
    sources_call, stage)

pytestmark = pytest.mark.usefixtures("stage")

ZENDESK = {"name": "Helpdesk", "type": "zendesk",
           "settings": {"subdomain": "acme", "email": "ops@acme.example"},
           "credentials": {"api_token": "A" * 40}}


def all_sources(account_id: str) -> list[dict]:
    from boto3.dynamodb.conditions import Key

    return table("sources").query(KeyConditionExpression=Key("accountId").eq(account_id))["Items"]


# --------------------------------------------------------------------------- create

def test_create_stores_an_active_source_and_shows_only_which_credentials_are_set():
    user, account, me = seed_tenant("manager")
    status, body = sources_call("POST /sources", me, body={
        "name": "  Stripe live  ", "type": "stripe", "credentials": {"api_key": f" {STRIPE_KEY} "}})
    assert status == 201, body
    data = body["data"]
    assert set(data) == {"sourceId", "name", "type", "status", "settings", "credentials", "lastTest",
                         "lastRunAt", "createdAt", "updatedAt"}
    assert data["sourceId"].startswith("src_") and data["name"] == "Stripe live"
    assert data["type"] == "stripe" and data["status"] == "active" and data["settings"] == {}
    assert data["credentials"] == {"api_key": "set"}
    assert data["lastTest"] is None and data["lastRunAt"] is None
    assert data["createdAt"].endswith("Z") and data["createdAt"] == data["updatedAt"]
    row = get_row("sources", accountId=account["accountId"], sourceId=data["sourceId"])
    assert row["createdBy"] == user["userId"] and row["credentialFields"] == ["api_key"]
    assert store.load_credentials(row) == {"api_key": STRIPE_KEY}   # trimmed
    assert source_count(account["accountId"]) == 1
    [event] = events(account["accountId"], "sources.create")
    assert event["actor"] == user["userId"] and event["resourceId"] == data["sourceId"]
    assert event["details"] == {"name": "Stripe live", "type": "stripe"}


def test_create_with_settings_and_credentials_of_the_platform():
    _, account, me = seed_tenant()
    status, body = sources_call("POST /sources", me, body=ZENDESK)
    assert status == 201, body
    assert body["data"]["settings"] == {"subdomain": "acme", "email": "ops@acme.example"}
    assert body["data"]["credentials"] == {"api_token": "set"}


@pytest.mark.parametrize("body, fields", [
    ({"name": "x", "type": "stripe", "credentials": {}}, ["credentials.api_key"]),
    ({"name": "x", "type": "stripe", "credentials": {"api_key": "   "}}, ["credentials.api_key"]),
    ({"name": "x", "type": "stripe", "credentials": {"api_key": "pk_test_abc"}}, ["credentials.api_key"]),
    ({"name": "x", "type": "stripe", "credentials": {"api_key": STRIPE_KEY, "extra": "1"}},
     ["credentials.extra"]),
    ({"name": "x", "type": "stripe", "settings": {"region": "eu"}, "credentials": {"api_key": STRIPE_KEY}},
     ["settings.region"]),
    ({**ZENDESK, "settings": {"subdomain": "Not A Subdomain!"}, "credentials": {"api_token": "short"}},
     ["credentials.api_token", "settings.email", "settings.subdomain"]),
    ({**ZENDESK, "credentials": {"subdomain": "acme", "api_token": "A" * 40}}, ["credentials.subdomain"]),
    ({"name": "x", "type": "no-such-platform", "credentials": {"k": "v"}}, ["type"]),
    ({"name": "x", "type": "stripe"}, ["credentials"]),
    ({"name": " ", "type": "stripe", "credentials": {"api_key": STRIPE_KEY}}, ["name"]),
    ({"name": "x", "type": "stripe", "credentials": {"api_key": 42}}, ["credentials.api_key"]),
    ({"name": "x", "type": "stripe", "credentials": {"api_key": STRIPE_KEY}, "status": "active"}, ["status"]),
])
def test_create_refuses_bad_input_naming_the_fields_and_writes_nothing(body, fields):
    _, account, me = seed_tenant()
    status, reply = sources_call("POST /sources", me, body=body)
    assert status == 400 and reply["code"] == "validation_failed", reply
    assert reply["fields"] == fields
    assert all_sources(account["accountId"]) == [] and source_count(account["accountId"]) == 0
    assert events(account["accountId"]) == []


@pytest.mark.parametrize("platform_id", ["hubspot", "google-drive", "dropbox", "box", "gohighlevel"])
def test_oauth_platforms_connect_through_oauth_initiate_not_post_sources(platform_id):
    _, account, me = seed_tenant()
    status, reply = sources_call("POST /sources", me, body={
        "name": "x", "type": platform_id, "credentials": {"access_token": "abc"}})
    assert status == 400 and reply["code"] == "invalid_request"
    assert f"/integrations/{platform_id}/oauth/initiate" in reply["error"]
    assert all_sources(account["accountId"]) == []


def test_the_plan_limit_answers_402_and_keeps_the_counter():
    _, account, me = seed_tenant(plan="free")          # 3 sources
    for _ in range(3):
        create_stripe(me)
    status, reply = sources_call("POST /sources", me, body={
        "name": "fourth", "type": "stripe", "credentials": {"api_key": STRIPE_KEY}})
    assert status == 402 and reply["code"] == "plan_limit" and "3 sources" in reply["error"]
    assert len(all_sources(account["accountId"])) == 3 and source_count(account["accountId"]) == 3


def test_the_limit_is_checked_in_the_transaction_not_only_before_it(monkeypatch):
    """Another create took the last slot between the read and the write."""
    _, account, me = seed_tenant(plan="free", source_count=2)
    real_get = store.get_account

    def stale_read(account_id):
        row = real_get(account_id)
        table("accounts").update_item(Key={"accountId": account_id},
                                      UpdateExpression="SET sourceCount = :three",
                                      ExpressionAttributeValues={":three": 3})
        return row

    monkeypatch.setattr(store, "get_account", stale_read)
    status, reply = sources_call("POST /sources", me, body={
        "name": "racing", "type": "stripe", "credentials": {"api_key": STRIPE_KEY}})
    assert status == 402 and reply["code"] == "plan_limit"
    assert all_sources(account["accountId"]) == [] and source_count(account["accountId"]) == 3


def test_a_sub_account_uses_its_parents_plan_for_the_limit():
    owner, root, _ = seed_tenant("owner", plan="pro")
    _, child, child_me = seed_tenant("manager", parent=root, source_count=3)
    create_stripe(child_me)
    assert source_count(child["accountId"]) == 4


def test_viewers_read_but_do_not_change_sources():
    user, account, manager = seed_tenant("manager")
    source = create_stripe(manager)
    viewer = {**manager, "role": "viewer"}
    path = {"sourceId": source["sourceId"]}
    assert sources_call("GET /sources", viewer)[0] == 200
    assert sources_call("GET /sources/{sourceId}", viewer, path=path)[0] == 200
    for route, body in (("POST /sources", {"name": "x", "type": "stripe", "credentials": {"api_key": STRIPE_KEY}}),
                        ("PUT /sources/{sourceId}", {"name": "y"}),
                        ("DELETE /sources/{sourceId}", None),
                        ("POST /sources/{sourceId}/test", None)):
        status, reply = sources_call(route, viewer, body=body, path=path)
        assert status == 403 and reply["code"] == "forbidden", route
    assert len(all_sources(account["accountId"])) == 1


# --------------------------------------------------------------------------- read

def test_list_pages_through_the_accounts_sources_only():
    _, account, me = seed_tenant(plan="pro")
    _, _, stranger = seed_tenant()
    create_stripe(stranger)
    made = {create_stripe(me, name=f"s{i}")["sourceId"] for i in range(5)}
    seen, cursor, pages = [], None, 0
    while True:
        status, body = sources_call("GET /sources", me, query={"limit": "2", **({"cursor": cursor} if cursor else {})})
        assert status == 200, body
        assert len(body["data"]["items"]) <= 2
        seen += [item["sourceId"] for item in body["data"]["items"]]
        assert all(item["credentials"] == {"api_key": "set"} for item in body["data"]["items"])
        pages += 1
        cursor = body["data"]["nextCursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(made) and len(seen) == 5 and pages >= 3
    # a cursor of this list is refused for another account's list
    first = sources_call("GET /sources", me, query={"limit": "2"})[1]["data"]["nextCursor"]
    status, body = sources_call("GET /sources", stranger, query={"cursor": first})
    assert status == 400 and body["code"] == "invalid_request"
    assert sources_call("GET /sources", me, query={"limit": "0"})[0] == 400


def test_another_accounts_source_is_not_found_for_every_route():
    _, _, owner = seed_tenant()
    source = create_stripe(owner)
    _, intruder_account, intruder = seed_tenant("owner")
    path = {"sourceId": source["sourceId"]}
    for route, body in (("GET /sources/{sourceId}", None), ("PUT /sources/{sourceId}", {"name": "mine"}),
                        ("DELETE /sources/{sourceId}", None), ("POST /sources/{sourceId}/test", None)):
        status, reply = sources_call(route, intruder, body=body, path=path)
        assert status == 404 and reply["code"] == "not_found", route
    assert sources_call("GET /sources/{sourceId}", owner, path=path)[1]["data"]["name"] == "Stripe live"
    assert sources_call("GET /sources/{sourceId}", owner, path={"sourceId": "src_nope"})[0] == 404
    assert events(intruder_account["accountId"]) == []


# --------------------------------------------------------------------------- update

def test_update_renames_pauses_and_resumes():
    user, account, me = seed_tenant()
    source = create_stripe(me)
    path = {"sourceId": source["sourceId"]}
    status, body = sources_call("PUT /sources/{sourceId}", me, path=path,
                                body={"name": "Renamed", "status": "paused"})
    assert status == 200, body
    assert body["data"]["name"] == "Renamed" and body["data"]["status"] == "paused"
    assert body["data"]["updatedAt"] >= source["updatedAt"]
    assert sources_call("PUT /sources/{sourceId}", me, path=path, body={"status": "active"})[1]["data"]["status"] == "active"
    details = [e["details"]["fields"] for e in events(account["accountId"], "sources.update")]
    assert sorted(details) == [["name", "status"], ["status"]]


@pytest.mark.parametrize("body, fields", [
    ({}, None),
    ({"status": "error"}, ["status"]),
    ({"status": "pending"}, ["status"]),
    ({"credentials": {"api_key": "nope"}}, ["credentials.api_key"]),
    ({"credentials": {"api_key": None}}, ["credentials.api_key"]),
    ({"credentials": {"unknown": "x"}}, ["credentials.unknown"]),
    ({"settings": {"x": "y"}}, ["settings.x"]),
    ({"type": "keap"}, ["type"]),
])
def test_update_refuses_bad_input_and_changes_nothing(body, fields):
    _, account, me = seed_tenant()
    source = create_stripe(me)
    before = get_row("sources", accountId=account["accountId"], sourceId=source["sourceId"])
    status, reply = sources_call("PUT /sources/{sourceId}", me, path={"sourceId": source["sourceId"]}, body=body)
    assert status == 400 and reply["code"] == "validation_failed", reply
    if fields is not None:
        assert reply["fields"] == fields
    assert get_row("sources", accountId=account["accountId"], sourceId=source["sourceId"]) == before
    assert events(account["accountId"], "sources.update") == []


def test_new_credentials_replace_the_stored_ones_and_give_an_errored_source_another_chance():
    _, account, me = seed_tenant()
    source = create_stripe(me)
    key = {"accountId": account["accountId"], "sourceId": source["sourceId"]}
    table("sources").update_item(Key=key, UpdateExpression="SET #s = :e, lastTest = :t",
                                 ExpressionAttributeNames={"#s": "status"},
                                 ExpressionAttributeValues={":e": "error", ":t": {
                                     "ok": False, "at": clock.iso(), "status": 401, "message": "refused"}})
    status, body = sources_call("PUT /sources/{sourceId}", me, path={"sourceId": source["sourceId"]},
                                body={"credentials": {"api_key": OTHER_STRIPE_KEY}})
    assert status == 200, body
    assert body["data"]["status"] == "active" and body["data"]["lastTest"] is None
    assert body["data"]["credentials"] == {"api_key": "set"}
    assert store.load_credentials(get_row("sources", **key)) == {"api_key": OTHER_STRIPE_KEY}


def test_settings_are_replaced_whole_and_credentials_merged_field_by_field():
    _, account, me = seed_tenant()
    status, created = sources_call("POST /sources", me, body=ZENDESK)
    path = {"sourceId": created["data"]["sourceId"]}
    key = {"accountId": account["accountId"], "sourceId": path["sourceId"]}
    status, body = sources_call("PUT /sources/{sourceId}", me, path=path,
                                body={"settings": {"subdomain": "acme2", "email": "new@acme.example"}})
    assert status == 200 and body["data"]["settings"] == {"subdomain": "acme2", "email": "new@acme.example"}
    # a settings object without a required field is refused
    status, body = sources_call("PUT /sources/{sourceId}", me, path=path, body={"settings": {"subdomain": "acme3"}})
    assert status == 400 and body["fields"] == ["settings.email"]
    status, body = sources_call("PUT /sources/{sourceId}", me, path=path,
                                body={"credentials": {"api_token": "B" * 30}})
    assert status == 200
    assert store.load_credentials(get_row("sources", **key)) == {"api_token": "B" * 30}


def test_credentials_of_an_oauth_source_cannot_be_typed_in():
    _, account, me = seed_tenant()
    row = store.create_source(account["accountId"], name="HubSpot", type="hubspot", settings={},
                              credentials={"access_token": "a", "refresh_token": "r"}, actor="usr_x")
    status, body = sources_call("PUT /sources/{sourceId}", me, path={"sourceId": row["sourceId"]},
                                body={"credentials": {"access_token": "mine"}})
    assert status == 400 and body["code"] == "invalid_request" and "oauth/initiate" in body["error"]
    # but it can be renamed
    status, body = sources_call("PUT /sources/{sourceId}", me, path={"sourceId": row["sourceId"]},
                                body={"name": "CRM"})
    assert status == 200 and body["data"]["credentials"] == {"access_token": "set", "refresh_token": "set"}


# --------------------------------------------------------------------------- delete

def seed_run(account_id: str, source_id: str, status: str, *, minutes_ago: int = 0) -> dict:
    from datetime import timedelta

    run = {"accountId": account_id, "runId": new_id("run"), "jobId": new_id("job"),
           "sourceId": source_id, "status": status,
           "createdAt": clock.iso(clock.now() - timedelta(minutes=minutes_ago))}
    table("runs").put_item(Item=run)
    return run


def test_delete_removes_the_row_and_its_ciphertext_and_frees_the_slot():
    user, account, me = seed_tenant()
    source = create_stripe(me)
    seed_run(account["accountId"], source["sourceId"], "completed", minutes_ago=5)
    assert source_count(account["accountId"]) == 1
    status, body = sources_call("DELETE /sources/{sourceId}", me, path={"sourceId": source["sourceId"]})
    assert (status, body) == (200, {"success": True, "data": None})
    assert get_row("sources", accountId=account["accountId"], sourceId=source["sourceId"]) is None
    assert source_count(account["accountId"]) == 0
    [event] = events(account["accountId"], "sources.delete")
    assert event["resourceId"] == source["sourceId"] and event["actor"] == user["userId"]
    status, body = sources_call("DELETE /sources/{sourceId}", me, path={"sourceId": source["sourceId"]})
    assert status == 404


@pytest.mark.parametrize("run_status", ["pending", "running"])
def test_delete_refuses_while_a_run_is_active(run_status):
    _, account, me = seed_tenant()
    source = create_stripe(me)
    seed_run(account["accountId"], source["sourceId"], "failed", minutes_ago=60)
    run = seed_run(account["accountId"], source["sourceId"], run_status)
    status, body = sources_call("DELETE /sources/{sourceId}", me, path={"sourceId": source["sourceId"]})
    assert status == 409 and body["code"] == "conflict"
    assert get_row("sources", accountId=account["accountId"], sourceId=source["sourceId"]) is not None
    assert source_count(account["accountId"]) == 1 and events(account["accountId"], "sources.delete") == []
    table("runs").update_item(Key={"accountId": account["accountId"], "runId": run["runId"]},
                              UpdateExpression="SET #s = :c", ExpressionAttributeNames={"#s": "status"},
                              ExpressionAttributeValues={":c": "completed"})
    assert sources_call("DELETE /sources/{sourceId}", me, path={"sourceId": source["sourceId"]})[0] == 200


def test_delete_with_a_drifted_counter_still_deletes_and_never_goes_negative():
    _, account, me = seed_tenant()
    source = create_stripe(me)
    table("accounts").update_item(Key={"accountId": account["accountId"]},
                                  UpdateExpression="SET sourceCount = :z", ExpressionAttributeValues={":z": 0})
    assert sources_call("DELETE /sources/{sourceId}", me, path={"sourceId": source["sourceId"]})[0] == 200
    assert source_count(account["accountId"]) == 0
