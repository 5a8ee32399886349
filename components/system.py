"""The system service: public health and the authenticated deep status of the stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import pulumi
import pulumi_aws as aws

from components.functions import (ApiAttachment, FunctionSpec, Platform, Statement,
                                  attach_routes, build_function)
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
        self.register_outputs({"apiFunction": self.api.function.name})


def _joined(values: Sequence[pulumi.Input[str]]) -> pulumi.Output[str]:
    return pulumi.Output.all(*values).apply(lambda v: ",".join(v))
