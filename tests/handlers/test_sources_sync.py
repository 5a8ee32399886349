"""``POST /sources/{sourceId}/sync`` on moto: the source's default job (created as a manual
job named after the source when missing, within the plan's job limit) runs now."""

from __future__ import annotations

import pytest
from boto3.dynamodb.conditions import Key

from handlers.shared.clients import table
from tests.handlers.test_jobs_api import (  # noqa: F401  (fixtures)
    STRIPE_ENDPOINTS, as_role, events, job_count, job_queue, job_row, jobs_call, new_job, queued,
    run_row, stage, tenant)
from tests.handlers.test_sources_support import sources_call

pytestmark = pytest.mark.usefixtures("job_queue")


def sync(identity: dict, source_id: str) -> tuple[int, dict]:
    return sources_call("POST /sources/{sourceId}/sync", identity, path={"sourceId": source_id})


def jobs_of(source: dict) -> list[dict]:
    return table("jobs").query(IndexName="source-index",
                               KeyConditionExpression=Key("sourceId").eq(source["sourceId"]))["Items"]


def test_sync_creates_a_manual_default_job_and_queues_a_run():
    me, account, source = tenant(name="Stripe live")
    status, body = sync(me, source["sourceId"])
    assert status == 202, body
    run = body["data"]
    assert run["status"] == "pending" and run["trigger"] == "sync"
    assert run["sourceId"] == source["sourceId"]
    assert [e["name"] for e in run["endpoints"]] == STRIPE_ENDPOINTS
    [job] = jobs_of(source)
    job = job_row(account, job["jobId"])
    assert job["jobId"] == run["jobId"] and job["isDefault"] is True and job["name"] == "Stripe live"
    assert job["schedule"]["frequency"] == "manual" and "scheduleState" not in job
    assert job["activeRunId"] == run["runId"] and job_count(account) == 1
    assert queued() == [{"accountId": account["accountId"], "runId": run["runId"], "checkpoint": None}]
    assert [e["resourceId"] for e in events(account["accountId"], "jobs.create")] == [job["jobId"]]
    [start] = events(account["accountId"], "jobs.run.start")
    assert start["resourceId"] == run["runId"] and start["details"]["trigger"] == "sync"
    status, body = jobs_call("GET /jobs/{jobId}", me, path={"jobId": job["jobId"]})
    assert body["data"]["isDefault"] is True


def test_sync_again_reuses_the_default_job_and_refuses_while_a_run_is_active():
    me, account, source = tenant()
    status, first = sync(me, source["sourceId"])
    assert status == 202
    status, body = sync(me, source["sourceId"])
    assert status == 409 and body["code"] == "conflict"
    job_id, run_id = first["data"]["jobId"], first["data"]["runId"]
    assert jobs_call("POST /jobs/{jobId}/runs/{runId}/cancel", me,
                     path={"jobId": job_id, "runId": run_id})[0] == 200
    status, second = sync(me, source["sourceId"])
    assert status == 202 and second["data"]["jobId"] == job_id and second["data"]["runId"] != run_id
    assert len(jobs_of(source)) == 1 and job_count(account) == 1
    assert [m["runId"] for m in queued()] == [run_id, second["data"]["runId"]]


def test_sync_ignores_other_jobs_of_the_source_and_uses_only_the_default():
    me, account, source = tenant()
    scheduled = new_job(me, source, endpoints=["customers"])
    status, body = sync(me, source["sourceId"])
    assert status == 202 and body["data"]["jobId"] != scheduled["jobId"]
    assert len(jobs_of(source)) == 2 and job_count(account) == 2
    assert "activeRunId" not in job_row(account, scheduled["jobId"])


def test_the_default_job_counts_against_the_plans_job_limit():
    me, account, source = tenant(plan="free")
    for index in range(5):
        new_job(me, source, name=f"job {index}")
    status, body = sync(me, source["sourceId"])
    assert status == 402 and body["code"] == "plan_limit"
    assert job_count(account) == 5 and queued() == []
    assert len(jobs_of(source)) == 5


def test_an_existing_default_job_runs_even_at_the_job_limit():
    me, account, source = tenant(plan="free")
    status, first = sync(me, source["sourceId"])
    assert status == 202
    jobs_call("POST /jobs/{jobId}/runs/{runId}/cancel", me,
              path={"jobId": first["data"]["jobId"], "runId": first["data"]["runId"]})
    for index in range(4):
        new_job(me, source, name=f"job {index}")
    assert job_count(account) == 5
    status, body = sync(me, source["sourceId"])
    assert status == 202 and body["data"]["jobId"] == first["data"]["jobId"]


def test_sync_of_another_accounts_or_a_missing_source_is_404():
    me, account, source = tenant()
    stranger, stranger_account, _ = tenant()
    for identity, source_id in ((stranger, source["sourceId"]), (me, "src_missing")):
        status, body = sync(identity, source_id)
        assert status == 404 and body["code"] == "not_found"
    assert jobs_of(source) == [] and queued() == [] and job_count(stranger_account) == 0


def test_viewers_may_not_sync():
    me, account, source = tenant()
    status, body = sync(as_role(me, "viewer"), source["sourceId"])
    assert status == 403 and body["code"] == "forbidden"
    assert jobs_of(source) == [] and queued() == []


def test_a_paused_source_is_not_synced():
    me, account, source = tenant()
    assert sources_call("PUT /sources/{sourceId}", me, path={"sourceId": source["sourceId"]},
                        body={"status": "paused"})[0] == 200
    status, body = sync(me, source["sourceId"])
    assert status == 409 and "paused" in body["error"]
    assert jobs_of(source) == [] and queued() == []


def test_a_source_with_a_synced_run_in_flight_cannot_be_deleted():
    me, account, source = tenant()
    status, body = sync(me, source["sourceId"])
    assert status == 202
    status, reply = sources_call("DELETE /sources/{sourceId}", me, path={"sourceId": source["sourceId"]})
    assert status == 409
    assert run_row(account, body["data"]["runId"])["status"] == "pending"
