"""List, create, read, update and delete backup jobs.

Every read and write is keyed by the caller's account (another account's job or source
id answers 404). Input is checked completely (the source, the schedule against the plan,
the endpoint names against the platform's catalog) before anything is written.
"""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from handlers.jobs import store
from handlers.shared import activity, clock, cursors, schedules
from handlers.shared.accounts import ancestor_ids, effective_plan, plan_holder, plan_in_force, valid_id
from handlers.shared.clients import table
from handlers.shared.dynamo import get_many
from handlers.shared.http import ApiError, Request


def job_of(request: Request) -> dict:
    """The path's job, if it is the caller's account's; 404 otherwise."""
    row = store.get_job(request.account_id, request.path.get("jobId"))
    if row is None:
        raise ApiError("not_found", "No such job")
    return row


def platform_of(source: dict):
    # the platform catalog loads on first use, not in every cold start (GET /jobs needs none)
    from handlers.shared.connectors.platforms import get_platform

    platform = get_platform(source.get("type", ""))
    if platform is None:
        raise ApiError("conflict", "ListBackup no longer supports this source's platform")
    return platform


def list_jobs(request: Request) -> dict:
    scope = f"{request.account_id}:jobs"
    kwargs: dict[str, Any] = {"KeyConditionExpression": Key("accountId").eq(request.account_id),
                              "Limit": cursors.limit_of(request.query)}
    start = cursors.decode(request.query.get("cursor"), scope)
    if start:
        kwargs["ExclusiveStartKey"] = start
    reply = table("jobs").query(**kwargs)
    return cursors.page([store.job_view(row) for row in reply.get("Items", [])],
                        reply.get("LastEvaluatedKey"), scope)


def create_job(request: Request) -> dict:
    body = request.body
    source_id = body["sourceId"]
    # the source and the account (its plan's limits), in one read
    source, account = get_many(("sources", {"accountId": request.account_id, "sourceId": source_id}),
                               ("accounts", {"accountId": request.account_id}), consistent=False) \
        if valid_id(source_id) and valid_id(request.account_id) else (None, None)
    if source is None:
        raise ApiError("not_found", "No such source")
    platform = platform_of(source)
    if account is None:
        raise ApiError("not_found", "No such account")
    plan = effective_plan(account)
    endpoints = store.clean_endpoints(platform, body.get("endpoints"))
    schedule = schedules.validate(body["schedule"], plan)
    name = body["name"].strip()
    row = store.create_job(
        request.account_id, source_id=source["sourceId"], name=name, schedule=schedule,
        endpoints=endpoints, status=body.get("status", "active"), actor=request.user_id,
        plan=plan, account=account,
        with_items=lambda new: activity.request_items(
            request, "jobs.create", "job", new["jobId"],
            details={"name": name, "sourceId": source["sourceId"],
                     "frequency": schedule["frequency"]}).items)
    return store.job_view(row)


def get_job(request: Request) -> dict:
    return store.job_view(job_of(request))


def update_job(request: Request) -> dict:
    """At most four DynamoDB calls: the job (with the account when the schedule changes);
    the job's source (when the endpoints change) with the account's ancestors (when it
    inherits its plan); the conditional update; its audit event."""
    body = request.body
    job_id = request.path.get("jobId")
    if not (valid_id(request.account_id) and isinstance(job_id, str) and valid_id(job_id)):
        raise ApiError("not_found", "No such job")
    keys = [("jobs", {"accountId": request.account_id, "jobId": job_id})]
    if "schedule" in body:
        keys.append(("accounts", {"accountId": request.account_id}))
    row, *found = get_many(*keys)
    if row is None:
        raise ApiError("not_found", "No such job")
    account = found[0] if found else None
    if "schedule" in body and account is None:
        raise ApiError("not_found", "No such account")
    # the source and the plan's ancestors, in one read
    more = [("sources", {"accountId": request.account_id, "sourceId": row.get("sourceId")})] \
        if "endpoints" in body and valid_id(row.get("sourceId")) else []
    ancestors = ancestor_ids(account) if account is not None else []
    rows = get_many(*more, *(("accounts", {"accountId": i}) for i in ancestors),
                    consistent=False) if more or ancestors else []
    cache = dict(zip(ancestors, rows[len(more):]))
    sets = ["updatedAt = :now"]
    removes: list[str] = []
    values: dict[str, Any] = {":now": clock.iso(), ":seen": row.get("updatedAt", "")}
    names: dict[str, str] = {}

    if "endpoints" in body:
        source = rows[0] if more else None
        if source is None:
            raise ApiError("conflict", "This job's source no longer exists")
        endpoints = store.clean_endpoints(platform_of(source), body["endpoints"])
        sets.append("endpoints = :endpoints")
        values[":endpoints"] = endpoints
    schedule = row.get("schedule") or {"frequency": "manual"}
    if "schedule" in body:
        plan = plan_in_force(plan_holder(account, cache))
        schedule = schedules.validate(body["schedule"], plan)
        sets.append("schedule = :schedule")
        values[":schedule"] = schedule
    status = body.get("status", row.get("status", "active"))
    if "name" in body:
        sets.append("#name = :name")
        names["#name"] = "name"
        values[":name"] = body["name"].strip()
    if "status" in body:
        sets.append("#status = :status")
        names["#status"] = "status"
        values[":status"] = status
    if "schedule" in body or ("status" in body and status != row.get("status")):
        due = store.schedule_attributes(schedule, status)
        if due:
            sets += ["nextRunAt = :next", "scheduleState = :state"]
            values.update({":next": due["nextRunAt"], ":state": due["scheduleState"]})
        else:
            removes += ["nextRunAt", "scheduleState"]

    expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
    kwargs: dict[str, Any] = {
        "Key": {"accountId": row["accountId"], "jobId": row["jobId"]},
        "UpdateExpression": expression, "ExpressionAttributeValues": values,
        # the scheduler advances nextRunAt without touching updatedAt; a user's change
        # must not be lost to another user's concurrent one
        "ConditionExpression": "attribute_exists(jobId) AND updatedAt = :seen",
        "ReturnValues": "ALL_NEW"}
    if names:
        kwargs["ExpressionAttributeNames"] = names
    try:
        updated = table("jobs").update_item(**kwargs)["Attributes"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        if store.get_job(row["accountId"], row["jobId"]) is None:
            raise ApiError("not_found", "No such job") from None
        raise ApiError("conflict", "The job changed meanwhile; try again") from None
    activity.record_request(request, "jobs.update", "job", row["jobId"],
                            details={"fields": sorted(body), "sourceId": row.get("sourceId")})
    return store.job_view(updated)


def delete_job(request: Request) -> None:
    row = job_of(request)
    if row.get("activeRunId"):
        raise ApiError("conflict", "A run of this job is pending or running; cancel it or wait "
                                   "for it to finish, then delete the job")
    store.delete_job(row["accountId"], row["jobId"], activity.request_items(
        request, "jobs.delete", "job", row["jobId"],
        details={"name": row.get("name", ""), "sourceId": row.get("sourceId")}).items)
    return None
