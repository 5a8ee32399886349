"""The backup worker's logic: one job-queue message -> (part of) one run.

Message ``{"accountId", "runId", "checkpoint": token|null}``. The message proceeds only if
the run is ``pending``, its lease has expired, or the message carries the run's current
checkpoint token; the lease is then taken with one conditional update (which also rotates
the checkpoint token, so two deliveries of one follow-up message cannot both proceed).
Anything else is a duplicate and does nothing.

Each endpoint is streamed page by page from the paging engine into a gzip JSON Lines
multipart upload (``handlers.shared.gzip_upload``) at
``data/{accountId}/{sourceId}/{runId}/{endpoint}.jsonl.gz``.

Resuming: parts are cut only at page boundaries (S3 wants 5 MiB parts but the last), so
a checkpoint records the endpoint, the upload id and parts, the pages/records/bytes inside
those parts, and ``cursor = {"pages": n, "state": <engine resume state>}`` - the paging
engine's ``Connector.resume_state`` read right after the last page inside the parts (an
additive engine hook: ``Connector.pages(name, resume=state)`` continues with the next page).
The follow-up invocation resumes the upload and the walk from there: pages that were only
buffered when the time ran out are fetched and written again, pages inside uploaded parts
are not, so nothing is duplicated or lost. Endpoints the engine cannot resume (child
endpoints, folder walks, CURSOR_POST, SINGLE: state None) fall back to walking the
endpoint again from its first page and skipping the first ``n`` pages unwritten (this
relies on the platform returning the same pages in the same order within a run).

Pages are fetched one ahead in a thread (:class:`Prefetch`), so fetching overlaps
compressing and uploading; cancel is checked before each page is written (a cancelled run
may have fetched up to two pages more than it wrote).

Storage limit: before each page, the account's ``storageBytes`` plus the compressed bytes
this run has stored so far (finished objects and the open upload) must stay within the
effective plan's limit.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import time
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable

from botocore.exceptions import ClientError

from handlers.shared import activity, analytics, clock
from handlers.shared.alerts import alert_owners
from handlers.shared.accounts import effective_plan, get_account
from handlers.shared.clients import client, table
from handlers.shared.connectors.engine import Connector, ConnectorError
from handlers.shared.connectors.platforms import get_platform
from handlers.shared.dynamo import as_int, transact
from handlers.shared.files import data_key, file_id_for
from handlers.shared.gzip_upload import MIN_PART, GzipJsonLinesUpload
from handlers.shared.log import get_logger
from handlers.shared.plans import RETENTION_TAG
from handlers.shared import sources as source_store
from handlers.shared import metrics

logger = get_logger("jobs")

TERMINAL = ("completed", "partial", "failed", "cancelled")
PROGRESS_EVERY = 5                 # pages between progress writes / lease renewals
SAFETY_MARGIN_MS = 60_000          # stop and checkpoint with this much time left
ACTOR = "system:backup-worker"


def lease_seconds() -> int:
    return int(os.environ.get("LEASE_SECONDS", "300"))


def deadline_grace() -> int:
    """How long after its lease expires a run may wait for SQS to redeliver its message
    (the job queue's visibility timeout, and a margin) before the scheduler calls it stuck."""
    return int(os.environ.get("RUN_DEADLINE_GRACE_SECONDS", "6000"))


def lease_times() -> tuple[int, int]:
    """(lease expiry, run deadline) for a lease taken or renewed now."""
    expires = _now_epoch() + lease_seconds()
    return expires, expires + deadline_grace()


def max_receives() -> int:
    return int(os.environ.get("MAX_RECEIVES", "5"))


def part_size() -> int:
    return max(MIN_PART, int(os.environ.get("UPLOAD_PART_BYTES", str(MIN_PART))))


def safety_margin_ms() -> int:
    return int(os.environ.get("SAFETY_MARGIN_MS", str(SAFETY_MARGIN_MS)))


def make_connector(platform, settings, credentials, on_refreshed) -> Connector:
    """The engine for one run (a seam for tests and the benchmark)."""
    return Connector(platform, settings, credentials, on_credentials_refreshed=on_refreshed)


class Duplicate(Exception):
    """The message may not run this run now."""


class LostLease(Exception):
    """Another delivery took the run over (this invocation's lease expired)."""


def _now_epoch() -> int:
    return int(time.time())


def _num(value: Any) -> Any:
    """Python values for DynamoDB (ints, no floats)."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _num(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_num(v) for v in value]
    return value


# =========================================================================== runs: lease

def get_run(account_id: str, run_id: str) -> dict | None:
    return table("runs").get_item(Key={"accountId": account_id, "runId": run_id},
                                  ConsistentRead=True).get("Item")


def may_proceed(run: dict, token: str | None, now: int | None = None) -> bool:
    if run.get("status") in TERMINAL:
        return False
    now = _now_epoch() if now is None else now
    if run.get("status") == "pending":
        return True
    lease = run.get("lease") or {}
    if as_int(lease.get("expiresAt")) < now:
        return True
    checkpoint = run.get("checkpoint") or {}
    return bool(token) and checkpoint.get("token") == token


def take_lease(run: dict, owner: str, token: str | None) -> None:
    """Conditional: pending, or lease expired, or the message's checkpoint token."""
    now = _now_epoch()
    expires, deadline = lease_times()
    names = {"#s": "status", "#l": "lease"}
    values = {":pending": "pending", ":now": now, ":lease": {"owner": owner, "expiresAt": expires},
              ":running": "running", ":at": clock.iso(), ":done": list(TERMINAL), ":dl": deadline}
    condition = "(#s = :pending OR #l.expiresAt < :now"
    update = "SET #s = :running, #l = :lease, startedAt = if_not_exists(startedAt, :at), deadline = :dl"
    if token:
        condition += " OR #c.#t = :token"
        names["#t"] = "token"
        names["#c"] = "checkpoint"
        values[":token"] = token
    condition += ")"
    if run.get("checkpoint"):
        update += ", #c.#t2 = :claimed"        # the follow-up message is used up
        names["#t2"] = "token"
        names["#c"] = "checkpoint"
        values[":claimed"] = "claimed-" + uuid.uuid4().hex
    # never resurrect a finished run
    condition = f"{condition} AND NOT #s IN ({', '.join(f':d{i}' for i in range(len(TERMINAL)))})"
    values.pop(":done")
    for i, status in enumerate(TERMINAL):
        values[f":d{i}"] = status
    try:
        table("runs").update_item(
            Key={"accountId": run["accountId"], "runId": run["runId"]},
            UpdateExpression=update, ConditionExpression=condition,
            ExpressionAttributeNames=names, ExpressionAttributeValues=values)
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            raise Duplicate() from None
        raise


def _owned_update(run: dict, owner: str, update: str, names: dict, values: dict) -> None:
    """An update of the run that only the lease holder may make. One that renews the lease
    (``:exp``) moves the run's ``deadline`` with it, so the scheduler leaves it alone."""
    if ":exp" in values:
        values = {**values, ":exp": lease_times()[0], ":dl": lease_times()[1]}
        update += ", deadline = :dl"
    try:
        table("runs").update_item(
            Key={"accountId": run["accountId"], "runId": run["runId"]},
            UpdateExpression=update, ConditionExpression="#l.#o = :owner",
            ExpressionAttributeNames={**names, "#l": "lease", "#o": "owner"},
            ExpressionAttributeValues={**_num(values), ":owner": owner})
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            raise LostLease() from None
        raise


def renew_lease(run: dict, owner: str, endpoints: list[dict], records: int, bytes_: int) -> None:
    _owned_update(run, owner, "SET #l.expiresAt = :exp, endpoints = :e, records = :r, #b = :b",
                  {"#b": "bytes"}, {":exp": _now_epoch() + lease_seconds(), ":e": endpoints,
                                    ":r": records, ":b": bytes_})


def release_lease(run: dict, owner: str) -> None:
    """Let a retried delivery proceed at once (after a fault this invocation reports)."""
    try:
        _owned_update(run, owner, "SET #l.expiresAt = :zero", {}, {":zero": 0})
    except (ClientError, LostLease):
        pass


def save_checkpoint(run: dict, owner: str, checkpoint: dict, endpoints: list[dict],
                    records: int, bytes_: int) -> None:
    _owned_update(run, owner, "SET checkpoint = :c, endpoints = :e, records = :r, #b = :b, "
                              "#l.expiresAt = :exp",
                  {"#b": "bytes"}, {":c": checkpoint, ":e": endpoints, ":r": records, ":b": bytes_,
                                    ":exp": _now_epoch() + lease_seconds()})


def cancel_requested(run: dict) -> bool:
    item = table("runs").get_item(Key={"accountId": run["accountId"], "runId": run["runId"]},
                                  ProjectionExpression="cancelRequested", ConsistentRead=True).get("Item")
    return bool((item or {}).get("cancelRequested"))


# =========================================================================== runs: finish

def finish_run(account_id: str, run_id: str, status: str, *, endpoints: list[dict] | None = None,
               records: int | None = None, bytes_: int | None = None, error: str | None = None,
               run: dict | None = None) -> bool:
    """End a run once: the run row (conditional on it not being finished), the job (stats,
    lastRunAt, activeRunId cleared), the account's runs-this-month, the source's lastRunAt,
    activity, and (failed runs) an e-mail to the owners at most once a day per source.
    Answers False when the run had already finished (nothing else is done)."""
    run = run or get_run(account_id, run_id)
    if run is None:
        return False
    endpoints = endpoints if endpoints is not None else list(run.get("endpoints") or [])
    records = records if records is not None else sum(as_int(e.get("records")) for e in endpoints)
    bytes_ = bytes_ if bytes_ is not None else sum(as_int(e.get("bytes")) for e in endpoints)
    now = clock.iso()
    values = {":s": status, ":f": now, ":r": records, ":b": bytes_, ":e": endpoints,
              ":err": error, ":null": None}
    for i, done in enumerate(TERMINAL):
        values[f":d{i}"] = done
    job_id, source_id = run.get("jobId"), run.get("sourceId")
    run_item = {"Update": {
        "TableName": table("runs").name, "Key": {"accountId": account_id, "runId": run_id},
        "UpdateExpression": "SET #s = :s, finishedAt = :f, records = :r, #b = :b, endpoints = :e, "
                            "#err = :err, checkpoint = :null REMOVE #l, activeState",
        "ConditionExpression": f"attribute_exists(runId) AND NOT #s IN "
                               f"({', '.join(f':d{i}' for i in range(len(TERMINAL)))})",
        "ExpressionAttributeNames": {"#s": "status", "#b": "bytes", "#err": "error", "#l": "lease"},
        "ExpressionAttributeValues": _num(values)}}
    counted = analytics.finished_run_items(account_id, source_id=source_id, status=status,
                                           records=records, bytes_=bytes_, finished_at=now)
    # The run's end, its count in the analytics, the job freed from it with its stats, and
    # the account's runs this month commit together: each counted exactly once. (Written
    # one after the other, a fault between them lost the rest for good - the retry finds
    # the run finished - and left the job's activeRunId set, refusing every later run.)
    for _ in range(3):
        bookkeeping = [item for item in (
            _job_item(account_id, job_id, run_id, status, records, bytes_, now) if job_id else None,
            _month_item(account_id)) if item is not None]
        reasons = transact([run_item, *counted, *bookkeeping])
        if reasons is None:
            break
        if reasons[0] == "ConditionalCheckFailed":
            return False
        if "ConditionalCheckFailed" not in reasons[1 + len(counted):]:
            raise RuntimeError(f"finishing the run failed: {reasons}")
        # the job or the account changed since it was read (a new month...): read it again
    else:
        raise RuntimeError("finishing the run failed: the job or the account kept changing")
    # committed: the run has ended, so it counts (best effort, never raises)
    metrics.run_finished(status, records=records, bytes_=bytes_, account_id=account_id, run_id=run_id)
    if source_id:
        _ignore_missing(lambda: table("sources").update_item(
            Key={"accountId": account_id, "sourceId": source_id},
            UpdateExpression="SET lastRunAt = :at", ConditionExpression="attribute_exists(sourceId)",
            ExpressionAttributeValues={":at": now}))
    activity.record(account_id=account_id, action=f"jobs.run.{status}", actor=ACTOR,
                    resource_type="run", resource_id=run_id,
                    outcome="failure" if status == "failed" else "success",
                    details={"jobId": job_id or "", "sourceId": source_id or "", "status": status,
                             "records": records, "bytes": bytes_})
    if status == "failed" and source_id:
        alert_owners(account_id, source_id, f"A backup failed: {error or 'see the run for details'}",
                     run_id=run_id)
    logger.info("run finished", extra={"accountId": account_id, "runId": run_id, "status": status,
                                       "records": records, "bytes": bytes_})
    return True


def _ignore_missing(write: Callable[[], Any]) -> None:
    try:
        write()
    except ClientError as err:
        if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise


def _job_item(account_id: str, job_id: str, run_id: str, status: str, records: int,
              bytes_: int, now: str) -> dict | None:
    """The job's part of a run's end (a transaction item): the run counted in its stats,
    ``lastRunAt``, and ``activeRunId`` cleared while it names this run. None when the job
    is gone. Conditional on what was read, so a change meanwhile cancels the transaction."""
    job = table("jobs").get_item(Key={"accountId": account_id, "jobId": job_id},
                                 ConsistentRead=True).get("Item")
    if job is None:
        return None
    names: dict[str, str] = {}
    values: dict[str, Any] = {":at": now, ":run": run_id}
    if isinstance(job.get("stats"), dict):
        update = ("ADD stats.runs :one, stats.#st :one, stats.records :r, stats.#b :b "
                  "SET stats.lastStatus = :st, lastRunAt = :at, updatedAt = :at")
        condition = "attribute_exists(stats)"
        names = {"#st": status, "#b": "bytes"}
        values.update({":one": 1, ":r": records, ":b": bytes_, ":st": status})
    else:
        update = "SET stats = :stats, lastRunAt = :at, updatedAt = :at"
        condition = "attribute_not_exists(stats)"
        values[":stats"] = {"runs": 1, "completed": 0, "partial": 0, "failed": 0, "cancelled": 0,
                            status: 1, "records": records, "bytes": bytes_, "lastStatus": status}
    if job.get("activeRunId") == run_id:
        update += " REMOVE activeRunId"
        condition += " AND activeRunId = :run"
    else:
        condition += " AND (attribute_not_exists(activeRunId) OR activeRunId <> :run)"
    item = {"TableName": table("jobs").name, "Key": {"accountId": account_id, "jobId": job_id},
            "UpdateExpression": update, "ConditionExpression": f"attribute_exists(jobId) AND {condition}",
            "ExpressionAttributeValues": values}
    if names:
        item["ExpressionAttributeNames"] = names
    return {"Update": item}


def _month_item(account_id: str) -> dict | None:
    """The account's runs-this-month, one more (a transaction item; the first run of a month
    starts the counter at one). None when the account is gone."""
    month = clock.now().strftime("%Y-%m")
    account = table("accounts").get_item(Key={"accountId": account_id}, ConsistentRead=True,
                                         ProjectionExpression="accountId, runsMonth").get("Item")
    if account is None:
        return None
    item = {"TableName": table("accounts").name, "Key": {"accountId": account_id},
            "ExpressionAttributeValues": {":one": 1, ":m": month}}
    if account.get("runsMonth") == month:
        item.update(UpdateExpression="ADD runsThisMonth :one", ConditionExpression="runsMonth = :m")
    else:
        item.update(UpdateExpression="SET runsMonth = :m, runsThisMonth = :one",
                    ConditionExpression="attribute_exists(accountId) AND "
                                        "(attribute_not_exists(runsMonth) OR runsMonth <> :m)")
    return {"Update": item}


# =========================================================================== sources, alerts

def mark_source_error(account_id: str, source_id: str) -> None:
    _ignore_missing(lambda: table("sources").update_item(
        Key={"accountId": account_id, "sourceId": source_id},
        UpdateExpression="SET #s = :error, updatedAt = :at",
        ConditionExpression="attribute_exists(sourceId) AND #s <> :paused",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":error": "error", ":paused": "paused", ":at": clock.iso()}))


# =========================================================================== the backup

def record_file(account_id: str, key: str, *, records: int, sha256: str, bytes_: int,
                endpoint: str, run: dict) -> None:
    """The worker's own attributes on the file's row (the indexer writes the object's)."""
    table("files").update_item(
        Key={"accountId": account_id, "fileId": file_id_for(key)},
        UpdateExpression="SET records = :r, sha256 = :h, #b = :b, endpoint = :e, runId = :run, "
                         "sourceId = :src, jobId = :job",
        ExpressionAttributeNames={"#b": "bytes"},
        ExpressionAttributeValues={":r": records, ":h": sha256, ":b": bytes_, ":e": endpoint,
                                   ":run": run["runId"], ":src": run.get("sourceId"),
                                   ":job": run.get("jobId")})


def stored_sha256(bucket: str, key: str) -> str:
    body = client("s3").get_object(Bucket=bucket, Key=key)["Body"]
    digest = hashlib.sha256()
    try:
        for chunk in iter(lambda: body.read(1024 * 1024), b""):
            digest.update(chunk)
    finally:
        body.close()
    return digest.hexdigest()


class Prefetch:
    """An endpoint's pages fetched one ahead in a thread, so fetching overlaps compressing,
    uploading and the run's bookkeeping. Bounded: one page waits in the queue and one is
    being fetched besides the one being written. Each page comes with the engine's resume
    state read right after it. Only this thread uses the connector until :meth:`close`."""

    def __init__(self, connector: Connector, name: str, resume: dict | None, depth: int = 1) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(connector, name, resume),
                                        name=f"prefetch-{name}", daemon=True)
        self._thread.start()

    def _run(self, connector: Connector, name: str, resume: dict | None) -> None:
        pages = None
        try:
            pages = connector.pages(name, resume=resume) if resume is not None else connector.pages(name)
            for page in pages:
                if not self._put(("page", page, connector.resume_state)):
                    return
            self._put(("end", None, None))
        except BaseException as error:   # noqa: BLE001 - handed to the consumer
            self._put(("error", error, None))
        finally:
            if pages is not None:
                pages.close()

    def _put(self, item: tuple) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def next(self) -> tuple[list[dict], dict | None]:
        """The next page and its resume state; StopIteration at the end; the walk's error."""
        kind, value, state = self._queue.get()
        if kind == "end":
            raise StopIteration
        if kind == "error":
            raise value
        return value, state

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


class Backup:
    """One invocation's work on one run (after the lease is taken)."""

    def __init__(self, run: dict, owner: str, context: Any) -> None:
        self.run = run
        self.owner = owner
        self.context = context
        self.account_id = run["accountId"]
        self.bucket = os.environ["S3_BUCKET"]
        self.upload: GzipJsonLinesUpload | None = None
        self.upload_checkpointed = False     # the open upload is the run's checkpoint's
        self.endpoints: list[dict] = []

    # ---------------------------------------------------------------- helpers

    def time_left(self) -> bool:
        getter = getattr(self.context, "get_remaining_time_in_millis", None)
        return getter is None or getter() >= safety_margin_ms()

    def totals(self) -> tuple[int, int]:
        records = sum(as_int(e.get("records")) for e in self.endpoints)
        bytes_ = sum(as_int(e.get("bytes")) for e in self.endpoints)
        return records, bytes_

    def finish(self, status: str, error: str | None = None) -> None:
        records, bytes_ = self.totals()
        finish_run(self.account_id, self.run["runId"], status, endpoints=self.endpoints,
                   records=records, bytes_=bytes_, error=error, run=self.run)

    def fail(self, error: str, *, source_error: bool = False) -> None:
        for entry in self.endpoints:
            if entry["status"] in ("pending", "running"):
                entry["status"] = "failed" if entry["status"] == "running" else "cancelled"
                entry["error"] = entry.get("error") or error
        if source_error and self.run.get("sourceId"):
            mark_source_error(self.account_id, self.run["sourceId"])
        self.finish("failed", error)

    # ---------------------------------------------------------------- the run

    def execute(self) -> str:
        run = self.run
        source = source_store.get_source(self.account_id, run.get("sourceId"))
        if source is None:
            self.endpoints = list(run.get("endpoints") or [])
            self.fail("The source no longer exists")
            return "failed"
        platform = get_platform(source.get("type"))
        if platform is None:
            self.fail(f"Unknown platform {source.get('type')!r}")
            return "failed"
        job = table("jobs").get_item(Key={"accountId": self.account_id, "jobId": run.get("jobId", "")},
                                     ConsistentRead=True).get("Item") if run.get("jobId") else None
        names = list((job or {}).get("endpoints") or [e.name for e in platform.endpoints])
        self.endpoints = self._endpoint_entries(names)
        try:
            credentials = source_store.load_credentials(source)
        except Exception:   # noqa: BLE001 - unreadable ciphertext: the credentials stopped working
            self.fail("The source's stored credentials cannot be read; enter them again",
                      source_error=True)
            return "failed"
        account = get_account(self.account_id) or {}
        plan = effective_plan(account)
        self.storage_limit = plan.storage_bytes
        self.storage_used = as_int(account.get("storageBytes"))
        self.retention = plan.retention_tag

        def refreshed(new: dict) -> None:
            source_store.store_credentials(self.account_id, source["sourceId"], new)

        connector = make_connector(platform, source.get("settings") or {}, credentials, refreshed)
        checkpoint = run.get("checkpoint") or None
        for entry in self.endpoints:
            if entry["status"] in ("completed", "failed", "cancelled"):
                continue
            resume = checkpoint if checkpoint and checkpoint.get("endpoint") == entry["name"] else None
            outcome = self._endpoint(connector, entry, resume, source)
            if outcome in ("checkpointed", "cancelled", "failed-run"):
                return outcome
        statuses = [e["status"] for e in self.endpoints]
        if all(s == "completed" for s in statuses):
            self.finish("completed")
            return "completed"
        if not any(s == "completed" for s in statuses):
            errors = "; ".join(f"{e['name']}: {e.get('error')}" for e in self.endpoints if e.get("error"))
            self.fail(f"Every endpoint failed ({errors})"[:1000], source_error=True)
            return "failed"
        self.finish("partial", "Some endpoints failed: " + ", ".join(
            e["name"] for e in self.endpoints if e["status"] != "completed"))
        return "partial"

    def _endpoint_entries(self, names: list[str]) -> list[dict]:
        existing = {e.get("name"): dict(e) for e in (self.run.get("endpoints") or [])}
        entries = []
        for name in names:
            entry = existing.get(name) or {}
            entries.append({"name": name, "status": entry.get("status", "pending"),
                            "records": as_int(entry.get("records")), "bytes": as_int(entry.get("bytes")),
                            "error": entry.get("error"),
                            **{k: entry[k] for k in ("key", "sha256", "size") if k in entry}})
        return entries

    def _endpoint(self, connector: Connector, entry: dict, resume: dict | None, source: dict) -> str:
        run = self.run
        name = entry["name"]
        key = data_key(self.account_id, run["sourceId"], run["runId"], f"{name}.jsonl.gz")
        s3 = client("s3")
        upload = None
        if resume and resume.get("uploadId"):
            upload = GzipJsonLinesUpload.resume(s3, self.bucket, key, {
                "uploadId": resume["uploadId"], "parts": resume.get("parts") or [],
                "pages": as_int((resume.get("cursor") or {}).get("pages")),
                "records": as_int(resume.get("records")), "bytes": as_int(resume.get("bytes")),
                "storedBytes": as_int(resume.get("storedBytes"))}, part_size=part_size())
        if upload is None:
            upload = GzipJsonLinesUpload(s3, self.bucket, key, part_size=part_size(),
                                         tags={RETENTION_TAG: self.retention})
        self.upload = upload
        self.upload_checkpointed = bool(resume and resume.get("uploadId") == upload.upload_id)
        state = (resume or {}).get("cursor", {}).get("state") if resume else None
        self.commit_state = state
        if state is not None and upload.committed_pages:
            pages = Prefetch(connector, name, state)       # continue after the committed pages
            skip = 0
        else:
            pages = Prefetch(connector, name, None)        # walk again, skip the committed pages
            skip = upload.committed_pages
        entry["status"] = "running"
        index = 0
        try:
            while True:
                if not self.time_left():
                    return self._checkpoint(entry, upload)
                if index >= skip:
                    if cancel_requested(run):
                        upload.abort()
                        entry["status"] = "cancelled"
                        for other in self.endpoints:
                            if other["status"] in ("pending", "running"):
                                other["status"] = "cancelled"
                        self.finish("cancelled", "Cancelled by a user")
                        return "cancelled"
                    done_bytes = sum(as_int(e.get("size")) for e in self.endpoints if e is not entry)
                    if self.storage_used + done_bytes + upload.stored_bytes > self.storage_limit:
                        upload.abort()
                        entry["status"] = "failed"
                        message = (f"The account's storage limit of "
                                   f"{self.storage_limit / 1024 ** 3:g} GB is reached; "
                                   f"the backup stopped. Free space or upgrade the plan.")
                        entry["error"] = message
                        self.fail(message)
                        return "failed-run"
                try:
                    page, page_state = pages.next()
                except StopIteration:
                    break
                if index >= skip:
                    parts_before = len(upload.parts)
                    upload.write_page(page)
                    if upload.committed_pages == upload.pages:   # a part was just cut here
                        self.commit_state = page_state
                    entry["records"], entry["bytes"] = upload.records, upload.raw_bytes
                    if len(upload.parts) > parts_before:
                        # a worker killed from here on resumes after this part
                        self._save_checkpoint(entry, upload)
                    elif (index + 1) % PROGRESS_EVERY == 0:
                        renew_lease(run, self.owner, self.endpoints, *self.totals())
                index += 1
        except ConnectorError as error:
            upload.abort()
            self.upload = None
            entry["status"] = "failed"
            entry["error"] = error.message
            entry["records"] = entry["bytes"] = 0
            if error.kind == "auth":
                self.fail(f"{error.message}: update the source's credentials", source_error=True)
                return "failed-run"
            _owned_update(run, self.owner, "SET endpoints = :e, records = :r, #b = :b, checkpoint = :null, "
                                           "#l.expiresAt = :exp",
                          {"#b": "bytes"}, {":e": self.endpoints, ":r": self.totals()[0],
                                            ":b": self.totals()[1], ":null": None,
                                            ":exp": _now_epoch() + lease_seconds()})
            return "failed"
        finally:
            pages.close()
        result = upload.complete()
        sha = stored_sha256(self.bucket, key)
        record_file(self.account_id, key, records=result["records"], sha256=sha,
                    bytes_=result["bytes"], endpoint=name, run=run)
        entry.update(status="completed", records=result["records"], bytes=result["bytes"],
                     sha256=sha, key=key, size=result["size"], error=None)
        self.upload = None
        _owned_update(run, self.owner, "SET endpoints = :e, records = :r, #b = :b, checkpoint = :null, "
                                       "#l.expiresAt = :exp",
                      {"#b": "bytes"}, {":e": self.endpoints, ":r": self.totals()[0],
                                        ":b": self.totals()[1], ":null": None,
                                        ":exp": _now_epoch() + lease_seconds()})
        return "completed"

    def _save_checkpoint(self, entry: dict, upload: GzipJsonLinesUpload) -> str:
        """Record what the uploaded parts hold (and renew the lease): a delivery after this
        one - a follow-up message carrying the answered token, or a redelivery once this
        worker's lease has expired because it was killed - continues after those parts.
        The progress shown on the run is what is in the parts."""
        state = upload.committed
        token = uuid.uuid4().hex
        cursor = {"pages": state["pages"], "state": self.commit_state if state["pages"] else None}
        checkpoint = {"token": token, "endpoint": entry["name"], "cursor": cursor,
                      "uploadId": state["uploadId"], "parts": state["parts"],
                      "records": state["records"], "bytes": state["bytes"],
                      "storedBytes": state["storedBytes"]}
        shown = [dict(e, records=state["records"], bytes=state["bytes"]) if e is entry else e
                 for e in self.endpoints]
        records = sum(as_int(e.get("records")) for e in shown)
        bytes_ = sum(as_int(e.get("bytes")) for e in shown)
        save_checkpoint(self.run, self.owner, checkpoint, shown, records, bytes_)
        self.upload_checkpointed = True
        return token

    def _checkpoint(self, entry: dict, upload: GzipJsonLinesUpload) -> str:
        state = upload.committed
        entry["records"], entry["bytes"] = state["records"], state["bytes"]
        token = self._save_checkpoint(entry, upload)
        client("sqs").send_message(QueueUrl=os.environ["JOB_QUEUE_URL"], MessageBody=_json(
            {"accountId": self.account_id, "runId": self.run["runId"], "checkpoint": token}))
        logger.info("run checkpointed", extra={"accountId": self.account_id, "runId": self.run["runId"],
                                               "endpoint": entry["name"], "pages": state["pages"]})
        self.upload = None      # kept for the follow-up, not aborted
        return "checkpointed"


def _json(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))


# =========================================================================== one message

def process_message(body: dict, *, receive_count: int, owner: str, context: Any) -> str:
    """Handle one job-queue message. Answers the outcome; raises to have SQS retry it."""
    account_id, run_id = body.get("accountId"), body.get("runId")
    token = body.get("checkpoint")
    if not isinstance(account_id, str) or not isinstance(run_id, str) or \
            (token is not None and not isinstance(token, str)):
        logger.warning("malformed job message skipped")
        return "malformed"
    run, leased = None, False
    try:
        run = get_run(account_id, run_id)
        if run is None:
            logger.warning("message for an unknown run skipped", extra={"accountId": account_id, "runId": run_id})
            return "unknown"
        if not may_proceed(run, token):
            logger.info("duplicate message ignored", extra={"accountId": account_id, "runId": run_id})
            return "duplicate"
        try:
            take_lease(run, owner, token)
        except Duplicate:
            logger.info("duplicate message ignored (lease)", extra={"accountId": account_id, "runId": run_id})
            return "duplicate"
        leased = True
        run = get_run(account_id, run_id) or run
    except Exception as error:
        # A fault before the run could start (its row unreadable, its lease not taken) is
        # retried like any other; on the last receive the run is failed first, so it never
        # sits pending behind a message in the dead-letter queue.
        _not_started(account_id, run_id, run, owner, leased, error, receive_count)
        raise
    backup = Backup(run, owner, context)
    try:
        return backup.execute()
    except LostLease:
        # Another delivery holds the run now (this one was too slow to renew): leave it be.
        if backup.upload is not None and not backup.upload_checkpointed:
            backup.upload.abort()
        logger.warning("lease lost; the run continues elsewhere", extra={"accountId": account_id, "runId": run_id})
        return "lost-lease"
    except Exception as error:
        last = receive_count >= max_receives()
        if backup.upload is not None and (last or not backup.upload_checkpointed):
            backup.upload.abort()      # a checkpointed upload is kept for a retry to resume
        reason = f"The backup failed repeatedly ({type(error).__name__})"
        if last:
            logger.exception("run failed on its last receive", extra={"accountId": account_id, "runId": run_id})
            if backup.endpoints:
                backup.fail(reason)
            else:
                finish_run(account_id, run_id, "failed", error=reason, run=run)
        else:
            logger.exception("run attempt failed; will be retried",
                             extra={"accountId": account_id, "runId": run_id, "receiveCount": receive_count})
            # The retry resumes from the last checkpoint (or starts the endpoint over).
            _discard_uncheckpointed(run, owner)
            release_lease(run, owner)
        raise


def _not_started(account_id: str, run_id: str, run: dict | None, owner: str, leased: bool,
                 error: Exception, receive_count: int) -> None:
    ids = {"accountId": account_id, "runId": run_id, "receiveCount": receive_count}
    if leased and run is not None:
        release_lease(run, owner)
    if receive_count < max_receives():
        logger.exception("run could not start; will be retried", extra=ids)
        return
    logger.exception("run could not start on its last receive", extra=ids)
    reason = f"The backup failed repeatedly ({type(error).__name__})"
    endpoints = None
    if run is not None:
        endpoints = [dict(e, status="cancelled", error=e.get("error") or reason)
                     if e.get("status") in ("pending", "running") else e
                     for e in run.get("endpoints") or []]
    finish_run(account_id, run_id, "failed", endpoints=endpoints, error=reason, run=run)


def _discard_uncheckpointed(run: dict, owner: str) -> None:
    """Forget a checkpoint whose upload was just aborted (the retry starts that endpoint over)."""
    current = get_run(run["accountId"], run["runId"]) or {}
    checkpoint = current.get("checkpoint")
    if not checkpoint:
        return
    try:
        client("s3").list_parts(Bucket=os.environ["S3_BUCKET"],
                                Key=data_key(run["accountId"], run["sourceId"], run["runId"],
                                             f"{checkpoint['endpoint']}.jsonl.gz"),
                                UploadId=checkpoint["uploadId"])
    except ClientError:
        try:
            _owned_update(run, owner, "SET checkpoint = :null", {}, {":null": None})
        except (ClientError, LostLease):
            pass
