"""One shared way to build a service's Lambda functions and hang its routes on the API.

Per function: its own IAM role whose inline policy allows only the listed actions on the
listed resources (plus writing to its own log group), its log group created first with the
stage's retention, an environment of names (never secret values), python3.12 on arm64 with
the runtime layer, and a deterministic code bundle whose digest joins the ``artifacts``
output. Per API route of the service (from the route table beside its handlers): the
integration, the route with its authorization, and API Gateway's permission to invoke.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import pulumi
import pulumi_aws as aws

from components import packaging
from components.adoption import adopted
from components.naming import Names
from components.promotion import PromotionGate
from components.settings import Settings
from handlers.shared.routing import Route

RUNTIME = "python3.12"
ARCHITECTURE = "arm64"
API_TIMEOUT = 29           # API Gateway's integration limit

# Timeout of each queue's consumer; the queue's visibility timeout is six times it, as AWS
# advises for Lambda event sources, so a slow batch is never handed to a second consumer.
CONSUMER_TIMEOUTS = {"job": 900, "data": 900, "index": 60}

# Actions for which AWS offers no resource narrower than "*".
ACTIONS_WITHOUT_RESOURCES = frozenset({
    "xray:PutTraceSegments", "xray:PutTelemetryRecords", "cloudwatch:PutMetricData",
    "ses:GetSendQuota", "ses:GetAccount",
})

_SECRET_LIKE = re.compile(r"SECRET|PASSWORD|PRIVATE|TOKEN|CREDENTIAL")
_NAME_LIKE = ("_PARAM", "_PARAMETER", "_NAME", "_ARN", "_URL", "_PREFIX", "_TABLE", "_ID")


@dataclass(frozen=True)
class Statement:
    actions: Sequence[str]
    resources: Sequence[pulumi.Input[str]]
    condition: Mapping | None = None


@dataclass(frozen=True)
class FunctionSpec:
    name: str                       # "api", "fileIndexer": the last part of the name
    entry: str                      # module holding ``handler``: "handlers.system.api"
    statements: Sequence[Statement] = ()
    environment: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    timeout: int = API_TIMEOUT
    memory: int | None = None       # None: the stage's lambdaMemory
    reserved_concurrency: int | None = None
    # > 0: publish versions behind a "live" alias kept warm; callers invoke the alias.
    provisioned_concurrency: int = 0


@dataclass
class Platform:
    """What every service's functions share, built by the core service."""
    settings: Settings
    names: Names
    layer_arn: pulumi.Output[str]
    environment: dict[str, pulumi.Input[str]]
    # ``{service}/{function}`` and ``layer`` -> sha256 of the zip; exported as ``artifacts``.
    artifacts: dict[str, str] = field(default_factory=dict)
    # ``{service}/{function}`` -> every function built so far, in build order: what the
    # system service's alarms and dashboard watch.
    functions: dict[str, "BuiltFunction"] = field(default_factory=dict)
    # The promotion gate every function's code waits on (None: this stage has no gate).
    gate: PromotionGate | None = None

    def guard(self, code: Any) -> Any:
        return self.gate.guard(code) if self.gate is not None else code


@dataclass(frozen=True)
class ApiAttachment:
    """The HTTP API a service's routes hang on (built by the api service)."""
    api_id: pulumi.Input[str]
    execution_arn: pulumi.Input[str]
    authorizer_id: pulumi.Input[str]


@dataclass
class BuiltFunction:
    spec: FunctionSpec
    function: aws.lambda_.Function
    role: aws.iam.Role
    log_group: aws.cloudwatch.LogGroup
    artifact: packaging.Artifact
    alias: aws.lambda_.Alias | None = None

    @property
    def invoke_arn(self) -> pulumi.Output[str]:
        """What API Gateway invokes: the warm alias when there is one."""
        return self.alias.invoke_arn if self.alias else self.function.invoke_arn

    @property
    def qualifier(self) -> pulumi.Output[str] | None:
        return self.alias.name if self.alias else None


def check_statements(where: str, statements: Sequence[Statement]) -> None:
    """Refuse wildcards: least privilege is a property of the builder, not of each caller."""
    for st in statements:
        if not st.actions or not st.resources:
            raise ValueError(f"{where}: a statement needs actions and resources")
        for action in st.actions:
            if "*" in action:
                raise ValueError(f"{where}: wildcard action {action!r}")
        if any(r == "*" for r in st.resources) and not set(st.actions) <= ACTIONS_WITHOUT_RESOURCES:
            raise ValueError(f"{where}: resource '*' for {sorted(st.actions)}")


def check_environment(where: str, environment: Mapping[str, object]) -> None:
    for key in environment:
        if _SECRET_LIKE.search(key) and not key.endswith(_NAME_LIKE):
            raise ValueError(f"{where}: environment {key!r} looks like a secret value; "
                             "pass the name of its SSM parameter instead")


def policy_document(statements: Sequence[Statement]) -> pulumi.Output[str]:
    # One Output.all over the distinct inputs (the same table ARN often appears in several
    # statements), not one per statement: every input it takes costs an apply of its own.
    inputs: list = []
    slots: dict[int, int] = {}
    for st in statements:
        for resource in st.resources:
            if id(resource) not in slots:
                slots[id(resource)] = len(inputs)
                inputs.append(resource)
    where = [[slots[id(resource)] for resource in st.resources] for st in statements]

    def render(resolved: list) -> str:
        body = []
        for st, indexes in zip(statements, where):
            item = {"Effect": "Allow", "Action": sorted(set(st.actions)),
                    "Resource": sorted({resolved[i] for i in indexes})}
            if st.condition:
                item["Condition"] = st.condition
            body.append(item)
        return json.dumps({"Version": "2012-10-17", "Statement": body}, sort_keys=True)

    return pulumi.Output.all(*inputs).apply(render)


_ASSUME_LAMBDA = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
})


def build_function(parent: pulumi.Resource, platform: Platform, service: str,
                   spec: FunctionSpec) -> BuiltFunction:
    names, settings = platform.names, platform.settings
    function_name = names.function(service, spec.name)
    label = f"{service}-{spec.name}"
    check_statements(function_name, spec.statements)
    check_environment(function_name, spec.environment)
    child = pulumi.ResourceOptions(parent=parent)

    artifact = packaging.build_bundle(spec.entry, label)
    platform.artifacts[f"{service}/{spec.name}"] = artifact.sha256

    # Created before the function, so Lambda never creates it without a retention.
    log_group = aws.cloudwatch.LogGroup(
        f"{label}-logs", name=names.log_group(function_name),
        retention_in_days=settings.log_retention_days,
        opts=adopted(settings, "logGroups", names.log_group(function_name), child))
    role = aws.iam.Role(f"{label}-role", assume_role_policy=_ASSUME_LAMBDA,
                        description=f"Runs {function_name}", opts=child)
    statements = [
        Statement(["logs:CreateLogStream", "logs:PutLogEvents"],
                  [log_group.arn.apply(lambda arn: f"{arn}:*")]),
        *spec.statements,
    ]
    policy = aws.iam.RolePolicy(f"{label}-policy", role=role.id,
                                policy=policy_document(statements), opts=child)
    function = aws.lambda_.Function(
        label,
        name=function_name,
        role=role.arn,
        runtime=RUNTIME,
        architectures=[ARCHITECTURE],
        handler=f"{spec.entry.replace('.', '/')}.handler",
        code=platform.guard(pulumi.FileArchive(str(artifact.path))),
        layers=[platform.layer_arn],
        memory_size=spec.memory or settings.lambda_memory,
        timeout=spec.timeout,
        reserved_concurrent_executions=spec.reserved_concurrency,
        environment={"variables": {**platform.environment, **spec.environment,
                                   "POWERTOOLS_SERVICE_NAME": service}},
        logging_config={"log_format": "JSON", "log_group": log_group.name},
        publish=spec.provisioned_concurrency > 0,
        # The policy carries no data into the function, but the function must not run
        # before its permissions exist.
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[policy]),
    )
    alias = None
    if spec.provisioned_concurrency > 0:
        alias = aws.lambda_.Alias(f"{label}-live", name="live", function_name=function.name,
                                  function_version=function.version, opts=child)
        aws.lambda_.ProvisionedConcurrencyConfig(
            f"{label}-warm", function_name=function.name, qualifier=alias.name,
            provisioned_concurrent_executions=spec.provisioned_concurrency, opts=child)
    built = BuiltFunction(spec, function, role, log_group, artifact, alias)
    platform.functions[f"{service}/{spec.name}"] = built
    return built


def allow_api_gateway(parent: pulumi.Resource, resource_name: str, built: BuiltFunction,
                      source_arn: pulumi.Input[str]) -> aws.lambda_.Permission:
    """Let API Gateway invoke ``built`` (its alias, when it has one) for ``source_arn`` only."""
    return aws.lambda_.Permission(
        resource_name, action="lambda:InvokeFunction", function=built.function.name,
        qualifier=built.qualifier, principal="apigateway.amazonaws.com", source_arn=source_arn,
        opts=pulumi.ResourceOptions(parent=parent))


def attach_routes(parent: pulumi.Resource, service: str, built: BuiltFunction,
                  routes: Sequence[Route], api: ApiAttachment) -> list[aws.apigatewayv2.Route]:
    """Hang ``routes`` on the HTTP API, all served by ``built``'s function."""
    label = f"{service}-{built.spec.name}"
    child = pulumi.ResourceOptions(parent=parent)
    integration = aws.apigatewayv2.Integration(
        f"{label}-integration", api_id=api.api_id, integration_type="AWS_PROXY",
        integration_uri=built.invoke_arn, payload_format_version="2.0",
        timeout_milliseconds=API_TIMEOUT * 1000, opts=child)
    # one Output each, shared by every route of the integration
    target = integration.id.apply(lambda i: f"integrations/{i}")
    execution_arn = pulumi.Output.from_input(api.execution_arn)
    created = []
    for route in routes:
        slug = _slug(route)
        created.append(aws.apigatewayv2.Route(
            f"{service}-{slug}", api_id=api.api_id, route_key=route.route_key, target=target,
            authorization_type="NONE" if route.public else "CUSTOM",
            authorizer_id=None if route.public else api.authorizer_id,
            opts=child))
        # One permission per route, scoped to that method and path on this API.
        source_path = re.sub(r"\{[^}]+\}", "*", route.path)
        allow_api_gateway(parent, f"{service}-{slug}-invoke", built, execution_arn.apply(
            lambda arn, m=route.method, p=source_path: f"{arn}/*/{m}{p}"))
    return created


def _slug(route: Route) -> str:
    path = re.sub(r"[{}]", "", route.path).strip("/").replace("/", "-")
    return f"{route.method.lower()}-{path}"


# ---------------------------------------------------------------- grants, by resource

def table_statement(actions: Sequence[str], *tables: aws.dynamodb.Table,
                    indexes: bool = False) -> Statement:
    """``actions`` on ``tables`` (and their indexes, for Query on a GSI)."""
    resources: list[pulumi.Input[str]] = [t.arn for t in tables]
    if indexes:
        resources += [t.arn.apply(lambda arn: f"{arn}/index/*") for t in tables]
    return Statement(list(actions), resources)


def parameter_statement(*parameters: aws.ssm.Parameter) -> Statement:
    # SecureStrings use SSM's AWS-managed key, whose policy admits the account's principals
    # through SSM: no kms statement needed.
    return Statement(["ssm:GetParameter"], [p.arn for p in parameters])


def parameter_environment(**parameters: aws.ssm.Parameter) -> dict[str, pulumi.Output[str]]:
    """``JWT_SECRET_PARAM=jwt_secret_parameter``: environment holds names, never values."""
    return {key: parameter.name for key, parameter in parameters.items()}
