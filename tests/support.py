"""Helpers the handler tests share: a Lambda context, API Gateway events, moto set-up."""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any, Iterable, Iterator

from components.tables import TableSpec, create_table_kwargs

STAGE = "test"
PREFIX = f"listbackup-{STAGE}-"
BUCKET = f"listbackup-data-{STAGE}"


class LambdaContext:
    """The parts of a Lambda context Powertools' ``inject_lambda_context`` reads."""

    def __init__(self, function_name: str = "listbackup-test-fn", request_id: str = "lambda-req-1"):
        self.function_name = function_name
        self.memory_limit_in_mb = 256
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.aws_request_id = request_id


def api_event(route_key: str, *, identity: dict | None = None, body: Any = None,
              path: dict | None = None, query: dict | None = None,
              request_id: str = "apigw-req-1") -> dict:
    """An HTTP API (payload 2.0) event for a matched route, as API Gateway delivers it."""
    method, raw_path = route_key.split(" ", 1)
    context: dict = {"requestId": request_id, "routeKey": route_key, "stage": "$default",
                     "http": {"method": method, "path": raw_path, "sourceIp": "203.0.113.9"}}
    headers = {"host": "api.example.test"}
    if identity is not None:
        context["authorizer"] = {"lambda": identity}
        headers["authorization"] = "Bearer x"
    event = {"version": "2.0", "routeKey": route_key, "rawPath": raw_path, "headers": headers,
             "isBase64Encoded": False, "requestContext": context}
    if body is not None:
        event["body"] = body if isinstance(body, str) else json.dumps(body)
        headers["content-type"] = "application/json"
    if path:
        event["pathParameters"] = path
    if query:
        event["queryStringParameters"] = query
    return event


def call(handler, event: dict, context: LambdaContext | None = None) -> tuple[int, dict]:
    result = handler(event, context or LambdaContext())
    return result["statusCode"], json.loads(result["body"])


def create_tables(specs: Iterable[TableSpec], prefix: str = PREFIX) -> None:
    """moto tables built from the same specs the Pulumi program deploys."""
    import boto3

    dynamodb = boto3.client("dynamodb")
    for spec in specs:
        dynamodb.create_table(**create_table_kwargs(spec, prefix + spec.name))


def moto_env(monkeypatch) -> None:
    for key, value in {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                       "DYNAMODB_TABLE_PREFIX": PREFIX, "STAGE": STAGE,
                       "S3_BUCKET": BUCKET}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


class CurrentStdout:
    """Writes to whatever ``sys.stdout`` is now: Powertools binds its stream at import,
    before pytest's capture swaps stdout for each test."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@contextlib.contextmanager
def logging_to_stdout(logger, level: str | None = None) -> Iterator[Any]:
    """``logger`` (handlers/shared/log.py) writing to whatever ``sys.stdout`` is, so capsys
    reads its lines, at ``level`` if given; its stream and level are restored afterwards."""
    handler = logger.registered_handler
    stream, previous_level = handler.stream, logger.log_level
    handler.stream = CurrentStdout()
    if level is not None:
        logger.setLevel(level)
    try:
        yield logger
    finally:
        handler.stream = stream
        logger.setLevel(previous_level)


@contextlib.contextmanager
def counted_dynamodb_calls() -> Iterator[list[str]]:
    """The name of every DynamoDB API call made inside the block, in order (a transaction or
    a batch is one), counted where botocore sends them, in this process."""
    import botocore.client

    calls: list[str] = []
    original = botocore.client.BaseClient._make_api_call

    def counting(self, operation_name, params):
        if self.meta.service_model.service_name == "dynamodb":
            calls.append(operation_name)
        return original(self, operation_name, params)

    botocore.client.BaseClient._make_api_call = counting
    try:
        yield calls
    finally:
        botocore.client.BaseClient._make_api_call = original
