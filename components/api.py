"""The api service: the HTTP API every other service's routes hang on.

The API with CORS from the stage's origins, a ``$default`` stage that deploys itself, JSON
access logs and default throttling; the Lambda authorizer (one identity source: the
Authorization header); the tables the front door owns (oauth-states, api-keys); and, where
the stage has a domain, the custom domain with the ``v2`` mapping.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.functions import (ApiAttachment, FunctionSpec, Platform, Statement,
                                  allow_api_gateway, build_function)
from components.tables import API_TABLES, build_table

SERVICE = "api"
BASE_PATH = "v2"
THROTTLE_RATE = 100      # requests per second, steady, across the stage
THROTTLE_BURST = 200
AUTHORIZER_TIMEOUT = 10

# What an operator needs to trace a request; never a header, so never a credential.
ACCESS_LOG_FORMAT = json.dumps({
    "requestId": "$context.requestId", "ip": "$context.identity.sourceIp",
    "requestTime": "$context.requestTime", "method": "$context.httpMethod",
    "path": "$context.path", "routeKey": "$context.routeKey", "status": "$context.status",
    "protocol": "$context.protocol", "responseLength": "$context.responseLength",
    "latencyMs": "$context.responseLatency", "integrationLatencyMs": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage",
    "authorizerError": "$context.authorizer.error", "userId": "$context.authorizer.userId",
    "accountId": "$context.authorizer.accountId",
}, separators=(",", ":"))


@dataclass(frozen=True)
class ApiArgs:
    platform: Platform
    users_table: aws.dynamodb.Table
    memberships_table: aws.dynamodb.Table
    jwt_secret_parameter: aws.ssm.Parameter


class ApiService(pulumi.ComponentResource):
    def __init__(self, name: str, args: ApiArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("listbackup:api:ApiService", name, None, opts)
        platform = args.platform
        settings, names = platform.settings, platform.names
        child = pulumi.ResourceOptions(parent=self)
        data_opts = pulumi.ResourceOptions(parent=self, protect=settings.data_protection,
                                           retain_on_delete=settings.data_protection)

        self.tables = {spec.name: build_table(spec, names, settings, data_opts)
                       for spec in API_TABLES}

        self.api = aws.apigatewayv2.Api(
            "http-api", name=f"listbackup-{settings.stage}-api", protocol_type="HTTP",
            description=f"ListBackup API ({settings.stage})",
            cors_configuration={
                "allow_origins": list(settings.cors_origins),
                "allow_methods": ["GET", "POST", "PUT", "DELETE", "OPTIONS"],
                "allow_headers": ["authorization", "content-type"],
                "expose_headers": ["retry-after"],
                "max_age": 600,
            } if settings.cors_origins else None,
            opts=child)
        self.access_logs = aws.cloudwatch.LogGroup(
            "access-logs", name=f"/aws/apigateway/listbackup-{settings.stage}-api",
            retention_in_days=settings.log_retention_days, opts=child)
        self.stage = aws.apigatewayv2.Stage(
            "default-stage", api_id=self.api.id, name="$default", auto_deploy=True,
            access_log_settings={"destination_arn": self.access_logs.arn,
                                 "format": ACCESS_LOG_FORMAT},
            default_route_settings={"throttling_rate_limit": THROTTLE_RATE,
                                    "throttling_burst_limit": THROTTLE_BURST},
            opts=child)

        api_keys = self.tables["api-keys"]
        self.authorizer_function = build_function(self, platform, SERVICE, FunctionSpec(
            name="authorizer",
            entry="handlers.api.authorizer",
            timeout=AUTHORIZER_TIMEOUT,
            provisioned_concurrency=settings.authorizer_provisioned_concurrency,
            environment={"JWT_SECRET_PARAM": args.jwt_secret_parameter.name},
            statements=[
                # The parameter uses SSM's AWS-managed key, whose policy lets any principal
                # of the account decrypt through SSM: no kms statement needed.
                Statement(["ssm:GetParameter"], [args.jwt_secret_parameter.arn]),
                Statement(["dynamodb:GetItem"], [api_keys.arn]),
                # a user's row and their membership: one BatchGetItem per request
                Statement(["dynamodb:BatchGetItem"], [args.users_table.arn, args.memberships_table.arn]),
            ],
        ))
        self.authorizer = aws.apigatewayv2.Authorizer(
            "authorizer", api_id=self.api.id, name="bearer",
            authorizer_type="REQUEST",
            authorizer_uri=self.authorizer_function.invoke_arn,
            authorizer_payload_format_version="2.0",
            enable_simple_responses=True,
            # Exactly one source: without the header API Gateway answers 401 by itself.
            identity_sources=["$request.header.Authorization"],
            authorizer_result_ttl_in_seconds=settings.authorizer_cache_ttl,
            opts=child)
        allow_api_gateway(self, "authorizer-invoke", self.authorizer_function,
                          pulumi.Output.all(self.api.execution_arn, self.authorizer.id).apply(
                              lambda a: f"{a[0]}/authorizers/{a[1]}"))

        self.domain = None
        self.certificate_validation_records: pulumi.Output[list] | None = None
        self.url: pulumi.Output[str] = self.api.api_endpoint
        if settings.domain:
            self.domain = self._custom_domain(settings)
            self.url = pulumi.Output.concat("https://", self.domain.domain_name, "/", BASE_PATH)

        self.attachment = ApiAttachment(api_id=self.api.id, execution_arn=self.api.execution_arn,
                                        authorizer_id=self.authorizer.id)
        self.register_outputs({"apiId": self.api.id, "apiUrl": self.url})

    def _custom_domain(self, settings) -> aws.apigatewayv2.DomainName:
        child = pulumi.ResourceOptions(parent=self)
        if settings.certificate_arn:
            certificate_arn: pulumi.Input[str] = settings.certificate_arn
        else:
            # No certificate configured: request one. Its DNS validation record is the
            # stack output `certificateValidation`; the domain waits until ACM issues it.
            certificate = aws.acm.Certificate("api-certificate", domain_name=settings.domain,
                                              validation_method="DNS", opts=child)
            self.certificate_validation_records = certificate.domain_validation_options.apply(
                lambda options: [{"name": o.resource_record_name, "type": o.resource_record_type,
                                  "value": o.resource_record_value} for o in options])
            validation_fqdns = None
            if settings.hosted_zone_id:
                # the zone is ours: create the validation record, so ACM issues at once
                option = certificate.domain_validation_options[0]
                record = aws.route53.Record(
                    "api-certificate-record", zone_id=settings.hosted_zone_id,
                    name=option.resource_record_name, type=option.resource_record_type,
                    records=[option.resource_record_value], ttl=300, allow_overwrite=True,
                    opts=child)
                validation_fqdns = [record.fqdn]
            certificate_arn = aws.acm.CertificateValidation(
                "api-certificate-validation", certificate_arn=certificate.arn,
                validation_record_fqdns=validation_fqdns, opts=child).certificate_arn
        domain = aws.apigatewayv2.DomainName(
            "api-domain", domain_name=settings.domain,
            domain_name_configuration={"certificate_arn": certificate_arn,
                                       "endpoint_type": "REGIONAL",
                                       "security_policy": "TLS_1_2"},
            opts=child)
        aws.apigatewayv2.ApiMapping("api-mapping", api_id=self.api.id, domain_name=domain.id,
                                    stage=self.stage.id, api_mapping_key=BASE_PATH, opts=child)
        if settings.hosted_zone_id:
            # the domain's alias to the API's regional endpoint
            configuration = domain.domain_name_configuration
            aws.route53.Record(
                "api-alias", zone_id=settings.hosted_zone_id, name=settings.domain, type="A",
                aliases=[{"name": configuration.target_domain_name,
                          "zone_id": configuration.hosted_zone_id,
                          "evaluate_target_health": False}],
                opts=child)
        return domain
