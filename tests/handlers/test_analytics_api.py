"""The analytics service on moto: figures equal to what the raw runs say after runs ended
by every kind of finisher (worker, cancel, scheduler), the daily timeseries, the account
scope, and a read cost that does not grow with the history."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import boto3
import pytest
from boto3.dynamodb.conditions import Key

from handlers.analytics import api
from handlers.jobs import scheduler
from handlers.shared import analytics, clock, runs
from handlers.shared.clients import table
from handlers.shared.dynamo import transact
from handlers.shared.ids import new_id
from tests.handlers.test_sources_support import seed_tenant, stage  # noqa: F401
from tests.handlers.test_worker import OK, Stripe, Tenant, deliver, make_records, queue, stripe  # noqa: F401
from tests.support import api_event, call


def analytics_call(route_key: str, identity: dict, query: dict | None = None) -> tuple[int, dict]:
    return call(api.handler, api_event(route_key, identity=identity, query=query))


def identity_of(tenant: Tenant, role: str = "viewer") -> dict:
    return {"userId": tenant.user["userId"], "accountId": tenant.account_id, "role": role}


def truth(account_id: str) -> dict:
    """What the runs table itself says about the account's finished runs."""
    rows = table("runs").query(IndexName="account-created-index",
                               KeyConditionExpression=Key("accountId").eq(account_id))["Items"]
    done = [r for r in rows if r["status"] in analytics.FINISHED]
    by_status = {s: sum(1 for r in done if r["status"] == s) for s in analytics.FINISHED}
    return {"runs": {"total": len(done), **by_status},
            "records": sum(int(r.get("records") or 0) for r in done),
            "bytes": sum(int(r.get("bytes") or 0) for r in done)}


def test_the_overview_equals_what_the_runs_say_whoever_ended_them(stripe, queue):
    stripe.data = {"customers": make_records("cus", 120), "charges": make_records("ch", 5)}
    t = Tenant()
    assert deliver(t.message(t.new_run())) == OK                     # completed
    stripe.broken = {"charges"}
    partial = t.new_run()
    assert deliver(t.message(partial)) == OK                         # partial
    stripe.broken = {"charges", "customers"}
    assert deliver(t.message(t.new_run())) == OK                     # failed: every endpoint
    pending = runs.get_run(t.account_id, t.new_run())
    runs.cancel_run(t.account_id, pending, actor=t.user["userId"])   # cancelled while pending
    stuck = t.new_run()                                              # the worker vanished
    table("runs").update_item(Key={"accountId": t.account_id, "runId": stuck},
                              UpdateExpression="SET #s = :r, deadline = :d, activeState = :a",
                              ExpressionAttributeNames={"#s": "status"},
                              ExpressionAttributeValues={":r": "running", ":d": clock.epoch() - 5,
                                                         ":a": "active"})
    assert scheduler.tick(clock.now())["failedStuck"] == 1

    status, body = analytics_call("GET /analytics/overview", identity_of(t))
    assert status == 200, body
    data = body["data"]
    expected = truth(t.account_id)
    assert expected["runs"] == {"total": 5, "completed": 1, "partial": 1, "failed": 2, "cancelled": 1}
    assert data["runs"] == expected["runs"]
    assert (data["records"], data["bytes"]) == (expected["records"], expected["bytes"])
    assert data["records"] == 120 + 5 + 120
    assert data["sources"] == 1 and data["jobs"] == 0    # the tenant's job was written directly
    [source] = data["bySource"]
    assert source["sourceId"] == t.source["sourceId"] and source["runs"] == 5
    assert source["lastStatus"] == "failed"
    assert source["lastBackupAt"] == runs.get_run(t.account_id, partial)["finishedAt"]
    window = data["last30Days"]
    assert window["runs"] == expected["runs"] and window["successRate"] == 0.25   # 1 of 4 finished


def test_storage_by_source_follows_the_indexed_objects(stripe, queue):
    """The indexer keeps each source's stored bytes beside the account's."""
    t = Tenant()
    other = source_id = t.source["sourceId"]
    transact([analytics.storage_item(t.account_id, source_id, 5000)])
    transact([analytics.storage_item(t.account_id, "src_other", 700)])
    transact([analytics.storage_item(t.account_id, source_id, -1000)])
    status, body = analytics_call("GET /analytics/overview", identity_of(t))
    assert [(s["sourceId"], s["storageBytes"]) for s in body["data"]["bySource"]] == \
        [(other, 4000), ("src_other", 700)]


def seed_finished(account_id: str, source_id: str, finished: datetime, status: str = "completed",
                  records: int = 10, bytes_: int = 100, runs: int = 1) -> None:
    assert transact(analytics.finished_run_items(account_id, source_id=source_id, status=status,
                                                 records=records, bytes_=bytes_,
                                                 finished_at=clock.iso(finished), runs=runs)) is None


def test_the_timeseries_has_one_point_per_day_oldest_first(backend):
    user, account, _ = seed_tenant("viewer")
    me = {"userId": user["userId"], "accountId": account["accountId"], "role": "viewer"}
    today = clock.now().replace(hour=12, minute=0, second=0, microsecond=0)
    seed_finished(account["accountId"], "src_a", today)
    seed_finished(account["accountId"], "src_a", today, status="failed", records=0, bytes_=0)
    seed_finished(account["accountId"], "src_b", today - timedelta(days=2), records=7, bytes_=70)
    seed_finished(account["accountId"], "src_b", today - timedelta(days=9), records=1000)   # outside 7
    status, body = analytics_call("GET /analytics/timeseries", me, {"days": "7"})
    assert status == 200, body
    points = body["data"]["points"]
    assert len(points) == 7 and points[-1]["date"] == today.date().isoformat()
    assert [p["date"] for p in points] == sorted(p["date"] for p in points)
    assert points[-1] == {"date": today.date().isoformat(), "runs": 2, "completed": 1, "partial": 0,
                          "failed": 1, "cancelled": 0, "records": 10, "bytes": 100}
    assert points[-3]["records"] == 7 and points[-3]["runs"] == 1
    assert sum(p["runs"] for p in points) == 3
    status, body = analytics_call("GET /analytics/timeseries", me)
    assert len(body["data"]["points"]) == 30 and sum(p["records"] for p in body["data"]["points"]) == 1017


@pytest.mark.parametrize("days", ["0", "366", "-1", "abc", "7.5", ""])
def test_a_bad_days_value_is_refused(backend, days):
    user, account, _ = seed_tenant("viewer")
    me = {"userId": user["userId"], "accountId": account["accountId"], "role": "viewer"}
    status, body = analytics_call("GET /analytics/timeseries", me, {"days": days})
    assert status == 400 and body["code"] == "validation_failed" and "days" in body["error"]


def test_another_account_sees_only_its_own_figures(backend):
    user, account, _ = seed_tenant("owner")
    seed_finished(account["accountId"], "src_a", clock.now(), records=55)
    stranger, theirs, _ = seed_tenant("owner")
    status, body = analytics_call("GET /analytics/overview", {
        "userId": stranger["userId"], "accountId": theirs["accountId"], "role": "owner"})
    assert status == 200
    assert body["data"]["runs"]["total"] == 0 and body["data"]["bySource"] == []
    assert body["data"]["last30Days"]["successRate"] is None




def test_the_read_cost_is_the_same_with_100_and_10000_runs(backend, dynamodb_calls):
    """Counted through botocore: the history's length does not change what a read costs."""
    costs = {}
    now = clock.now().replace(hour=12)
    for size in (100, 10_000):
        user, account, _ = seed_tenant("viewer")
        me = {"userId": user["userId"], "accountId": account["accountId"], "role": "viewer"}
        per_day: dict[int, int] = {}
        with boto3.resource("dynamodb").Table(table("runs").name).batch_writer() as batch:  # test seeding only
            for n in range(size):       # a run a day, then several, over a year, three sources
                day = n % 365
                finished = now - timedelta(days=day, minutes=n % 600)
                batch.put_item(Item={"accountId": account["accountId"], "runId": new_id("run"),
                                     "jobId": "job_x", "sourceId": f"src_{day % 3}", "status": "completed",
                                     "createdAt": clock.iso(finished), "finishedAt": clock.iso(finished),
                                     "records": 10, "bytes": 100})
                per_day[day] = per_day.get(day, 0) + 1
        # counted as the runs' finishers count them, one transaction per day (moto is slow
        # at transactions: ~35 ms each)
        for day, count in per_day.items():
            seed_finished(account["accountId"], f"src_{day % 3}", now - timedelta(days=day),
                          records=10 * count, bytes_=100 * count, runs=count)
        for route, query in (("GET /analytics/overview", None), ("GET /analytics/timeseries", {"days": "365"})):
            dynamodb_calls.clear()
            status, body = analytics_call(route, me, query)
            assert status == 200
            costs[(route, size)] = list(dynamodb_calls)
        status, body = analytics_call("GET /analytics/overview", me)
        assert body["data"]["runs"]["total"] == size and body["data"]["records"] == 10 * size
    for route in ("GET /analytics/overview", "GET /analytics/timeseries"):
        assert costs[(route, 100)] == costs[(route, 10_000)], route
        assert len(costs[(route, 100)]) <= 4 and "Scan" not in costs[(route, 100)]
