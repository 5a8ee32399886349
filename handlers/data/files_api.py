"""Files through the API: list with filters, one file with its versions, a download link,
delete (a delete marker) and restore (the previous version is current again).

Delete and restore change S3, then converge the files row and the account's storage usage
synchronously through the same code the file indexer runs
(``handlers.shared.file_index.converge``), so the answer is already consistent and the
indexer's later event (if S3 sends one) changes nothing.
"""

from __future__ import annotations

import functools
import os
import re
from datetime import timezone
from typing import Any
from urllib.parse import quote

from boto3.dynamodb.conditions import Attr, Key

from handlers.data import store
from handlers.shared import activity, clock, cursors
from handlers.shared.clients import client
from handlers.shared.file_index import applied, converge, converge_row, head
from handlers.shared.files import parse_data_key
from handlers.shared.http import ApiError, Request

DOWNLOAD_SECONDS = 15 * 60
MAX_VERSIONS = 100                 # versions a file shows (newest first)
MAX_COPY_BYTES = 5 * 1024 ** 3     # S3's CopyObject limit
LIST_FILTERS = ("sourceId", "runId", "path", "contentType", "from", "to", "deleted")
_ID = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def bucket() -> str:
    return os.environ["S3_BUCKET"]


@functools.cache
def _signer():
    from handlers.shared.clients import _endpoint, long_lived

    with long_lived():
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=_endpoint("s3"), config=Config(signature_version="s3v4"))


def presigned_get(params: dict, seconds: int) -> str:
    """A presigned GET (Signature Version 4: its lifetime is in the link, at most 7 days)."""
    return _signer().generate_presigned_url("get_object", Params=params, ExpiresIn=seconds)


# --------------------------------------------------------------------------- query input

def check_query(query: dict, allowed: tuple[str, ...]) -> None:
    unknown = sorted(k for k in query if k not in allowed)
    if unknown:
        raise ApiError("validation_failed", f"Unknown query parameter(s): {', '.join(unknown)}; "
                                            f"known: {', '.join(allowed)}", fields=unknown)


def id_param(query: dict, name: str) -> str | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    if not _ID.match(value):
        raise ApiError("validation_failed", f"{name} is not a valid id", fields=[name])
    return value


def text_param(query: dict, name: str, max_length: int) -> str | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    if len(value) > max_length or _CONTROL.search(value):
        raise ApiError("validation_failed", f"{name} must be at most {max_length} characters "
                                            "without control characters", fields=[name])
    return value


def time_param(query: dict, name: str) -> str | None:
    """An ISO-8601 time as the files table stores ``createdAt`` (UTC, seconds)."""
    value = query.get(name)
    if value is None or value == "":
        return None
    try:
        moment = clock.parse_iso(value)
    except ValueError:
        raise ApiError("validation_failed", f"{name} must be an ISO-8601 time, e.g. "
                                            "2026-01-31T00:00:00Z", fields=[name]) from None
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def bool_param(query: dict, name: str) -> bool | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    if value not in ("true", "false"):
        raise ApiError("validation_failed", f"{name} must be true or false", fields=[name])
    return value == "true"


# --------------------------------------------------------------------------- list

def list_files(request: Request) -> dict:
    """``GET /data/files``: newest first from ``account-created-index`` (or, with sourceId,
    ``source-index``); with runId the run's files in path order (``run-index``); with a
    path prefix and no run, every matching path in path order (``path-index``). The other
    filters narrow what the chosen index returns."""
    query = request.query
    check_query(query, ("limit", "cursor", *LIST_FILTERS))
    account_id = request.account_id
    limit = cursors.limit_of(query)
    source_id, run_id = id_param(query, "sourceId"), id_param(query, "runId")
    prefix = text_param(query, "path", 1024)
    content_type = text_param(query, "contentType", 255)
    since, until = time_param(query, "from"), time_param(query, "to")
    deleted = bool_param(query, "deleted")
    if since and until and since > until:
        raise ApiError("validation_failed", "from must not be after to", fields=["from", "to"])

    filters = []
    time_in_key = False
    if run_id:
        index, condition, forward = "run-index", Key("runId").eq(run_id), True
        if prefix:
            condition = condition & Key("path").begins_with(prefix)
        filters.append(Attr("accountId").eq(account_id))
    elif prefix:
        index, forward = "path-index", True
        condition = Key("accountId").eq(account_id) & Key("path").begins_with(prefix)
    else:
        time_in_key, forward = True, False
        if source_id:
            index, condition = "source-index", Key("sourceId").eq(source_id)
            filters.append(Attr("accountId").eq(account_id))
        else:
            index, condition = "account-created-index", Key("accountId").eq(account_id)
        if since and until:
            condition = condition & Key("createdAt").between(since, until)
        elif since:
            condition = condition & Key("createdAt").gte(since)
        elif until:
            condition = condition & Key("createdAt").lte(until)
    if source_id and index != "source-index":
        filters.append(Attr("sourceId").eq(source_id))
    if not time_in_key:
        if since:
            filters.append(Attr("createdAt").gte(since))
        if until:
            filters.append(Attr("createdAt").lte(until))
    if content_type:
        filters.append(Attr("contentType").eq(content_type))
    if deleted is not None:
        filters.append(Attr("deleted").eq(deleted))

    kwargs: dict[str, Any] = {"KeyConditionExpression": condition, "ScanIndexForward": forward}
    if filters:
        expression = filters[0]
        for extra in filters[1:]:
            expression = expression & extra
        kwargs["FilterExpression"] = expression
    scope = store.scope_of(account_id, "files", sourceId=source_id, runId=run_id, path=prefix,
                           contentType=content_type, since=since, until=until, deleted=deleted)
    items, last = store.paged_query(kwargs, limit=limit, start=store.decode_cursor(request, scope),
                                    index=index, keep=lambda row: bool(row.get("key")))
    return store.page([store.file_view(row) for row in items], last, scope)


# --------------------------------------------------------------------------- one file

def versions_of(key: str, limit: int = 1000) -> list[dict]:
    """The key's versions and delete markers, newest first (at most ``limit``)."""
    reply = client("s3").list_object_versions(Bucket=bucket(), Prefix=key, MaxKeys=limit)
    entries = [{"versionId": v.get("VersionId"), "size": v.get("Size"),
                "lastModified": v["LastModified"], "current": bool(v.get("IsLatest")),
                "deleteMarker": False, "etag": (v.get("ETag") or "").strip('"') or None}
               for v in reply.get("Versions", []) if v.get("Key") == key]
    entries += [{"versionId": m.get("VersionId"), "size": None, "lastModified": m["LastModified"],
                 "current": bool(m.get("IsLatest")), "deleteMarker": True, "etag": None}
                for m in reply.get("DeleteMarkers", []) if m.get("Key") == key]
    # S3 lists versions and markers apart, each newest first; the current one leads.
    entries.sort(key=lambda e: (e["current"], e["lastModified"]), reverse=True)
    return entries


def version_view(entry: dict) -> dict:
    return {"versionId": entry["versionId"], "size": entry["size"],
            "lastModified": clock.iso(entry["lastModified"]), "current": entry["current"],
            "deleteMarker": entry["deleteMarker"],
            "restorable": not entry["deleteMarker"] and not entry["current"]}


def detailed_view(row: dict) -> dict:
    versions = versions_of(row["key"], MAX_VERSIONS)
    return {**store.file_view(row), "versions": [version_view(v) for v in versions]}


def get_file(request: Request) -> dict:
    return detailed_view(store.file_of(request))


def content_disposition(name: str) -> str:
    """``attachment`` naming the file: an ASCII fallback and the exact UTF-8 name (RFC 6266)."""
    fallback = re.sub(r'[^A-Za-z0-9 ._()\-]', "_", name)[:150] or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def download_url(request: Request) -> dict:
    row = store.file_of(request)
    if row.get("deleted"):
        raise ApiError("conflict", "The file is deleted; restore it to download it")
    params = {"Bucket": bucket(), "Key": row["key"],
              "ResponseContentDisposition": content_disposition(row.get("name") or "download")}
    if row.get("versionId"):
        # exactly the indexed version (the size and checksum shown), even if it changes later
        params["VersionId"] = row["versionId"]
    url = presigned_get(params, DOWNLOAD_SECONDS)
    return {"url": url, "expiresAt": clock.iso(clock.in_future(seconds=DOWNLOAD_SECONDS)),
            "fileName": row.get("name"), "size": store.file_view(row)["size"]}


# --------------------------------------------------------------------------- delete, restore

def _parsed(row: dict, account_id: str):
    parsed = parse_data_key(row["key"])
    if parsed is None or parsed.account_id != account_id:
        # the row's key is not this account's: never act on it
        raise ApiError("not_found", "No such file")
    return parsed


def delete_file(request: Request) -> None:
    """A delete marker on the current key: the file shows as deleted, leaves usage, and its
    versions stay restorable for the bucket's noncurrent-version window."""
    row = store.file_of(request)
    parsed = _parsed(row, request.account_id)
    event = None
    if head(bucket(), parsed.key) is not None:
        client("s3").delete_object(Bucket=bucket(), Key=parsed.key)
        event = activity.request_items(
            request, "data.file.delete", "file", row["fileId"],
            details={"name": row.get("name", ""), "path": row.get("path", ""),
                     "sourceId": row.get("sourceId"), "runId": row.get("runId")})
    # the row as just read, its new state and the event: one transaction
    converge(bucket(), parsed, known=row, extra=event.items if event else ())
    return None


def restore_file(request: Request) -> dict:
    """The previous version is current again: a deleted file's delete marker(s) above its
    newest version are removed; a file that is not deleted gets its previous version (or
    ``?versionId=``) copied over it as a new current version."""
    check_query(request.query, ("versionId",))
    wanted = text_param(request.query, "versionId", 1024)
    row = store.file_of(request)
    parsed = _parsed(row, request.account_id)
    versions = versions_of(parsed.key)
    real = [v for v in versions if not v["deleteMarker"]]
    if not real:
        raise ApiError("conflict", "No version of this file is left to restore")
    if wanted is not None:
        target = next((v for v in real if v["versionId"] == wanted), None)
        if target is None:
            raise ApiError("not_found", "No such version of this file")
    elif versions[0]["deleteMarker"]:
        target = real[0]
    elif len(real) > 1:
        target = real[1]
    else:
        raise ApiError("conflict", "The file is not deleted and has no earlier version to restore")
    if target["current"]:
        raise ApiError("conflict", "That version is already the current one")
    newer = versions[:versions.index(target)]
    s3 = client("s3")
    if all(v["deleteMarker"] for v in newer):
        # Removing the markers makes the version below them current, as it was: no copy.
        for marker in newer:
            s3.delete_object(Bucket=bucket(), Key=parsed.key, VersionId=marker["versionId"])
        how = "undelete"
    else:
        if (target["size"] or 0) > MAX_COPY_BYTES:
            raise ApiError("conflict", "This version is too large to restore over a newer one "
                                       "(over 5 GB); delete the newer version instead")
        s3.copy_object(Bucket=bucket(), Key=parsed.key,
                       CopySource={"Bucket": bucket(), "Key": parsed.key,
                                   "VersionId": target["versionId"]},
                       MetadataDirective="COPY", TaggingDirective="COPY")
        how = "copy"
    event = activity.request_items(request, "data.file.restore", "file", row["fileId"],
                                   details={"name": row.get("name", ""), "path": row.get("path", ""),
                                            "versionId": target["versionId"], "how": how})
    # The row's new state and the event, in one transaction; after a copy the worker's
    # checksum and record count described the content just replaced.
    _, change = converge_row(bucket(), parsed, known=row, extra=event.items,
                             also_remove=("sha256", "records", "bytes") if how == "copy" else ())
    return detailed_view(applied(row, change))
