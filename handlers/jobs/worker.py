"""Entry point of ``listbackup-jobs-{stage}-worker``: the job queue -> backups.

An SQS event source mapping (batch size 1, ReportBatchItemFailures) delivers messages
``{"accountId", "runId", "checkpoint"}``; :mod:`handlers.jobs.backup` does the work. A
message whose processing raises is reported in ``batchItemFailures`` and retried by SQS;
on its last allowed receive (``MAX_RECEIVES``, default 5, the queue's maxReceiveCount) the
run is first marked ``failed`` with the reason, then the message goes to the dead-letter
queue.

Env: JOB_QUEUE_URL, S3_BUCKET, DYNAMODB_TABLE_PREFIX, CREDENTIALS_KEY_ARN,
OAUTH_PARAM_PREFIX, SES_FROM_EMAIL, APP_URL; optional LEASE_SECONDS, MAX_RECEIVES,
SAFETY_MARGIN_MS, UPLOAD_PART_BYTES.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from handlers.jobs import backup
from handlers.jobs.backup import logger

# batch size 1: report the failed message (retry, then DLQ) rather than raising
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
_context: dict[str, Any] = {}


def record_handler(record: SQSRecord) -> None:
    try:
        body = json.loads(record.body)
    except ValueError:
        logger.error("job message is not JSON", extra={"messageId": record.message_id})
        raise
    if not isinstance(body, dict):
        logger.warning("job message is not an object", extra={"messageId": record.message_id})
        return
    try:
        receives = int(record.attributes.approximate_receive_count or 1)
    except (TypeError, ValueError):
        receives = 1
    context = _context.get("lambda")
    owner = getattr(context, "aws_request_id", None) or uuid.uuid4().hex
    outcome = backup.process_message(body, receive_count=receives, owner=f"{owner}:{uuid.uuid4().hex[:8]}",
                                     context=context)
    logger.info("job message handled", extra={"messageId": record.message_id, "outcome": outcome,
                                               "runId": body.get("runId")})


def _handle(event: dict, context: Any) -> dict:
    _context["lambda"] = context
    try:
        return process_partial_response(event=event, record_handler=record_handler,
                                        processor=processor, context=context)
    finally:
        _context.pop("lambda", None)


handler = logger.inject_lambda_context(clear_state=True)(_handle)
