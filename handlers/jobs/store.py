"""The jobs table's store, used by the jobs API and by ``POST /sources/{id}/sync``.

A job row: ``accountId, jobId, sourceId, name, schedule {frequency, time, dayOfWeek,
dayOfMonth}, endpoints`` (list of endpoint names, or null for all the platform's),
``status`` (``active | paused``), ``nextRunAt`` and ``scheduleState = "scheduled"`` only
while active and not manual (absent otherwise: the sparse ``schedule-index`` holds only
jobs that can fall due), ``lastRunAt``, ``activeRunId`` (while a run is pending or
running), ``isDefault``, ``stats {runs, completed, partial, failed, cancelled, records,
bytes, lastStatus}``, ``createdBy, createdAt, updatedAt``.

The account row's ``jobCount`` counts its jobs: creating one increments it in the same
transaction as the put, under the effective plan's job limit.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable, Mapping

from boto3.dynamodb.conditions import Key

from handlers.shared import clock, schedules
from handlers.shared.accounts import effective_plan, get_account
from handlers.shared.clients import table
from handlers.shared.dynamo import as_int, counted_delete, counted_put
from handlers.shared.http import ApiError
from handlers.shared.ids import new_id
from handlers.shared.plans import Plan, limit_of

STATUSES = ("active", "paused")
SCHEDULED = "scheduled"
STAT_COUNTERS = ("runs", "completed", "partial", "failed", "cancelled", "records", "bytes")
DEFAULT_JOBS_CHECKED = 100


def empty_stats() -> dict:
    return {**{name: 0 for name in STAT_COUNTERS}, "lastStatus": None}


def get_job(account_id: str | None, job_id: str | None) -> dict | None:
    if not account_id or not job_id or not isinstance(job_id, str) or len(job_id) > 128:
        return None
    return table("jobs").get_item(Key={"accountId": account_id, "jobId": job_id},
                                  ConsistentRead=True).get("Item")


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def job_view(row: Mapping[str, Any]) -> dict[str, Any]:
    stats = row.get("stats") or {}
    return {
        "jobId": row["jobId"], "sourceId": row.get("sourceId"), "name": row.get("name", ""),
        "schedule": schedules.view(row.get("schedule")),
        "endpoints": list(row["endpoints"]) if row.get("endpoints") else None,
        "status": row.get("status", "active"),
        "nextRunAt": row.get("nextRunAt"), "lastRunAt": row.get("lastRunAt"),
        "stats": {**{name: as_int(stats.get(name)) for name in STAT_COUNTERS},
                  "lastStatus": stats.get("lastStatus")},
        "activeRunId": row.get("activeRunId"), "isDefault": bool(row.get("isDefault")),
        "createdAt": row.get("createdAt"), "updatedAt": row.get("updatedAt"),
    }


def plan_of(account_id: str) -> tuple[dict, Plan]:
    account = get_account(account_id)
    if account is None:
        raise ApiError("not_found", "No such account")
    return account, effective_plan(account)


def clean_endpoints(platform, endpoints: Any) -> list[str] | None:
    """The chosen endpoint names (catalog order, no repeats) or None for all of them;
    ``validation_failed`` naming the unknown ones."""
    if endpoints is None:
        return None
    if not isinstance(endpoints, list) or not endpoints or \
            not all(isinstance(name, str) for name in endpoints):
        raise ApiError("validation_failed", "endpoints must be a non-empty list of endpoint names "
                                            "(or null for all of them)", fields=["endpoints"])
    known = [e.name for e in platform.endpoints]
    unknown = [name for name in dict.fromkeys(endpoints) if name not in known]
    if unknown:
        shown = ", ".join(repr(name[:64]) for name in unknown[:10])
        raise ApiError("validation_failed",
                       f"{platform.name} has no endpoint {shown}; it has {', '.join(known)}",
                       fields=["endpoints"], details={"unknownEndpoints": [n[:64] for n in unknown[:50]]})
    wanted = set(endpoints)
    return [name for name in known if name in wanted]


def schedule_attributes(schedule: Mapping[str, Any], status: str, moment=None) -> dict[str, Any]:
    """``nextRunAt`` and ``scheduleState`` for a job in ``status`` with ``schedule``; an
    empty dict when the job cannot fall due (paused or manual)."""
    if status != "active":
        return {}
    following = schedules.next_run_at(schedule, moment or clock.now())
    if following is None:
        return {}
    return {"nextRunAt": clock.iso(following), "scheduleState": SCHEDULED}


def plan_limit_error(plan: Plan, limit: int) -> ApiError:
    noun = "job" if limit == 1 else "jobs"
    return ApiError("plan_limit", f"The {plan.name} plan allows {limit} {noun} per account; "
                                  "upgrade or remove a job to add another")


def new_job_row(account_id: str, *, source_id: str, name: str, schedule: Mapping[str, Any],
                endpoints: list[str] | None, status: str = "active", is_default: bool = False,
                actor: str | None = None, job_id: str | None = None) -> dict:
    """A new job row (values already validated)."""
    if status not in STATUSES:
        raise ValueError(f"unknown job status {status!r}")
    now = clock.iso()
    return {
        "accountId": account_id, "jobId": job_id or new_id("job"), "sourceId": source_id,
        "name": name, "schedule": dict(schedule), "endpoints": endpoints, "status": status,
        "lastRunAt": None, "isDefault": is_default, "stats": empty_stats(),
        "createdBy": actor or "", "createdAt": now, "updatedAt": now,
        **schedule_attributes(schedule, status),
    }


def insert_job(row: dict, *, plan: Plan, account: dict, extra: list[dict] | tuple = ()) -> list[str] | None:
    """Put a new job row and count it on the account (``jobCount``) in one transaction with
    ``extra`` entries, within the plan's job limit (``plan_limit`` 402). Answers None when
    committed, or the transaction's reasons when it was refused for another cause (the
    job id already taken: reasons[1])."""
    limit = limit_of(plan, "jobs")
    if limit is not None and as_int(account.get("jobCount")) >= limit:
        raise plan_limit_error(plan, limit)
    reasons = counted_put(row["accountId"], "jobCount", limit, table("jobs").name, row, "jobId", extra)
    if reasons is not None and reasons[0] == "ConditionalCheckFailed" and limit is not None:
        raise plan_limit_error(plan, limit)
    return reasons


def create_job(account_id: str, *, source_id: str, name: str, schedule: Mapping[str, Any],
               endpoints: list[str] | None, status: str = "active", is_default: bool = False,
               actor: str | None = None, plan: Plan | None = None, account: dict | None = None,
               with_items: Callable[[dict], list[dict]] | None = None) -> dict:
    """Store a new job (values already validated); the account's ``jobCount`` goes up in
    the same transaction, within the effective plan's job limit (``plan_limit`` 402).
    ``with_items(row)``: more entries for that transaction (the audit event)."""
    row = new_job_row(account_id, source_id=source_id, name=name, schedule=schedule,
                      endpoints=endpoints, status=status, is_default=is_default, actor=actor)
    if account is None or plan is None:
        account, plan = plan_of(account_id)
    if insert_job(row, plan=plan, account=account,
                  extra=with_items(row) if with_items else ()) is not None:
        raise ApiError("conflict", "The account changed meanwhile; try again")
    return row


def delete_job(account_id: str, job_id: str, extra: list[dict] | tuple = ()) -> None:
    """Delete the job and decrement the account's ``jobCount`` in one transaction with
    ``extra`` entries (its audit event); ``conflict`` while a run is active, ``not_found``
    when already gone. A counter that had drifted to zero is left alone."""
    delete = {"Delete": {
        "TableName": table("jobs").name, "Key": {"accountId": account_id, "jobId": job_id},
        "ConditionExpression": "attribute_exists(jobId) AND attribute_not_exists(activeRunId)"}}
    reasons = counted_delete(account_id, "jobCount", delete, extra)
    if reasons is None:
        return
    if reasons[0] == "ConditionalCheckFailed":
        current = get_job(account_id, job_id)
        if current is None:
            raise ApiError("not_found", "No such job")
        raise ApiError("conflict", "A run of this job is pending or running; cancel it or wait "
                                   "for it to finish, then delete the job")
    raise ApiError("conflict", "The job changed meanwhile; try again")


def default_job_id(source_id: str) -> str:
    """The id a source's default job gets: one per source, so two syncs racing to create it
    cannot both succeed, and a sync reads it with the source in one call."""
    return f"job_{source_id}"


def default_job(account_id: str, source_id: str) -> dict | None:
    """The source's default job (``isDefault``), found through the jobs ``source-index``
    (a job created before default jobs had their fixed id, ``default_job_id``)."""
    kwargs: dict[str, Any] = {"IndexName": "source-index",
                              "KeyConditionExpression": Key("sourceId").eq(source_id)}
    checked = 0
    while checked < DEFAULT_JOBS_CHECKED:
        reply = table("jobs").query(**kwargs)
        for item in reply.get("Items", []):
            checked += 1
            if item.get("accountId") == account_id and item.get("isDefault"):
                # the index may lag: read the row itself
                return get_job(account_id, item["jobId"]) or None
        if not reply.get("LastEvaluatedKey"):
            return None
        kwargs["ExclusiveStartKey"] = reply["LastEvaluatedKey"]
    return None
