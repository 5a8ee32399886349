"""DynamoDB helpers several services share."""

from __future__ import annotations

import random
import time
from typing import Any

from botocore.exceptions import ClientError

from handlers.shared.clients import resource

CONFLICT_ATTEMPTS = 4


def transact(items: list[dict]) -> list[str] | None:
    """Run a write transaction (items in the resource layer's Python types). None when it
    committed; otherwise the cancellation reason code of each item, in order
    (``ConditionalCheckFailed``, ``TransactionConflict``, ``None``...).

    A transaction cancelled only because another one was writing the same items at that
    moment (``TransactionConflict``: shared counters, e.g. two runs of one account ending
    together) committed nothing, so it is tried again, a few times with a short backoff."""
    for attempt in range(CONFLICT_ATTEMPTS):
        try:
            resource("dynamodb").meta.client.transact_write_items(TransactItems=items)
            return None
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = [r.get("Code") or "None" for r in error.response.get("CancellationReasons") or []]
            reasons = reasons or ["Unknown"] * len(items)
        if "TransactionConflict" not in reasons or any(
                r not in ("TransactionConflict", "None") for r in reasons):
            return reasons
        time.sleep(0.05 * (2 ** attempt) * (0.5 + random.random()))
    return reasons


def as_int(value: Any) -> int:
    """A stored counter as an int (DynamoDB numbers arrive as Decimal); junk counts as 0."""
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def counted_put(account_id: str, counter: str, limit: int | None, table_name: str,
                item: dict, key_attribute: str) -> list[str] | None:
    """Put a new ``item`` and add one to the account's ``counter`` in one transaction,
    refused when the counter has reached ``limit`` (None: unlimited). Returns ``transact``'s
    answer: None when committed; reasons[0] == "ConditionalCheckFailed" means the limit
    (or a missing account)."""
    from handlers.shared.clients import table

    bump: dict[str, Any] = {
        "TableName": table("accounts").name, "Key": {"accountId": account_id},
        "UpdateExpression": f"SET {counter} = if_not_exists({counter}, :zero) + :one",
        "ExpressionAttributeValues": {":zero": 0, ":one": 1},
        "ConditionExpression": "attribute_exists(accountId)",
    }
    if limit is not None:
        bump["ConditionExpression"] += f" AND (attribute_not_exists({counter}) OR {counter} < :limit)"
        bump["ExpressionAttributeValues"][":limit"] = limit
    return transact([
        {"Update": bump},
        {"Put": {"TableName": table_name, "Item": item,
                 "ConditionExpression": f"attribute_not_exists({key_attribute})"}},
    ])
