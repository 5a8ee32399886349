"""Entry point of ``listbackup-data-{stage}-exporter``: the data queue -> export zips.

An SQS event source mapping (batch size 1, ReportBatchItemFailures) delivers messages
``{"accountId", "exportId"}`` put there by ``POST /data/export``. For each, the exporter:

1. takes the export's lease (a conditional update: the export is pending, or running with
   an expired lease); a duplicate delivery, or one for a finished export, does nothing;
2. walks the export's files a page at a time (chosen ids: BatchGetItem; a run: the files
   ``run-index``; a source: the files ``source-index``; deleted files left out) and streams
   each object from S3 into one zip written straight into a multipart upload at
   ``exports/{accountId}/{exportId}.zip`` (``handlers.data.zipstream``: memory holds one
   part and one read chunk, whatever the export's size; entries are stored as they are,
   the objects being gzip already, named ``{sourceId}/{runId}/{path}``);
3. records the result on the export's row (``completed``, size, files, skipped,
   ``completedAt``, ``expiresAt`` 7 days on: the bucket's ``exports/`` rule removes the zip
   then), records the activity, and e-mails the requester a link to
   ``GET /data/exports/{id}`` on the API, which mints a fresh download link at each visit.

A fault (S3, DynamoDB) aborts the upload and is reported in ``batchItemFailures``, so SQS
delivers the message again; on its last allowed receive (``MAX_RECEIVES``, the queue's
maxReceiveCount) the export is first marked ``failed`` (and the requester told), then the
message goes to the dead-letter queue. An export that cannot succeed (nothing left to
export, or more than the function's time allows) is marked failed at once, not retried.

Env: S3_BUCKET, DYNAMODB_TABLE_PREFIX, API_BASE_URL, SES_FROM_EMAIL; optional
MAX_RECEIVES, EXPORT_PART_BYTES, EXPORT_LEASE_SECONDS, EXPORT_SAFETY_MS.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from typing import Any, Iterable, Iterator

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from handlers.data import store, zipstream
from handlers.data.exports import EXPORT_EXPIRY_DAYS, FINISHED, export_key, get_export
from handlers.shared import activity, clock, mail
from handlers.shared.clients import client, table
from handlers.shared.consumer import leased_consumer
from handlers.shared.log import get_logger

logger = get_logger("data")
ACTOR = "system:exporter"
_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}


def max_receives() -> int:
    return int(os.environ.get("MAX_RECEIVES", "5"))


def lease_seconds() -> int:
    return int(os.environ.get("EXPORT_LEASE_SECONDS", "960"))     # the timeout and a minute


def part_size() -> int:
    return max(zipstream.MIN_PART, int(os.environ.get("EXPORT_PART_BYTES", str(zipstream.DEFAULT_PART))))


def safety_ms() -> int:
    return int(os.environ.get("EXPORT_SAFETY_MS", "30000"))


class Duplicate(Exception):
    """This delivery may not work on the export now."""


class Abandon(Exception):
    """The export cannot succeed; retrying would not help. The message is for the user."""


# =========================================================================== the row

def _key(row: dict) -> dict:
    return {"accountId": row["accountId"], "exportId": row["exportId"]}


def take_lease(row: dict, owner: str) -> None:
    now = int(time.time())
    try:
        table("exports").update_item(
            Key=_key(row),
            UpdateExpression="SET #s = :running, #l = :lease, startedAt = if_not_exists(startedAt, :at), "
                             "updatedAt = :at ADD attempts :one",
            ConditionExpression="#s = :pending OR (#s = :running AND #l.expiresAt < :now)",
            ExpressionAttributeNames={"#s": "status", "#l": "lease"},
            ExpressionAttributeValues={":running": "running", ":pending": "pending", ":now": now,
                                       ":lease": {"owner": owner, "expiresAt": now + lease_seconds()},
                                       ":at": clock.iso(), ":one": 1})
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            raise Duplicate() from None
        raise


def release_lease(row: dict, owner: str) -> None:
    """Let the retried delivery proceed at once."""
    try:
        table("exports").update_item(
            Key=_key(row), UpdateExpression="SET #l.expiresAt = :zero",
            ConditionExpression="#l.#o = :owner",
            ExpressionAttributeNames={"#l": "lease", "#o": "owner"},
            ExpressionAttributeValues={":zero": 0, ":owner": owner})
    except ClientError:
        pass


def record_completed(row: dict, owner: str, result: dict) -> dict | None:
    """Completed, if this delivery still holds the lease; the updated row, or None."""
    now = clock.now()
    try:
        return table("exports").update_item(
            Key=_key(row),
            UpdateExpression="SET #s = :done, #k = :key, #z = :size, files = :files, skipped = :skipped, "
                             "completedAt = :at, expiresAt = :expires, updatedAt = :at REMOVE #l, #e",
            ConditionExpression="#l.#o = :owner",
            ExpressionAttributeNames={"#s": "status", "#k": "key", "#z": "size", "#l": "lease",
                                      "#o": "owner", "#e": "error"},
            ExpressionAttributeValues={":done": "completed", ":key": result["key"],
                                       ":size": result["size"], ":files": result["files"],
                                       ":skipped": result["skipped"], ":at": clock.iso(now),
                                       ":expires": clock.iso(now + timedelta(days=EXPORT_EXPIRY_DAYS)),
                                       ":owner": owner},
            ReturnValues="ALL_NEW")["Attributes"]
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return None
        raise


def record_failed(row: dict, message: str) -> bool:
    """Failed with ``message`` unless it already finished; answers whether it changed."""
    now = clock.iso()
    try:
        table("exports").update_item(
            Key=_key(row),
            UpdateExpression="SET #s = :failed, #e = :error, completedAt = :at, updatedAt = :at REMOVE #l",
            ConditionExpression="attribute_exists(exportId) AND NOT #s IN (:completed, :failed)",
            ExpressionAttributeNames={"#s": "status", "#e": "error", "#l": "lease"},
            ExpressionAttributeValues={":failed": "failed", ":completed": "completed",
                                       ":error": message, ":at": now})
        return True
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise


# =========================================================================== the files

def files_of(row: dict) -> Iterator[dict]:
    """The export's current files, a page at a time."""
    account_id = row["accountId"]
    scope = row.get("scope") or {}
    current = Attr("accountId").eq(account_id) & Attr("deleted").eq(False)
    keep = lambda item: bool(item.get("key")) and not item.get("deleted")  # noqa: E731
    if scope.get("fileIds"):
        ids = list(scope["fileIds"])
        for start in range(0, len(ids), 100):
            found = store.get_files(account_id, ids[start:start + 100])
            for file_id in ids[start:start + 100]:
                item = found.get(file_id)
                if item is not None and keep(item):
                    yield item
    elif scope.get("runId"):
        yield from store.iterate({"KeyConditionExpression": Key("runId").eq(scope["runId"]),
                                  "FilterExpression": current}, index="run-index", keep=keep)
    elif scope.get("sourceId"):
        yield from store.iterate({"KeyConditionExpression": Key("sourceId").eq(scope["sourceId"]),
                                  "FilterExpression": current}, index="source-index", keep=keep)


def entry_name(item: dict) -> str:
    return f"{item.get('sourceId')}/{item.get('runId')}/{item.get('path') or item.get('name')}"


def _within_time(chunks: Iterable[bytes], context: Any) -> Iterator[bytes]:
    for chunk in chunks:
        _check_time(context)
        yield chunk


def _check_time(context: Any) -> None:
    getter = getattr(context, "get_remaining_time_in_millis", None)
    if getter is not None and getter() < safety_ms():
        raise Abandon("The export is too large to finish within the exporter's time limit; "
                      "export a run or chosen files instead of a whole source")


def build_zip(row: dict, context: Any) -> dict:
    """Stream the export's files into its zip; answers {key, size, files, skipped}."""
    s3 = client("s3")
    bucket = os.environ["S3_BUCKET"]
    key = export_key(row["accountId"], row["exportId"])
    sink = zipstream.MultipartSink(s3, bucket, key, part_size=part_size())
    files = skipped = 0
    try:
        archive = zipstream.open_zip(sink)
        for item in files_of(row):
            _check_time(context)
            try:
                obj = s3.get_object(Bucket=bucket, Key=item["key"])
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in _NOT_FOUND:
                    skipped += 1          # deleted since it was listed
                    continue
                raise
            zipstream.add_entry(archive, entry_name(item),
                                _within_time(zipstream.read_chunks(obj["Body"]), context),
                                size=obj.get("ContentLength"), modified=obj.get("LastModified"))
            files += 1
        if files == 0:
            raise Abandon("There was nothing to export: the files were deleted meanwhile")
        archive.close()
        size = sink.complete()
    except BaseException:
        sink.abort()
        raise
    return {"key": key, "size": size, "files": files, "skipped": skipped}


# =========================================================================== telling people

def _requester_email(row: dict) -> str | None:
    user_id = row.get("requestedBy")
    if not user_id:
        return None
    user = table("users").get_item(Key={"userId": user_id}).get("Item") or {}
    if user.get("status", "active") != "active":
        return None
    return user.get("email")


def export_link(row: dict) -> str:
    return f"{os.environ.get('API_BASE_URL', '').rstrip('/')}/data/exports/{row['exportId']}"


def _what(row: dict) -> str:
    scope = row.get("scope") or {}
    if scope.get("fileIds"):
        count = len(scope["fileIds"])
        return f"{count} chosen file{'s' if count != 1 else ''}"
    if scope.get("runId"):
        return f"backup run {scope['runId']}"
    return f"source {scope.get('sourceId')}"


def _human(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def notify(row: dict, *, ok: bool) -> None:
    """Tell the requester; a mail fault never changes the export's outcome."""
    try:
        to = _requester_email(row)
        if not to:
            return
        if ok:
            subject = "ListBackup: your export is ready"
            text = (f"Hello,\n\nYour export of {_what(row)} is ready: {int(row['files'])} "
                    f"file{'s' if int(row['files']) != 1 else ''}, {_human(int(row['size']))}.\n\n"
                    f"Get it here (signed in; each visit gives a fresh download link):\n"
                    f"{export_link(row)}\n\n"
                    f"The export is kept until {row['expiresAt']} ({EXPORT_EXPIRY_DAYS} days).\n\n"
                    f"ListBackup")
        else:
            subject = "ListBackup: your export failed"
            text = (f"Hello,\n\nYour export of {_what(row)} could not be made.\n\n"
                    f"{row.get('error') or 'Something went wrong on our side.'}\n\n"
                    f"Details: {export_link(row)}\n\nListBackup")
        mail.send(to, subject, text)
    except Exception:   # noqa: BLE001
        logger.exception("export mail failed", extra={"accountId": row["accountId"],
                                                      "exportId": row["exportId"]})


def fail(row: dict, message: str) -> None:
    if not record_failed(row, message):
        return
    activity.record(account_id=row["accountId"], action="data.export.failed", actor=ACTOR,
                    resource_type="export", resource_id=row["exportId"], outcome="failure",
                    details={"error": message[:500]})
    notify({**row, "error": message}, ok=False)
    logger.warning("export failed", extra={"accountId": row["accountId"], "exportId": row["exportId"],
                                           "error": message})


# =========================================================================== one message

def process_message(body: dict, *, receive_count: int, owner: str, context: Any) -> str:
    """Handle one data-queue message; answers the outcome, raises to have SQS retry it."""
    account_id, export_id = body.get("accountId"), body.get("exportId")
    if not isinstance(account_id, str) or not isinstance(export_id, str):
        logger.warning("malformed export message skipped")
        return "malformed"
    row = get_export(account_id, export_id)
    if row is None:
        logger.warning("message for an unknown export skipped",
                       extra={"accountId": account_id, "exportId": export_id})
        return "unknown"
    if row.get("status") in FINISHED:
        return "duplicate"
    try:
        take_lease(row, owner)
    except Duplicate:
        logger.info("duplicate export message ignored", extra={"accountId": account_id, "exportId": export_id})
        return "duplicate"
    try:
        result = build_zip(row, context)
    except Abandon as reason:
        fail(row, str(reason))
        return "failed"
    except Exception as error:
        if receive_count >= max_receives():
            logger.exception("export failed on its last receive",
                             extra={"accountId": account_id, "exportId": export_id})
            fail(row, f"The export failed repeatedly ({type(error).__name__}); try again later")
        else:
            logger.exception("export attempt failed; will be retried",
                             extra={"accountId": account_id, "exportId": export_id,
                                    "receiveCount": receive_count})
            release_lease(row, owner)
        raise
    done = record_completed(row, owner, result)
    if done is None:
        logger.warning("lease lost; another delivery finishes the export",
                       extra={"accountId": account_id, "exportId": export_id})
        return "lost-lease"
    activity.record(account_id=account_id, action="data.export.completed", actor=ACTOR,
                    resource_type="export", resource_id=export_id,
                    details={"files": result["files"], "size": result["size"],
                             "skipped": result["skipped"]})
    notify(done, ok=True)
    logger.info("export completed", extra={"accountId": account_id, "exportId": export_id,
                                           "files": result["files"], "size": result["size"]})
    return "completed"


handler = leased_consumer(process_message, logger, what="export", id_field="exportId")
