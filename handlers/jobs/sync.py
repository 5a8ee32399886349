"""``POST /sources/{sourceId}/sync`` (bound by the sources service): back a source up now
through its default job, creating a manual default job named after the source when it
has none (which counts against the plan's job limit)."""

from __future__ import annotations

from handlers.jobs import store
from handlers.shared import activity, runs
from handlers.shared.accounts import effective_plan, valid_id
from handlers.shared.dynamo import get_many
from handlers.shared.http import ApiError, Request

DEFAULT_SCHEDULE = {"frequency": "manual", "time": None, "dayOfWeek": None, "dayOfMonth": None}


def sync_source(request: Request) -> dict:
    """At most four DynamoDB calls: the source, its default job and the account in one
    read; a job made before default jobs had a fixed id is looked up through the index;
    the account's ancestors when it inherits its plan; one transaction that starts the
    run (creating the default job first when there is none) with its audit events."""
    account_id, source_id = request.account_id, request.path.get("sourceId")
    if not valid_id(account_id) or not valid_id(source_id):
        raise ApiError("not_found", "No such source")
    source, job, account = get_many(
        ("sources", {"accountId": account_id, "sourceId": source_id}),
        ("jobs", {"accountId": account_id, "jobId": store.default_job_id(source_id)}),
        ("accounts", {"accountId": account_id}))
    if source is None:
        raise ApiError("not_found", "No such source")
    if source.get("status") == "paused":
        raise ApiError("conflict", "The source is paused; resume it to back it up")
    ip = activity.source_ip(request)
    if job is None:
        job = store.default_job(account_id, source_id)
    if job is not None:
        row = runs.start_run(account_id, job, trigger="sync", actor=request.user_id,
                             source_ip=ip, source=source)
        return runs.run_view(row)

    # No default job yet: create it already running this sync, in one transaction.
    if account is None:
        raise ApiError("not_found", "No such account")
    job = store.new_job_row(account_id, source_id=source_id,
                            name=(source.get("name") or source_id)[:100],
                            schedule=DEFAULT_SCHEDULE, endpoints=None, status="active",
                            is_default=True, actor=request.user_id,
                            job_id=store.default_job_id(source_id))
    run = runs.new_run(account_id, job, source, trigger="sync", actor=request.user_id)
    created = activity.request_items(request, "jobs.create", "job", job["jobId"],
                                     details={"name": job["name"], "sourceId": source_id,
                                              "frequency": "manual", "default": True})
    reasons = store.insert_job({**job, "activeRunId": run["runId"]}, plan=effective_plan(account),
                               account=account,
                               extra=[runs.put_item(run), *created.items,
                                      *runs.start_event(run, actor=request.user_id, source_ip=ip).items])
    if reasons is not None:
        if reasons[1] == "ConditionalCheckFailed":   # another sync created it meanwhile
            raise ApiError("conflict", "A run of this job is already pending or running; wait "
                                       "for it to finish or cancel it")
        raise ApiError("conflict", "The account changed meanwhile; try again")
    runs.queue(run)
    return runs.run_view(run)
