"""The data service: browsing, tree, search, download links, delete and restore (API), and
the exporter on the data queue; the exports table."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.core import MAX_RECEIVES, Queue
from components.functions import (CONSUMER_TIMEOUTS, FunctionSpec, Statement, attach_routes,
                                  build_function, parameter_statement, table_statement)
from components.identity import data_options
from components.sources import ConnectorInputs
from components.tables import DATA_TABLES, build_table
from handlers.routes import routes_of

SERVICE = "data"
EXPORTER_MEMORY = 512       # one 8 MiB part and a 1 MiB read chunk; the rest is the runtime


@dataclass(frozen=True)
class DataArgs:
    connectors: ConnectorInputs
    data_queue: Queue
    bucket: aws.s3.Bucket
    sender: aws.sesv2.EmailIdentity


class DataService(pulumi.ComponentResource):
    def __init__(self, name: str, args: DataArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("listbackup:data:DataService", name, None, opts)
        c = args.connectors
        platform = c.platform
        self.tables = {spec.name: build_table(spec, platform.names, platform.settings,
                                              data_options(self, platform))
                       for spec in DATA_TABLES}
        t = {**c.tables, **self.tables}
        queue = args.data_queue
        bucket_arn = args.bucket.arn
        data_objects = bucket_arn.apply(lambda arn: f"{arn}/data/*")
        export_objects = bucket_arn.apply(lambda arn: f"{arn}/exports/*")

        self.api = build_function(self, platform, SERVICE, FunctionSpec(
            name="api", entry="handlers.data.api",
            environment={"CURSOR_SECRET_PARAM": c.cursor_secret.name, "DATA_QUEUE_URL": queue.url},
            statements=[
                parameter_statement(c.cursor_secret),
                # browse and search (indexes); delete and restore converge the row and the
                # account's storage usage in one transaction, as the file indexer does
                table_statement(["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query",
                                 "dynamodb:UpdateItem"], t["files"], indexes=True),
                table_statement(["dynamodb:UpdateItem"], t["accounts"], t["analytics"]),
                table_statement(["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
                                t["exports"]),
                # the tree: sources, their jobs' totals, their runs; an export's run or source
                table_statement(["dynamodb:GetItem", "dynamodb:Query"], t["sources"], t["runs"],
                                indexes=True),
                table_statement(["dynamodb:Query"], t["jobs"], indexes=True),
                # HEAD needs GetObject, and ListBucket so a missing key is 404, not 403;
                # GetObjectVersion: pinned download links and the copy source of a restore;
                # DeleteObject puts a delete marker, DeleteObjectVersion removes one (restore)
                Statement(["s3:GetObject", "s3:GetObjectVersion", "s3:DeleteObject",
                           "s3:DeleteObjectVersion", "s3:PutObject", "s3:GetObjectVersionTagging",
                           "s3:PutObjectTagging"], [data_objects]),
                Statement(["s3:ListBucket"], [bucket_arn]),
                Statement(["s3:ListBucketVersions"], [bucket_arn],
                          condition={"StringLike": {"s3:prefix": "data/*"}}),
                # presigned links to finished exports
                Statement(["s3:GetObject"], [export_objects]),
                Statement(["sqs:SendMessage"], [queue.arn]),
                *c.activity_statements(),
            ]))
        attach_routes(self, SERVICE, self.api, routes_of(SERVICE), c.api)

        self.exporter = build_function(self, platform, SERVICE, FunctionSpec(
            name="exporter", entry="handlers.data.exporter", timeout=CONSUMER_TIMEOUTS["data"],
            memory=EXPORTER_MEMORY,
            environment={"API_BASE_URL": c.api_url, "MAX_RECEIVES": str(MAX_RECEIVES),
                         "SES_FROM_EMAIL": platform.settings.ses_from_email},
            statements=[
                Statement(["s3:GetObject"], [data_objects]),
                # the zip: one multipart upload, aborted when the export fails
                Statement(["s3:PutObject", "s3:AbortMultipartUpload"], [export_objects]),
                table_statement(["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"],
                                t["files"], indexes=True),
                table_statement(["dynamodb:GetItem", "dynamodb:UpdateItem"], t["exports"]),
                # the requester's address
                table_statement(["dynamodb:GetItem"], t["users"]),
                Statement(["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
                          [queue.arn]),
                Statement(["ses:SendEmail", "ses:SendRawEmail"], [args.sender.arn]),
                *c.activity_statements(),
            ]))
        aws.lambda_.EventSourceMapping(
            "exporter-events", event_source_arn=queue.arn, function_name=self.exporter.function.arn,
            batch_size=1, function_response_types=["ReportBatchItemFailures"],
            opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"apiFunction": self.api.function.name,
                               "exporter": self.exporter.function.name})
