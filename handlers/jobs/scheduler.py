"""Entry point of ``listbackup-jobs-{stage}-scheduler``: queue due backup jobs, fail stuck runs.

An EventBridge rule invokes this every few minutes. Each tick does two things, and reads
nothing with a Scan:

**Due jobs.** The jobs table's sparse ``schedule-index`` (``scheduleState`` + ``nextRunAt``)
holds only active jobs with a real schedule, so one paginated Query
``scheduleState = "scheduled" AND nextRunAt <= now`` finds exactly the due ones; paused and
manual jobs are not in it. For each due job the tick first *claims the slot* with one
conditional update on the job: ``nextRunAt = <the slot value it read>`` (and still
scheduled and active) moves ``nextRunAt`` to the job's next slot after now. Of two
overlapping ticks that read the same slot (the index is eventually consistent, and a slow
tick can overlap the next one) only one update succeeds; the other sees the condition fail
and leaves the job alone, so a slot is queued at most once. Slots missed while nothing
ran (an outage) collapse into this one run rather than queueing a backlog.

Only after the claim does the tick look at the source and start the run
(``runs.start_run(..., trigger="schedule", actor="scheduler")``: pending run + the job's
``activeRunId`` in one transaction, then the job-queue message). A job whose source is
missing, paused or not yet connected is skipped with activity; a job that still has a run
in flight (409 from ``start_run``) is skipped for this slot with activity. Either way the
slot was advanced, so the job is looked at again at its next slot, not every tick.

**Stuck runs.** A run carries ``deadline`` (epoch seconds) while it is pending or running,
and ``activeState = "active"``, which puts it in the runs table's sparse ``active-index``
(``activeState`` + ``deadline``); whoever ends a run removes ``activeState`` (a finished
run found still carrying it is taken out of the index here). One Query
``activeState = "active" AND deadline < now`` finds the runs whose worker vanished. Each
is failed with a conditional update (still pending/running, deadline unchanged - a worker
that extended its deadline meanwhile wins), then the job's ``activeRunId`` is cleared
(only if it still names that run) and its stats updated, activity is written and the
account's owners are e-mailed (at most once a day per source, as for any failed run). A job
skipped because of an active run also has that run checked directly, so a stuck run is
caught even if it was written without ``activeState``.

The answer (and the last log line) is the tick's summary
``{"queued", "skipped", "failedStuck", "errors"}``; each decision logs one line with ids
only.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Iterator, Mapping

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from handlers.shared import activity, analytics, clock, runs, schedules
from handlers.shared import metrics
from handlers.shared.alerts import alert_owners
from handlers.shared.clients import table
from handlers.shared.dynamo import as_int as _count, transact
from handlers.shared.http import ApiError
from handlers.shared.log import get_logger
from handlers.shared.sources import get_source

logger = get_logger("jobs")

SCHEDULED = "scheduled"          # jobs.scheduleState while a job is due-able
ACTIVE = "active"                # runs.activeState while a run is pending/running
ACTOR = "scheduler"
STUCK_RUNNING = "the backup worker stopped responding"
STUCK_PENDING = "the backup did not start before its deadline"
SKIP_SOURCE_STATUSES = ("paused", "pending")   # a paused source, or one never connected
IN_FLIGHT = ("pending", "running")
RESERVE_MS = 10_000              # stop picking up work this close to the function timeout
PAGE_SIZE = 100                  # index items per Query page


# --------------------------------------------------------------------------- entry point

def handler(event: Mapping[str, Any] | None, context: Any) -> dict:
    return tick(clock.now(), context=context)


def tick(now: datetime, *, context: Any = None) -> dict:
    """One scheduler pass at ``now``; the summary of what it decided."""
    summary = {"queued": 0, "skipped": 0, "failedStuck": 0, "errors": 0}
    for run in stuck_runs(now):
        if _out_of_time(context):
            break
        try:
            if fail_if_stuck(run["accountId"], run["runId"], now):
                summary["failedStuck"] += 1
        except Exception:  # one bad row must not stop the tick
            summary["errors"] += 1
            logger.exception("scheduler: failing a stuck run raised",
                             extra={"accountId": run.get("accountId"), "runId": run.get("runId")})
    for job in due_jobs(now):
        if _out_of_time(context):
            break
        try:
            outcome = queue_job(job, now)
        except Exception:
            outcome = "error"
            logger.exception("scheduler: queueing a due job raised",
                             extra={"accountId": job.get("accountId"), "jobId": job.get("jobId")})
        if outcome == "queued":
            summary["queued"] += 1
        elif outcome == "skipped":
            summary["skipped"] += 1
        elif outcome == "error":
            summary["errors"] += 1
        # "taken": another tick claimed the slot; nothing to count
    logger.info("scheduler: tick done", extra={"summary": summary, "at": clock.iso(now)})
    return summary


def _out_of_time(context: Any) -> bool:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return bool(remaining) and remaining() < RESERVE_MS


# --------------------------------------------------------------------------- due jobs

def due_jobs(now: datetime) -> Iterator[dict]:
    """Jobs whose ``nextRunAt`` is at or before ``now`` (schedule-index, paginated)."""
    query = {"IndexName": "schedule-index",
             "KeyConditionExpression": Key("scheduleState").eq(SCHEDULED)
             & Key("nextRunAt").lte(clock.iso(now))}
    yield from _pages(table("jobs"), query)


def queue_job(job: Mapping[str, Any], now: datetime) -> str:
    """Claim the job's slot and start its run. Returns ``queued``, ``skipped`` (slot
    advanced, no run), ``taken`` (another tick had the slot) or ``error``."""
    account_id, job_id, slot = job["accountId"], job["jobId"], job.get("nextRunAt")
    ids = {"accountId": account_id, "jobId": job_id, "slot": slot}
    fresh = claim_slot(job, now)
    if fresh is None:
        logger.info("scheduler: slot already taken or job changed", extra=ids)
        return "taken"
    ids["nextRunAt"] = fresh.get("nextRunAt")

    source = get_source(account_id, fresh.get("sourceId"))
    reason = None
    if source is None:
        reason = "source_missing"
    elif source.get("status") in SKIP_SOURCE_STATUSES:
        reason = f"source_{source.get('status')}"
    if reason:
        _skip(fresh, slot, reason)
        return "skipped"

    try:
        run = runs.start_run(account_id, fresh, trigger="schedule", actor=ACTOR)
    except ApiError as error:
        active_id = (fresh.get("activeRunId") or _active_run_id(fresh)) if error.status == 409 else None
        if active_id:
            _skip(fresh, slot, "run_active", runId=active_id)
            # a run that should long have ended must not block the job: fail it now
            fail_if_stuck(account_id, active_id, now)
        else:  # the job cannot run as it stands (platform gone, no endpoints left...)
            _skip(fresh, slot, error.code, message=error.message)
        return "skipped"
    logger.info("scheduler: queued", extra={**ids, "runId": run.get("runId")})
    return "queued"


def claim_slot(job: Mapping[str, Any], now: datetime) -> dict | None:
    """Move the job's ``nextRunAt`` from the slot read to its next slot after ``now``,
    on condition that it still holds that slot and is still scheduled and active. The
    updated job, or None when the condition failed (another tick, or the job changed)."""
    slot = job.get("nextRunAt")
    if not slot:
        return None
    schedule = job.get("schedule") or {}
    after = max(clock.parse_iso(slot), now)
    upcoming = schedules.next_run_at(schedule, after)
    names = {"#status": "status"}
    values: dict[str, Any] = {":slot": slot, ":scheduled": SCHEDULED, ":active": "active"}
    if upcoming is None:   # no further slot (the schedule became manual): leave the index
        expression = "REMOVE nextRunAt, scheduleState"
    else:
        expression = "SET nextRunAt = :next"
        values[":next"] = clock.iso(upcoming)
    condition = "nextRunAt = :slot AND scheduleState = :scheduled AND #status = :active"
    if job.get("updatedAt"):   # a user's edit since the read (new schedule...) wins
        condition += " AND updatedAt = :seen"
        values[":seen"] = job["updatedAt"]
    try:
        reply = table("jobs").update_item(
            Key={"accountId": job["accountId"], "jobId": job["jobId"]},
            UpdateExpression=expression,
            ConditionExpression=condition,
            ExpressionAttributeNames=names, ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW")
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return None
        raise
    return reply["Attributes"]


def _active_run_id(job: Mapping[str, Any]) -> str | None:
    current = table("jobs").get_item(Key={"accountId": job["accountId"], "jobId": job["jobId"]},
                                      ConsistentRead=True).get("Item") or {}
    return current.get("activeRunId")


def _skip(job: Mapping[str, Any], slot: str | None, reason: str, **more: str) -> None:
    """Log and record a slot that was advanced without a run (ids and reasons only)."""
    logger.info("scheduler: skipped", extra={"accountId": job["accountId"], "jobId": job["jobId"],
                                             "slot": slot, "reason": reason,
                                             "nextRunAt": job.get("nextRunAt"), **more})
    activity.record(account_id=job["accountId"], action="jobs.schedule.skip", actor=ACTOR,
                    resource_type="job", resource_id=job["jobId"], outcome="skipped",
                    details={"reason": reason, "slot": slot or "",
                             "sourceId": job.get("sourceId") or "", **more})


# --------------------------------------------------------------------------- stuck runs

def stuck_runs(now: datetime) -> Iterator[dict]:
    """Runs still pending/running whose deadline has passed (active-index, paginated)."""
    query = {"IndexName": "active-index",
             "KeyConditionExpression": Key("activeState").eq(ACTIVE)
             & Key("deadline").lt(clock.epoch(now))}
    yield from _pages(table("runs"), query)


def fail_if_stuck(account_id: str, run_id: str, now: datetime) -> bool:
    """Fail the run if it is still pending/running past its deadline; True when this
    call failed it. The run's update re-checks status and deadline, so a worker that
    finished or extended its deadline meanwhile is left alone; in the same transaction
    the job's ``activeRunId`` is cleared (while it names this run) and its stats count
    the failure."""
    run = runs.get_run(account_id, run_id)
    if not run:
        return False
    if run.get("status") not in IN_FLIGHT:
        if run.get("activeState"):
            _drop_from_active_index(run)
        return False
    deadline = run.get("deadline")
    if not isinstance(deadline, (int, Decimal)) or deadline >= clock.epoch(now):
        return False
    reason = STUCK_RUNNING if run["status"] == "running" else STUCK_PENDING
    at = clock.iso(now)
    endpoints = [
        {**e, "status": "failed", "error": e.get("error") or reason}
        if isinstance(e, Mapping) and e.get("status") in IN_FLIGHT else e
        for e in (run.get("endpoints") or [])]
    items: list[dict] = [{"Update": {
        "TableName": table("runs").name, "Key": {"accountId": account_id, "runId": run_id},
        "UpdateExpression": "SET #status = :failed, #error = :reason, finishedAt = :at, "
                            "endpoints = :endpoints REMOVE activeState",
        "ConditionExpression": "#status = :was AND deadline = :deadline",
        "ExpressionAttributeNames": {"#status": "status", "#error": "error"},
        "ExpressionAttributeValues": {":failed": "failed", ":reason": reason, ":at": at,
                                      ":endpoints": endpoints, ":was": run["status"],
                                      ":deadline": deadline}}}]
    job_id = run.get("jobId")
    release = runs.release_job_item(account_id, job_id, run_id, "failed", last_run_at=at)
    if release is not None:
        items.append(release)
    records = sum(_count(e.get("records")) for e in endpoints if isinstance(e, Mapping))
    bytes_ = sum(_count(e.get("bytes")) for e in endpoints if isinstance(e, Mapping))
    items += analytics.finished_run_items(account_id, source_id=run.get("sourceId"), status="failed",
                                          records=records, bytes_=bytes_, finished_at=at)
    reasons = transact(items)
    if reasons is not None:
        logger.info("scheduler: stuck run changed meanwhile; left alone",
                    extra={"accountId": account_id, "runId": run_id, "reasons": reasons})
        return False
    metrics.run_finished("failed", records=records, bytes_=bytes_, account_id=account_id, run_id=run_id)
    logger.info("scheduler: failed stuck run",
                extra={"accountId": account_id, "runId": run_id, "jobId": job_id,
                       "was": run["status"], "deadline": int(deadline)})
    activity.record(account_id=account_id, action="jobs.run.failed", actor=ACTOR,
                    resource_type="run", resource_id=run_id, outcome="failure",
                    details={"jobId": job_id or "", "sourceId": run.get("sourceId") or "",
                             "status": "failed", "reason": reason})
    if run.get("sourceId"):
        try:
            alert_owners(account_id, run["sourceId"], f"A backup failed: {reason}.", run_id=run_id)
        except Exception:   # noqa: BLE001 - the run is failed either way; the mail is best effort
            logger.exception("scheduler: alerting the owners failed",
                             extra={"accountId": account_id, "runId": run_id})
    return True


def _drop_from_active_index(run: Mapping[str, Any]) -> None:
    """A finished run that still carries ``activeState`` (its finisher did not remove it)
    leaves the active-index, so the index stays as small as the runs in flight."""
    try:
        table("runs").update_item(
            Key={"accountId": run["accountId"], "runId": run["runId"]},
            UpdateExpression="REMOVE activeState", ConditionExpression="#status = :done",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":done": run["status"]})
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        return
    logger.info("scheduler: finished run left the active index",
                extra={"accountId": run["accountId"], "runId": run["runId"], "status": run["status"]})


# --------------------------------------------------------------------------- helpers

def _pages(source_table, query: dict) -> Iterator[dict]:
    query = {**query, "Limit": PAGE_SIZE}
    while True:
        reply = source_table.query(**query)
        yield from reply.get("Items", [])
        last = reply.get("LastEvaluatedKey")
        if not last:
            return
        query = {**query, "ExclusiveStartKey": last}
