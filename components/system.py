"""The system service: public health and the authenticated deep status of the stage, and
the stage's alarms and dashboard (``components/observability.py``), which watch every
function, queue and dead-letter queue and the HTTP API - so the program builds it last."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import pulumi
import pulumi_aws as aws

from components.functions import (ApiAttachment, BuiltFunction, FunctionSpec, Platform,
                                  Statement, attach_routes, build_function)
from components.observability import ApiStage, Observability, ObservabilityArgs
from handlers.routes import routes_of

SERVICE = "system"


@dataclass(frozen=True)
class SystemArgs:
    platform: Platform
    api: ApiAttachment | None = None   # routes are attached once the HTTP API exists
    # What the deep status checks: every table, the data bucket, every queue and DLQ.
    tables: Sequence[aws.dynamodb.Table] = ()
    bucket: aws.s3.Bucket | None = None
    queues: Sequence[aws.sqs.Queue] = field(default_factory=tuple)
    # What the alarms and the dashboard watch (this service's own function is added):
    # every function keyed "{service}/{function}", the authorizer among them, the work
    # queues and dead-letter queues by kind, and the HTTP API's stage.
    functions: Mapping[str, BuiltFunction] = field(default_factory=dict)
    authorizer: BuiltFunction | None = None
    work_queues: Mapping[str, aws.sqs.Queue] = field(default_factory=dict)
    dead_letter_queues: Mapping[str, aws.sqs.Queue] = field(default_factory=dict)
    api_stage: ApiStage | None = None


class SystemService(pulumi.ComponentResource):
    def __init__(self, name: str, args: SystemArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("listbackup:system:SystemService", name, None, opts)
        statements = []
        if args.tables:
            statements.append(Statement(["dynamodb:DescribeTable"], [t.arn for t in args.tables]))
        if args.bucket is not None:
            # HeadBucket is authorised by s3:ListBucket.
            statements.append(Statement(["s3:ListBucket"], [args.bucket.arn]))
        if args.queues:
            statements.append(Statement(["sqs:GetQueueAttributes"], [q.arn for q in args.queues]))
        self.api = build_function(self, args.platform, SERVICE, FunctionSpec(
            name="api", entry="handlers.system.api", statements=statements,
            environment={
                "STATUS_TABLES": _joined([t.name for t in args.tables]),
                "STATUS_QUEUES": _joined([q.url for q in args.queues]),
            }))
        self.routes = (attach_routes(self, SERVICE, self.api, routes_of(SERVICE), args.api)
                       if args.api else [])
        settings = args.platform.settings
        self.observability = Observability(self, ObservabilityArgs(
            names=args.platform.names, region=settings.region, alarm_email=settings.alarm_email,
            functions={**args.functions, f"{SERVICE}/api": self.api},
            authorizer=args.authorizer, queues=args.work_queues,
            dead_letter_queues=args.dead_letter_queues, api=args.api_stage))
        self.register_outputs({"apiFunction": self.api.function.name,
                               "alarmTopicArn": self.observability.topic.arn,
                               "dashboardName": self.observability.dashboard.dashboard_name})


def _joined(values: Sequence[pulumi.Input[str]]) -> pulumi.Output[str]:
    return pulumi.Output.all(*values).apply(lambda v: ",".join(v))
