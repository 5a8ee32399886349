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
from handlers.shared.clients import table
from handlers.shared.connectors.platforms import get_platform
from handlers.shared.http import ApiError, Request
from handlers.shared.sources import get_source


def job_of(request: Request) -> dict:
    """The path's job, if it is the caller's account's; 404 otherwise."""
    row = store.get_job(request.account_id, request.path.get("jobId"))
    if row is None:
        raise ApiError("not_found", "No such job")
    return row


def platform_of(source: dict):
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
    source = get_source(request.account_id, body["sourceId"])
    if source is None:
        raise ApiError("not_found", "No such source")
    platform = platform_of(source)
    account, plan = store.plan_of(request.account_id)
    endpoints = store.clean_endpoints(platform, body.get("endpoints"))
    schedule = schedules.validate(body["schedule"], plan)
    name = body["name"].strip()
    row = store.create_job(request.account_id, source_id=source["sourceId"], name=name,
                           schedule=schedule, endpoints=endpoints,
                           status=body.get("status", "active"), actor=request.user_id,
                           plan=plan, account=account)
    activity.record_request(request, "jobs.create", "job", row["jobId"],
                            details={"name": name, "sourceId": source["sourceId"],
                                     "frequency": schedule["frequency"]})
    return store.job_view(row)


def get_job(request: Request) -> dict:
    return store.job_view(job_of(request))


def update_job(request: Request) -> dict:
    row = job_of(request)
    body = request.body
    sets = ["updatedAt = :now"]
    removes: list[str] = []
    values: dict[str, Any] = {":now": clock.iso(), ":seen": row.get("updatedAt", "")}
    names: dict[str, str] = {}

    if "endpoints" in body:
        source = get_source(request.account_id, row.get("sourceId"))
        if source is None:
            raise ApiError("conflict", "This job's source no longer exists")
        endpoints = store.clean_endpoints(platform_of(source), body["endpoints"])
        sets.append("endpoints = :endpoints")
        values[":endpoints"] = endpoints
    schedule = row.get("schedule") or {"frequency": "manual"}
    if "schedule" in body:
        _, plan = store.plan_of(request.account_id)
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
    store.delete_job(row["accountId"], row["jobId"])
    activity.record_request(request, "jobs.delete", "job", row["jobId"],
                            details={"name": row.get("name", ""), "sourceId": row.get("sourceId")})
    return None
