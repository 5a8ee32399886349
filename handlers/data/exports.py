"""Exports: one zip of chosen files, a run, or a source, built in the background.

An export row (table ``exports``): ``accountId, exportId, status`` (``pending | running |
completed | failed``; the API shows ``expired`` once the zip is gone), ``scope``
(``{"fileIds": [...]}``, ``{"runId"}`` or ``{"sourceId"}``), ``requestedBy`` (user id),
``createdAt, updatedAt, startedAt, completedAt``, ``expiresAt`` (ISO, 7 days after
completion: when the bucket's ``exports/`` lifecycle rule removes the zip), ``key``
(``exports/{accountId}/{exportId}.zip``), ``size``, ``files``, ``skipped``, ``error``,
``attempts``, ``lease {owner, expiresAt}`` while the exporter works on it, and ``purgeAt``
(epoch seconds, the table's TTL: the row itself goes 30 days after the request).

``POST /data/export`` checks the request (the files, run or source are the caller's and
something is there to export), stores a pending row and puts ``{accountId, exportId}`` on
the data queue; the exporter (``handlers.data.exporter``) does the rest.
``GET /data/exports/{id}`` mints a fresh presigned link (15 minutes) on every call while
the zip exists, so the link mailed to the requester (to this route, not to S3) never goes
stale.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from typing import Any

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from handlers.data import store
from handlers.data.files_api import content_disposition, presigned_get
from handlers.shared import activity, clock
from handlers.shared.clients import client, table
from handlers.shared.dynamo import transact
from handlers.shared.http import ApiError, Request
from handlers.shared.ids import new_id

EXPORT_EXPIRY_DAYS = 7          # the bucket's exports/ lifecycle rule (components/core.py)
PURGE_DAYS = 30
DOWNLOAD_SECONDS = 15 * 60
MAX_FILE_IDS = 1000
FINISHED = ("completed", "failed")
CHECKED_FILES = 200     # index items an export request looks at to find a current file


def export_key(account_id: str, export_id: str) -> str:
    return f"exports/{account_id}/{export_id}.zip"


def file_name(export_id: str) -> str:
    return f"listbackup-export-{export_id}.zip"


def get_export(account_id: str | None, export_id: str | None) -> dict | None:
    if not account_id or not isinstance(export_id, str) or not export_id or len(export_id) > 128:
        return None
    return table("exports").get_item(Key={"accountId": account_id, "exportId": export_id},
                                     ConsistentRead=True).get("Item")


def status_of(row: dict) -> str:
    status = row.get("status", "pending")
    if status == "completed" and row.get("expiresAt") and row["expiresAt"] <= clock.iso():
        return "expired"
    return status


def export_view(row: dict, *, with_url: bool = False) -> dict[str, Any]:
    """The API's Export shape ``{exportId, status, url, expiresAt}`` and what it holds."""
    status = status_of(row)
    url = url_expires = None
    if with_url and status == "completed":
        url = presigned_get({
            "Bucket": os.environ["S3_BUCKET"], "Key": row["key"],
            "ResponseContentDisposition": content_disposition(file_name(row["exportId"])),
            "ResponseContentType": "application/zip"}, DOWNLOAD_SECONDS)
        url_expires = clock.iso(clock.in_future(seconds=DOWNLOAD_SECONDS))
    scope = row.get("scope") or {}
    return {
        "exportId": row["exportId"], "status": status, "url": url, "urlExpiresAt": url_expires,
        "expiresAt": row.get("expiresAt"),
        "scope": {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in scope.items()},
        "files": store._maybe_int(row.get("files")), "size": store._maybe_int(row.get("size")),
        "skipped": store._maybe_int(row.get("skipped")), "error": row.get("error"),
        "createdAt": row.get("createdAt"), "completedAt": row.get("completedAt"),
    }


# --------------------------------------------------------------------------- API

def request_export(request: Request) -> dict:
    body = request.body
    given = [k for k in ("fileIds", "runId", "sourceId") if body.get(k) is not None]
    if len(given) != 1:
        raise ApiError("validation_failed", "Give exactly one of fileIds, runId or sourceId",
                       fields=given or ["fileIds", "runId", "sourceId"])
    account_id = request.account_id
    kind = given[0]
    if kind == "fileIds":
        ids = list(dict.fromkeys(body["fileIds"]))
        found = store.get_files(account_id, ids)
        missing = [f for f in ids if f not in found]
        if missing:
            raise ApiError("not_found", f"No such file: {', '.join(missing[:10])}",
                           details={"missing": missing[:100]})
        deleted = [f for f in ids if found[f].get("deleted")]
        if deleted:
            raise ApiError("conflict", "Deleted files cannot be exported; restore them first: "
                                       f"{', '.join(deleted[:10])}", details={"deleted": deleted[:100]})
        scope: dict[str, Any] = {"fileIds": ids}
    elif kind == "runId":
        run = table("runs").get_item(Key={"accountId": account_id, "runId": body["runId"]}).get("Item")
        if run is None:
            raise ApiError("not_found", "No such run")
        _something_to_export("run-index", Key("runId").eq(body["runId"]), account_id)
        scope = {"runId": body["runId"]}
    else:
        source = table("sources").get_item(
            Key={"accountId": account_id, "sourceId": body["sourceId"]}).get("Item")
        found_any = _something_to_export("source-index", Key("sourceId").eq(body["sourceId"]),
                                         account_id, missing_ok=source is None)
        if source is None and not found_any:
            raise ApiError("not_found", "No such source")
        scope = {"sourceId": body["sourceId"]}

    now = clock.now()
    row = {"accountId": account_id, "exportId": new_id("exp"), "status": "pending",
           "scope": scope, "requestedBy": request.user_id or "", "createdAt": clock.iso(now),
           "updatedAt": clock.iso(now), "attempts": 0,
           "purgeAt": clock.epoch(now + timedelta(days=PURGE_DAYS))}
    event = activity.request_items(request, "data.export.request", "export", row["exportId"],
                                   details={"scope": kind, **({"files": len(scope["fileIds"])}
                                                              if kind == "fileIds" else scope)})
    if transact([{"Put": {"TableName": table("exports").name, "Item": row,
                          "ConditionExpression": "attribute_not_exists(exportId)"}},
                 *event.items]) is not None:
        raise ApiError("conflict", "The export could not be stored; try again")
    try:
        client("sqs").send_message(QueueUrl=os.environ["DATA_QUEUE_URL"], MessageBody=json.dumps(
            {"accountId": account_id, "exportId": row["exportId"]}, separators=(",", ":")))
    except ClientError:
        table("exports").update_item(
            Key={"accountId": account_id, "exportId": row["exportId"]},
            UpdateExpression="SET #s = :failed, #e = :error",
            ExpressionAttributeNames={"#s": "status", "#e": "error"},
            ExpressionAttributeValues={":failed": "failed",
                                       ":error": "The export could not be queued; try again"})
        raise ApiError("unavailable", "The export could not be queued; try again") from None
    return export_view(row)


def _something_to_export(index: str, condition, account_id: str, *, missing_ok: bool = False) -> bool:
    """Whether the run or source has a current file (one bounded Query: the first
    ``CHECKED_FILES`` of the index, filtered); 409 when it certainly has none (unless
    ``missing_ok``: the caller answers 404 itself)."""
    reply = table("files").query(
        IndexName=index, KeyConditionExpression=condition, Limit=CHECKED_FILES,
        FilterExpression=Attr("accountId").eq(account_id) & Attr("deleted").eq(False)
        & Attr("key").exists())
    if reply.get("Items") or reply.get("LastEvaluatedKey"):
        return True
    if not missing_ok:
        raise ApiError("conflict", "There is nothing to export: no file is stored there "
                                   "(deleted files must be restored first)")
    return False


def get_export_route(request: Request) -> dict:
    row = get_export(request.account_id, request.path.get("exportId"))
    if row is None:
        raise ApiError("not_found", "No such export")
    return export_view(row, with_url=True)
