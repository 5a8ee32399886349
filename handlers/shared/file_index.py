"""Converge a key's files row, and the account's storage usage, on what S3 holds for it.

One implementation, used by the file indexer (``handlers.core.file_indexer``, on every S3
event under ``data/``) and by the data service's delete and restore (synchronously, so
their answer is already consistent; the indexer's later event then changes nothing).

``converge(bucket, parsed)`` reads the key's *current* state with HEAD and records that on
the key's files row: in a versioned bucket an event's name does not say what is current
(removing a delete marker restores a file, expiring an old version leaves the current one),
so only the key matters. Calling it again, in any order, is harmless.

The row is upserted with one ``update_item`` that SETs/REMOVEs only the object's own facts,
so what the backup worker writes on the same row (record counts, checksum...) is never
touched, whichever of the two writes first.

Storage usage: the row's ``countedBytes`` is what the row currently contributes to the
account's ``storageBytes`` (its size while current, 0 once deleted). When that changes (a
new file, a deletion, a restore, lifecycle expiry), the row update - conditional on the
``countedBytes`` read just before - and ``ADD storageBytes :delta`` on the account (and on
the source's ``analytics`` counter) commit in one transaction; a concurrent convergence of the same key makes the condition fail and this
one re-reads and retries, so a flip is never counted twice or lost.

IAM: ``s3:GetObject`` (HEAD) and ``s3:ListBucket`` on the bucket - without ListBucket, S3
answers HEAD of a missing key with 403 instead of 404 and a deletion could never be
recorded - plus ``dynamodb:UpdateItem``/``GetItem`` on the files table and
``dynamodb:UpdateItem`` on the accounts and analytics tables (in ``TransactWriteItems``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import ClientError

from handlers.shared.clients import client, table
from handlers.shared import analytics
from handlers.shared.dynamo import as_int, transact
from handlers.shared.files import DataKey

INDEXED, DELETED = "indexed", "deleted"
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


def iso_seconds(moment: datetime) -> str:
    """ISO-8601 UTC with second precision, e.g. ``2026-11-26T01:02:03Z``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> str:
    return iso_seconds(datetime.now(timezone.utc))


def head(bucket: str, key: str) -> dict | None:
    """The key's current version as HEAD sees it, or None when there is none.

    A key whose current version is a delete marker, or which has no version left at all,
    answers 404. Anything else (403, throttling, 5xx) is a fault and propagates.
    """
    try:
        return client("s3").head_object(Bucket=bucket, Key=key)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in _NOT_FOUND:
            return None
        raise


def converge(bucket: str, parsed: DataKey, *, known: dict | None = None,
             also_remove: tuple[str, ...] = (), extra: list[dict] | tuple = ()) -> str:
    """Record the key's current state on its files row; returns ``"indexed"`` or ``"deleted"``.

    For a caller that has just read the row (consistently), ``known`` spares the read of its
    counted bytes; ``also_remove`` names more attributes to REMOVE in the same write, and
    ``extra`` entries (an audit event) commit in the same transaction."""
    return converge_row(bucket, parsed, known=known, also_remove=also_remove, extra=extra)[0]


def converge_row(bucket: str, parsed: DataKey, *, known: dict | None = None,
                 also_remove: tuple[str, ...] = (), extra: list[dict] | tuple = ()) -> tuple[str, dict]:
    """``converge``, answering also what it wrote: ``{"set": {...}, "remove": [...],
    "default": {...}}`` (attributes SET only when absent), for ``applied``."""
    now = _now()
    identity = {"key": parsed.key, "name": parsed.name, "path": parsed.path,
                "sourceId": parsed.source_id, "runId": parsed.run_id}
    current = head(bucket, parsed.key)
    if current is None:
        # Keep size, etag, versionId...: a restore needs to know what was there.
        sets = {**identity, "deleted": True, "deletedAt": now, "indexedAt": now}
        removes, defaults, state = tuple(also_remove), {"createdAt": now}, DELETED
    else:
        last_modified = iso_seconds(current["LastModified"])
        etag = current.get("ETag")
        sets = {**identity,
                "size": current.get("ContentLength"),
                "contentType": current.get("ContentType"),
                "etag": etag.strip('"') if etag else None,
                "versionId": current.get("VersionId"),
                "lastModified": last_modified,
                "indexedAt": now,
                "deleted": False}
        removes, defaults, state = ("deletedAt", *also_remove), {"createdAt": last_modified}, INDEXED
    counted = _update(parsed, sets, removes, defaults, known=known, extra=extra)
    return state, {"set": {**sets, "countedBytes": counted}, "remove": list(removes),
                   "default": defaults}


def applied(row: dict, change: dict) -> dict:
    """``row`` as ``converge_row``'s ``change`` left it."""
    out = {**row}
    for name, value in change["set"].items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    for name in change["remove"]:
        out.pop(name, None)
    for name, value in change["default"].items():
        out.setdefault(name, value)
    return out


class _Raced(Exception):
    """The row's counted bytes changed between the read and the write."""


_UNREAD = object()


def _update(parsed: DataKey, sets: dict[str, Any], removes: tuple[str, ...] = (),
            if_not_exists: dict[str, Any] | None = None, *, known: dict | None = None,
            extra: list[dict] | tuple = ()) -> int:
    """SET ``sets`` (None values are REMOVEd), SET-if-absent ``if_not_exists``, and keep the
    account's storageBytes in step with the row's ``countedBytes`` (see the module doc);
    returns the row's new ``countedBytes``."""
    counted = 0 if sets.get("deleted") else as_int(sets.get("size"))
    before: Any = (known or {}).get("countedBytes") if known is not None else _UNREAD
    for _ in range(8):
        try:
            _update_counted(parsed, sets, removes, if_not_exists, counted, before, extra)
            return counted
        except _Raced:
            before = _UNREAD
            continue
    raise RuntimeError("the file row kept changing while it was indexed")


def _update_counted(parsed: DataKey, sets: dict[str, Any], removes: tuple[str, ...],
                    if_not_exists: dict[str, Any] | None, counted: int, before: Any = _UNREAD,
                    extra: list[dict] | tuple = ()) -> None:
    key = {"accountId": parsed.account_id, "fileId": parsed.file_id}
    if before is _UNREAD:
        previous = table("files").get_item(Key=key, ConsistentRead=True,
                                           ProjectionExpression="countedBytes").get("Item")
        before = (previous or {}).get("countedBytes")
    delta = counted - as_int(before)
    kwargs = _update_kwargs(parsed, {**sets, "countedBytes": counted}, removes, if_not_exists)
    if before is None:
        kwargs["ConditionExpression"] = "attribute_not_exists(countedBytes)"
    else:
        kwargs["ConditionExpression"] = "countedBytes = :counted_before"
        kwargs["ExpressionAttributeValues"][":counted_before"] = before
    if delta or extra:
        storage = [
            {"Update": {"TableName": table("accounts").name, "Key": {"accountId": parsed.account_id},
                        "UpdateExpression": "ADD storageBytes :delta",
                        "ConditionExpression": "attribute_exists(accountId)",
                        "ExpressionAttributeValues": {":delta": delta}}},
            # the same bytes on the source's analytics counter (storage by source)
            analytics.storage_item(parsed.account_id, parsed.source_id, delta),
        ] if delta else []
        reasons = transact([{"Update": {"TableName": table("files").name, **kwargs}},
                            *storage, *extra])
        if reasons is None:
            return
        if delta and reasons[0] != "ConditionalCheckFailed" and reasons[1] == "ConditionalCheckFailed":
            pass        # the account is gone: record the file alone
        elif reasons[0] == "ConditionalCheckFailed" or "TransactionConflict" in reasons:
            raise _Raced()
        else:
            raise RuntimeError(f"storage transaction cancelled: {reasons}")
    try:
        table("files").update_item(**kwargs)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            raise _Raced() from None
        raise


def _update_kwargs(parsed: DataKey, sets: dict[str, Any], removes: tuple[str, ...] = (),
                   if_not_exists: dict[str, Any] | None = None) -> dict:
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    set_parts: list[str] = []
    remove_parts: list[str] = []
    for i, (attr, value) in enumerate(sets.items()):
        names[f"#s{i}"] = attr
        if value is None:
            remove_parts.append(f"#s{i}")
        else:
            values[f":s{i}"] = value
            set_parts.append(f"#s{i} = :s{i}")
    for i, (attr, value) in enumerate((if_not_exists or {}).items()):
        names[f"#n{i}"] = attr
        values[f":n{i}"] = value
        set_parts.append(f"#n{i} = if_not_exists(#n{i}, :n{i})")
    for i, attr in enumerate(removes):
        names[f"#r{i}"] = attr
        remove_parts.append(f"#r{i}")
    expression = "SET " + ", ".join(set_parts)
    if remove_parts:
        expression += " REMOVE " + ", ".join(remove_parts)
    return {"Key": {"accountId": parsed.account_id, "fileId": parsed.file_id},
            "UpdateExpression": expression, "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values}
