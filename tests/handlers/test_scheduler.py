"""The scheduler on moto: due jobs found through the schedule index and queued once per
slot (even when two ticks overlap), nextRunAt advanced per frequency, paused and manual
jobs left alone, active runs and unusable sources skipped with activity, runs stuck past
their deadline failed - and never a Scan."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import boto3
import botocore.client
import pytest
from boto3.dynamodb.conditions import Key

from handlers.jobs import scheduler
from handlers.shared import clock, runs, schedules
from handlers.shared.clients import dynamodb, table
from handlers.shared.ids import new_id
from tests.support import LambdaContext

NOW = datetime(2026, 11, 26, 10, 2, tzinfo=timezone.utc)        # a Thursday
HOURLY = {"frequency": "hourly", "time": "00:00", "dayOfWeek": None, "dayOfMonth": None}


@pytest.fixture
def queue_url(backend, monkeypatch):
    """The job queue, and ``JOB_QUEUE_URL`` as the program sets it."""
    url = boto3.client("sqs").create_queue(QueueName="listbackup-test-jobs")["QueueUrl"]
    monkeypatch.setenv("JOB_QUEUE_URL", url)
    return url


@pytest.fixture(autouse=True)
def no_scan(monkeypatch):
    """Any Scan, on any table, fails the test."""
    original = botocore.client.BaseClient._make_api_call

    def guarded(self, operation_name, params):
        if operation_name == "Scan":
            raise AssertionError(f"Scan of {params.get('TableName')}: the scheduler must Query")
        return original(self, operation_name, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", guarded)


# --------------------------------------------------------------------------- seeding

def seed_source(account_id: str | None = None, *, status: str = "active") -> dict:
    now = clock.iso()
    row = {"accountId": account_id or new_id("acc"), "sourceId": new_id("src"), "name": "Stripe",
           "type": "stripe", "status": status, "settings": {}, "credentialsCiphertext": "x",
           "credentialFields": ["api_key"], "createdAt": now, "updatedAt": now}
    table("sources").put_item(Item=row)
    return row


def seed_job(source: dict | None = None, *, schedule: dict = HOURLY, next_run: datetime | None = None,
             status: str = "active", **extra) -> dict:
    """A job row as the jobs API writes it: scheduleState/nextRunAt only while it is active
    and scheduled."""
    source = source or seed_source()
    now = clock.iso()
    row = {"accountId": source["accountId"], "jobId": new_id("job"), "sourceId": source["sourceId"],
           "name": "Nightly", "schedule": schedule, "endpoints": ["customers"], "status": status,
           "isDefault": False, "lastRunAt": None, "createdAt": now, "updatedAt": now,
           "stats": {"runs": 0, "completed": 0, "partial": 0, "failed": 0, "cancelled": 0,
                     "records": 0, "bytes": 0, "lastStatus": None}, **extra}
    if status == "active" and schedule["frequency"] != "manual":
        row["nextRunAt"] = clock.iso(next_run or schedules.next_run_at(schedule, NOW))
        row["scheduleState"] = "scheduled"
    table("jobs").put_item(Item=row)
    return row


def job_row(job: dict) -> dict:
    return table("jobs").get_item(Key={"accountId": job["accountId"], "jobId": job["jobId"]},
                                  ConsistentRead=True)["Item"]


def runs_of(job: dict) -> list[dict]:
    return table("runs").query(IndexName="job-index",
                               KeyConditionExpression=Key("jobId").eq(job["jobId"]))["Items"]


def run_row(run: dict) -> dict:
    return runs.get_run(run["accountId"], run["runId"])


def queued(url: str) -> list[dict]:
    sqs = boto3.client("sqs")
    out = []
    while True:
        reply = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600)
        if not reply.get("Messages"):
            return out
        out += [json.loads(m["Body"]) for m in reply["Messages"]]


def events(account_id: str, action: str) -> list[dict]:
    items = table("activity").query(KeyConditionExpression=Key("accountId").eq(account_id))["Items"]
    return [e for e in items if e["type"] == action]


def at(text: str) -> datetime:
    return clock.parse_iso(text)


# --------------------------------------------------------------------------- due jobs

def test_a_due_job_is_queued_and_its_next_slot_set(queue_url):
    job = seed_job(next_run=at("2026-11-26T10:00:00Z"))
    assert scheduler.tick(NOW) == {"queued": 1, "skipped": 0, "failedStuck": 0, "errors": 0}

    [run] = runs_of(job)
    assert run["status"] == "pending" and run["trigger"] == "schedule"
    assert run["createdBy"] == "scheduler" and run["activeState"] == "active"
    assert queued(queue_url) == [{"accountId": job["accountId"], "runId": run["runId"],
                                  "checkpoint": None}]
    row = job_row(job)
    assert row["activeRunId"] == run["runId"]
    assert row["nextRunAt"] == clock.iso(at("2026-11-26T11:00:00Z"))
    assert row["scheduleState"] == "scheduled"
    [event] = events(job["accountId"], "jobs.run.start")
    assert event["actor"] == "scheduler" and event["details"]["trigger"] == "schedule"

    # the next tick in the same slot finds nothing due
    assert scheduler.tick(NOW) == {"queued": 0, "skipped": 0, "failedStuck": 0, "errors": 0}
    assert len(runs_of(job)) == 1 and queued(queue_url) == []


def test_the_lambda_entry_point_answers_the_summary(queue_url):
    seed_job(next_run=clock.now().replace(second=0, microsecond=0))
    summary = scheduler.handler({"source": "aws.events", "detail-type": "Scheduled Event"},
                                LambdaContext("listbackup-test-scheduler"))
    assert summary == {"queued": 1, "skipped": 0, "failedStuck": 0, "errors": 0}
    assert len(queued(queue_url)) == 1


def test_overlapping_ticks_that_read_the_same_slot_queue_it_once(queue_url, monkeypatch):
    job = seed_job(next_run=at("2026-11-26T10:00:00Z"))
    stale = list(scheduler.due_jobs(NOW))            # tick A reads the index...
    assert [j["jobId"] for j in stale] == [job["jobId"]]

    assert scheduler.tick(NOW)["queued"] == 1        # ...tick B reads, claims and queues
    # the run even finishes before A gets on: only the slot condition stops a second run
    [run] = runs_of(job)
    table("jobs").update_item(Key={"accountId": job["accountId"], "jobId": job["jobId"]},
                              UpdateExpression="REMOVE activeRunId")

    monkeypatch.setattr(scheduler, "due_jobs", lambda now: iter(stale))
    assert scheduler.tick(NOW) == {"queued": 0, "skipped": 0, "failedStuck": 0, "errors": 0}
    assert scheduler.queue_job(stale[0], NOW) == "taken"

    assert [r["runId"] for r in runs_of(job)] == [run["runId"]]
    assert len(queued(queue_url)) == 1
    assert job_row(job)["nextRunAt"] == clock.iso(at("2026-11-26T11:00:00Z"))
    assert events(job["accountId"], "jobs.schedule.skip") == []


def test_jobs_not_yet_due_are_untouched(queue_url):
    job = seed_job(next_run=at("2026-11-26T10:05:00Z"))
    before = job_row(job)
    assert scheduler.tick(NOW) == {"queued": 0, "skipped": 0, "failedStuck": 0, "errors": 0}
    assert job_row(job) == before
    assert runs_of(job) == [] and queued(queue_url) == []


@pytest.mark.parametrize("schedule, slot, now, expected", [
    (HOURLY | {"time": "00:30"}, "2026-11-26T10:30:00Z", "2026-11-26T10:31:00Z", "2026-11-26T11:30:00Z"),
    (HOURLY | {"frequency": "daily", "time": "02:00"},
     "2026-11-26T02:00:00Z", "2026-11-26T02:04:00Z", "2026-11-27T02:00:00Z"),
    ({"frequency": "weekly", "time": "03:00", "dayOfWeek": 0, "dayOfMonth": None},   # Mondays
     "2026-11-23T03:00:00Z", "2026-11-23T03:05:00Z", "2026-11-30T03:00:00Z"),
    ({"frequency": "monthly", "time": "04:15", "dayOfWeek": None, "dayOfMonth": 28},
     "2026-12-28T04:15:00Z", "2026-12-28T04:16:00Z", "2027-01-28T04:15:00Z"),
    # slots missed while nothing ran collapse into one run; the next slot is after now
    (HOURLY, "2026-11-26T07:00:00Z", "2026-11-26T10:02:00Z", "2026-11-26T11:00:00Z"),
], ids=["hourly", "daily", "weekly", "monthly", "missed-hourly-slots"])
def test_next_run_is_the_following_slot_of_each_frequency(queue_url, schedule, slot, now, expected):
    job = seed_job(schedule=schedule, next_run=at(slot))
    assert scheduler.tick(at(now))["queued"] == 1
    assert job_row(job)["nextRunAt"] == clock.iso(at(expected))
    assert len(runs_of(job)) == 1 and len(queued(queue_url)) == 1


def test_paused_and_manual_jobs_are_never_queued(queue_url):
    source = seed_source()
    paused = seed_job(source, status="paused")
    manual = seed_job(source, schedule={"frequency": "manual", "time": None, "dayOfWeek": None,
                                        "dayOfMonth": None})
    assert "scheduleState" not in job_row(paused) and "scheduleState" not in job_row(manual)
    for moment in (NOW, at("2027-06-01T00:00:00Z")):
        assert scheduler.tick(moment)["queued"] == 0
    assert runs_of(paused) == [] and runs_of(manual) == [] and queued(queue_url) == []


def test_a_job_paused_after_the_index_was_read_is_not_queued(queue_url):
    job = seed_job(next_run=at("2026-11-26T10:00:00Z"))
    stale = list(scheduler.due_jobs(NOW))
    table("jobs").update_item(Key={"accountId": job["accountId"], "jobId": job["jobId"]},
                              UpdateExpression="SET #s = :paused REMOVE scheduleState, nextRunAt",
                              ExpressionAttributeNames={"#s": "status"},
                              ExpressionAttributeValues={":paused": "paused"})
    assert scheduler.queue_job(stale[0], NOW) == "taken"
    assert runs_of(job) == [] and queued(queue_url) == []
    assert "nextRunAt" not in job_row(job)


def test_a_schedule_edited_after_the_index_was_read_is_not_claimed_with_the_old_one(queue_url):
    job = seed_job(next_run=at("2026-11-26T10:00:00Z"))
    stale = list(scheduler.due_jobs(NOW))
    # the user switches to daily at 10:00 (same slot value) through the API meanwhile
    table("jobs").update_item(Key={"accountId": job["accountId"], "jobId": job["jobId"]},
                              UpdateExpression="SET schedule = :daily, updatedAt = :now",
                              ExpressionAttributeValues={":daily": HOURLY | {"frequency": "daily",
                                                                            "time": "10:00"},
                                                         ":now": clock.iso()})
    assert scheduler.queue_job(stale[0], NOW) == "taken"
    assert scheduler.tick(NOW)["queued"] == 1                     # the fresh read runs it...
    assert job_row(job)["nextRunAt"] == clock.iso(at("2026-11-27T10:00:00Z"))  # ...daily


def test_a_job_with_an_active_run_is_skipped_for_the_slot(queue_url):
    job = seed_job(next_run=at("2026-11-26T10:00:00Z"))
    manual = runs.start_run(job["accountId"], job, trigger="manual", actor="usr_someone")
    queued(queue_url)                                  # drain the manual run's message

    assert scheduler.tick(NOW) == {"queued": 0, "skipped": 1, "failedStuck": 0, "errors": 0}
    assert [r["runId"] for r in runs_of(job)] == [manual["runId"]]
    assert queued(queue_url) == []
    row = job_row(job)
    assert row["activeRunId"] == manual["runId"]
    assert row["nextRunAt"] == clock.iso(at("2026-11-26T11:00:00Z"))   # still advanced
    [event] = events(job["accountId"], "jobs.schedule.skip")
    assert event["actor"] == "scheduler" and event["resourceId"] == job["jobId"]
    assert event["details"]["reason"] == "run_active"
    assert event["details"]["runId"] == manual["runId"]
    assert run_row(manual)["status"] == "pending"      # within its deadline: left alone


@pytest.mark.parametrize("status, reason", [(None, "source_missing"), ("paused", "source_paused")])
def test_a_job_whose_source_is_missing_or_paused_is_skipped_with_activity(queue_url, status, reason):
    source = seed_source(status=status or "active")
    job = seed_job(source, next_run=at("2026-11-26T09:00:00Z"))
    if status is None:
        table("sources").delete_item(Key={"accountId": source["accountId"],
                                          "sourceId": source["sourceId"]})
    assert scheduler.tick(NOW) == {"queued": 0, "skipped": 1, "failedStuck": 0, "errors": 0}
    assert runs_of(job) == [] and queued(queue_url) == []
    assert job_row(job)["nextRunAt"] == clock.iso(at("2026-11-26T11:00:00Z"))
    [event] = events(job["accountId"], "jobs.schedule.skip")
    assert event["details"]["reason"] == reason and event["details"]["sourceId"] == source["sourceId"]
    # looked at again only at the next slot, not on every tick
    assert scheduler.tick(NOW)["skipped"] == 0


def test_many_due_jobs_are_read_page_by_page(queue_url, monkeypatch):
    monkeypatch.setattr(scheduler, "PAGE_SIZE", 2)
    jobs = [seed_job(next_run=at(f"2026-11-26T0{h}:00:00Z")) for h in range(5)]
    assert scheduler.tick(NOW)["queued"] == 5
    assert all(len(runs_of(job)) == 1 for job in jobs)
    assert len(queued(queue_url)) == 5


def test_one_failing_job_does_not_stop_the_others(queue_url, monkeypatch):
    jobs = [seed_job(next_run=at("2026-11-26T10:00:00Z")) for _ in range(2)]
    real = runs.start_run
    calls = []

    def flaky(account_id, job, **kwargs):
        calls.append(job["jobId"])
        if len(calls) == 1:
            raise RuntimeError("dynamodb hiccup")
        return real(account_id, job, **kwargs)

    monkeypatch.setattr(runs, "start_run", flaky)
    assert scheduler.tick(NOW) == {"queued": 1, "skipped": 0, "failedStuck": 0, "errors": 1}
    assert sum(len(runs_of(job)) for job in jobs) == 1


# --------------------------------------------------------------------------- stuck runs

def make_running(run: dict, deadline: int) -> None:
    """What the worker does when it picks a run up: running, with its own deadline."""
    table("runs").update_item(
        Key={"accountId": run["accountId"], "runId": run["runId"]},
        UpdateExpression="SET #s = :running, startedAt = :now, deadline = :deadline, "
                         "endpoints = :endpoints",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":running": "running", ":now": clock.iso(), ":deadline": deadline,
                                   ":endpoints": [{"name": "customers", "status": "running",
                                                   "records": 120, "bytes": 4096, "error": None}]})


def test_a_run_stuck_running_past_its_deadline_is_failed_and_frees_its_job(queue_url):
    job = seed_job(schedule={"frequency": "manual", "time": None, "dayOfWeek": None,
                             "dayOfMonth": None})
    run = runs.start_run(job["accountId"], job, trigger="manual", actor="usr_someone")
    make_running(run, clock.epoch(NOW) - 60)

    assert scheduler.tick(NOW) == {"queued": 0, "skipped": 0, "failedStuck": 1, "errors": 0}
    row = run_row(run)
    assert row["status"] == "failed" and row["error"] == "the backup worker stopped responding"
    assert row["finishedAt"] == clock.iso(NOW) and "activeState" not in row
    assert row["endpoints"][0]["status"] == "failed" and row["endpoints"][0]["records"] == 120
    assert runs.run_view(row)["status"] == "failed"
    after = job_row(job)
    assert "activeRunId" not in after
    assert after["stats"]["failed"] == 1 and after["stats"]["runs"] == 1
    assert after["stats"]["lastStatus"] == "failed"
    [event] = events(job["accountId"], "jobs.run.failed")
    assert event["actor"] == "scheduler" and event["resourceId"] == run["runId"]

    # failed once only, and the job can run again
    assert scheduler.tick(NOW)["failedStuck"] == 0
    runs.start_run(job["accountId"], job_row(job), trigger="manual", actor="usr_someone")


def test_runs_within_their_deadline_and_finished_runs_are_left_alone(queue_url):
    source = seed_source()
    manual = {"frequency": "manual", "time": None, "dayOfWeek": None, "dayOfMonth": None}
    busy = seed_job(source, schedule=manual)
    working = runs.start_run(busy["accountId"], busy, trigger="manual", actor="usr_someone")
    make_running(working, clock.epoch(NOW) + 600)
    waiting = runs.start_run(source["accountId"], seed_job(source, schedule=manual),
                             trigger="manual", actor="usr_someone")    # pending, 24 h deadline

    assert scheduler.tick(NOW)["failedStuck"] == 0
    assert run_row(working)["status"] == "running" and run_row(waiting)["status"] == "pending"
    # a worker that extended its deadline after the scheduler read the run wins
    make_running(working, clock.epoch(NOW) - 1)
    stale = list(scheduler.stuck_runs(NOW))
    make_running(working, clock.epoch(NOW) + 900)
    assert [r["runId"] for r in stale] == [working["runId"]]
    assert scheduler.fail_if_stuck(working["accountId"], working["runId"], NOW) is False
    assert run_row(working)["status"] == "running"


def test_a_pending_run_never_picked_up_is_failed_after_its_deadline(queue_url):
    job = seed_job(next_run=at("2026-11-26T10:00:00Z"))
    scheduler.tick(NOW)
    [run] = runs_of(job)
    later = max(datetime.fromtimestamp(int(run["deadline"]) + 60, timezone.utc),
                at("2026-11-26T11:00:00Z"))
    summary = scheduler.tick(later)
    # the stuck run is failed first, so the job's due slot queues a fresh run
    assert summary["failedStuck"] == 1 and summary["queued"] == 1
    old = run_row(run)
    assert old["status"] == "failed" and old["error"] == scheduler.STUCK_PENDING
    new = job_row(job)["activeRunId"]
    assert new != run["runId"] and run_row({**run, "runId": new})["status"] == "pending"


def test_a_stuck_run_blocking_a_due_job_is_failed_even_without_the_index(queue_url):
    job = seed_job(next_run=at("2026-11-26T10:00:00Z"))
    run = runs.start_run(job["accountId"], job, trigger="manual", actor="usr_someone")
    make_running(run, clock.epoch(NOW) - 60)
    table("runs").update_item(Key={"accountId": run["accountId"], "runId": run["runId"]},
                              UpdateExpression="REMOVE activeState")   # not in active-index
    assert scheduler.tick(NOW) == {"queued": 0, "skipped": 1, "failedStuck": 0, "errors": 0}
    assert run_row(run)["status"] == "failed"
    assert "activeRunId" not in job_row(job)


def test_a_finished_run_still_in_the_active_index_leaves_it_and_is_not_failed(queue_url):
    job = seed_job(schedule={"frequency": "manual", "time": None, "dayOfWeek": None,
                             "dayOfMonth": None})
    run = runs.start_run(job["accountId"], job, trigger="manual", actor="usr_someone")
    make_running(run, clock.epoch(NOW) - 60)
    table("runs").update_item(Key={"accountId": run["accountId"], "runId": run["runId"]},
                              UpdateExpression="SET #s = :done", ExpressionAttributeNames={"#s": "status"},
                              ExpressionAttributeValues={":done": "completed"})
    assert scheduler.tick(NOW)["failedStuck"] == 0
    row = run_row(run)
    assert row["status"] == "completed" and "activeState" not in row
    assert list(scheduler.stuck_runs(NOW)) == []


def test_the_no_scan_guard_itself_works(backend):
    with pytest.raises(AssertionError, match="must Query"):
        dynamodb().scan(TableName=table("jobs").name)


def test_the_owners_are_mailed_once_a_day_when_the_scheduler_fails_a_stuck_run(queue_url):
    from tests.handlers.conftest import sent_emails
    from tests.handlers.test_sources_support import seed_tenant

    owner, account, _ = seed_tenant("owner")
    manual = {"frequency": "manual", "time": None, "dayOfWeek": None, "dayOfMonth": None}
    job = seed_job(seed_source(account["accountId"]), schedule=manual)
    run = runs.start_run(job["accountId"], job, trigger="manual", actor=owner["userId"])
    make_running(run, clock.epoch(NOW) - 60)
    assert scheduler.tick(NOW)["failedStuck"] == 1
    [mail] = sent_emails()
    assert mail["to"] == owner["email"] and "Stripe" in mail["subject"]
    assert "the backup worker stopped responding" in mail["text"]
    # a second stuck run of the same source that day fails without a second mail
    run = runs.start_run(job["accountId"], job_row(job), trigger="manual", actor=owner["userId"])
    make_running(run, clock.epoch(NOW) - 60)
    assert scheduler.tick(NOW)["failedStuck"] == 1
    assert len(sent_emails()) == 1
