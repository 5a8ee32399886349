"""The files table as the data service reads it: rows, the API's file shape, and bounded
paging over the table's indexes.

A files row is written by two hands (``handlers.shared.files``): the file indexer / the
shared converging code (``key, name, path, sourceId, runId, size, contentType, etag,
versionId, lastModified, createdAt, deleted, deletedAt, countedBytes``) and the backup
worker (``records, sha256, bytes, endpoint, jobId``). A row without ``key`` has only the
worker's half: the object is not indexed yet, so the API does not show it (it is in no
index either: every index needs ``createdAt`` or ``path``).

Every read is a GetItem, BatchGetItem or Query on the table key or an index, never a Scan.
A Query on an index whose hash key is not the account (``source-index``, ``run-index``) is
filtered to the caller's account, and every paged read stops after ``max_read`` items
(what DynamoDB reads, before filters) read in at most ``MAX_QUERIES`` calls, so no request
does unbounded work: a page may then hold fewer items than asked, with a ``nextCursor`` to
continue.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Callable, Iterator, Mapping

from handlers.shared import cursors
from handlers.shared.clients import table
from handlers.shared.dynamo import as_int
from handlers.shared.http import ApiError

FILE_ID = re.compile(r"^fil_[0-9a-f]{32}$")
TABLE_KEY = ("accountId", "fileId")
INDEX_KEYS = {
    "account-created-index": ("accountId", "createdAt"),
    "source-index": ("sourceId", "createdAt"),
    "run-index": ("runId", "path"),
    "path-index": ("accountId", "path"),
}
MAX_READ = 1000        # items a paged read may look at per request (before filters)
MAX_QUERIES = 4        # Query calls that read it (issue 12: at most four calls a request)


def _maybe_int(value: Any) -> int | None:
    return None if value is None else as_int(value)


def file_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """The API's File shape (DESIGN section 4) plus where it came from and its version."""
    return {
        "fileId": row["fileId"], "sourceId": row.get("sourceId"), "runId": row.get("runId"),
        "jobId": row.get("jobId"), "endpoint": row.get("endpoint"),
        "name": row.get("name"), "path": row.get("path"),
        "size": _maybe_int(row.get("size")), "contentType": row.get("contentType"),
        "records": _maybe_int(row.get("records")), "sha256": row.get("sha256"),
        "createdAt": row.get("createdAt"), "lastModified": row.get("lastModified"),
        "versionId": row.get("versionId"),
        "deleted": bool(row.get("deleted")), "deletedAt": row.get("deletedAt"),
    }


def get_file(account_id: str | None, file_id: str | None) -> dict | None:
    """The account's indexed file, or None (another account's id, a malformed id, or a
    row the indexer has not seen yet)."""
    if not account_id or not isinstance(file_id, str) or not FILE_ID.match(file_id):
        return None
    row = table("files").get_item(Key={"accountId": account_id, "fileId": file_id},
                                  ConsistentRead=True).get("Item")
    if row is None or not row.get("key"):
        return None
    return row


def file_of(request) -> dict:
    row = get_file(request.account_id, request.path.get("fileId"))
    if row is None:
        raise ApiError("not_found", "No such file")
    return row


def get_files(account_id: str, file_ids: list[str]) -> dict[str, dict]:
    """The account's indexed files among ``file_ids`` (BatchGetItem, 100 a call), by id."""
    from handlers.shared.dynamo import BATCH_GET_KEYS, get_many

    wanted = [f for f in dict.fromkeys(file_ids) if isinstance(f, str) and FILE_ID.match(f)]
    found: dict[str, dict] = {}
    for start in range(0, len(wanted), BATCH_GET_KEYS):
        chunk = wanted[start:start + BATCH_GET_KEYS]
        rows = get_many(*(("files", {"accountId": account_id, "fileId": f}) for f in chunk))
        found.update((row["fileId"], row) for row in rows if row is not None and row.get("key"))
    return found


# --------------------------------------------------------------------------- paging

def scope_of(account_id: str, kind: str, **filters: Any) -> str:
    """A cursor scope naming the account, the list and its filters: a cursor issued for
    one list (or other filters) is refused by another, so it can never be replayed
    against a different index."""
    digest = hashlib.sha256(json.dumps(filters, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{account_id}:{kind}:{digest}"


def key_of(item: Mapping[str, Any], index: str | None) -> dict:
    names = TABLE_KEY + (INDEX_KEYS[index] if index else ())
    return {name: item[name] for name in dict.fromkeys(names) if name in item}


def paged_query(kwargs: dict, *, limit: int, start: dict | None, index: str | None,
                keep: Callable[[dict], bool] | None = None,
                max_read: int = MAX_READ) -> tuple[list[dict], dict | None]:
    """Up to ``limit`` items of the Query ``kwargs`` (with its FilterExpression, if any) that
    ``keep`` accepts, reading at most about ``max_read`` items; answers (items, the key to
    continue after, or None at the end)."""
    kwargs = dict(kwargs)
    if index:
        kwargs["IndexName"] = index
    if start:
        kwargs["ExclusiveStartKey"] = start
    filtered = keep is not None or "FilterExpression" in kwargs
    items: list[dict] = []
    read = calls = 0
    while True:
        wanted = limit - len(items)
        # unfiltered, a page of ``limit`` reads exactly that; filtered, read ahead a little,
        # then more on each later call, so that ``max_read`` takes at most MAX_QUERIES calls
        page = max(wanted, 50) if filtered else wanted
        if calls:
            page = max(page, -(-(max_read - read) // max(1, MAX_QUERIES - calls)))
        kwargs["Limit"] = max(1, min(page, max_read - read))
        calls += 1
        reply = table("files").query(**kwargs)
        page = reply.get("Items", [])
        last = reply.get("LastEvaluatedKey")
        read += int(reply.get("ScannedCount", len(page)))
        for position, item in enumerate(page):
            if keep is None or keep(item):
                items.append(item)
                if len(items) == limit:
                    at_end = position == len(page) - 1
                    return items, (last if at_end else key_of(item, index))
        if not last:
            return items, None
        if read >= max_read:
            return items, last
        kwargs["ExclusiveStartKey"] = last


def iterate(kwargs: dict, *, index: str | None, keep: Callable[[dict], bool] = lambda item: True
            ) -> Iterator[dict]:
    """Every item of the Query ``kwargs`` that ``keep`` accepts, a page at a time (the
    exporter: memory holds one page, whatever the number of files)."""
    kwargs = dict(kwargs)
    if index:
        kwargs["IndexName"] = index
    while True:
        reply = table("files").query(**kwargs)
        for item in reply.get("Items", []):
            if keep(item):
                yield item
        if not reply.get("LastEvaluatedKey"):
            return
        kwargs["ExclusiveStartKey"] = reply["LastEvaluatedKey"]


def decode_cursor(request, scope: str) -> dict | None:
    return cursors.decode(request.query.get("cursor"), scope)


def page(items: list[dict], last_key: dict | None, scope: str) -> dict:
    return cursors.page(items, last_key, scope)
