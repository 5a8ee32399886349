"""The entry point of a queue consumer whose messages each hold a lease on one piece of
work (the backup worker's runs, the exporter's exports).

An SQS event source mapping (batch size 1, ReportBatchItemFailures) delivers JSON object
messages; ``process(body, receive_count=, owner=, context=)`` does the work and raises to
have SQS retry the message (then dead-letter it after the queue's maxReceiveCount). A
message that is not JSON is reported as failed (it will be dead-lettered); one that is not
an object is skipped. Each delivery gets its own lease owner: the Lambda request id and a
random suffix.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Callable

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from handlers.shared.log import Logger

Process = Callable[..., str]


def leased_consumer(process: Process, logger: Logger, *, what: str, id_field: str) -> Callable:
    """A Lambda handler feeding each SQS record's body to ``process``."""
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    current: dict[str, Any] = {}

    def record_handler(record: SQSRecord) -> None:
        try:
            body = json.loads(record.body)
        except ValueError:
            logger.error(f"{what} message is not JSON", extra={"messageId": record.message_id})
            raise
        if not isinstance(body, dict):
            logger.warning(f"{what} message is not an object", extra={"messageId": record.message_id})
            return
        try:
            receives = int(record.attributes.approximate_receive_count or 1)
        except (TypeError, ValueError):
            receives = 1
        context = current.get("lambda")
        owner = f"{getattr(context, 'aws_request_id', None) or uuid.uuid4().hex}:{uuid.uuid4().hex[:8]}"
        outcome = process(body, receive_count=receives, owner=owner, context=context)
        logger.info(f"{what} message handled", extra={"messageId": record.message_id, "outcome": outcome,
                                                      id_field: body.get(id_field)})

    def handle(event: dict, context: Any) -> dict:
        current["lambda"] = context
        try:
            return process_partial_response(event=event, record_handler=record_handler,
                                            processor=processor, context=context)
        finally:
            current.pop("lambda", None)

    return logger.inject_lambda_context(clear_state=True)(handle)
