"""The data service's part of the route table (DESIGN.md section 4): reads for every
member, search too; delete, restore and export for managers."""

from handlers.shared.routing import (BOOLEAN, CURSOR, INTEGER, LIMIT, NO_DATA, NULLABLE_STRING,
                                     NULLABLE_TIME, STRING, TIME, Route, nullable, obj, page)

EXPORT_FILE_IDS = 300      # POST /data/export's fileIds (3 BatchGetItem calls of 100)

_ID = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[A-Za-z0-9_\\-]+$"}
_FILE_ID = {"type": "string", "pattern": "^fil_[0-9a-f]{32}$"}
_TEXT = "^[^\\u0000-\\u001f\\u007f]*$"     # no control characters
_PATH = {"type": "string", "maxLength": 1024, "pattern": _TEXT}


def _query(**properties) -> dict:
    """The route's query parameters; any other is refused (400 naming it)."""
    return {"type": "object", "additionalProperties": False, "properties": properties}


# ------------------------------------------------------------------ answers

_NULLABLE_COUNT = {"type": "integer", "nullable": True}
FILE = obj({
    "fileId": _FILE_ID, "sourceId": NULLABLE_STRING, "runId": NULLABLE_STRING,
    "jobId": NULLABLE_STRING, "endpoint": NULLABLE_STRING, "name": NULLABLE_STRING,
    "path": nullable({"type": "string", "description": "below the run"}),
    "size": nullable({"type": "integer", "description": "stored bytes"}),
    "contentType": NULLABLE_STRING,
    "records": nullable({"type": "integer", "description": "records backed up in it"}),
    "sha256": nullable({"type": "string", "pattern": "^[0-9a-f]{64}$"}),
    "createdAt": NULLABLE_TIME, "lastModified": NULLABLE_TIME, "versionId": NULLABLE_STRING,
    "deleted": BOOLEAN, "deletedAt": NULLABLE_TIME}, title="File")
VERSION = obj({"versionId": NULLABLE_STRING, "size": _NULLABLE_COUNT, "lastModified": TIME,
               "current": BOOLEAN, "deleteMarker": BOOLEAN, "restorable": BOOLEAN},
              title="FileVersion")
FILE_DETAIL = obj({**FILE["properties"], "versions": {"type": "array", "items": VERSION}},
                  title="FileDetail")
_FOLDER_COUNTS = {"files": INTEGER, "deletedFiles": INTEGER, "size": INTEGER, "records": INTEGER}


def _kind(kind: str) -> dict:
    return {"type": "string", "enum": [kind]}


_FOLDER = _kind("folder")
TREE_ENTRY = {"description": "by level: a source folder, a run folder, a folder or a file",
              "oneOf": [
    obj({"type": _FOLDER, "kind": _kind("source"),
         "sourceId": STRING, "name": STRING, "platform": NULLABLE_STRING,
         "path": {"type": "string", "enum": [""]}, "lastRunAt": NULLABLE_TIME,
         "runs": INTEGER, "records": INTEGER, "bytes": INTEGER}, title="SourceFolder"),
    obj({"type": _FOLDER, "kind": _kind("run"),
         "runId": STRING, "jobId": NULLABLE_STRING, "status": NULLABLE_STRING, "path": STRING,
         "createdAt": NULLABLE_TIME, "finishedAt": NULLABLE_TIME, **_FOLDER_COUNTS,
         "partial": BOOLEAN}, title="RunFolder"),
    obj({"type": _FOLDER, "kind": _kind("folder"),
         "name": STRING, "path": STRING, **_FOLDER_COUNTS, "partial": BOOLEAN}, title="Folder"),
    obj({"type": _kind("file"), **FILE["properties"]}, title="FileEntry"),
]}
EXPORT = obj({
    "exportId": STRING,
    "status": {"type": "string", "enum": ["pending", "running", "completed", "failed", "expired"]},
    "url": nullable({"type": "string", "description": "a presigned GET of the zip, while "
                                                      "completed (15 minutes)"}),
    "urlExpiresAt": NULLABLE_TIME,
    "expiresAt": nullable({**TIME, "description": "when the zip is removed"}),
    "scope": {"type": "object", "additionalProperties": False, "minProperties": 1,
              "maxProperties": 1, "properties": {
                  "fileIds": {"type": "array", "items": _FILE_ID}, "runId": STRING,
                  "sourceId": STRING}},
    "files": _NULLABLE_COUNT, "size": _NULLABLE_COUNT, "skipped": _NULLABLE_COUNT,
    "error": NULLABLE_STRING, "createdAt": NULLABLE_TIME, "completedAt": NULLABLE_TIME,
}, title="Export")

ROUTES = (
    Route("GET", "/data/files", "list_files", "viewer",
          summary="The account's backed-up files, newest first (with runId: the run's files in "
                  "path order; with a path prefix: matching paths in path order). Filters: "
                  "sourceId, runId, path (prefix of the path below the run), contentType, "
                  "from/to (createdAt, ISO-8601), deleted (true|false); paginated",
          query=_query(limit=LIMIT, cursor=CURSOR, sourceId=_ID, runId=_ID, path=_PATH,
                       contentType={"type": "string", "maxLength": 255, "pattern": _TEXT},
                       deleted=BOOLEAN, **{"from": TIME, "to": TIME}),
          response=page(FILE)),
    Route("GET", "/data/files/{fileId}", "get_file", "viewer",
          summary="One file, with its versions (newest first; restorable ones flagged)",
          response=FILE_DETAIL),
    Route("DELETE", "/data/files/{fileId}", "delete_file", "manager",
          summary="Delete a file: a delete marker in the versioned bucket; the file shows as "
                  "deleted, leaves storage usage, and stays restorable for the stage's "
                  "noncurrent-version window",
          response=NO_DATA),
    Route("GET", "/data/files/{fileId}/download-url", "download_url", "viewer",
          summary="A presigned GET of the file valid 15 minutes, downloading under its name "
                  "(409 conflict for a deleted file)",
          response=obj({"url": STRING, "expiresAt": TIME, "fileName": NULLABLE_STRING,
                        "size": nullable(INTEGER)})),
    Route("POST", "/data/files/{fileId}/restore", "restore_file", "manager",
          summary="Make the previous version current again (a deleted file comes back; a file "
                  "that is not deleted gets its previous version back), or the version named "
                  "by ?versionId=; indexed and counted in storage usage at once",
          query=_query(versionId={"type": "string", "maxLength": 1024, "pattern": _TEXT}),
          response=FILE_DETAIL),
    Route("GET", "/data/tree", "tree", "viewer",
          summary="Folders: no sourceId -> one per source (totals its jobs backed up); "
                  "sourceId -> one per run, newest first (files, deletedFiles, size, records); "
                  "sourceId and path=<runId>[/folder] -> that folder's files and sub-folders; "
                  "paginated",
          query=_query(sourceId=_ID, path=_PATH, limit=LIMIT, cursor=CURSOR),
          response=page(TREE_ENTRY)),
    Route("POST", "/data/search", "search", "viewer",
          summary="Files whose path below their run starts with query (case-sensitive; the "
                  "file name for a file at the top of its run), in path order, optionally in "
                  "one source; each request reads at most 500 index items and may answer a "
                  "short page with a nextCursor",
          body={"type": "object", "additionalProperties": False, "required": ["query"],
                "properties": {
                    "query": {"type": "string", "minLength": 1, "maxLength": 1024,
                              "pattern": "^[^\\u0000-\\u001f\\u007f]+$"},
                    "sourceId": _ID,
                    "limit": {"type": "integer", "minimum": 1, "maximum": 100},
                    "cursor": {"type": "string", "maxLength": 4096, "nullable": True}}},
          response=page(FILE)),
    Route("POST", "/data/export", "request_export", "manager",
          summary="Export chosen files, a run or a source as one zip, built in the background "
                  "(202); the requester is e-mailed a link to GET /data/exports/{exportId}",
          body={"type": "object", "additionalProperties": False,
                "description": "exactly one of fileIds, runId, sourceId",
                "properties": {
                    # at most 300: checked in three BatchGetItem calls (100 keys each), so
                    # the request stays within four DynamoDB calls; more files go by run or source
                    "fileIds": {"type": "array", "minItems": 1, "maxItems": EXPORT_FILE_IDS,
                                "uniqueItems": True, "items": _FILE_ID,
                                "description": "up to 300; export a run or a source for more"},
                    "runId": _ID, "sourceId": _ID}},
          status=202, response=EXPORT),
    Route("GET", "/data/exports/{exportId}", "get_export", "viewer",
          summary="An export's status and, once completed, a fresh presigned link (15 minutes) "
                  "until it expires 7 days after completion",
          response=EXPORT),
)
