"""Browsing the account's backed-up data as folders, and searching it by path.

Tree (``GET /data/tree?sourceId=&path=``), three levels, each a paginated Query:

- no ``sourceId``: one folder per source of the account (sources table), with the
  source's totals kept by its jobs (``runs``, ``records``, ``bytes`` backed up,
  uncompressed; one Query of the account's jobs, their stats only, for the whole page);
- ``sourceId``: one folder per run of the source, newest first (runs ``source-index``),
  with what is stored now under it: ``files`` (not deleted), ``deletedFiles``, ``size``
  (stored bytes of the files not deleted) and ``records``, counted from the source's
  files newest first (files ``source-index``) in at
  most ``RUN_LEVEL_QUERIES`` Queries reading at most ``store.MAX_READ`` rows for the whole
  page - a request costs at most four calls however many runs it shows. A run whose files
  were not all read within that shows ``partial: true`` (its counts are what was read);
- ``sourceId`` and ``path=<runId>[/<folder>...]``: the run's files and sub-folders under
  that folder in path order (files ``run-index``, ``begins_with`` on the path), each
  sub-folder with the ``files``, ``deletedFiles``, ``size`` and ``records`` below it.
  A request reads at most ``store.MAX_READ`` rows: a folder with more rows below it than
  that shows ``partial: true`` and continues on the next page.

Search (``POST /data/search``): the query is a case-sensitive prefix of a file's path
below its run (``customers`` finds ``customers.jsonl.gz``; ``Reports/2026`` finds
everything in that folder), matched with ``begins_with`` on the files ``path-index``
(accountId, path): the file name itself for a file at the top of its run. Results come in
path order (then by file id), deleted files included and flagged; each request reads at
most ``SEARCH_MAX_READ`` index items, so a filtered search (``sourceId``) may answer a short
page with a ``nextCursor`` to continue.
"""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.conditions import Attr, Key

from handlers.data import store
from handlers.data.files_api import check_query, id_param, text_param
from handlers.shared import cursors
from handlers.shared.clients import table
from handlers.shared.dynamo import as_int
from handlers.shared.http import ApiError, Request

RUN_LEVEL_QUERIES = 3    # files Queries of the runs level (the runs page is the 4th call)
SEARCH_MAX_READ = 500
JOB_PAGES = 3          # Query pages of an account's jobs the top of the tree reads (1 MB each)


# --------------------------------------------------------------------------- tree

def tree(request: Request) -> dict:
    query = request.query
    check_query(query, ("sourceId", "path", "limit", "cursor"))
    limit = cursors.limit_of(query)
    source_id = id_param(query, "sourceId")
    path = text_param(query, "path", 1024)
    if path is not None:
        path = path.strip("/")
    if not source_id:
        if path:
            raise ApiError("validation_failed", "path needs a sourceId", fields=["path"])
        return _sources(request, limit)
    if not path:
        return _runs(request, source_id, limit)
    run_id, _, folder = path.partition("/")
    segments = folder.split("/") if folder else []
    if not store_id(run_id) or any(s in ("", ".", "..") for s in segments):
        raise ApiError("validation_failed", "path is <runId> or <runId>/<folder>/...", fields=["path"])
    return _folder(request, source_id, run_id, folder, limit)


def store_id(value: str) -> bool:
    return bool(value) and len(value) <= 128 and all(c.isalnum() or c in "_-" for c in value)


def _sources(request: Request, limit: int) -> dict:
    scope = f"{request.account_id}:tree:sources"
    kwargs: dict[str, Any] = {"KeyConditionExpression": Key("accountId").eq(request.account_id),
                              "Limit": limit}
    start = cursors.decode(request.query.get("cursor"), scope)
    if start:
        kwargs["ExclusiveStartKey"] = start
    reply = table("sources").query(**kwargs)
    sources = reply.get("Items", [])
    by_source = _source_totals(request.account_id, [s["sourceId"] for s in sources])
    items = []
    for source in sources:
        totals = by_source.get(source["sourceId"]) or {"runs": 0, "records": 0, "bytes": 0}
        items.append({"type": "folder", "kind": "source", "sourceId": source["sourceId"],
                      "name": source.get("name", ""), "platform": source.get("type"),
                      "path": "", "lastRunAt": source.get("lastRunAt"), **totals})
    return cursors.page(items, reply.get("LastEvaluatedKey"), scope)


def _source_totals(account_id: str, source_ids: list[str]) -> dict[str, dict]:
    """What each source's jobs have backed up (the stats the worker keeps on each job), by
    source: one Query of the account's jobs (their stats only) for the whole page, bounded
    to ``JOB_PAGES`` pages."""
    wanted = set(source_ids)
    totals: dict[str, dict] = {}
    if not wanted:
        return totals
    kwargs: dict[str, Any] = {"KeyConditionExpression": Key("accountId").eq(account_id),
                              "ProjectionExpression": "sourceId, stats"}
    for _ in range(JOB_PAGES):
        reply = table("jobs").query(**kwargs)
        for job in reply.get("Items", []):
            if job.get("sourceId") not in wanted:
                continue
            stats = job.get("stats") or {}
            sums = totals.setdefault(job["sourceId"], {"runs": 0, "records": 0, "bytes": 0})
            for name in sums:
                sums[name] += as_int(stats.get(name))
        if not reply.get("LastEvaluatedKey"):
            break
        kwargs["ExclusiveStartKey"] = reply["LastEvaluatedKey"]
    return totals


def _runs(request: Request, source_id: str, limit: int) -> dict:
    scope = store.scope_of(request.account_id, "tree:runs", sourceId=source_id)
    kwargs: dict[str, Any] = {"IndexName": "source-index",
                              "KeyConditionExpression": Key("sourceId").eq(source_id),
                              "FilterExpression": Attr("accountId").eq(request.account_id),
                              "ScanIndexForward": False, "Limit": limit}
    start = cursors.decode(request.query.get("cursor"), scope)
    if start:
        kwargs["ExclusiveStartKey"] = start
    reply = table("runs").query(**kwargs)
    runs = reply.get("Items", [])
    counts, oldest_read = _run_counts(request.account_id, source_id, runs)
    items = []
    for run in runs:
        created = str(run.get("createdAt") or "")
        items.append({"type": "folder", "kind": "run", "runId": run["runId"],
                      "jobId": run.get("jobId"), "status": run.get("status"),
                      "path": run["runId"], "createdAt": run.get("createdAt"),
                      "finishedAt": run.get("finishedAt"), **counts.get(run["runId"], _empty_counts()),
                      # a run's files are all created after the run: when the read stopped
                      # at a file newer than the run, older files of the run may be unread
                      "partial": oldest_read is not None and oldest_read >= created})
    return cursors.page(items, reply.get("LastEvaluatedKey"), scope)


def _run_counts(account_id: str, source_id: str, runs: list[dict]) -> tuple[dict[str, dict], str | None]:
    """What is stored under each of ``runs`` (one source's, newest first), from the source's
    files newest first; answers the counts per run id and the ``createdAt`` of the oldest
    file read when the read stopped before the end (None: every file was read)."""
    if not runs:
        return {}, None
    wanted = {run["runId"] for run in runs}
    # from the newest file on: a file is indexed after its run began, but may be indexed
    # after newer runs began too, so only the lower end is known
    kwargs: dict[str, Any] = {"IndexName": "source-index",
                              "KeyConditionExpression": Key("sourceId").eq(source_id),
                              "FilterExpression": Attr("accountId").eq(account_id),
                              "ScanIndexForward": False}
    counts: dict[str, dict] = {}
    read = 0
    for _ in range(RUN_LEVEL_QUERIES):
        kwargs["Limit"] = store.MAX_READ - read
        reply = table("files").query(**kwargs)
        read += int(reply.get("ScannedCount", len(reply.get("Items", []))))
        for row in reply.get("Items", []):
            if row.get("runId") in wanted and row.get("key"):
                _count(counts.setdefault(row["runId"], _empty_counts()), row)
        last = reply.get("LastEvaluatedKey")
        if not last:
            return counts, None
        if read >= store.MAX_READ:
            break
        kwargs["ExclusiveStartKey"] = last
    return counts, str(last.get("createdAt") or "")


def _empty_counts() -> dict:
    return {"files": 0, "deletedFiles": 0, "size": 0, "records": 0}


def _count(counts: dict, row: dict) -> None:
    if row.get("deleted"):
        counts["deletedFiles"] += 1
        return
    counts["files"] += 1
    counts["size"] += as_int(row.get("size"))
    counts["records"] += as_int(row.get("records"))


def _folder(request: Request, source_id: str, run_id: str, folder: str, limit: int) -> dict:
    """The run's entries directly under ``folder``: files, and sub-folders with totals."""
    account_id = request.account_id
    prefix = f"{folder}/" if folder else ""
    scope = store.scope_of(account_id, "tree:folder", sourceId=source_id, runId=run_id, folder=folder)
    condition = Key("runId").eq(run_id)
    if prefix:
        condition = condition & Key("path").begins_with(prefix)
    kwargs: dict[str, Any] = {
        "IndexName": "run-index", "KeyConditionExpression": condition,
        "FilterExpression": Attr("accountId").eq(account_id) & Attr("sourceId").eq(source_id)}
    start = cursors.decode(request.query.get("cursor"), scope)
    if start:
        kwargs["ExclusiveStartKey"] = start
    entries: list[dict] = []
    by_folder: dict[str, dict] = {}
    last_key: dict | None = None       # the last row taken into ``entries``
    read = 0
    more = True
    while more:
        # MAX_READ items in at most MAX_QUERIES calls
        kwargs["Limit"] = min(-(-store.MAX_READ // store.MAX_QUERIES), store.MAX_READ - read)
        reply = table("files").query(**kwargs)
        page = reply.get("Items", [])
        read += int(reply.get("ScannedCount", len(page)))
        for position, row in enumerate(page):
            if not row.get("key"):
                continue
            rest = str(row.get("path", ""))[len(prefix):]
            name, slash, _ = rest.partition("/")
            if not (slash and name in by_folder) and len(entries) == limit:
                # a new entry past the page: continue from the last row taken
                return cursors.page(entries, last_key, scope)
            if slash:
                entry = by_folder.get(name)
                if entry is None:
                    entry = {"type": "folder", "kind": "folder", "name": name,
                             "path": f"{run_id}/{prefix}{name}", **_empty_counts(), "partial": False}
                    by_folder[name] = entry
                    entries.append(entry)
                _count(entry, row)
            else:
                entries.append({"type": "file", **store.file_view(row)})
            last_key = store.key_of(row, "run-index")
        lek = reply.get("LastEvaluatedKey")
        if not lek:
            more = False
        elif read >= store.MAX_READ:
            if entries and entries[-1]["type"] == "folder":
                entries[-1]["partial"] = True
            return cursors.page(entries, lek, scope)
        else:
            kwargs["ExclusiveStartKey"] = lek
    return cursors.page(entries, None, scope)


# --------------------------------------------------------------------------- search

def search(request: Request) -> dict:
    body = request.body
    text = body["query"]
    source_id = body.get("sourceId")
    limit = int(body.get("limit") or cursors.DEFAULT_LIMIT)
    scope = store.scope_of(request.account_id, "search", query=text, sourceId=source_id)
    start = cursors.decode(body.get("cursor"), scope)
    kwargs: dict[str, Any] = {
        "KeyConditionExpression": Key("accountId").eq(request.account_id)
        & Key("path").begins_with(text)}
    if source_id:
        kwargs["FilterExpression"] = Attr("sourceId").eq(source_id)
    items, last = store.paged_query(kwargs, limit=limit, start=start, index="path-index",
                                    keep=lambda row: bool(row.get("key")),
                                    max_read=SEARCH_MAX_READ)
    return store.page([store.file_view(row) for row in items], last, scope)
