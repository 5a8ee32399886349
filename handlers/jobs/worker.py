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

from handlers.jobs import backup
from handlers.jobs.backup import logger
from handlers.shared.consumer import leased_consumer

handler = leased_consumer(backup.process_message, logger, what="job", id_field="runId")
