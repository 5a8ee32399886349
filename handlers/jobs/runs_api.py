"""Runs through the API: run a job now, a job's runs (newest first), one run, cancel."""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.conditions import Key

from handlers.jobs.crud import job_of
from handlers.shared import cursors, runs
from handlers.shared.accounts import valid_id
from handlers.shared.clients import table
from handlers.shared.dynamo import get_many
from handlers.shared.http import ApiError, Request


def source_ip(request: Request) -> str | None:
    return (((request.raw or {}).get("requestContext") or {}).get("http") or {}).get("sourceIp")


def run_job(request: Request) -> dict:
    job = job_of(request)
    row = runs.start_run(request.account_id, job, trigger="manual", actor=request.user_id,
                         source_ip=source_ip(request))
    return runs.run_view(row)


def list_runs(request: Request) -> dict:
    job = job_of(request)
    scope = f"{request.account_id}:runs:{job['jobId']}"
    kwargs: dict[str, Any] = {"IndexName": "job-index",
                              "KeyConditionExpression": Key("jobId").eq(job["jobId"]),
                              "ScanIndexForward": False, "Limit": cursors.limit_of(request.query)}
    start = cursors.decode(request.query.get("cursor"), scope)
    if start:
        kwargs["ExclusiveStartKey"] = start
    reply = table("runs").query(**kwargs)
    items = [runs.run_view(row) for row in reply.get("Items", [])
             if row.get("accountId") == request.account_id]
    return cursors.page(items, reply.get("LastEvaluatedKey"), scope)


def get_run(request: Request) -> dict:
    row = runs.get_run(request.account_id, request.path.get("runId"))
    if row is None:
        raise ApiError("not_found", "No such run")
    return runs.run_view(row)


def cancel_run(request: Request) -> dict:
    account_id, job_id, run_id = (request.account_id, request.path.get("jobId"),
                                  request.path.get("runId"))
    if not (valid_id(account_id) and valid_id(job_id) and valid_id(run_id)):
        raise ApiError("not_found", "No such job")
    # the job and the run, in one read
    job, row = get_many(("jobs", {"accountId": account_id, "jobId": job_id}),
                        ("runs", {"accountId": account_id, "runId": run_id}))
    if job is None:
        raise ApiError("not_found", "No such job")
    if row is None or row.get("jobId") != job["jobId"]:
        raise ApiError("not_found", "No such run")
    updated = runs.cancel_run(account_id, row, actor=request.user_id,
                              source_ip=source_ip(request), job=job)
    return runs.run_view(updated)
