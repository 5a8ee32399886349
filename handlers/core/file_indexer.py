"""Entry point of ``listbackup-core-{stage}-fileIndexer``: S3 events under ``data/`` -> files table.

The function consumes the index queue (an SQS event source mapping with
ReportBatchItemFailures). Each message body is an S3 event notification, or S3's test event,
which is ignored. For every record under ``data/`` the indexer reads the key's *current*
state with HEAD and records that on the key's files row: in a versioned bucket an event's
name does not say what is current (removing a delete marker restores a file, expiring an
old version leaves the current one), so the event only says *which* key to look at. That
makes re-delivery and out-of-order delivery harmless: every message converges the row on
what S3 holds at the time it is processed.

The row is upserted with one ``update_item`` that SETs/REMOVEs only the object's own facts,
so what the backup worker writes on the same row (record counts, checksum...) is never
touched, whichever of the two writes first.

Storage usage: the row's ``countedBytes`` is what the row currently contributes to the
account's ``storageBytes`` (its size while current, 0 once deleted). When that changes (a
new file, a deletion, a restore, lifecycle expiry), the row update - conditional on the
``countedBytes`` read just before - and ``ADD storageBytes :delta`` on the account commit in
one transaction; a concurrent indexing of the same key makes the condition fail and the
message re-reads and retries, so a flip is never counted twice or lost.

A message whose processing raises (an S3 or DynamoDB fault) is reported in
``batchItemFailures`` and retried by SQS, then dead-lettered by the queue's redrive policy;
the other messages of the batch succeed. A malformed key under ``data/`` can never succeed,
so it is logged and skipped rather than retried.

IAM: ``s3:GetObject`` (HEAD) and ``s3:ListBucket`` on the bucket - without ListBucket, S3
answers HEAD of a missing key with 403 instead of 404 and a deletion could never be
recorded - plus ``dynamodb:UpdateItem``/``GetItem`` on the files table and
``dynamodb:UpdateItem`` on the accounts table (in ``TransactWriteItems``).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.exceptions import ClientError

from handlers.shared.clients import client, table
from handlers.shared.dynamo import as_int, transact
from handlers.shared.files import DATA_PREFIX, DataKey, parse_data_key
from handlers.shared.log import get_logger

logger = get_logger("core")
processor = BatchProcessor(event_type=EventType.SQS)

_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


def _iso(moment: datetime) -> str:
    """ISO-8601 UTC with second precision, e.g. ``2026-11-26T01:02:03Z``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> str:
    return _iso(datetime.now(timezone.utc))


def _head(bucket: str, key: str) -> dict | None:
    """The key's current version as HEAD sees it, or None when there is none.

    A key whose current version is a delete marker, or which has no version left at all,
    answers 404. Anything else (403, throttling, 5xx) is a fault and propagates.
    """
    try:
        return client("s3").head_object(Bucket=bucket, Key=key)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in _NOT_FOUND:
            return None
        raise


class _Raced(Exception):
    """The row's counted bytes changed between the read and the write."""


def _update(parsed: DataKey, sets: dict[str, Any], removes: tuple[str, ...] = (),
            if_not_exists: dict[str, Any] | None = None) -> None:
    """SET ``sets`` (None values are REMOVEd), SET-if-absent ``if_not_exists``, and keep the
    account's storageBytes in step with the row's ``countedBytes`` (see the module doc)."""
    counted = 0 if sets.get("deleted") else as_int(sets.get("size"))
    for _ in range(8):
        try:
            _update_counted(parsed, sets, removes, if_not_exists, counted)
            return
        except _Raced:
            continue
    raise RuntimeError("the file row kept changing while it was indexed")


def _update_counted(parsed: DataKey, sets: dict[str, Any], removes: tuple[str, ...],
                    if_not_exists: dict[str, Any] | None, counted: int) -> None:
    key = {"accountId": parsed.account_id, "fileId": parsed.file_id}
    previous = table("files").get_item(Key=key, ConsistentRead=True,
                                       ProjectionExpression="countedBytes").get("Item")
    before = (previous or {}).get("countedBytes")
    delta = counted - as_int(before)
    kwargs = _update_kwargs(parsed, {**sets, "countedBytes": counted}, removes, if_not_exists)
    if before is None:
        kwargs["ConditionExpression"] = "attribute_not_exists(countedBytes)"
    else:
        kwargs["ConditionExpression"] = "countedBytes = :counted_before"
        kwargs["ExpressionAttributeValues"][":counted_before"] = before
    if delta:
        reasons = transact([
            {"Update": {"TableName": table("files").name, **kwargs}},
            {"Update": {"TableName": table("accounts").name, "Key": {"accountId": parsed.account_id},
                        "UpdateExpression": "ADD storageBytes :delta",
                        "ConditionExpression": "attribute_exists(accountId)",
                        "ExpressionAttributeValues": {":delta": delta}}},
        ])
        if reasons is None:
            return
        if reasons[0] != "ConditionalCheckFailed" and reasons[1] == "ConditionalCheckFailed":
            pass        # the account is gone: record the file alone
        elif reasons[0] == "ConditionalCheckFailed" or "TransactionConflict" in reasons:
            raise _Raced()
        else:
            raise RuntimeError(f"storage transaction cancelled: {reasons}")
    try:
        table("files").update_item(**kwargs)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            raise _Raced() from None
        raise


def _update_kwargs(parsed: DataKey, sets: dict[str, Any], removes: tuple[str, ...] = (),
                   if_not_exists: dict[str, Any] | None = None) -> dict:
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    set_parts: list[str] = []
    remove_parts: list[str] = []
    for i, (attr, value) in enumerate(sets.items()):
        names[f"#s{i}"] = attr
        if value is None:
            remove_parts.append(f"#s{i}")
        else:
            values[f":s{i}"] = value
            set_parts.append(f"#s{i} = :s{i}")
    for i, (attr, value) in enumerate((if_not_exists or {}).items()):
        names[f"#n{i}"] = attr
        values[f":n{i}"] = value
        set_parts.append(f"#n{i} = if_not_exists(#n{i}, :n{i})")
    for i, attr in enumerate(removes):
        names[f"#r{i}"] = attr
        remove_parts.append(f"#r{i}")
    expression = "SET " + ", ".join(set_parts)
    if remove_parts:
        expression += " REMOVE " + ", ".join(remove_parts)
    return {"Key": {"accountId": parsed.account_id, "fileId": parsed.file_id},
            "UpdateExpression": expression, "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values}


def index_key(bucket: str, parsed: DataKey, event_name: str | None = None) -> str:
    """Record the key's current state on its files row; returns the outcome ("indexed"|"deleted")."""
    context = {"key": parsed.key, "fileId": parsed.file_id, "accountId": parsed.account_id,
               "eventName": event_name}
    try:
        outcome = _index(bucket, parsed)
    except Exception:
        # Powertools reports the message as a batch item failure; say which file it was.
        logger.exception("file index failed; message will be retried", extra=context)
        raise
    logger.info("file indexed", extra={**context, "outcome": outcome})
    return outcome


def _index(bucket: str, parsed: DataKey) -> str:
    now = _now()
    identity = {"key": parsed.key, "name": parsed.name, "path": parsed.path,
                "sourceId": parsed.source_id, "runId": parsed.run_id}
    head = _head(bucket, parsed.key)
    if head is None:
        # Keep size, etag, versionId...: a restore needs to know what was there.
        _update(parsed, {**identity, "deleted": True, "deletedAt": now, "indexedAt": now},
                if_not_exists={"createdAt": now})
        outcome = "deleted"
    else:
        last_modified = _iso(head["LastModified"])
        etag = head.get("ETag")
        _update(
            parsed,
            {**identity,
             "size": head.get("ContentLength"),
             "contentType": head.get("ContentType"),
             "etag": etag.strip('"') if etag else None,
             "versionId": head.get("VersionId"),
             "lastModified": last_modified,
             "indexedAt": now,
             "deleted": False},
            removes=("deletedAt",),
            if_not_exists={"createdAt": last_modified},
        )
        outcome = "indexed"
    return outcome


def _process_s3_record(s3_record: dict) -> None:
    event_name = s3_record.get("eventName")
    s3 = s3_record.get("s3") or {}
    bucket = (s3.get("bucket") or {}).get("name")
    raw_key = (s3.get("object") or {}).get("key")
    if not bucket or raw_key is None:
        # Not an S3 object event; retrying cannot make it one.
        logger.warning("S3 record without bucket or key skipped", extra={"eventName": event_name})
        return
    key = unquote_plus(raw_key)
    if not key.startswith(DATA_PREFIX):
        logger.debug("key outside data/ skipped", extra={"key": key, "eventName": event_name})
        return
    parsed = parse_data_key(key)
    if parsed is None:
        logger.warning("malformed data key skipped", extra={"key": key, "eventName": event_name})
        return
    index_key(bucket, parsed, event_name)


def record_handler(record: SQSRecord) -> None:
    """One SQS message: an S3 event notification holding one or more S3 records."""
    try:
        body = json.loads(record.body)
    except ValueError:
        # Not from S3. Fail it so the redrive keeps it in the dead-letter queue for a look.
        logger.error("message body is not JSON", extra={"messageId": record.message_id})
        raise
    if not isinstance(body, dict):
        logger.warning("message body is not an S3 notification", extra={"messageId": record.message_id})
        return
    if body.get("Event") == "s3:TestEvent":
        logger.info("S3 test event ignored", extra={"messageId": record.message_id})
        return
    for s3_record in body.get("Records") or []:
        _process_s3_record(s3_record)


def _handle(event: dict, context: Any) -> dict:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context)


handler = logger.inject_lambda_context(clear_state=True)(_handle)
