"""Every function is built the one shared way: own role, least privilege, own log group,
names only in its environment, python3.12 on arm64 with the layer; routes from the table."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from components.functions import Statement, check_environment, check_statements
from handlers.routes import all_routes
from offline.evaluate import evaluate
from tests.conftest import ROOT, policy, unwrap
from tests.infra.test_project_config import stack_config

FUNCTION = "aws:lambda/function:Function"
COMPONENT_TYPES = ("listbackup:core:CoreService", "listbackup:api:ApiService",
                   "listbackup:auth:AuthService", "listbackup:account:AccountService",
                   "listbackup:activity:ActivityService", "listbackup:system:SystemService",
                   "listbackup:billing:BillingService", "listbackup:sources:SourcesService",
                   "listbackup:integrations:IntegrationsService", "listbackup:jobs:JobsService",
                   "listbackup:data:DataService", "listbackup:analytics:AnalyticsService")


def role_policy_of(program, function) -> dict:
    role = next(r for r in program.of_type("aws:iam/role:Role") if r.state["arn"] == function.inputs["role"])
    [attached] = [p for p in program.of_type("aws:iam/rolePolicy:RolePolicy")
                  if p.inputs["role"] == role.id]
    return policy(attached)


def test_functions_are_named_as_the_seed_and_run_python312_on_arm64(program, stack):
    names = {f.inputs["name"] for f in program.of_type(FUNCTION)}
    assert {f"listbackup-core-{stack}-fileIndexer", f"listbackup-system-{stack}-api"} <= names
    layer = program.one("aws:lambda/layerVersion:LayerVersion")
    assert layer.inputs["layerName"] == f"listbackup-{stack}-runtime"
    assert layer.inputs["compatibleArchitectures"] == ["arm64"]
    for function in program.of_type(FUNCTION):
        assert function.inputs["runtime"] == "python3.12"
        assert function.inputs["architectures"] == ["arm64"]
        assert function.inputs["layers"] == [layer.state["arn"]]
        assert 1 <= function.inputs["timeout"] <= 900 and function.inputs["memorySize"] >= 128


def test_each_function_has_its_own_role(program):
    roles = [f.inputs["role"] for f in program.of_type(FUNCTION)]
    assert len(roles) == len(set(roles))


def test_policies_allow_no_wildcard_action_or_resource(program):
    for function in program.of_type(FUNCTION):
        for statement in role_policy_of(program, function)["Statement"]:
            assert statement["Effect"] == "Allow"
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert not [a for a in actions if "*" in a], function.name
            assert "*" not in statement["Resource"], function.name


def test_file_indexer_may_only_read_data_objects_and_update_files(program, stack):
    indexer = program.one(FUNCTION, name=f"listbackup-core-{stack}-fileIndexer")
    allowed = {(a, r) for s in role_policy_of(program, indexer)["Statement"]
               for a in s["Action"] for r in s["Resource"]}
    bucket = f"arn:aws:s3:::listbackup-data-{stack}"
    assert ("s3:GetObject", f"{bucket}/data/*") in allowed
    assert ("s3:ListBucket", bucket) in allowed
    assert {a for a, r in allowed if r.endswith(f"table/listbackup-{stack}-files")} == {
        "dynamodb:GetItem", "dynamodb:UpdateItem"}
    assert {a for a, r in allowed if r.endswith(f"table/listbackup-{stack}-accounts")} == {
        "dynamodb:UpdateItem"}, "storage usage moves with the file's state"
    assert {a for a, _ in allowed} == {"s3:GetObject", "s3:ListBucket", "dynamodb:GetItem",
                                        "dynamodb:UpdateItem",
                                        "sqs:ReceiveMessage", "sqs:DeleteMessage",
                                        "sqs:GetQueueAttributes", "logs:CreateLogStream",
                                        "logs:PutLogEvents"}
    [mapping] = [m for m in program.of_type("aws:lambda/eventSourceMapping:EventSourceMapping")
                 if m.inputs["functionName"] == indexer.state["arn"]]
    assert mapping.inputs["eventSourceArn"].endswith(f":listbackup-index-queue-{stack}")
    assert mapping.inputs["functionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping.inputs["functionName"] == indexer.state["arn"]


def test_each_function_logs_to_its_own_log_group_with_the_stage_retention(program, stack):
    retention = stack_config(stack)["listbackup:logRetentionDays"]
    groups = {g.inputs["name"]: g for g in program.of_type("aws:cloudwatch/logGroup:LogGroup")}
    for function in program.of_type(FUNCTION):
        name = f"/aws/lambda/{function.inputs['name']}"
        assert groups[name].inputs["retentionInDays"] == retention
        assert function.inputs["loggingConfig"]["logGroup"] == name
        assert groups[name].urn in function.dependencies, "created before the function"
        logs = [s for s in role_policy_of(program, function)["Statement"]
                if "logs:PutLogEvents" in s["Action"]]
        assert logs[0]["Resource"] == [f"{groups[name].state['arn']}:*"]


def test_environment_holds_names_not_secrets(program, stack):
    for function in program.of_type(FUNCTION):
        variables = function.inputs["environment"]["variables"]
        assert variables["STAGE"] == stack
        assert variables["DYNAMODB_TABLE_PREFIX"] == f"listbackup-{stack}-"
        assert variables["S3_BUCKET"] == f"listbackup-data-{stack}"
        assert variables["API_VERSION"] == "v2"
        secrets = [unwrap(p.inputs["value"]) for p in program.of_type("aws:ssm/parameter:Parameter")
                   if p.inputs["type"] == "SecureString"]
        assert not set(map(str, variables.values())) & set(secrets)


def test_every_resource_belongs_to_a_service_component(program):
    components = {r.urn for r in program.resources if r.type in COMPONENT_TYPES}
    assert len(components) == len(COMPONENT_TYPES)
    assert not [r for r in program.resources
                if r.type.startswith("listbackup:") and r.type not in COMPONENT_TYPES]
    for resource in program.resources:
        if resource.type not in COMPONENT_TYPES:
            assert resource.parent in components, resource.urn


def test_the_builder_refuses_wildcards_and_secret_environment():
    with pytest.raises(ValueError, match="wildcard"):
        check_statements("f", [Statement(["s3:*"], ["arn:aws:s3:::b"])])
    with pytest.raises(ValueError, match="wildcard"):
        check_statements("f", [Statement(["*"], ["arn:aws:s3:::b"])])
    with pytest.raises(ValueError, match=r"resource '\*'"):
        check_statements("f", [Statement(["dynamodb:GetItem"], ["*"])])
    check_statements("f", [Statement(["xray:PutTraceSegments"], ["*"])])  # nothing narrower exists
    with pytest.raises(ValueError, match="secret"):
        check_environment("f", {"JWT_SECRET": "x"})
    check_environment("f", {"JWT_SECRET_PARAM": "/listbackup/dev/jwt-secret"})


def test_system_health_is_a_public_route_in_the_table():
    table = all_routes()
    [health] = [r for r in table["system"] if r.route_key == "GET /system/health"]
    assert health.public


ROUTES_PROGRAM = '''
import pulumi
from components.core import CoreArgs, CoreService
from components.functions import ApiAttachment
from components.settings import Settings
from components.system import SystemArgs, SystemService

core = CoreService("core", CoreArgs(settings=Settings.load()))
api = ApiAttachment(api_id="api123", execution_arn="arn:aws:execute-api:us-east-1:123456789012:api123",
                    authorizer_id="auth456")
SystemService("system", SystemArgs(platform=core.platform, api=api))
'''


def test_routes_from_the_table_hang_on_the_api_with_their_authorization(tmp_path):
    for name in ("components", "handlers", ".cache"):
        (tmp_path / name).symlink_to(ROOT / name)
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml", "requirements-lambda.txt"):
        (tmp_path / name).symlink_to(ROOT / name)
    (tmp_path / "__main__.py").write_text(ROUTES_PROGRAM)
    program = evaluate("dev", tmp_path)
    routes = {r.inputs["routeKey"]: r for r in program.of_type("aws:apigatewayv2/route:Route")}
    assert set(routes) == {r.route_key for r in all_routes()["system"]}
    health = routes["GET /system/health"]
    assert health.inputs["authorizationType"] == "NONE" and "authorizerId" not in health.inputs
    status = routes["GET /system/status"]
    assert status.inputs["authorizationType"] == "CUSTOM" and status.inputs["authorizerId"] == "auth456"
    [integration] = program.of_type("aws:apigatewayv2/integration:Integration")
    assert integration.inputs["integrationType"] == "AWS_PROXY"
    assert integration.inputs["payloadFormatVersion"] == "2.0"
    assert health.inputs["target"] == f"integrations/{integration.id}"
    permissions = {p.inputs["sourceArn"] for p in program.of_type("aws:lambda/permission:Permission")
                   if p.inputs["principal"] == "apigateway.amazonaws.com"}
    assert permissions == {f"arn:aws:execute-api:us-east-1:123456789012:api123/*/GET/system/{name}"
                           for name in ("health", "status")}
