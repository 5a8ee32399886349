"""The api service and the routes hung on it, for each stack under Pulumi's mocks."""

from __future__ import annotations

import json

import pytest

from handlers.routes import all_routes
from offline.evaluate import evaluate
from tests.conftest import evaluated, policy
from tests.infra.test_functions import role_policy_of
from tests.infra.test_project_config import stack_config

API = "aws:apigatewayv2/api:Api"
ROUTE = "aws:apigatewayv2/route:Route"


def setting(stack, key):
    return stack_config(stack)[f"listbackup:{key}"]


def test_http_api_with_cors_from_the_stage_origins(program, stack):
    api = program.one(API)
    assert api.inputs["protocolType"] == "HTTP"
    assert api.inputs["name"] == f"listbackup-{stack}-api"
    cors = api.inputs["corsConfiguration"]
    assert cors["allowOrigins"] == setting(stack, "corsOrigins")
    assert "authorization" in cors["allowHeaders"] and "content-type" in cors["allowHeaders"]
    assert "*" not in cors["allowOrigins"]


def test_default_stage_deploys_itself_logs_json_and_throttles(program, stack):
    stage = program.one("aws:apigatewayv2/stage:Stage")
    assert stage.inputs["name"] == "$default" and stage.inputs["autoDeploy"] is True
    logs = program.one("aws:cloudwatch/logGroup:LogGroup", name=f"/aws/apigateway/listbackup-{stack}-api")
    assert logs.inputs["retentionInDays"] == setting(stack, "logRetentionDays")
    assert stage.inputs["accessLogSettings"]["destinationArn"] == logs.state["arn"]
    fmt = json.loads(stage.inputs["accessLogSettings"]["format"])
    assert fmt["requestId"] == "$context.requestId" and "status" in fmt
    assert not any("header" in v.lower() for v in fmt.values()), "never log a credential"
    throttle = stage.inputs["defaultRouteSettings"]
    assert throttle["throttlingRateLimit"] > 0 and throttle["throttlingBurstLimit"] > 0


def test_authorizer_has_one_identity_source_and_the_stage_ttl(program, stack):
    authorizer = program.one("aws:apigatewayv2/authorizer:Authorizer")
    assert authorizer.inputs["authorizerType"] == "REQUEST"
    assert authorizer.inputs["authorizerPayloadFormatVersion"] == "2.0"
    assert authorizer.inputs["enableSimpleResponses"] is True
    assert authorizer.inputs["identitySources"] == ["$request.header.Authorization"]
    assert authorizer.inputs["authorizerResultTtlInSeconds"] == setting(stack, "authorizerCacheTtl")
    function = program.one("aws:lambda/function:Function", name=f"listbackup-api-{stack}-authorizer")
    assert function.state["arn"] in authorizer.inputs["authorizerUri"]
    permission = [p for p in program.of_type("aws:lambda/permission:Permission")
                  if "/authorizers/" in p.inputs["sourceArn"]]
    assert len(permission) == 1 and permission[0].inputs["sourceArn"].endswith(f"/authorizers/{authorizer.id}")


def test_authorizer_reads_only_the_access_secret_and_three_tables(program, stack):
    function = program.one("aws:lambda/function:Function", name=f"listbackup-api-{stack}-authorizer")
    allowed = {(a, r) for s in role_policy_of(program, function)["Statement"]
               for a in s["Action"] for r in s["Resource"]}
    ssm = {r for a, r in allowed if a.startswith("ssm:")}
    assert ssm == {f"arn:aws:ssm:us-east-1:123456789012:parameter/listbackup/{stack}/jwt-secret"}
    assert {a for a, _ in allowed if a.startswith("ssm:")} == {"ssm:GetParameter"}
    tables = {r.rsplit("/", 1)[-1] for a, r in allowed if a.startswith("dynamodb:")}
    assert tables == {f"listbackup-{stack}-{t}" for t in ("users", "users-accounts", "api-keys")}
    # the key row by GetItem; the user's row and membership in one BatchGetItem
    assert {(a, r.rsplit("/", 1)[-1]) for a, r in allowed if a.startswith("dynamodb:")} == {
        ("dynamodb:GetItem", f"listbackup-{stack}-api-keys"),
        ("dynamodb:BatchGetItem", f"listbackup-{stack}-users"),
        ("dynamodb:BatchGetItem", f"listbackup-{stack}-users-accounts")}
    env = function.inputs["environment"]["variables"]
    assert env["JWT_SECRET_PARAM"] == f"/listbackup/{stack}/jwt-secret"


def test_main_keeps_the_authorizer_warm_and_dev_does_not():
    main = evaluated("main")
    [warm] = main.of_type("aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig")
    assert warm.inputs["provisionedConcurrentExecutions"] == setting("main", "authorizerProvisionedConcurrency")
    [alias] = main.of_type("aws:lambda/alias:Alias")
    assert warm.inputs["qualifier"] == alias.inputs["name"]
    authorizer = main.one("aws:apigatewayv2/authorizer:Authorizer")
    assert authorizer.inputs["authorizerUri"] == alias.state["invokeArn"], "API Gateway calls the warm alias"
    assert not evaluated("dev").of_type("aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig")


def test_api_owns_oauth_states_and_api_keys_tables(program, stack):
    states = program.one("aws:dynamodb/table:Table", name=f"listbackup-{stack}-oauth-states")
    assert states.inputs["ttl"] == {"attributeName": "expiresAt", "enabled": True}
    keys = program.one("aws:dynamodb/table:Table", name=f"listbackup-{stack}-api-keys")
    assert keys.inputs["hashKey"] == "keyHash"
    api = next(r for r in program.resources if r.type == "listbackup:api:ApiService")
    assert states.parent == api.urn and keys.parent == api.urn
    assert keys.protect is setting(stack, "dataProtection")


def test_every_route_of_the_built_services_with_the_right_authorization(program):
    authorizer = program.one("aws:apigatewayv2/authorizer:Authorizer")
    api = program.one(API)
    declared = {r.inputs["routeKey"]: r for r in program.of_type(ROUTE)}
    built = {r.type.split(":")[1] for r in program.resources if r.type.startswith("listbackup:")}
    expected = {route.route_key: route for service, routes in all_routes().items()
                if service in built for route in routes}
    assert set(declared) == set(expected)
    for key, route in expected.items():
        inputs = declared[key].inputs
        assert inputs["apiId"] == api.id
        if route.public:
            assert inputs["authorizationType"] == "NONE" and "authorizerId" not in inputs, key
        else:
            assert inputs["authorizationType"] == "CUSTOM", key
            assert inputs["authorizerId"] == authorizer.id, key
    assert declared["GET /system/health"].inputs["authorizationType"] == "NONE"
    assert declared["GET /system/status"].inputs["authorizationType"] == "CUSTOM"


@pytest.mark.parametrize("stack, domain", [("main", "api.listbackup.ai"),
                                           ("staging", "staging-api.listbackup.ai")])
def test_custom_domain_and_v2_mapping_where_the_stage_has_a_domain(stack, domain):
    program = evaluated(stack)
    name = program.one("aws:apigatewayv2/domainName:DomainName")
    assert name.inputs["domainName"] == domain
    assert name.inputs["domainNameConfiguration"]["endpointType"] == "REGIONAL"
    assert name.inputs["domainNameConfiguration"]["securityPolicy"] == "TLS_1_2"
    mapping = program.one("aws:apigatewayv2/apiMapping:ApiMapping")
    assert mapping.inputs["apiMappingKey"] == "v2"
    assert mapping.inputs["apiId"] == program.one(API).id
    assert program.outputs["apiUrl"] == f"https://{domain}/v2"


def test_dev_has_no_domain_and_is_reached_at_the_execute_api_url():
    dev = evaluated("dev")
    assert not dev.of_type("aws:apigatewayv2/domainName:DomainName")
    assert not dev.of_type("aws:apigatewayv2/apiMapping:ApiMapping")
    assert dev.outputs["apiUrl"] == dev.one(API).state["apiEndpoint"]


def test_a_configured_certificate_is_used_and_none_is_requested():
    arn = "arn:aws:acm:us-east-1:123456789012:certificate/abc"
    program = evaluate("main", overrides={"listbackup:certificateArn": arn})
    assert program.one("aws:apigatewayv2/domainName:DomainName").inputs[
        "domainNameConfiguration"]["certificateArn"] == arn
    assert not program.of_type("aws:acm/certificate:Certificate")
    # without one, a DNS-validated certificate is requested and its record exported
    requested = evaluated("main")
    assert requested.one("aws:acm/certificate:Certificate").inputs["validationMethod"] == "DNS"
    assert requested.outputs["certificateValidation"][0]["type"] == "CNAME"


def test_outputs_name_what_an_operator_looks_up(program, stack):
    out = program.outputs
    assert out["apiId"] == program.one(API).id
    assert out["tables"]["users"] == f"listbackup-{stack}-users"
    assert out["tables"]["api-keys"] == f"listbackup-{stack}-api-keys"
    assert out["dataBucket"] == f"listbackup-data-{stack}"
    assert out["queues"]["job"].endswith(f"/listbackup-job-queue-{stack}")
    assert out["deadLetterQueues"]["index"].endswith(f"/listbackup-index-queue-{stack}-dlq")


def test_system_status_may_only_describe_what_it_checks(program, stack):
    function = program.one("aws:lambda/function:Function", name=f"listbackup-system-{stack}-api")
    statements = role_policy_of(program, function)["Statement"]
    actions = {a for s in statements for a in s["Action"]}
    assert actions == {"dynamodb:DescribeTable", "s3:ListBucket", "sqs:GetQueueAttributes",
                       "logs:CreateLogStream", "logs:PutLogEvents"}
    tables = next(s for s in statements if "dynamodb:DescribeTable" in s["Action"])["Resource"]
    assert len(tables) == len(program.of_type("aws:dynamodb/table:Table"))
    queues = next(s for s in statements if "sqs:GetQueueAttributes" in s["Action"])["Resource"]
    assert len(queues) == 6
    env = function.inputs["environment"]["variables"]
    assert len(env["STATUS_TABLES"].split(",")) == len(tables)
    assert len(env["STATUS_QUEUES"].split(",")) == 6
