"""Regressions found by the fault-injection tests (tests/e2e/test_faults.py), on moto.

- A run's end was written one step after another: the run row and its analytics in one
  transaction, then the job (``activeRunId`` cleared, stats) and the account's runs this
  month. A throttled write after the transaction lost the rest for good (the retried
  message finds the run finished and does nothing): the job kept ``activeRunId`` and
  refused every later run with 409, and its stats never counted the run. Now all of it
  commits in one transaction, or none of it does and the retry counts it once.
- A fault before a run could start (its row unreadable, its lease not taken) skipped the
  last-receive handling: after the last retry the message went to the dead-letter queue
  and the run stayed ``pending`` (for a day, until the scheduler's deadline). Now the run
  is failed with the reason before the message goes.
- A run that could not be queued ended failed but was missing from its job's stats.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from handlers.jobs import backup
from handlers.shared import clock
from handlers.shared.clients import dynamodb, table
from tests.handlers.test_jobs_api import (  # noqa: F401  (fixtures)
    job_queue, job_row, jobs_call, new_job, queued, run_row, tenant)
from tests.handlers.test_sources_support import get_row, stage  # noqa: F401  (fixtures)

pytestmark = pytest.mark.usefixtures("job_queue")

ENDPOINTS = [{"name": "customers", "status": "completed", "records": 3, "bytes": 120, "error": None}]


def throttle(operation: str, *, table_suffix: str | None = None, times: int | None = None) -> list:
    """Make the handlers' DynamoDB ``operation`` fail with ProvisionedThroughputExceeded
    (on one table only, when given; ``times`` at most); answers the list of faults raised."""
    raised: list = []
    client = dynamodb()

    def fail(params=None, **_):
        if times is not None and len(raised) >= times:
            return
        if table_suffix is not None and not str((params or {}).get("TableName", "")).endswith(table_suffix):
            return
        raised.append(operation)
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException",
                                     "Message": "The level of configured provisioned throughput "
                                                "for the table was exceeded."},
                           "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)

    client.meta.events.register_first(f"before-parameter-build.dynamodb.{operation}", fail)
    return raised


def started_run():
    """A tenant's job with a run just started over the API (pending, the job's active run)."""
    me, account, source = tenant()
    job = new_job(me, source)
    status, body = jobs_call("POST /jobs/{jobId}/run", me, path={"jobId": job["jobId"]})
    assert status == 202, body
    assert job_row(account, job["jobId"])["activeRunId"] == body["data"]["runId"]
    return me, account, job, body["data"]["runId"]


def counted(account: dict, job: dict) -> dict:
    job_now = job_row(account, job["jobId"])
    account_now = get_row("accounts", accountId=account["accountId"])
    total = get_row("analytics", accountId=account["accountId"], counter="total") or {}
    return {"activeRunId": job_now.get("activeRunId"), "jobRuns": int(job_now["stats"]["runs"]),
            "jobCompleted": int(job_now["stats"]["completed"]),
            "jobRecords": int(job_now["stats"]["records"]),
            "runsThisMonth": int(account_now.get("runsThisMonth") or 0)
            if account_now.get("runsMonth") == clock.now().strftime("%Y-%m") else 0,
            "analyticsRuns": int(total.get("runs") or 0)}


def test_a_throttled_job_write_cannot_leave_the_job_blocked_after_its_run_ended():
    me, account, job, run_id = started_run()
    # every single-item write to the jobs table is throttled from now on
    faults = throttle("UpdateItem", table_suffix="-jobs")
    assert backup.finish_run(account["accountId"], run_id, "completed", endpoints=ENDPOINTS)
    assert faults == []          # the run's end writes the job inside its transaction
    assert run_row(account, run_id)["status"] == "completed"
    assert counted(account, job) == {"activeRunId": None, "jobRuns": 1, "jobCompleted": 1,
                                     "jobRecords": 3, "runsThisMonth": 1, "analyticsRuns": 1}
    # the job takes its next run
    status, body = jobs_call("POST /jobs/{jobId}/run", me, path={"jobId": job["jobId"]})
    assert status == 202, body


def test_a_throttled_run_end_changes_nothing_and_its_retry_counts_everything_once():
    me, account, job, run_id = started_run()
    before = counted(account, job)
    faults = throttle("TransactWriteItems", times=1)
    with pytest.raises(ClientError):
        backup.finish_run(account["accountId"], run_id, "completed", endpoints=ENDPOINTS)
    assert faults == ["TransactWriteItems"]
    assert run_row(account, run_id)["status"] == "pending"
    assert counted(account, job) == before == {
        "activeRunId": run_id, "jobRuns": 0, "jobCompleted": 0, "jobRecords": 0,
        "runsThisMonth": 0, "analyticsRuns": 0}
    # the message's retry ends the run, counted once everywhere ...
    assert backup.finish_run(account["accountId"], run_id, "completed", endpoints=ENDPOINTS)
    after = {"activeRunId": None, "jobRuns": 1, "jobCompleted": 1, "jobRecords": 3,
             "runsThisMonth": 1, "analyticsRuns": 1}
    assert counted(account, job) == after
    # ... and a duplicate delivery changes nothing
    assert backup.finish_run(account["accountId"], run_id, "completed", endpoints=ENDPOINTS) is False
    assert counted(account, job) == after


def test_a_run_ends_counted_in_a_job_that_has_no_stats_yet():
    me, account, job, run_id = started_run()
    table("jobs").update_item(Key={"accountId": account["accountId"], "jobId": job["jobId"]},
                              UpdateExpression="REMOVE stats")
    assert backup.finish_run(account["accountId"], run_id, "partial", endpoints=ENDPOINTS)
    row = job_row(account, job["jobId"])
    assert "activeRunId" not in row
    assert (int(row["stats"]["runs"]), int(row["stats"]["partial"]), row["stats"]["lastStatus"]) == \
        (1, 1, "partial")


def test_a_run_that_cannot_be_queued_counts_in_its_jobs_stats(monkeypatch):
    me, account, source = tenant()
    job = new_job(me, source)
    good = __import__("os").environ["JOB_QUEUE_URL"]
    monkeypatch.setenv("JOB_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/no-such-queue")
    status, body = jobs_call("POST /jobs/{jobId}/run", me, path={"jobId": job["jobId"]})
    assert status == 503 and body["code"] == "unavailable"
    row = job_row(account, job["jobId"])
    assert "activeRunId" not in row
    assert (int(row["stats"]["runs"]), int(row["stats"]["failed"]), row["stats"]["lastStatus"]) == \
        (1, 1, "failed")
    monkeypatch.setenv("JOB_QUEUE_URL", good)
    status, body = jobs_call("POST /jobs/{jobId}/run", me, path={"jobId": job["jobId"]})
    assert status == 202 and [m["runId"] for m in queued()] == [body["data"]["runId"]]


def test_a_run_whose_lease_cannot_be_taken_is_failed_with_its_reason_on_the_last_receive():
    me, account, job, run_id = started_run()
    faults = throttle("UpdateItem", table_suffix="-runs")
    body = {"accountId": account["accountId"], "runId": run_id, "checkpoint": None}
    for receive in range(1, 5):       # SQS retries: the run waits, still pending
        with pytest.raises(ClientError):
            backup.process_message(body, receive_count=receive, owner=f"worker-{receive}", context=None)
        assert run_row(account, run_id)["status"] == "pending"
    with pytest.raises(ClientError):  # the last receive: the message goes to the DLQ next
        backup.process_message(body, receive_count=5, owner="worker-5", context=None)
    assert len(faults) == 5
    run = run_row(account, run_id)
    assert run["status"] == "failed" and run["error"] == "The backup failed repeatedly (ClientError)"
    assert "activeState" not in run and {e["status"] for e in run["endpoints"]} == {"cancelled"}
    row = job_row(account, job["jobId"])
    assert "activeRunId" not in row and int(row["stats"]["failed"]) == 1
