"""DynamoDB helpers several services share."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from handlers.shared.clients import resource


def transact(items: list[dict]) -> list[str] | None:
    """Run a write transaction (items in the resource layer's Python types). None when it
    committed; otherwise the cancellation reason code of each item, in order
    (``ConditionalCheckFailed``, ``TransactionConflict``, ``None``...)."""
    try:
        resource("dynamodb").meta.client.transact_write_items(TransactItems=items)
        return None
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
            raise
        reasons = [r.get("Code") or "None" for r in error.response.get("CancellationReasons") or []]
        return reasons or ["Unknown"] * len(items)


def as_int(value: Any) -> int:
    """A stored counter as an int (DynamoDB numbers arrive as Decimal); junk counts as 0."""
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0
