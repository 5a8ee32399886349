"""The shared activity writer (handlers.shared.activity): events, their expiry, the daily
counters behind ``GET /activity/stats``, and ids that sort by time."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from boto3.dynamodb.conditions import Key

from handlers.shared import activity, clock
from handlers.shared.clients import table
from handlers.shared.http import Request
from handlers.shared.routing import Route
from tests.support import api_event

MOMENT = datetime(2026, 3, 15, 23, 59, 58, 123456, tzinfo=timezone.utc)


@pytest.fixture
def at(backend, monkeypatch):
    """Set the writer's clock: ``at(moment)``."""

    def set_clock(moment: datetime) -> None:
        monkeypatch.setattr(clock, "now", lambda: moment)

    set_clock(MOMENT)
    return set_clock


def event(account: str, event_id: str) -> dict | None:
    return table("activity").get_item(Key={"accountId": account, "eventId": event_id}).get("Item")


def counter(account: str, day_type: str) -> int | None:
    """The day's count of the action, all its shards added (None: never counted)."""
    day, action = day_type.split("#")
    return activity.day_count(account, day, action) or None


def test_record_writes_the_event_with_a_90_day_expiry(at):
    event_id = activity.record(account_id="acc_1", action="source.create", actor="usr_1",
                               resource_type="source", resource_id="src_1",
                               source_ip="203.0.113.5", details={"name": "CRM"})
    item = event("acc_1", event_id)
    expires = int(item.pop("expiresAt"))
    assert item == {
        "accountId": "acc_1", "eventId": event_id, "type": "source.create", "actor": "usr_1",
        "resourceType": "source", "resourceId": "src_1", "outcome": "success",
        "sourceIp": "203.0.113.5", "createdAt": "2026-03-15T23:59:58.123Z",
        "details": {"name": "CRM"}}
    assert abs(expires - (time.time() + 90 * 86400)) < 60
    assert activity.RETENTION_DAYS == 90


def test_record_of_a_failure_without_actor_or_resource(at):
    event_id = activity.record(account_id="acc_1", action="auth.login", actor=None,
                               resource_type="user", outcome="failure")
    item = event("acc_1", event_id)
    assert (item["actor"], item["resourceId"], item["sourceIp"], item["outcome"]) == (
        "anonymous", "", "", "failure")
    assert "details" not in item


def test_record_bumps_the_counter_of_its_day_and_action(at):
    for _ in range(3):
        activity.record(account_id="acc_1", action="auth.login", actor="usr_1", resource_type="user")
    activity.record(account_id="acc_1", action="auth.logout", actor="usr_1", resource_type="user")
    at(MOMENT + timedelta(seconds=2))        # past midnight UTC: the next day's counter
    activity.record(account_id="acc_1", action="auth.login", actor="usr_1", resource_type="user")
    activity.record(account_id="acc_2", action="auth.login", actor="usr_2", resource_type="user")
    assert counter("acc_1", "2026-03-15#auth.login") == 3
    assert counter("acc_1", "2026-03-15#auth.logout") == 1
    assert counter("acc_1", "2026-03-16#auth.login") == 1
    assert counter("acc_2", "2026-03-16#auth.login") == 1
    assert counter("acc_2", "2026-03-15#auth.login") is None
    rows = [r for r in table("activity-counters").query(
        KeyConditionExpression=Key("accountId").eq("acc_1"))["Items"]
        if activity.parse_counter_key(r["dayType"]) == ("2026-03-15", "auth.login")]
    assert rows and all(abs(int(r["expiresAt"]) - (time.time() + 91 * 86400)) < 60 for r in rows)


def request_for(identity: dict | None) -> Request:
    raw = api_event("DELETE /sources/{sourceId}", identity=identity, path={"sourceId": "src_9"})
    return Request(route=Route("DELETE", "/sources/{sourceId}", "delete_source", "manager"),
                   body=None, path=raw["pathParameters"], query={}, headers={},
                   user_id=(identity or {}).get("userId"), account_id=(identity or {}).get("accountId"),
                   role=(identity or {}).get("role"), raw=raw)


def test_record_request_takes_actor_account_and_source_ip_from_the_request(at):
    request = request_for({"userId": "usr_7", "accountId": "acc_7", "role": "manager"})
    event_id = activity.record_request(request, "source.delete", "source", "src_9",
                                       details={"name": "Old CRM"})
    item = event("acc_7", event_id)
    assert (item["actor"], item["sourceIp"], item["type"], item["resourceId"]) == (
        "usr_7", "203.0.113.9", "source.delete", "src_9")
    assert item["details"] == {"name": "Old CRM"}
    assert counter("acc_7", "2026-03-15#source.delete") == 1


def test_record_request_with_explicit_account_actor_and_outcome(at):
    # A public route (login) has no identity: the handler names the account and actor.
    request = request_for(None)
    event_id = activity.record_request(request, "auth.login", "user", "usr_8", outcome="failure",
                                       account_id="acc_8", actor="usr_8")
    item = event("acc_8", event_id)
    assert (item["actor"], item["outcome"], item["sourceIp"]) == ("usr_8", "failure", "203.0.113.9")


def test_event_ids_sort_by_time():
    base = datetime(2026, 1, 1, tzinfo=timezone.utc)
    moments = [base + timedelta(microseconds=1), base + timedelta(seconds=1),
               base + timedelta(minutes=1), base + timedelta(hours=9), base + timedelta(days=40),
               base.replace(year=2027)]
    made = [activity.new_event_id(m) for m in [base, *moments]]
    assert made == sorted(made)
    assert len(set(activity.new_event_id(base) for _ in range(50))) == 50   # random tails
    assert made[0].startswith("evt_20260101T000000000000Z_")


def test_recorded_ids_follow_the_clock(at):
    made = []
    for seconds in (0, 1, 61, 3600):
        at(MOMENT + timedelta(seconds=seconds))
        made.append(activity.record(account_id="acc_1", action="auth.login", actor="usr_1",
                                    resource_type="user"))
    assert made == sorted(made)


def test_a_burst_of_one_action_spreads_over_counter_rows_and_the_stats_add_them_up(at):
    """Many events of one action in one day land on several counter rows (so concurrent
    transactions rarely meet on one item); ``day_count`` and ``GET /activity/stats`` add
    them up to the exact number of events."""
    from handlers.activity import api as activity_api
    from tests.support import call

    for _ in range(40):
        activity.record(account_id="acc_9", action="data.file.delete", actor="usr_9", resource_type="file")
    rows = table("activity-counters").query(KeyConditionExpression=Key("accountId").eq("acc_9"))["Items"]
    assert 1 < len(rows) <= activity.COUNTER_SHARDS
    assert activity.day_count("acc_9", "2026-03-15", "data.file.delete") == 40
    # a row written before the counters were split still counts
    table("activity-counters").put_item(Item={"accountId": "acc_9", "dayType": "2026-03-15#data.file.delete",
                                              "count": 2, "expiresAt": 0})
    status, body = call(activity_api.handler, api_event(
        "GET /activity/stats", identity={"userId": "usr_9", "accountId": "acc_9", "role": "viewer"}))
    assert status == 200
    assert body["data"]["day"]["byType"] == {"data.file.delete": 42}
