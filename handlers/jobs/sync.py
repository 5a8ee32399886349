"""``POST /sources/{sourceId}/sync`` (bound by the sources service): back a source up now
through its default job, creating a manual default job named after the source when it
has none (which counts against the plan's job limit)."""

from __future__ import annotations

from handlers.jobs import store
from handlers.shared import activity, runs
from handlers.shared.http import ApiError, Request
from handlers.shared.sources import get_source

DEFAULT_SCHEDULE = {"frequency": "manual", "time": None, "dayOfWeek": None, "dayOfMonth": None}


def sync_source(request: Request) -> dict:
    source = get_source(request.account_id, request.path.get("sourceId"))
    if source is None:
        raise ApiError("not_found", "No such source")
    if source.get("status") == "paused":
        raise ApiError("conflict", "The source is paused; resume it to back it up")
    job = store.default_job(request.account_id, source["sourceId"])
    if job is None:
        job = store.create_job(request.account_id, source_id=source["sourceId"],
                               name=(source.get("name") or source["sourceId"])[:100],
                               schedule=DEFAULT_SCHEDULE, endpoints=None, status="active",
                               is_default=True, actor=request.user_id)
        activity.record_request(request, "jobs.create", "job", job["jobId"],
                                details={"name": job["name"], "sourceId": source["sourceId"],
                                         "frequency": "manual", "default": True})
    ip = (((request.raw or {}).get("requestContext") or {}).get("http") or {}).get("sourceIp")
    row = runs.start_run(request.account_id, job, trigger="sync", actor=request.user_id, source_ip=ip)
    return runs.run_view(row)
