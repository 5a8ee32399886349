"""What the identity services (auth, account, activity) share: the stage's tables, secrets
and sender they are given, and the grants every API function that records activity needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import pulumi
import pulumi_aws as aws

from components.functions import (ApiAttachment, Platform, Statement, parameter_environment,
                                  table_statement)


@dataclass(frozen=True)
class IdentityInputs:
    platform: Platform
    api: ApiAttachment
    tables: Mapping[str, aws.dynamodb.Table]          # core's and api's, by short name
    parameters: Mapping[str, aws.ssm.Parameter]       # core's, by short name
    sender: aws.sesv2.EmailIdentity

    def table(self, name: str) -> aws.dynamodb.Table:
        return self.tables[name]

    def activity_statements(self) -> list[Statement]:
        """The shared activity writer: one event and one daily counter per action."""
        return [table_statement(["dynamodb:PutItem"], self.tables["activity"]),
                table_statement(["dynamodb:UpdateItem"], self.tables["activity-counters"])]

    def send_mail_statement(self) -> Statement:
        return Statement(["ses:SendEmail", "ses:SendRawEmail"], [self.sender.arn])

    def token_environment(self) -> dict[str, pulumi.Input[str]]:
        settings = self.platform.settings
        return {
            **parameter_environment(JWT_SECRET_PARAM=self.parameters["jwt-secret"],
                                    JWT_REFRESH_SECRET_PARAM=self.parameters["jwt-refresh-secret"],
                                    CURSOR_SECRET_PARAM=self.parameters["cursor-secret"]),
            "SES_FROM_EMAIL": settings.ses_from_email,
            "APP_URL": settings.app_url,
        }


def data_options(parent: pulumi.Resource, platform: Platform) -> pulumi.ResourceOptions:
    """Tables keep their data after a destroy where the stage protects data."""
    protect = platform.settings.data_protection
    return pulumi.ResourceOptions(parent=parent, protect=protect, retain_on_delete=protect)
