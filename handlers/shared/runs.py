"""Runs of backup jobs: starting one (a pending run queued for the backup worker),
cancelling one, and the API's run shape. Shared by the jobs API, the sources service
(``POST /sources/{id}/sync``) and the scheduler.

A run row: ``accountId, runId, jobId, sourceId, status`` (``pending | running |
completed | partial | failed | cancelled``), ``trigger`` (``manual | schedule | sync``),
``createdAt, startedAt, finishedAt, records, bytes``, ``endpoints`` (``[{name, status,
records, bytes, error}]``), ``error``, ``cancelRequested``, ``lease {owner, expiresAt}``,
``checkpoint`` (null until the worker saves one), ``deadline`` (epoch seconds) and,
while the run is pending or running, ``activeState = "active"`` (the runs table's sparse
``active-index`` on activeState + deadline; whoever ends a run REMOVEs it).

A job has at most one active run: the run's put and ``SET activeRunId`` on the job (under
``attribute_not_exists(activeRunId)``) are one transaction, so a second start answers 409.
Whoever ends a run clears ``activeRunId`` (the worker's finish, a pending cancel here,
the scheduler for a stuck run).
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from typing import Any, Mapping

from botocore.exceptions import ClientError

from handlers.shared import activity, analytics, clock
from handlers.shared import metrics
from handlers.shared.clients import client, table
from handlers.shared.dynamo import transact
from handlers.shared.http import ApiError
from handlers.shared.ids import new_id

STATUSES = ("pending", "running", "completed", "partial", "failed", "cancelled")
ACTIVE_STATUSES = ("pending", "running")
FINISHED_STATUSES = ("completed", "partial", "failed", "cancelled")
TRIGGERS = ("manual", "schedule", "sync")
ACTIVE_STATE = "active"
# A pending run the worker has not picked up by then is failed by the scheduler; the
# worker sets its own deadline when it starts running.
PENDING_DEADLINE_SECONDS = 24 * 3600


# --------------------------------------------------------------------------- reads

def get_run(account_id: str | None, run_id: str | None) -> dict | None:
    """The account's run, or None (another account's run is None too)."""
    if not account_id or not run_id or not isinstance(run_id, str) or len(run_id) > 128:
        return None
    return table("runs").get_item(Key={"accountId": account_id, "runId": run_id},
                                  ConsistentRead=True).get("Item")


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _count(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def run_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """The API's run shape (no lease, checkpoint or other worker internals)."""
    return {
        "runId": row["runId"], "jobId": row.get("jobId"), "sourceId": row.get("sourceId"),
        "status": row.get("status", "pending"), "trigger": row.get("trigger"),
        "createdAt": row.get("createdAt"), "startedAt": row.get("startedAt"),
        "finishedAt": row.get("finishedAt"),
        "records": _count(row.get("records")), "bytes": _count(row.get("bytes")),
        "endpoints": [{"name": e.get("name"), "status": e.get("status", "pending"),
                       "records": _count(e.get("records")), "bytes": _count(e.get("bytes")),
                       "error": e.get("error")}
                      for e in row.get("endpoints") or []],
        "error": row.get("error"),
        "cancelRequested": bool(row.get("cancelRequested")),
    }


# --------------------------------------------------------------------------- queue

def message_body(account_id: str, run_id: str, checkpoint: str | None = None) -> str:
    """The job queue's message: ``{"accountId", "runId", "checkpoint"}``."""
    return json.dumps({"accountId": account_id, "runId": run_id, "checkpoint": checkpoint},
                      separators=(",", ":"))


def enqueue(account_id: str, run_id: str, checkpoint: str | None = None, *, delay_seconds: int = 0) -> None:
    kwargs: dict[str, Any] = {"QueueUrl": os.environ["JOB_QUEUE_URL"],
                              "MessageBody": message_body(account_id, run_id, checkpoint)}
    if delay_seconds:
        kwargs["DelaySeconds"] = int(delay_seconds)
    client("sqs").send_message(**kwargs)


# --------------------------------------------------------------------------- start

def run_endpoints(job: Mapping[str, Any], platform) -> list[str]:
    """The endpoint names a run of ``job`` backs up: the job's subset (in the catalog's
    order, unknown names dropped) or every endpoint of the platform."""
    names = [e.name for e in platform.endpoints] if platform is not None else []
    chosen = job.get("endpoints")
    if chosen:
        wanted = set(chosen)
        names = [name for name in names if name in wanted]
    return names


def new_run(account_id: str, job: Mapping[str, Any], source: Mapping[str, Any] | None, *,
            trigger: str, actor: str | None) -> dict:
    """The pending run row a start of ``job`` would put, once the start is allowed: the job
    has no active run (409), its source (``source``, read already) exists, is not paused
    and its platform and endpoints still exist (409 otherwise)."""
    from handlers.shared.connectors.platforms import get_platform

    if trigger not in TRIGGERS:
        raise ValueError(f"unknown trigger {trigger!r}")
    if job.get("activeRunId"):
        raise _busy()
    if source is None:
        raise ApiError("conflict", "This job's source no longer exists; delete the job")
    if source.get("status") == "paused":
        raise ApiError("conflict", "The source is paused; resume it to back it up")
    platform = get_platform(source.get("type", ""))
    if platform is None:
        raise ApiError("conflict", "ListBackup no longer supports this source's platform")
    endpoints = run_endpoints(job, platform)
    if not endpoints:
        raise ApiError("conflict", "None of this job's endpoints exist on the platform any more; "
                                   "update the job's endpoints")
    moment = clock.now()
    return {
        "accountId": account_id, "runId": new_id("run"), "jobId": job["jobId"],
        "sourceId": job["sourceId"], "status": "pending", "trigger": trigger,
        "createdAt": clock.iso(moment), "startedAt": None, "finishedAt": None, "records": 0,
        "bytes": 0,
        "endpoints": [{"name": name, "status": "pending", "records": 0, "bytes": 0, "error": None}
                      for name in endpoints],
        "error": None, "cancelRequested": False, "checkpoint": None,
        "activeState": ACTIVE_STATE, "deadline": clock.epoch(moment) + PENDING_DEADLINE_SECONDS,
        "createdBy": actor or "",
    }


def put_item(row: Mapping[str, Any]) -> dict:
    """The transaction entry putting a new run row."""
    return {"Put": {"TableName": table("runs").name, "Item": dict(row),
                    "ConditionExpression": "attribute_not_exists(runId)"}}


def start_event(row: Mapping[str, Any], *, actor: str | None,
                source_ip: str | None = None) -> activity.Event:
    """The audit event of a run's start (``jobs.run.start``)."""
    return activity.items(account_id=row["accountId"], action="jobs.run.start", actor=actor,
                          resource_type="run", resource_id=row["runId"], source_ip=source_ip,
                          details={"jobId": row["jobId"], "sourceId": row["sourceId"],
                                   "trigger": row["trigger"]})


def start_run(account_id: str, job: Mapping[str, Any], *, trigger: str, actor: str | None,
              source_ip: str | None = None, source: Mapping[str, Any] | None = None) -> dict:
    """Create a pending run of ``job``, mark it the job's active run (409 ``conflict`` when
    one is already pending or running) and record the activity - one transaction - then
    queue it for the worker. ``source``: the job's source row when the caller has read it.
    Answers the run row."""
    from handlers.shared.sources import get_source

    if job.get("activeRunId"):
        raise _busy()
    if source is None:
        source = get_source(account_id, job.get("sourceId"))
    row = new_run(account_id, job, source, trigger=trigger, actor=actor)
    run_id = row["runId"]
    reasons = transact([
        put_item(row),
        {"Update": {"TableName": table("jobs").name,
                    "Key": {"accountId": account_id, "jobId": job["jobId"]},
                    "UpdateExpression": "SET activeRunId = :run",
                    "ConditionExpression": "attribute_exists(jobId) AND attribute_not_exists(activeRunId)",
                    "ExpressionAttributeValues": {":run": run_id}}},
        *start_event(row, actor=actor, source_ip=source_ip).items,
    ])
    if reasons is not None:
        if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
            current = table("jobs").get_item(Key={"accountId": account_id, "jobId": job["jobId"]},
                                             ConsistentRead=True).get("Item")
            if current is None:
                raise ApiError("not_found", "No such job")
            raise _busy()
        raise ApiError("conflict", "The job changed meanwhile; try again")
    queue(row)
    return row


def queue(row: Mapping[str, Any]) -> None:
    """Put a run that has just been stored on the job queue; when that fails, nothing will
    ever pick it up: it ends at once (failed) so its job is free again, and the caller gets
    503 ``unavailable``."""
    account_id, run_id = row["accountId"], row["runId"]
    try:
        enqueue(account_id, run_id)
    except Exception:
        _end_unqueued(account_id, row["jobId"], run_id, row.get("sourceId"))
        raise ApiError("unavailable", "The backup could not be queued; try again shortly") from None


def release_job_item(account_id: str, job_id: str | None, run_id: str, status: str, *,
                     last_run_at: str | None = None, job: Mapping[str, Any] | None = None) -> dict | None:
    """The transaction item that frees a job from its ended run (``activeRunId`` removed,
    only if it still names this run) and counts the run's status in the job's stats; None
    when the job is gone or already runs something else. ``job``: its row when the caller
    has just read it (consistently)."""
    if job is None or job.get("jobId") != job_id:
        job = table("jobs").get_item(Key={"accountId": account_id, "jobId": job_id},
                                     ConsistentRead=True).get("Item") if job_id else None
    if job is None or job.get("activeRunId") != run_id:
        return None
    sets: list[str] = []
    values: dict[str, Any] = {":run": run_id}
    if last_run_at is not None:
        sets.append("lastRunAt = :at")
        values[":at"] = last_run_at
    if isinstance(job.get("stats"), Mapping):
        sets += ["stats.runs = if_not_exists(stats.runs, :zero) + :one",
                 f"stats.{status} = if_not_exists(stats.{status}, :zero) + :one",
                 "stats.lastStatus = :status"]
        values.update({":zero": 0, ":one": 1, ":status": status})
    expression = (f"SET {', '.join(sets)} " if sets else "") + "REMOVE activeRunId"
    return {"Update": {
        "TableName": table("jobs").name, "Key": {"accountId": account_id, "jobId": job_id},
        "UpdateExpression": expression, "ConditionExpression": "activeRunId = :run",
        "ExpressionAttributeValues": values}}


def _busy() -> ApiError:
    return ApiError("conflict", "A run of this job is already pending or running; wait for it "
                                "to finish or cancel it")


def _end_unqueued(account_id: str, job_id: str, run_id: str, source_id: str | None) -> None:
    now = clock.iso()
    # the job is freed and, like any run that ended, counts it in its stats
    release = release_job_item(account_id, job_id, run_id, "failed")
    transact([
        *analytics.finished_run_items(account_id, source_id=source_id, status="failed", records=0,
                                      bytes_=0, finished_at=now),
        {"Update": {"TableName": table("runs").name, "Key": {"accountId": account_id, "runId": run_id},
                    "UpdateExpression": "SET #status = :failed, finishedAt = :now, #error = :why "
                                        "REMOVE activeState",
                    "ExpressionAttributeNames": {"#status": "status", "#error": "error"},
                    "ExpressionAttributeValues": {":failed": "failed", ":now": now,
                                                  ":why": "The backup could not be queued"}}},
        *([release] if release is not None else []),
    ])


# --------------------------------------------------------------------------- cancel

def cancel_run(account_id: str, run: Mapping[str, Any], *, actor: str | None,
               source_ip: str | None = None, job: Mapping[str, Any] | None = None) -> dict:
    """Cancel a run: a pending run ends ``cancelled`` at once (the job's ``activeRunId`` is
    cleared, its stats count it; the queued message then finds it finished and does
    nothing); a running one gets ``cancelRequested`` and the worker stops at its next page.
    A finished run answers 409. Answers the updated run row. ``job``: the run's job row,
    when the caller has just read it."""
    run_id = run["runId"]
    for _ in range(3):
        status = run.get("status")
        if status in FINISHED_STATUSES:
            raise ApiError("conflict", f"The run has already finished ({status})")
        if status == "pending":
            event = activity.items(account_id=account_id, action="jobs.run.cancel", actor=actor,
                                   resource_type="run", resource_id=run_id, source_ip=source_ip,
                                   details={"jobId": run.get("jobId"), "was": "pending"})
            updated = _cancel_pending(account_id, run, job=job, extra=event.items)
            if updated is not None:
                return updated
        else:
            try:
                updated = table("runs").update_item(
                    Key={"accountId": account_id, "runId": run_id},
                    UpdateExpression="SET cancelRequested = :yes",
                    ConditionExpression="#status = :running",
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={":yes": True, ":running": "running"},
                    ReturnValues="ALL_NEW")["Attributes"]
                activity.record(account_id=account_id, action="jobs.run.cancel", actor=actor,
                                resource_type="run", resource_id=run_id, source_ip=source_ip,
                                details={"jobId": run.get("jobId"), "was": "running"})
                return updated
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise
        # the run moved on meanwhile (picked up, or finished): look again
        run, job = get_run(account_id, run_id), None
        if run is None:
            raise ApiError("not_found", "No such run")
    raise ApiError("conflict", "The run changed meanwhile; try again")


def _cancel_pending(account_id: str, run: Mapping[str, Any], *, job: Mapping[str, Any] | None = None,
                    extra: list[dict] | tuple = ()) -> dict | None:
    """End a pending run as cancelled with its job freed (and ``extra`` entries committed
    with it); the run as it now is, or None if it was no longer pending."""
    now = clock.iso()
    run_id, job_id = run["runId"], run.get("jobId")
    endpoints = [{**e, "status": "cancelled"} for e in run.get("endpoints") or []]
    items: list[dict] = [{"Update": {
        "TableName": table("runs").name, "Key": {"accountId": account_id, "runId": run_id},
        "UpdateExpression": "SET #status = :cancelled, finishedAt = :now, endpoints = :endpoints, "
                            "cancelRequested = :yes REMOVE activeState",
        "ConditionExpression": "#status = :pending",
        "ExpressionAttributeNames": {"#status": "status"},
        "ExpressionAttributeValues": {":cancelled": "cancelled", ":now": now, ":pending": "pending",
                                      ":endpoints": endpoints, ":yes": True}}}]
    release = release_job_item(account_id, job_id, run_id, "cancelled", job=job)
    if release is not None:
        items.append(release)
    items += analytics.finished_run_items(account_id, source_id=run.get("sourceId"), status="cancelled",
                                          records=0, bytes_=0, finished_at=now)
    reasons = transact([*items, *extra])
    if reasons is not None:
        return None
    metrics.run_finished("cancelled", records=0, bytes_=0, account_id=account_id, run_id=run_id)
    # what the update above wrote, on the row it was conditional on
    cancelled = {k: v for k, v in run.items() if k != "activeState"}
    cancelled.update({"status": "cancelled", "finishedAt": now, "endpoints": endpoints,
                      "cancelRequested": True})
    return cancelled
