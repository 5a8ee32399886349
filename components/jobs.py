"""The jobs service: backup jobs and runs (API), the backup worker, and the scheduler."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.core import MAX_RECEIVES, VISIBILITY_FACTOR, Queue
from components.functions import (CONSUMER_TIMEOUTS, FunctionSpec, Statement, attach_routes,
                                  build_function, parameter_statement, table_statement)
from components.sources import ConnectorInputs
from handlers.routes import routes_of

SERVICE = "jobs"
SCHEDULE = "rate(5 minutes)"
WORKER_MEMORY = 1024


@dataclass(frozen=True)
class JobsArgs:
    connectors: ConnectorInputs
    job_queue: Queue
    bucket: aws.s3.Bucket
    sender: aws.sesv2.EmailIdentity


class JobsService(pulumi.ComponentResource):
    def __init__(self, name: str, args: JobsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("listbackup:jobs:JobsService", name, None, opts)
        c = args.connectors
        t = c.tables
        queue = args.job_queue
        child = pulumi.ResourceOptions(parent=self)
        enqueue = Statement(["sqs:SendMessage"], [queue.arn])
        # whoever ends a run counts it in the analytics, in the same transaction
        count_runs = table_statement(["dynamodb:UpdateItem"], t["analytics"])
        base_env = {**c.environment(), "JOB_QUEUE_URL": queue.url}

        self.api = build_function(self, c.platform, SERVICE, FunctionSpec(
            name="api", entry="handlers.jobs.api", environment=base_env,
            statements=[
                parameter_statement(c.cursor_secret),
                # BatchGetItem: a cancel reads the job and the run together, a new job its
                # source and account, a sub-account's plan its ancestors
                table_statement(["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem",
                                 "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query",
                                 "dynamodb:ConditionCheckItem"], t["jobs"], indexes=True),
                table_statement(["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem",
                                 "dynamodb:UpdateItem", "dynamodb:Query",
                                 "dynamodb:ConditionCheckItem"], t["runs"], indexes=True),
                table_statement(["dynamodb:GetItem", "dynamodb:BatchGetItem"], t["sources"]),
                # the plan's job limit: the account's counter and the job agree
                table_statement(["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:UpdateItem",
                                 "dynamodb:ConditionCheckItem"], t["accounts"]),
                count_runs,
                enqueue,
                *c.activity_statements(),
            ]))
        attach_routes(self, SERVICE, self.api, routes_of(SERVICE), c.api)

        queue_visibility = VISIBILITY_FACTOR * CONSUMER_TIMEOUTS["job"]
        alert_statements = [
            # owners to alert: an account's owner memberships, then their addresses; the
            # source's lastAlertDay keeps it to one mail a day
            table_statement(["dynamodb:Query"], t["users-accounts"], indexes=True),
            table_statement(["dynamodb:GetItem", "dynamodb:BatchGetItem"], t["users"]),
            Statement(["ses:SendEmail", "ses:SendRawEmail"], [args.sender.arn]),
        ]
        data_objects = args.bucket.arn.apply(lambda arn: f"{arn}/data/*")
        self.worker = build_function(self, c.platform, SERVICE, FunctionSpec(
            name="worker", entry="handlers.jobs.worker", timeout=CONSUMER_TIMEOUTS["job"],
            memory=WORKER_MEMORY,
            environment={**base_env, "MAX_RECEIVES": str(MAX_RECEIVES),
                         "SES_FROM_EMAIL": c.platform.settings.ses_from_email,
                         # a run whose lease lapsed waits this long for SQS to redeliver
                         # its message before the scheduler calls it stuck
                         "RUN_DEADLINE_GRACE_SECONDS": str(queue_visibility + 600)},
            statements=[
                # multipart upload of each endpoint, tagged with its retention tier, then
                # read back once to checksum it
                Statement(["s3:PutObject", "s3:PutObjectTagging", "s3:GetObject",
                           "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
                          [data_objects]),
                table_statement(["dynamodb:GetItem", "dynamodb:UpdateItem"],
                                t["runs"], t["jobs"], t["sources"], t["accounts"]),
                # a sub-account's plan (storage limit): its ancestors in one read
                table_statement(["dynamodb:BatchGetItem"], t["accounts"]),
                table_statement(["dynamodb:UpdateItem"], t["files"]),
                count_runs,
                *alert_statements,
                Statement(["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                           "sqs:SendMessage"], [queue.arn]),
                c.kms_statement(["kms:Decrypt", "kms:Encrypt"]),
                c.oauth_statement(),
                *c.activity_statements(),
            ]))
        aws.lambda_.EventSourceMapping(
            "worker-events", event_source_arn=queue.arn, function_name=self.worker.function.arn,
            batch_size=1, function_response_types=["ReportBatchItemFailures"], opts=child)

        self.scheduler = build_function(self, c.platform, SERVICE, FunctionSpec(
            name="scheduler", entry="handlers.jobs.scheduler", timeout=120,
            environment={**base_env, "SES_FROM_EMAIL": c.platform.settings.ses_from_email},
            statements=[
                table_statement(["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Query",
                                 "dynamodb:ConditionCheckItem"], t["jobs"], indexes=True),
                table_statement(["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                                 "dynamodb:Query"], t["runs"], indexes=True),
                table_statement(["dynamodb:GetItem"], t["accounts"]),
                table_statement(["dynamodb:GetItem", "dynamodb:UpdateItem"], t["sources"]),
                *alert_statements,
                count_runs,
                enqueue,
                *c.activity_statements(),
            ]))
        rule = aws.cloudwatch.EventRule(
            "scheduler-tick", name=f"listbackup-{c.platform.settings.stage}-scheduler",
            description="Queue due backup jobs and fail stuck runs",
            schedule_expression=SCHEDULE, opts=child)
        aws.cloudwatch.EventTarget("scheduler-target", rule=rule.name,
                                   arn=self.scheduler.function.arn, opts=child)
        aws.lambda_.Permission("scheduler-invoke", action="lambda:InvokeFunction",
                               function=self.scheduler.function.name,
                               principal="events.amazonaws.com", source_arn=rule.arn, opts=child)
        self.register_outputs({"apiFunction": self.api.function.name,
                               "worker": self.worker.function.name})
