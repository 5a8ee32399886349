"""What the program declares, read off its evaluation under mocks into plain data.

Nothing here is a second definition of the system: every table, queue, function, route and
trigger comes from the resources the Pulumi program registered. References between them
(a route's integration, a mapping's queue, a layer's ARN) are resolved through the ids and
ARNs the mocks gave each resource.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offline.evaluate import Evaluation, Resource


def _plain(value: Any) -> Any:
    """Secret inputs reach the mocks as ``{<sig>: ..., "value": v}``; take the value."""
    if isinstance(value, dict) and "value" in value and len(value) == 2 and any(
            len(k) == 32 for k in value):
        return _plain(value["value"])
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@dataclass
class Function:
    name: str
    arn: str
    handler: str                     # "handlers/system/api.handler" (path or dotted module)
    code: Path                       # a .zip or a directory
    layers: list[Path]               # .zip or directories whose python/ joins the path
    environment: dict[str, str]
    timeout: int                     # seconds
    memory: int                      # MB
    reserved_concurrency: int | None = None


@dataclass
class Authorizer:
    id: str
    function: str                    # function name
    identity_sources: list[str]      # "$request.header.Authorization"
    ttl: int
    simple_responses: bool
    payload_version: str


@dataclass
class Route:
    route_key: str                   # "GET /sources/{sourceId}"
    function: str                    # function name
    authorization: str               # NONE | CUSTOM
    authorizer: Authorizer | None
    payload_version: str = "2.0"
    timeout_ms: int = 30000

    @property
    def method(self) -> str:
        return self.route_key.split(" ", 1)[0]

    @property
    def path(self) -> str:
        return self.route_key.split(" ", 1)[1]


@dataclass
class Cors:
    allow_origins: list[str] = field(default_factory=list)
    allow_methods: list[str] = field(default_factory=list)
    allow_headers: list[str] = field(default_factory=list)
    expose_headers: list[str] = field(default_factory=list)
    max_age: int | None = None
    allow_credentials: bool = False


@dataclass
class Api:
    id: str
    name: str
    routes: list[Route]
    cors: Cors | None
    endpoint: str = ""               # the execute-api URL the mocks gave it


@dataclass
class Table:
    name: str
    hash_key: str
    range_key: str | None
    attributes: dict[str, str]
    indexes: list[tuple[str, str, str | None]]   # (name, hash, range)
    ttl_attribute: str | None


@dataclass
class Queue:
    name: str
    arn: str
    url: str                         # the URL the mocks gave it (replaced by moto's)
    visibility_timeout: int = 30
    retention: int = 345600
    delay: int = 0
    dead_letter: str | None = None   # queue name
    max_receives: int | None = None
    fifo: bool = False


@dataclass
class Notification:
    queue: str                       # queue name
    events: list[str]
    prefix: str = ""
    suffix: str = ""


@dataclass
class Bucket:
    name: str
    versioned: bool = False
    notifications: list[Notification] = field(default_factory=list)


@dataclass
class QueueMapping:
    queue: str                       # queue name
    function: str                    # function name
    batch_size: int = 10
    batching_window: int = 0
    report_failures: bool = False
    enabled: bool = True
    max_concurrency: int | None = None


@dataclass
class Schedule:
    name: str
    expression: str                  # rate(...) or cron(...)
    function: str
    input: Any = None                # the event, when the target gives one
    enabled: bool = True


@dataclass
class Parameter:
    name: str
    type: str
    value: str


@dataclass
class Key:
    arn: str
    key_id: str
    description: str
    aliases: list[str] = field(default_factory=list)


@dataclass
class Deployment:
    stack: str
    functions: dict[str, Function]
    api: Api | None
    tables: list[Table]
    queues: dict[str, Queue]
    buckets: list[Bucket]
    mappings: list[QueueMapping]
    schedules: list[Schedule]
    parameters: list[Parameter]
    keys: list[Key]
    email_identities: list[str]
    outputs: dict[str, Any]

    def summary(self) -> dict:
        """What exists, for ``/_offline/resources``."""
        return {
            "stack": self.stack,
            "functions": sorted(self.functions),
            "routes": [r.route_key for r in self.api.routes] if self.api else [],
            "tables": [t.name for t in self.tables],
            "buckets": [b.name for b in self.buckets],
            "queues": sorted(self.queues),
            "queueMappings": [{"queue": m.queue, "function": m.function} for m in self.mappings],
            "schedules": [{"name": s.name, "expression": s.expression, "function": s.function}
                          for s in self.schedules],
            "parameters": [p.name for p in self.parameters],
            "keys": [{"keyId": k.key_id, "aliases": k.aliases} for k in self.keys],
            "emailIdentities": self.email_identities,
        }


def _function_arn(reference: str) -> str:
    """A function ARN from an invoke ARN, an alias ARN or a plain ARN."""
    match = re.search(r"functions/(arn:aws:lambda:[^/]+)/invocations", reference)
    arn = match.group(1) if match else reference
    parts = arn.split(":")
    return ":".join(parts[:7]) if len(parts) > 7 else arn   # drop an alias or version


def _archive_path(archive: Any) -> Path:
    path = getattr(archive, "path", None)
    if path is None:
        raise ValueError(f"offline mode runs code from a FileArchive, got {archive!r}")
    return Path(path)


def from_evaluation(evaluation: Evaluation) -> Deployment:
    res = evaluation.resources

    def of(type_: str) -> list[Resource]:
        return [r for r in res if r.type == type_]

    def inputs(r: Resource) -> dict:
        return _plain(r.inputs)

    layers = {r.state["arn"]: _archive_path(r.inputs["code"])
              for r in of("aws:lambda/layerVersion:LayerVersion")}

    functions: dict[str, Function] = {}
    by_arn: dict[str, str] = {}
    for r in of("aws:lambda/function:Function"):
        i = inputs(r)
        name = i.get("name") or r.name
        functions[name] = Function(
            name=name, arn=r.state["arn"], handler=i["handler"],
            code=_archive_path(r.inputs["code"]),
            layers=[layers[arn] for arn in i.get("layers") or [] if arn in layers],
            environment={k: str(v) for k, v in ((i.get("environment") or {}).get("variables") or {}).items()},
            timeout=int(i.get("timeout") or 3), memory=int(i.get("memorySize") or 128),
            reserved_concurrency=i.get("reservedConcurrentExecutions"))
        by_arn[r.state["arn"]] = name

    def function_for(reference: str) -> str:
        if reference in functions:
            return reference
        return by_arn[_function_arn(reference)]

    api = None
    apis = of("aws:apigatewayv2/api:Api")
    if apis:
        api_res = apis[0]
        authorizers = {}
        for r in of("aws:apigatewayv2/authorizer:Authorizer"):
            i = inputs(r)
            authorizers[r.id] = Authorizer(
                id=r.id, function=function_for(i["authorizerUri"]),
                identity_sources=list(i.get("identitySources") or []),
                ttl=int(i.get("authorizerResultTtlInSeconds", 300)),
                simple_responses=bool(i.get("enableSimpleResponses")),
                payload_version=i.get("authorizerPayloadFormatVersion", "2.0"))
        integrations = {r.id: inputs(r) for r in of("aws:apigatewayv2/integration:Integration")}
        routes = []
        for r in of("aws:apigatewayv2/route:Route"):
            i = inputs(r)
            integration = integrations[i["target"].split("/", 1)[1]]
            routes.append(Route(
                route_key=i["routeKey"], function=function_for(integration["integrationUri"]),
                authorization=i.get("authorizationType", "NONE"),
                authorizer=authorizers.get(i.get("authorizerId")),
                payload_version=integration.get("payloadFormatVersion", "2.0"),
                timeout_ms=int(integration.get("timeoutMilliseconds") or 30000)))
        cors_in = inputs(api_res).get("corsConfiguration")
        cors = Cors(
            allow_origins=list(cors_in.get("allowOrigins") or []),
            allow_methods=[m.upper() for m in cors_in.get("allowMethods") or []],
            allow_headers=[h.lower() for h in cors_in.get("allowHeaders") or []],
            expose_headers=[h.lower() for h in cors_in.get("exposeHeaders") or []],
            max_age=cors_in.get("maxAge"), allow_credentials=bool(cors_in.get("allowCredentials")),
        ) if cors_in else None
        api = Api(id=api_res.id, name=inputs(api_res).get("name", api_res.name), routes=routes,
                  cors=cors, endpoint=api_res.state.get("apiEndpoint", ""))

    tables = []
    for r in of("aws:dynamodb/table:Table"):
        i = inputs(r)
        indexes = []
        for g in i.get("globalSecondaryIndexes") or []:
            keys = {k["keyType"]: k["attributeName"] for k in g.get("keySchemas") or []}
            indexes.append((g["name"], keys.get("HASH", g.get("hashKey")),
                            keys.get("RANGE", g.get("rangeKey"))))
        ttl = i.get("ttl") or {}
        tables.append(Table(
            name=i["name"], hash_key=i["hashKey"], range_key=i.get("rangeKey"),
            attributes={a["name"]: a["type"] for a in i.get("attributes") or []},
            indexes=indexes,
            ttl_attribute=ttl.get("attributeName") if ttl.get("enabled") else None))

    queues: dict[str, Queue] = {}
    queue_by_arn: dict[str, str] = {}
    for r in of("aws:sqs/queue:Queue"):
        i = inputs(r)
        name = i.get("name") or r.name
        queues[name] = Queue(
            name=name, arn=r.state["arn"], url=r.state.get("url", r.id),
            visibility_timeout=int(i.get("visibilityTimeoutSeconds", 30)),
            retention=int(i.get("messageRetentionSeconds", 345600)),
            delay=int(i.get("delaySeconds", 0)), fifo=bool(i.get("fifoQueue")))
        queue_by_arn[r.state["arn"]] = name
    for r in of("aws:sqs/queue:Queue"):
        i = inputs(r)
        if i.get("redrivePolicy"):
            redrive = json.loads(i["redrivePolicy"])
            queue = queues[i.get("name") or r.name]
            queue.dead_letter = queue_by_arn.get(redrive["deadLetterTargetArn"])
            queue.max_receives = int(redrive["maxReceiveCount"])

    buckets: dict[str, Bucket] = {}
    for r in of("aws:s3/bucket:Bucket"):
        name = r.state.get("bucket") or r.id
        buckets[name] = Bucket(name=name)
    for r in of("aws:s3/bucketVersioning:BucketVersioning"):
        i = inputs(r)
        if i["bucket"] in buckets:
            buckets[i["bucket"]].versioned = (i.get("versioningConfiguration") or {}).get("status") == "Enabled"
    for r in of("aws:s3/bucketNotification:BucketNotification"):
        i = inputs(r)
        for q in i.get("queues") or []:
            buckets[i["bucket"]].notifications.append(Notification(
                queue=queue_by_arn[q["queueArn"]], events=list(q["events"]),
                prefix=q.get("filterPrefix", ""), suffix=q.get("filterSuffix", "")))

    mappings = []
    for r in of("aws:lambda/eventSourceMapping:EventSourceMapping"):
        i = inputs(r)
        source = i.get("eventSourceArn", "")
        if source not in queue_by_arn:
            continue  # only SQS sources exist here
        mappings.append(QueueMapping(
            queue=queue_by_arn[source], function=function_for(i["functionName"]),
            batch_size=int(i.get("batchSize") or 10),
            batching_window=int(i.get("maximumBatchingWindowInSeconds") or 0),
            report_failures="ReportBatchItemFailures" in (i.get("functionResponseTypes") or []),
            enabled=i.get("enabled", True) is not False,
            max_concurrency=(i.get("scalingConfig") or {}).get("maximumConcurrency")))

    schedules = []
    rules = {}
    for r in of("aws:cloudwatch/eventRule:EventRule"):
        i = inputs(r)
        if i.get("scheduleExpression"):
            rules[i.get("name") or r.state.get("name") or r.name] = i
            rules[r.id] = i
    for r in of("aws:cloudwatch/eventTarget:EventTarget"):
        i = inputs(r)
        rule = rules.get(i.get("rule"))
        if rule is None or _function_arn(i.get("arn", "")) not in by_arn:
            continue
        schedules.append(Schedule(
            name=i.get("rule"), expression=rule["scheduleExpression"],
            function=function_for(i["arn"]),
            input=json.loads(i["input"]) if i.get("input") else None,
            enabled=rule.get("state", "ENABLED") == "ENABLED" and rule.get("isEnabled", True) is not False))
    for r in of("aws:scheduler/schedule:Schedule"):
        i = inputs(r)
        target = i.get("target") or {}
        if _function_arn(target.get("arn", "")) not in by_arn:
            continue
        schedules.append(Schedule(
            name=i.get("name") or r.name, expression=i["scheduleExpression"],
            function=function_for(target["arn"]),
            input=json.loads(target["input"]) if target.get("input") else None,
            enabled=i.get("state", "ENABLED") == "ENABLED"))

    parameters = [Parameter(name=i["name"], type=i.get("type", "String"), value=str(i.get("value", "")))
                  for i in (inputs(r) for r in of("aws:ssm/parameter:Parameter"))]

    keys = {r.state.get("keyId", r.id): Key(arn=r.state["arn"], key_id=r.state.get("keyId", r.id),
                                            description=inputs(r).get("description", ""))
            for r in of("aws:kms/key:Key")}
    for r in of("aws:kms/alias:Alias"):
        i = inputs(r)
        if i.get("targetKeyId") in keys:
            keys[i["targetKeyId"]].aliases.append(i["name"])

    identities = [inputs(r).get("emailIdentity") for r in of("aws:sesv2/emailIdentity:EmailIdentity")]
    identities += [inputs(r).get("email") for r in of("aws:ses/emailIdentity:EmailIdentity")]
    identities += [inputs(r).get("domain") for r in of("aws:ses/domainIdentity:DomainIdentity")]

    return Deployment(
        stack=evaluation.stack, functions=functions, api=api, tables=tables, queues=queues,
        buckets=list(buckets.values()), mappings=mappings, schedules=schedules,
        parameters=parameters, keys=list(keys.values()),
        email_identities=[i for i in identities if i], outputs=evaluation.outputs)
