"""The jobs service on moto: jobs CRUD with schedules validated against the plan, endpoint
names against the catalog and the plan's job limit; runs started, queued, listed, read
and cancelled; roles, tenant scoping and the activity feed."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from handlers.shared import runs as run_store
from handlers.shared import sources as source_store
from handlers.shared.clients import table
from tests.handlers.test_sources_support import (  # noqa: F401  (fixtures)
    STRIPE_KEY, events, get_row, seed_tenant, stage)
from tests.support import api_event, call

STRIPE_ENDPOINTS = ["customers", "charges", "invoices", "subscriptions", "payouts", "products",
                    "prices", "payment_intents", "refunds", "events"]
DAILY = {"frequency": "daily", "time": "02:00"}


# --------------------------------------------------------------------------- helpers

@pytest.fixture
def job_queue(stage, monkeypatch):
    """The stage's job queue in moto; JOB_QUEUE_URL as the program sets it."""
    url = boto3.client("sqs").create_queue(QueueName="listbackup-test-jobs")["QueueUrl"]
    monkeypatch.setenv("JOB_QUEUE_URL", url)
    return url


pytestmark = pytest.mark.usefixtures("job_queue")


def queued(url: str | None = None) -> list[dict]:
    """Every message waiting on the job queue (each body parsed)."""
    import os

    sqs = boto3.client("sqs")
    out = []
    while True:
        reply = sqs.receive_message(QueueUrl=url or os.environ["JOB_QUEUE_URL"],
                                    MaxNumberOfMessages=10, VisibilityTimeout=600)
        messages = reply.get("Messages", [])
        if not messages:
            return out
        out += [json.loads(m["Body"]) for m in messages]


def tenant(role: str = "manager", *, plan: str = "free", name: str = "Stripe live"):
    """A user, an account on ``plan`` and a real Stripe source of that account;
    answers (identity, account, source row)."""
    user, account, me = seed_tenant(role, plan=plan)
    source = source_store.create_source(account["accountId"], name=name, type="stripe", settings={},
                                        credentials={"api_key": STRIPE_KEY}, actor=user["userId"])
    return me, account, source


def as_role(identity: dict, role: str) -> dict:
    return {**identity, "role": role}


def jobs_call(route_key: str, identity: dict | None, *, body: Any = None, path: dict | None = None,
              query: dict | None = None) -> tuple[int, dict]:
    from handlers.jobs import api

    return call(api.handler, api_event(route_key, identity=identity, body=body, path=path, query=query))


def new_job(identity: dict, source: dict, **fields) -> dict:
    body = {"sourceId": source["sourceId"], "name": "Nightly", "schedule": DAILY, **fields}
    status, reply = jobs_call("POST /jobs", identity, body=body)
    assert status == 201, reply
    return reply["data"]


def run_now(identity: dict, job: dict) -> dict:
    status, reply = jobs_call("POST /jobs/{jobId}/run", identity, path={"jobId": job["jobId"]})
    assert status == 202, reply
    return reply["data"]


def job_row(account: dict, job_id: str) -> dict | None:
    return get_row("jobs", accountId=account["accountId"], jobId=job_id)


def run_row(account: dict, run_id: str) -> dict | None:
    return get_row("runs", accountId=account["accountId"], runId=run_id)


def job_count(account: dict) -> int:
    return int(get_row("accounts", accountId=account["accountId"]).get("jobCount", 0))


def set_run(account: dict, run_id: str, **values) -> None:
    sets = ", ".join(f"#{k} = :{k}" for k in values)
    table("runs").update_item(Key={"accountId": account["accountId"], "runId": run_id},
                              UpdateExpression=f"SET {sets}",
                              ExpressionAttributeNames={f"#{k}": k for k in values},
                              ExpressionAttributeValues={f":{k}": v for k, v in values.items()})


# --------------------------------------------------------------------------- create

def test_create_a_daily_job_of_all_endpoints():
    me, account, source = tenant()
    status, body = jobs_call("POST /jobs", me, body={
        "sourceId": source["sourceId"], "name": "  Nightly  ", "schedule": DAILY})
    assert status == 201, body
    job = body["data"]
    assert {"jobId", "sourceId", "name", "schedule", "endpoints", "status", "nextRunAt",
            "lastRunAt", "stats"} <= set(job)
    assert job["jobId"].startswith("job_") and job["sourceId"] == source["sourceId"]
    assert job["name"] == "Nightly" and job["status"] == "active" and job["endpoints"] is None
    assert job["schedule"] == {"frequency": "daily", "time": "02:00", "dayOfWeek": None, "dayOfMonth": None}
    assert job["nextRunAt"].endswith("T02:00:00.000Z") and job["lastRunAt"] is None
    assert job["stats"] == {"runs": 0, "completed": 0, "partial": 0, "failed": 0, "cancelled": 0,
                            "records": 0, "bytes": 0, "lastStatus": None}
    assert job["isDefault"] is False and job["activeRunId"] is None
    row = job_row(account, job["jobId"])
    assert row["scheduleState"] == "scheduled" and row["nextRunAt"] == job["nextRunAt"]
    assert job_count(account) == 1
    [event] = events(account["accountId"], "jobs.create")
    assert event["resourceId"] == job["jobId"] and event["details"]["sourceId"] == source["sourceId"]


def test_a_manual_or_paused_job_stays_out_of_the_schedule_index():
    me, account, source = tenant()
    manual = new_job(me, source, schedule={"frequency": "manual"})
    paused = new_job(me, source, schedule={"frequency": "weekly", "dayOfWeek": 0}, status="paused")
    for job in (manual, paused):
        assert job["nextRunAt"] is None
        row = job_row(account, job["jobId"])
        assert "scheduleState" not in row and "nextRunAt" not in row
    assert paused["schedule"] == {"frequency": "weekly", "time": "00:00", "dayOfWeek": 0, "dayOfMonth": None}


def test_endpoints_subset_is_kept_in_catalog_order():
    me, account, source = tenant()
    job = new_job(me, source, endpoints=["invoices", "customers"])
    assert job["endpoints"] == ["customers", "invoices"]


def test_unknown_endpoint_names_are_named_and_nothing_is_written():
    me, account, source = tenant()
    status, body = jobs_call("POST /jobs", me, body={
        "sourceId": source["sourceId"], "name": "x", "schedule": DAILY,
        "endpoints": ["customers", "contacts", "tickets"]})
    assert status == 400 and body["code"] == "validation_failed"
    assert body["fields"] == ["endpoints"]
    assert "'contacts'" in body["error"] and "'tickets'" in body["error"]
    assert body["details"] == {"unknownEndpoints": ["contacts", "tickets"]}
    assert job_count(account) == 0 and events(account["accountId"], "jobs.create") == []


@pytest.mark.parametrize("schedule, field", [
    ({"frequency": "daily", "time": "2am"}, "schedule.time"),
    ({"frequency": "daily", "time": "24:00"}, "schedule.time"),
    ({"frequency": "weekly", "dayOfWeek": 7}, "schedule.dayOfWeek"),
    ({"frequency": "weekly", "dayOfWeek": -1}, "schedule.dayOfWeek"),
    ({"frequency": "weekly"}, "schedule.dayOfWeek"),
    ({"frequency": "monthly", "dayOfMonth": 31}, "schedule.dayOfMonth"),
    ({"frequency": "daily", "dayOfMonth": 3}, "schedule.dayOfMonth"),
    ({"frequency": "fortnightly"}, "schedule.frequency"),
    ({"time": "02:00"}, "schedule.frequency"),
])
def test_bad_schedules_are_refused(schedule, field):
    me, account, source = tenant()
    status, body = jobs_call("POST /jobs", me, body={
        "sourceId": source["sourceId"], "name": "x", "schedule": schedule})
    assert status == 400 and body["code"] == "validation_failed", body
    assert field in body["fields"]
    assert job_count(account) == 0


def test_hourly_needs_a_paid_plan():
    me, account, source = tenant(plan="free")
    status, body = jobs_call("POST /jobs", me, body={
        "sourceId": source["sourceId"], "name": "x", "schedule": {"frequency": "hourly"}})
    assert status == 402 and body["code"] == "plan_limit" and "daily" in body["error"]
    assert job_count(account) == 0
    me2, _, source2 = tenant(plan="starter")
    job = new_job(me2, source2, schedule={"frequency": "hourly", "time": "00:30"})
    assert job["nextRunAt"][14:] == "30:00.000Z"


def test_a_sub_account_uses_its_parents_plan_for_the_schedule():
    _, parent, _ = seed_tenant(plan="starter")
    user, child, me = seed_tenant(parent=parent)
    source = source_store.create_source(child["accountId"], name="S", type="stripe", settings={},
                                        credentials={"api_key": STRIPE_KEY})
    job = new_job(me, source, schedule={"frequency": "hourly"})
    assert job["schedule"]["frequency"] == "hourly"


def test_the_plans_job_limit_answers_402_and_writes_nothing():
    me, account, source = tenant(plan="free")
    for index in range(5):
        new_job(me, source, name=f"job {index}")
    assert job_count(account) == 5
    status, body = jobs_call("POST /jobs", me, body={
        "sourceId": source["sourceId"], "name": "sixth", "schedule": DAILY})
    assert status == 402 and body["code"] == "plan_limit" and "5 jobs" in body["error"]
    assert job_count(account) == 5
    status, listed = jobs_call("GET /jobs", me, query={"limit": "100"})
    assert len(listed["data"]["items"]) == 5


def test_the_job_limit_holds_even_when_the_counter_was_read_before_another_create(monkeypatch):
    """The limit is checked by the transaction, not only by the read before it."""
    from handlers.jobs import store

    me, account, source = tenant(plan="free")
    table("accounts").update_item(Key={"accountId": account["accountId"]},
                                  UpdateExpression="SET jobCount = :n", ExpressionAttributeValues={":n": 5})
    stale = {**get_row("accounts", accountId=account["accountId"]), "jobCount": 4}
    real = store.plan_of
    monkeypatch.setattr(store, "plan_of", lambda account_id: (stale, real(account_id)[1]))
    status, body = jobs_call("POST /jobs", me, body={
        "sourceId": source["sourceId"], "name": "racer", "schedule": DAILY})
    assert status == 402 and body["code"] == "plan_limit"
    assert job_count(account) == 5


def test_another_accounts_or_a_missing_source_is_404():
    me, account, _ = tenant()
    _, _, foreign = tenant()
    for source_id in (foreign["sourceId"], "src_missing"):
        status, body = jobs_call("POST /jobs", me, body={
            "sourceId": source_id, "name": "x", "schedule": DAILY})
        assert status == 404 and body["code"] == "not_found"
    assert job_count(account) == 0


@pytest.mark.parametrize("body, field", [
    ({"name": "x", "schedule": DAILY}, "sourceId"),
    ({"sourceId": "src_x", "schedule": DAILY}, "name"),
    ({"sourceId": "src_x", "name": "x"}, "schedule"),
    ({"sourceId": "src_x", "name": " ", "schedule": DAILY}, "name"),
    ({"sourceId": "src_x", "name": "x", "schedule": DAILY, "endpoints": []}, "endpoints"),
    ({"sourceId": "src_x", "name": "x", "schedule": DAILY, "status": "running"}, "status"),
    ({"sourceId": "src_x", "name": "x", "schedule": DAILY, "extra": 1}, "extra"),
])
def test_malformed_create_bodies_name_the_field(body, field):
    me, account, _ = tenant()
    status, reply = jobs_call("POST /jobs", me, body=body)
    assert status == 400 and reply["code"] == "validation_failed"
    assert field in reply["fields"]


# --------------------------------------------------------------------------- roles

@pytest.mark.parametrize("route_key, path, body", [
    ("POST /jobs", None, {"sourceId": "src_x", "name": "x", "schedule": DAILY}),
    ("PUT /jobs/{jobId}", {"jobId": "job_x"}, {"name": "y"}),
    ("DELETE /jobs/{jobId}", {"jobId": "job_x"}, None),
    ("POST /jobs/{jobId}/run", {"jobId": "job_x"}, None),
    ("POST /jobs/{jobId}/runs/{runId}/cancel", {"jobId": "job_x", "runId": "run_x"}, None),
])
def test_viewers_may_not_change_jobs_or_runs(route_key, path, body):
    me, account, source = tenant()
    job = new_job(me, source)
    if path and "jobId" in path:
        path = {**path, "jobId": job["jobId"]}
    status, reply = jobs_call(route_key, as_role(me, "viewer"), body=body, path=path)
    assert status == 403 and reply["code"] == "forbidden"
    assert job_row(account, job["jobId"])["name"] == "Nightly" and queued() == []


def test_viewers_read_jobs_and_runs():
    me, account, source = tenant()
    job = new_job(me, source)
    run = run_now(me, job)
    viewer = as_role(me, "viewer")
    assert jobs_call("GET /jobs", viewer)[0] == 200
    assert jobs_call("GET /jobs/{jobId}", viewer, path={"jobId": job["jobId"]})[0] == 200
    assert jobs_call("GET /jobs/{jobId}/runs", viewer, path={"jobId": job["jobId"]})[0] == 200
    assert jobs_call("GET /runs/{runId}", viewer, path={"runId": run["runId"]})[0] == 200


# --------------------------------------------------------------------------- read

def test_list_jobs_paginates_and_scopes_to_the_account():
    me, account, source = tenant(plan="starter")
    made = {new_job(me, source, name=f"job {i}")["jobId"] for i in range(5)}
    other, _, other_source = tenant()
    new_job(other, other_source)
    seen, cursor = [], None
    while True:
        status, body = jobs_call("GET /jobs", me, query={"limit": "2", **({"cursor": cursor} if cursor else {})})
        assert status == 200, body
        assert len(body["data"]["items"]) <= 2
        seen += [item["jobId"] for item in body["data"]["items"]]
        cursor = body["data"]["nextCursor"]
        if not cursor:
            break
    assert set(seen) == made and len(seen) == 5
    # a cursor of this list is refused in another account's list
    _, first = jobs_call("GET /jobs", me, query={"limit": "2"})
    status, body = jobs_call("GET /jobs", other, query={"cursor": first["data"]["nextCursor"]})
    assert status == 400 and body["code"] == "invalid_request"
    status, body = jobs_call("GET /jobs", me, query={"limit": "0"})
    assert status == 400 and body["fields"] == ["limit"]


def test_get_job_and_another_accounts_job_is_404():
    me, account, source = tenant()
    job = new_job(me, source)
    status, body = jobs_call("GET /jobs/{jobId}", me, path={"jobId": job["jobId"]})
    assert status == 200 and body["data"] == job
    other, _, _ = tenant()
    for route_key, path, body in [
            ("GET /jobs/{jobId}", {"jobId": job["jobId"]}, None),
            ("PUT /jobs/{jobId}", {"jobId": job["jobId"]}, {"name": "stolen"}),
            ("DELETE /jobs/{jobId}", {"jobId": job["jobId"]}, None),
            ("POST /jobs/{jobId}/run", {"jobId": job["jobId"]}, None),
            ("GET /jobs/{jobId}/runs", {"jobId": job["jobId"]}, None)]:
        status, reply = jobs_call(route_key, other, path=path, body=body)
        assert status == 404 and reply["code"] == "not_found", route_key
    assert job_row(account, job["jobId"])["name"] == "Nightly" and queued() == []
    assert jobs_call("GET /jobs/{jobId}", me, path={"jobId": "job_missing"})[0] == 404


# --------------------------------------------------------------------------- update

def test_update_renames_reschedules_and_recomputes_next_run():
    me, account, source = tenant()
    job = new_job(me, source)
    status, body = jobs_call("PUT /jobs/{jobId}", me, path={"jobId": job["jobId"]}, body={
        "name": "Weekly", "schedule": {"frequency": "weekly", "time": "05:45", "dayOfWeek": 6},
        "endpoints": ["charges"]})
    assert status == 200, body
    data = body["data"]
    assert data["name"] == "Weekly" and data["endpoints"] == ["charges"]
    assert data["schedule"] == {"frequency": "weekly", "time": "05:45", "dayOfWeek": 6, "dayOfMonth": None}
    from handlers.shared.clock import parse_iso
    next_run = parse_iso(data["nextRunAt"])
    assert next_run.weekday() == 6 and (next_run.hour, next_run.minute) == (5, 45)
    assert job_row(account, job["jobId"])["nextRunAt"] == data["nextRunAt"]
    [event] = events(account["accountId"], "jobs.update")
    assert event["details"]["fields"] == ["endpoints", "name", "schedule"]
    # endpoints back to all of them
    status, body = jobs_call("PUT /jobs/{jobId}", me, path={"jobId": job["jobId"]}, body={"endpoints": None})
    assert status == 200 and body["data"]["endpoints"] is None


def test_pause_and_resume_take_the_job_out_of_and_back_into_the_schedule():
    me, account, source = tenant()
    job = new_job(me, source)
    status, body = jobs_call("PUT /jobs/{jobId}", me, path={"jobId": job["jobId"]}, body={"status": "paused"})
    assert status == 200 and body["data"]["status"] == "paused" and body["data"]["nextRunAt"] is None
    row = job_row(account, job["jobId"])
    assert "scheduleState" not in row and "nextRunAt" not in row
    status, body = jobs_call("PUT /jobs/{jobId}", me, path={"jobId": job["jobId"]}, body={"status": "active"})
    assert status == 200 and body["data"]["nextRunAt"].endswith("T02:00:00.000Z")
    assert job_row(account, job["jobId"])["scheduleState"] == "scheduled"
    status, body = jobs_call("PUT /jobs/{jobId}", me, path={"jobId": job["jobId"]},
                             body={"schedule": {"frequency": "manual"}})
    assert status == 200 and body["data"]["nextRunAt"] is None
    assert "scheduleState" not in job_row(account, job["jobId"])


@pytest.mark.parametrize("body, status, code", [
    ({"schedule": {"frequency": "hourly"}}, 402, "plan_limit"),
    ({"schedule": {"frequency": "daily", "time": "25:00"}}, 400, "validation_failed"),
    ({"endpoints": ["customers", "leads"]}, 400, "validation_failed"),
    ({}, 400, "validation_failed"),
    ({"sourceId": "src_other"}, 400, "validation_failed"),
])
def test_bad_updates_change_nothing(body, status, code):
    me, account, source = tenant()
    job = new_job(me, source)
    before = job_row(account, job["jobId"])
    got, reply = jobs_call("PUT /jobs/{jobId}", me, path={"jobId": job["jobId"]}, body=body)
    assert (got, reply["code"]) == (status, code), reply
    assert job_row(account, job["jobId"]) == before
    assert events(account["accountId"], "jobs.update") == []


# --------------------------------------------------------------------------- delete

def test_delete_frees_the_plan_slot_and_keeps_past_runs():
    me, account, source = tenant()
    job = new_job(me, source)
    run = run_now(me, job)
    assert jobs_call("POST /jobs/{jobId}/runs/{runId}/cancel", me,
                     path={"jobId": job["jobId"], "runId": run["runId"]})[0] == 200
    status, body = jobs_call("DELETE /jobs/{jobId}", me, path={"jobId": job["jobId"]})
    assert (status, body) == (200, {"success": True, "data": None})
    assert job_row(account, job["jobId"]) is None and job_count(account) == 0
    assert run_row(account, run["runId"])["status"] == "cancelled"
    [event] = events(account["accountId"], "jobs.delete")
    assert event["resourceId"] == job["jobId"]
    assert jobs_call("DELETE /jobs/{jobId}", me, path={"jobId": job["jobId"]})[0] == 404


def test_delete_with_a_drifted_counter_still_deletes_and_never_goes_negative():
    me, account, source = tenant()
    job = new_job(me, source)
    table("accounts").update_item(Key={"accountId": account["accountId"]},
                                  UpdateExpression="SET jobCount = :z", ExpressionAttributeValues={":z": 0})
    assert jobs_call("DELETE /jobs/{jobId}", me, path={"jobId": job["jobId"]})[0] == 200
    assert job_row(account, job["jobId"]) is None and job_count(account) == 0
    assert len(events(account["accountId"], "jobs.delete")) == 1


def test_delete_is_refused_while_a_run_is_active():
    me, account, source = tenant()
    job = new_job(me, source)
    run_now(me, job)
    status, body = jobs_call("DELETE /jobs/{jobId}", me, path={"jobId": job["jobId"]})
    assert status == 409 and body["code"] == "conflict"
    assert job_row(account, job["jobId"]) is not None and job_count(account) == 1


# --------------------------------------------------------------------------- run

def test_run_creates_a_pending_run_and_queues_exactly_its_message():
    me, account, source = tenant()
    job = new_job(me, source, endpoints=["customers", "charges"])
    status, body = jobs_call("POST /jobs/{jobId}/run", me, path={"jobId": job["jobId"]})
    assert status == 202, body
    run = body["data"]
    assert {"runId", "jobId", "sourceId", "status", "startedAt", "finishedAt", "records", "bytes",
            "endpoints", "error"} <= set(run)
    assert run["runId"].startswith("run_") and run["jobId"] == job["jobId"]
    assert run["sourceId"] == source["sourceId"] and run["status"] == "pending"
    assert run["trigger"] == "manual" and run["startedAt"] is None and run["finishedAt"] is None
    assert run["records"] == 0 and run["bytes"] == 0 and run["error"] is None
    assert run["endpoints"] == [
        {"name": "customers", "status": "pending", "records": 0, "bytes": 0, "error": None},
        {"name": "charges", "status": "pending", "records": 0, "bytes": 0, "error": None}]
    assert queued() == [{"accountId": account["accountId"], "runId": run["runId"], "checkpoint": None}]
    row = run_row(account, run["runId"])
    assert row["status"] == "pending" and row["activeState"] == "active" and int(row["deadline"]) > 0
    assert row["checkpoint"] is None and row["cancelRequested"] is False
    assert job_row(account, job["jobId"])["activeRunId"] == run["runId"]
    [event] = events(account["accountId"], "jobs.run.start")
    assert event["resourceId"] == run["runId"] and event["details"]["trigger"] == "manual"
    status, body = jobs_call("GET /jobs/{jobId}", me, path={"jobId": job["jobId"]})
    assert body["data"]["activeRunId"] == run["runId"]


def test_a_job_without_a_subset_runs_every_endpoint_of_the_platform():
    me, account, source = tenant()
    run = run_now(me, new_job(me, source))
    assert [e["name"] for e in run["endpoints"]] == STRIPE_ENDPOINTS


def test_a_second_run_while_one_is_active_is_409():
    me, account, source = tenant()
    job = new_job(me, source)
    first = run_now(me, job)
    status, body = jobs_call("POST /jobs/{jobId}/run", me, path={"jobId": job["jobId"]})
    assert status == 409 and body["code"] == "conflict"
    set_run(account, first["runId"], status="running")
    status, body = jobs_call("POST /jobs/{jobId}/run", me, path={"jobId": job["jobId"]})
    assert status == 409
    assert [m["runId"] for m in queued()] == [first["runId"]]
    from boto3.dynamodb.conditions import Key
    rows = table("runs").query(IndexName="job-index", KeyConditionExpression=Key("jobId").eq(job["jobId"]))
    assert len(rows["Items"]) == 1


def test_the_active_run_guard_holds_against_a_stale_read():
    """Two starts that both read the job before either wrote: the transaction refuses one."""
    me, account, source = tenant()
    job = new_job(me, source)
    stale = job_row(account, job["jobId"])
    run_store.start_run(account["accountId"], stale, trigger="manual", actor="a")
    from handlers.shared.http import ApiError
    with pytest.raises(ApiError) as caught:
        run_store.start_run(account["accountId"], stale, trigger="schedule", actor="scheduler")
    assert caught.value.status == 409
    assert len(queued()) == 1


def test_a_run_of_a_paused_source_is_refused():
    me, account, source = tenant()
    job = new_job(me, source)
    table("sources").update_item(Key={"accountId": account["accountId"], "sourceId": source["sourceId"]},
                                 UpdateExpression="SET #s = :p", ExpressionAttributeNames={"#s": "status"},
                                 ExpressionAttributeValues={":p": "paused"})
    status, body = jobs_call("POST /jobs/{jobId}/run", me, path={"jobId": job["jobId"]})
    assert status == 409 and "paused" in body["error"]
    assert queued() == [] and "activeRunId" not in job_row(account, job["jobId"])


def test_a_run_that_cannot_be_queued_ends_failed_and_frees_the_job(monkeypatch):
    me, account, source = tenant()
    job = new_job(me, source)
    monkeypatch.setenv("JOB_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/no-such-queue")
    status, body = jobs_call("POST /jobs/{jobId}/run", me, path={"jobId": job["jobId"]})
    assert status == 503 and body["code"] == "unavailable"
    row = job_row(account, job["jobId"])
    assert "activeRunId" not in row
    from boto3.dynamodb.conditions import Key
    [run] = table("runs").query(IndexName="job-index",
                                KeyConditionExpression=Key("jobId").eq(job["jobId"]))["Items"]
    run = run_row(account, run["runId"])
    assert run["status"] == "failed" and "activeState" not in run and run["error"]


# --------------------------------------------------------------------------- runs

def test_runs_are_listed_newest_first_and_paginated():
    me, account, source = tenant()
    job = new_job(me, source)
    started = []
    for _ in range(3):
        run = run_now(me, job)
        started.append(run["runId"])
        assert jobs_call("POST /jobs/{jobId}/runs/{runId}/cancel", me,
                         path={"jobId": job["jobId"], "runId": run["runId"]})[0] == 200
    other_job = new_job(me, source, name="Other")
    run_now(me, other_job)
    seen, cursor = [], None
    while True:
        query = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        status, body = jobs_call("GET /jobs/{jobId}/runs", me, path={"jobId": job["jobId"]}, query=query)
        assert status == 200, body
        seen += [item["runId"] for item in body["data"]["items"]]
        cursor = body["data"]["nextCursor"]
        if not cursor:
            break
    assert seen == list(reversed(started))
    # a cursor of one job's runs is refused for another job's
    _, first = jobs_call("GET /jobs/{jobId}/runs", me, path={"jobId": job["jobId"]}, query={"limit": "1"})
    status, body = jobs_call("GET /jobs/{jobId}/runs", me, path={"jobId": other_job["jobId"]},
                             query={"cursor": first["data"]["nextCursor"]})
    assert status == 400


def test_get_run_shows_progress_and_another_accounts_run_is_404():
    me, account, source = tenant()
    job = new_job(me, source, endpoints=["customers", "charges"])
    run = run_now(me, job)
    set_run(account, run["runId"], status="partial", records=12, bytes=3400,
            endpoints=[{"name": "customers", "status": "completed", "records": 12, "bytes": 3400, "error": None},
                       {"name": "charges", "status": "failed", "records": 0, "bytes": 0,
                        "error": "The platform answered 500"}],
            error="1 of 2 endpoints failed", lease={"owner": "w-1", "expiresAt": 1},
            checkpoint={"token": "secret-token"})
    status, body = jobs_call("GET /runs/{runId}", me, path={"runId": run["runId"]})
    assert status == 200
    data = body["data"]
    assert data["status"] == "partial" and data["records"] == 12 and data["bytes"] == 3400
    assert data["endpoints"][1] == {"name": "charges", "status": "failed", "records": 0, "bytes": 0,
                                    "error": "The platform answered 500"}
    assert "lease" not in data and "checkpoint" not in data and "secret-token" not in json.dumps(body)
    other, _, _ = tenant()
    assert jobs_call("GET /runs/{runId}", other, path={"runId": run["runId"]})[0] == 404
    assert jobs_call("GET /runs/{runId}", me, path={"runId": "run_missing"})[0] == 404


# --------------------------------------------------------------------------- cancel

def test_cancelling_a_pending_run_ends_it_at_once_and_frees_the_job():
    me, account, source = tenant()
    job = new_job(me, source)
    run = run_now(me, job)
    status, body = jobs_call("POST /jobs/{jobId}/runs/{runId}/cancel", me,
                             path={"jobId": job["jobId"], "runId": run["runId"]})
    assert status == 200, body
    data = body["data"]
    assert data["status"] == "cancelled" and data["finishedAt"]
    assert {e["status"] for e in data["endpoints"]} == {"cancelled"}
    row = run_row(account, run["runId"])
    assert row["status"] == "cancelled" and "activeState" not in row
    job_now = job_row(account, job["jobId"])
    assert "activeRunId" not in job_now
    assert job_now["stats"]["cancelled"] == 1 and job_now["stats"]["runs"] == 1
    assert job_now["stats"]["lastStatus"] == "cancelled"
    [event] = events(account["accountId"], "jobs.run.cancel")
    assert event["resourceId"] == run["runId"] and event["details"]["was"] == "pending"
    # the job may run again
    assert run_now(me, job)["runId"] != run["runId"]


def test_cancelling_a_running_run_asks_the_worker_to_stop():
    me, account, source = tenant()
    job = new_job(me, source)
    run = run_now(me, job)
    set_run(account, run["runId"], status="running", startedAt="2026-11-26T00:00:00.000Z")
    status, body = jobs_call("POST /jobs/{jobId}/runs/{runId}/cancel", me,
                             path={"jobId": job["jobId"], "runId": run["runId"]})
    assert status == 200, body
    assert body["data"]["status"] == "running" and body["data"]["cancelRequested"] is True
    row = run_row(account, run["runId"])
    assert row["cancelRequested"] is True and row["activeState"] == "active"
    assert job_row(account, job["jobId"])["activeRunId"] == run["runId"]
    [event] = events(account["accountId"], "jobs.run.cancel")
    assert event["details"]["was"] == "running"


@pytest.mark.parametrize("final", ["completed", "partial", "failed", "cancelled"])
def test_cancelling_a_finished_run_is_409(final):
    me, account, source = tenant()
    job = new_job(me, source)
    run = run_now(me, job)
    set_run(account, run["runId"], status=final)
    status, body = jobs_call("POST /jobs/{jobId}/runs/{runId}/cancel", me,
                             path={"jobId": job["jobId"], "runId": run["runId"]})
    assert status == 409 and body["code"] == "conflict" and final in body["error"]
    assert run_row(account, run["runId"])["status"] == final


def test_a_pending_run_picked_up_meanwhile_is_asked_to_stop_instead():
    """The worker moved the run to running between the read and the cancel."""
    me, account, source = tenant()
    job = new_job(me, source)
    run = run_now(me, job)
    stale = run_row(account, run["runId"])
    set_run(account, run["runId"], status="running")
    updated = run_store.cancel_run(account["accountId"], stale, actor="u")
    assert updated["status"] == "running" and updated["cancelRequested"] is True
    assert job_row(account, job["jobId"])["activeRunId"] == run["runId"]


def test_cancel_checks_the_run_belongs_to_the_job_and_the_account():
    me, account, source = tenant()
    job, other_job = new_job(me, source), new_job(me, source, name="Other")
    run = run_now(me, job)
    status, _ = jobs_call("POST /jobs/{jobId}/runs/{runId}/cancel", me,
                          path={"jobId": other_job["jobId"], "runId": run["runId"]})
    assert status == 404
    stranger, _, _ = tenant()
    status, _ = jobs_call("POST /jobs/{jobId}/runs/{runId}/cancel", stranger,
                          path={"jobId": job["jobId"], "runId": run["runId"]})
    assert status == 404
    assert run_row(account, run["runId"])["status"] == "pending"
