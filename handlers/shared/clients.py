"""boto3 clients and resources, created once per process on first use and reused."""

from __future__ import annotations

import functools
import os


@functools.cache
def client(service: str):
    import boto3  # deferred: a handler that never touches AWS does not pay for it

    return boto3.client(service, endpoint_url=_endpoint(service))


@functools.cache
def resource(service: str):
    import boto3

    return boto3.resource(service, endpoint_url=_endpoint(service))


def table(short_name: str):
    """The stage's DynamoDB table ``listbackup-{stage}-{short_name}``."""
    return resource("dynamodb").Table(os.environ["DYNAMODB_TABLE_PREFIX"] + short_name)


def _endpoint(service: str) -> str | None:
    # Standard AWS SDK setting (AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE>) honoured by
    # boto3 itself; named here only so the behaviour is explicit. Unset on AWS.
    return os.environ.get(f"AWS_ENDPOINT_URL_{service.upper()}") or os.environ.get("AWS_ENDPOINT_URL")


def reset() -> None:
    """Forget cached clients (a test that swaps the AWS backend calls this)."""
    client.cache_clear()
    resource.cache_clear()
