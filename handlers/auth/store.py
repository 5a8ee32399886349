"""DynamoDB helpers of the auth service: multi-table transactions, conditional-write
failures, and the conversion between JSON values and DynamoDB's (Decimal) numbers."""

from __future__ import annotations

import decimal
import json
import math
from decimal import Decimal
from typing import Any, Mapping

from boto3.dynamodb.types import DYNAMODB_CONTEXT
from botocore.exceptions import ClientError

from handlers.shared import dynamo
from handlers.shared.clients import table
from handlers.shared.http import ApiError


class Cancelled(Exception):
    """A transaction or conditional write whose condition did not hold."""


def conditional_failure(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code")
    return code in ("ConditionalCheckFailedException", "TransactionCanceledException")


def put(table_name: str, item: Mapping[str, Any], condition: str | None = None) -> dict:
    op: dict = {"TableName": table(table_name).name, "Item": dict(item)}
    if condition:
        op["ConditionExpression"] = condition
    return {"Put": op}


def update(table_name: str, key: Mapping[str, Any], expression: str, *,
           values: Mapping[str, Any] | None = None, names: Mapping[str, str] | None = None,
           condition: str | None = None) -> dict:
    op: dict = {"TableName": table(table_name).name, "Key": dict(key),
                "UpdateExpression": expression}
    if values:
        op["ExpressionAttributeValues"] = dict(values)
    if names:
        op["ExpressionAttributeNames"] = dict(names)
    if condition:
        op["ConditionExpression"] = condition
    return {"Update": op}


def transact(*operations: dict) -> None:
    """All the writes or none; ``Cancelled`` when a condition failed. Items and values are
    plain Python: clients.dynamodb() converts them to DynamoDB's format itself. A
    transaction that only met another one writing the same items (an activity counter
    shared by concurrent requests) is tried again (``dynamo.transact``)."""
    reasons = dynamo.transact(list(operations))
    if reasons is None:
        return
    # A condition that did not hold is the caller's business. Other transactions writing
    # the same rows all the while (they outlasted the retries) is a busy moment the client
    # can retry: 503, nothing written. Anything else (throttling...) is a fault.
    if "ConditionalCheckFailed" in reasons or set(reasons) == {"Unknown"}:
        raise Cancelled()
    if dynamo.busy(reasons):
        raise ApiError("unavailable", "The service is busy; try again in a moment")
    raise RuntimeError(f"transaction cancelled: {reasons}")


def to_dynamo(value: Any) -> Any:
    """A JSON value as DynamoDB stores it (floats become Decimals)."""
    return json.loads(json.dumps(value), parse_float=Decimal)


def storable(value: Any) -> bool:
    """Whether DynamoDB can hold the JSON value ``value``: map keys not empty, numbers
    finite and within its number type (38 significant digits, exponent -130..125).
    Anything else fails the write, or (an empty key, in some stores) the reads after it."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and k != "" and storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(storable(v) for v in value)
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return True
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return False
        try:
            DYNAMODB_CONTEXT.create_decimal(json.dumps(value))
        except (decimal.DecimalException, ValueError):
            return False
        return True
    return False


def plain(value: Any) -> Any:
    """A DynamoDB value as JSON shows it (Decimals become ints or floats)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, set):
        return sorted(plain(v) for v in value)
    return value


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    return 0
