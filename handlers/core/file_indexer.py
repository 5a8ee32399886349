"""Entry point of ``listbackup-core-{stage}-fileIndexer``: S3 events under ``data/`` -> files table.

The function consumes the index queue (an SQS event source mapping with
ReportBatchItemFailures). Each message body is an S3 event notification, or S3's test event,
which is ignored. For every record under ``data/`` the indexer reads the key's *current*
state with HEAD and records that on the key's files row: in a versioned bucket an event's
name does not say what is current (removing a delete marker restores a file, expiring an
old version leaves the current one), so the event only says *which* key to look at. That
makes re-delivery and out-of-order delivery harmless: every message converges the row on
what S3 holds at the time it is processed.

The row and the account's storage usage are converged by
:func:`handlers.shared.file_index.converge`, the same code the data service's delete and
restore run synchronously (see that module for the row, ``countedBytes`` and the storage
transaction).

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
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from handlers.shared.file_index import converge
from handlers.shared.files import DATA_PREFIX, DataKey, parse_data_key
from handlers.shared.log import get_logger

logger = get_logger("core")
processor = BatchProcessor(event_type=EventType.SQS)


def index_key(bucket: str, parsed: DataKey, event_name: str | None = None) -> str:
    """Record the key's current state on its files row; returns the outcome ("indexed"|"deleted")."""
    context = {"key": parsed.key, "fileId": parsed.file_id, "accountId": parsed.account_id,
               "eventName": event_name}
    try:
        outcome = converge(bucket, parsed)
    except Exception:
        # Powertools reports the message as a batch item failure; say which file it was.
        logger.exception("file index failed; message will be retried", extra=context)
        raise
    logger.info("file indexed", extra={**context, "outcome": outcome})
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
