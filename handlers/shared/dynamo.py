"""DynamoDB helpers several services share."""

from __future__ import annotations

import random
import time
from typing import Any

from botocore.exceptions import ClientError

from handlers.shared.clients import dynamodb

CONFLICT_ATTEMPTS = 4


def transact(items: list[dict]) -> list[str] | None:
    """Run a write transaction (items in Python types, see clients.dynamodb). None when it
    committed; otherwise the cancellation reason code of each item, in order
    (``ConditionalCheckFailed``, ``TransactionConflict``, ``None``...).

    A transaction cancelled only because another one was writing the same items at that
    moment (``TransactionConflict``: shared counters, e.g. two runs of one account ending
    together) committed nothing, so it is tried again, a few times with a short backoff."""
    for attempt in range(CONFLICT_ATTEMPTS):
        try:
            dynamodb().transact_write_items(TransactItems=items)
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


def busy(reasons: list[str] | None) -> bool:
    """Whether ``transact``'s answer means only that other transactions kept writing the same
    rows (it outlasted the retries): nothing was written, and the same request can succeed a
    moment later (routes answer 503 ``unavailable``)."""
    return bool(reasons) and "TransactionConflict" in reasons and set(reasons) <= {"TransactionConflict", "None"}


def as_int(value: Any) -> int:
    """A stored counter as an int (DynamoDB numbers arrive as Decimal); junk counts as 0."""
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def counted_put(account_id: str, counter: str, limit: int | None, table_name: str,
                item: dict, key_attribute: str, extra: list[dict] | tuple = ()) -> list[str] | None:
    """Put a new ``item`` and add one to the account's ``counter`` in one transaction,
    refused when the counter has reached ``limit`` (None: unlimited); ``extra`` entries
    (the audit event...) commit with them. Returns ``transact``'s answer: None when
    committed; reasons[0] == "ConditionalCheckFailed" means the limit (or a missing
    account), reasons[1] the item's key already taken."""
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
        *extra,
    ])


def counted_delete(account_id: str, counter: str, delete: dict,
                   extra: list[dict] | tuple = ()) -> list[str] | None:
    """Delete a row (``delete``: a transaction ``Delete`` entry with its condition) and take
    one off the account's ``counter`` in one transaction; ``extra`` entries (the audit
    event...) commit with them. A counter that had drifted to zero (or a missing account) is
    left alone: the row goes, with the entries, in a second transaction. Returns
    ``transact``'s answer: None when deleted; reasons[0] == "ConditionalCheckFailed" means
    the row's condition did not hold."""
    from handlers.shared.clients import table

    reasons = transact([delete, {"Update": {
        "TableName": table("accounts").name, "Key": {"accountId": account_id},
        "UpdateExpression": f"SET {counter} = {counter} - :one",
        "ConditionExpression": f"{counter} >= :one",
        "ExpressionAttributeValues": {":one": 1}}}, *extra])
    if reasons is not None and reasons[0] != "ConditionalCheckFailed" \
            and reasons[1] == "ConditionalCheckFailed":
        reasons = transact([delete, *extra])
    return reasons


BATCH_GET_KEYS = 100        # BatchGetItem's limit per call
BATCH_GET_TRIES = 5


def get_many(*wanted: tuple[str, dict], consistent: bool = True) -> list[dict | None]:
    """Items of several tables in one ``BatchGetItem``: each of ``wanted`` is
    ``(short table name, key)``; the answer lists the item (None when missing) in the same
    order. A key asked twice is read once. Keys left unprocessed (throttling) are asked
    again, a few times with a short backoff."""
    from handlers.shared.clients import table

    if len(wanted) > BATCH_GET_KEYS:
        raise ValueError(f"at most {BATCH_GET_KEYS} keys in one batch")
    names = [table(short).name for short, _ in wanted]
    keys_of: dict[str, list[dict]] = {}
    for name, (_, key) in zip(names, wanted):
        if key not in keys_of.setdefault(name, []):
            keys_of[name].append(dict(key))
    pending: dict[str, Any] = {name: {"Keys": keys, "ConsistentRead": consistent}
                               for name, keys in keys_of.items()}
    found: dict[str, list[dict]] = {name: [] for name in keys_of}
    for attempt in range(BATCH_GET_TRIES):
        reply = dynamodb().batch_get_item(RequestItems=pending)
        for name, rows in (reply.get("Responses") or {}).items():
            found.setdefault(name, []).extend(rows)
        pending = reply.get("UnprocessedKeys") or {}
        if not pending:
            break
        time.sleep(0.05 * (2 ** attempt) * (0.5 + random.random()))
    else:
        raise RuntimeError("BatchGetItem kept leaving keys unprocessed")

    def match(name: str, key: dict) -> dict | None:
        return next((row for row in found.get(name, [])
                     if all(row.get(k) == v for k, v in key.items())), None)

    return [match(name, key) for name, (_, key) in zip(names, wanted)]
