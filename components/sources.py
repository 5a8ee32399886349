"""The sources service: data sources with encrypted credentials, and connection tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import pulumi
import pulumi_aws as aws

from components.functions import (ApiAttachment, FunctionSpec, Platform, Statement,
                                  attach_routes, build_function, parameter_statement,
                                  table_statement)
from handlers.routes import routes_of

SERVICE = "sources"


@dataclass(frozen=True)
class ConnectorInputs:
    """What the services that talk to platforms receive (sources, integrations, jobs)."""
    platform: Platform
    api: ApiAttachment
    api_url: pulumi.Input[str]
    tables: Mapping[str, aws.dynamodb.Table]
    cursor_secret: aws.ssm.Parameter
    credentials_key: aws.kms.Key
    oauth_parameters: Mapping[str, tuple[aws.ssm.Parameter, aws.ssm.Parameter]]
    job_queue: aws.sqs.Queue | None = None     # where runs are queued (sync, run now)

    def environment(self) -> dict[str, pulumi.Input[str]]:
        settings, names = self.platform.settings, self.platform.names
        return {
            "CURSOR_SECRET_PARAM": self.cursor_secret.name,
            "CREDENTIALS_KEY_ARN": self.credentials_key.arn,
            "OAUTH_PARAM_PREFIX": names.parameter("oauth/"),
            "APP_URL": settings.app_url,
            "ALLOWED_RETURN_ORIGINS": ",".join(settings.cors_origins),
            "API_BASE_URL": self.api_url,
            **({"JOB_QUEUE_URL": self.job_queue.url} if self.job_queue is not None else {}),
        }

    def oauth_statement(self) -> Statement:
        return parameter_statement(*[p for pair in self.oauth_parameters.values() for p in pair])

    def kms_statement(self, actions: Sequence[str]) -> Statement:
        # Only with the account and source named in the encryption context, so a ciphertext
        # cannot be used outside the source it was made for.
        return Statement(list(actions), [self.credentials_key.arn], condition={
            "Null": {"kms:EncryptionContext:accountId": "false",
                     "kms:EncryptionContext:sourceId": "false"}})

    def activity_statements(self) -> list[Statement]:
        return [table_statement(["dynamodb:PutItem"], self.tables["activity"]),
                table_statement(["dynamodb:UpdateItem"], self.tables["activity-counters"])]

    def source_store_statements(self) -> list[Statement]:
        """Create a source within the plan's limit: the account's counter and the row agree."""
        t = self.tables
        return [
            # BatchGetItem: the rows a request needs are read together (a source with its
            # default job and account, a sub-account's ancestors for its plan)
            table_statement(["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem",
                             "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query",
                             "dynamodb:ConditionCheckItem"], t["sources"]),
            table_statement(["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:UpdateItem",
                             "dynamodb:ConditionCheckItem"], t["accounts"]),
        ]


class SourcesService(pulumi.ComponentResource):
    def __init__(self, name: str, args: ConnectorInputs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("listbackup:sources:SourcesService", name, None, opts)
        t = args.tables
        self.api = build_function(self, args.platform, SERVICE, FunctionSpec(
            name="api", entry="handlers.sources.api", environment=args.environment(),
            statements=[
                parameter_statement(args.cursor_secret),
                args.oauth_statement(),
                *args.source_store_statements(),
                # deleting refuses while one of the source's runs is active; sync starts a
                # run of the source's default job (created when missing) and queues it
                table_statement(["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                                 "dynamodb:Query", "dynamodb:ConditionCheckItem"],
                                t["runs"], t["jobs"], indexes=True),
                table_statement(["dynamodb:BatchGetItem"], t["jobs"]),
                # a run that cannot be queued ends failed, counted in the analytics
                table_statement(["dynamodb:UpdateItem"], t["analytics"]),
                Statement(["sqs:SendMessage"], [args.job_queue.arn]),
                args.kms_statement(["kms:Encrypt", "kms:Decrypt"]),
                *args.activity_statements(),
            ]))
        attach_routes(self, SERVICE, self.api, routes_of(SERVICE), args.api)
        self.register_outputs({"apiFunction": self.api.function.name})
