"""The backup worker (``handlers.jobs.worker.handler``) against moto and a Stripe-shaped
platform on 127.0.0.1 (cursor ``starting_after`` + ``has_more``), reached through
``LISTBACKUP_PLATFORM_URLS``: complete runs, duplicates, resuming from a checkpoint,
partial and failed runs, the owners' alert, cancel, the last receive and the storage limit."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import random
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import boto3
import pytest

from handlers.shared import clock
from handlers.shared import sources as source_store
from handlers.shared.clients import table
from handlers.shared.files import data_key, file_id_for
from handlers.shared.ids import new_id
from tests.handlers.conftest import sent_emails
from tests.handlers.test_sources_support import STRIPE_KEY, events, get_row, seed_tenant, stage  # noqa: F401
from tests.support import BUCKET, LambdaContext

REJECTED = "sk_test_rejected000000000000000000"


# --------------------------------------------------------------------------- a Stripe-shaped server

class Stripe:
    """``GET /v1/<endpoint>?limit&starting_after`` over in-memory records; 401 for the
    rejected key; ``broken`` paths answer 404; ``on_page(path, n)`` runs before page n."""

    def __init__(self):
        self.data: dict[str, list[dict]] = {}
        self.per_page = 100
        self.broken: set[str] = set()
        self.requests: list[str] = []
        self.on_page = None
        server = self
        self.pages_served: dict[str, int] = {}

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                parts = urlsplit(self.path)
                query = dict(parse_qsl(parts.query))
                server.requests.append(parts.path)
                if self.headers.get("Authorization") != f"Bearer {STRIPE_KEY}":
                    return self.reply(401, {"error": {"type": "invalid_request_error"}})
                name = parts.path.removeprefix("/v1/")
                if name in server.broken or name not in server.data:
                    return self.reply(404, {"error": {"message": "no such resource"}})
                n = server.pages_served.get(name, 0)
                server.pages_served[name] = n + 1
                if server.on_page:
                    server.on_page(name, n)
                records = server.data[name]
                start = 0
                if "starting_after" in query:
                    start = next(i for i, r in enumerate(records) if r["id"] == query["starting_after"]) + 1
                size = min(int(query.get("limit", 10)), server.per_page)
                page = records[start:start + size]
                self.reply(200, {"object": "list", "data": page, "has_more": start + size < len(records)})

            def reply(self, status, body):
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.http.server_port}"


def make_records(prefix: str, count: int, blob: int = 0, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for n in range(count):
        record = {"id": f"{prefix}_{n:06d}", "object": prefix, "email": f"u{n}@example.com",
                  "name": f"Zoë {n}", "metadata": {"n": n}}
        if blob:
            record["blob"] = base64.b64encode(rng.randbytes(blob)).decode()
        out.append(record)
    return out


@pytest.fixture
def stripe(stage, monkeypatch):
    server = Stripe()
    monkeypatch.setenv("LISTBACKUP_PLATFORM_URLS", json.dumps({"stripe": server.url}))
    from handlers.shared.connectors import urls
    urls._overrides.cache_clear()
    yield server
    server.http.shutdown()
    server.http.server_close()


@pytest.fixture
def queue(stage, monkeypatch):
    url = boto3.client("sqs").create_queue(QueueName="listbackup-test-jobs")["QueueUrl"]
    monkeypatch.setenv("JOB_QUEUE_URL", url)
    monkeypatch.setenv("MAX_RECEIVES", "5")
    return url


# --------------------------------------------------------------------------- tenants, jobs, runs

class Tenant:
    def __init__(self, *, key: str = STRIPE_KEY, endpoints=("customers", "charges"), storage: int = 0):
        self.user, self.account, _ = seed_tenant("owner")
        self.account_id = self.account["accountId"]
        if storage:
            table("accounts").update_item(Key={"accountId": self.account_id},
                                          UpdateExpression="SET storageBytes = :b",
                                          ExpressionAttributeValues={":b": storage})
        self.source = source_store.create_source(self.account_id, name="Stripe live", type="stripe",
                                                 settings={}, credentials={"api_key": key},
                                                 actor=self.user["userId"])
        self.job_id = new_id("job")
        table("jobs").put_item(Item={
            "accountId": self.account_id, "jobId": self.job_id, "sourceId": self.source["sourceId"],
            "name": "Nightly", "schedule": {"frequency": "manual", "time": None, "dayOfWeek": None,
                                            "dayOfMonth": None},
            "endpoints": list(endpoints) if endpoints else None, "status": "active",
            "createdAt": clock.iso(), "updatedAt": clock.iso()})

    def new_run(self) -> str:
        run_id = new_id("run")
        table("runs").put_item(Item={
            "accountId": self.account_id, "runId": run_id, "jobId": self.job_id,
            "sourceId": self.source["sourceId"], "status": "pending", "createdAt": clock.iso(),
            "records": 0, "bytes": 0, "endpoints": [], "trigger": "manual", "cancelRequested": False,
            "checkpoint": None})
        table("jobs").update_item(Key={"accountId": self.account_id, "jobId": self.job_id},
                                  UpdateExpression="SET activeRunId = :r",
                                  ExpressionAttributeValues={":r": run_id})
        return run_id

    def run(self, run_id: str) -> dict:
        return get_row("runs", accountId=self.account_id, runId=run_id)

    def job(self) -> dict:
        return get_row("jobs", accountId=self.account_id, jobId=self.job_id)

    def key(self, run_id: str, endpoint: str) -> str:
        return data_key(self.account_id, self.source["sourceId"], run_id, f"{endpoint}.jsonl.gz")

    def message(self, run_id: str, checkpoint=None) -> dict:
        return {"accountId": self.account_id, "runId": run_id, "checkpoint": checkpoint}


# --------------------------------------------------------------------------- delivering messages

class Context(LambdaContext):
    """A Lambda context whose remaining time runs out after ``pages`` checks."""

    def __init__(self, pages: int | None = None):
        super().__init__("listbackup-jobs-test-worker", f"req-{uuid.uuid4().hex[:8]}")
        self.left = pages

    def get_remaining_time_in_millis(self) -> int:
        if self.left is None:
            return 900_000
        self.left -= 1
        return 900_000 if self.left >= 0 else 1_000


def deliver(body: dict, *, receives: int = 1, context=None) -> dict:
    from handlers.jobs import worker

    record = {"messageId": str(uuid.uuid4()), "receiptHandle": "AQEB" + uuid.uuid4().hex,
              "body": json.dumps(body),
              "attributes": {"ApproximateReceiveCount": str(receives), "SentTimestamp": "1764118923000",
                             "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1764118923010"},
              "messageAttributes": {}, "md5OfBody": "0" * 32, "eventSource": "aws:sqs",
              "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:listbackup-test-jobs",
              "awsRegion": "us-east-1"}
    return worker.handler({"Records": [record]}, context or Context())


def follow_ups(queue_url: str) -> list[dict]:
    sqs = boto3.client("sqs")
    out = []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return out
        for m in got:
            out.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])


def object_lines(key: str) -> tuple[list[dict], bytes]:
    raw = boto3.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return [json.loads(line) for line in gzip.decompress(raw).splitlines()], raw


def file_row(tenant: Tenant, key: str) -> dict:
    return get_row("files", accountId=tenant.account_id, fileId=file_id_for(key))


OK = {"batchItemFailures": []}


# --------------------------------------------------------------------------- tests

def test_a_full_run_of_two_endpoints_completes_with_exact_objects_counts_and_checksums(stripe, queue):
    stripe.data = {"customers": make_records("cus", 250), "charges": make_records("ch", 30)}
    t = Tenant()
    run_id = t.new_run()
    assert deliver(t.message(run_id)) == OK
    run = t.run(run_id)
    assert run["status"] == "completed" and run["error"] is None
    assert run["startedAt"] and run["finishedAt"] and "lease" not in run and run["checkpoint"] is None
    assert [e["name"] for e in run["endpoints"]] == ["customers", "charges"]
    total_bytes = 0
    for name, records in stripe.data.items():
        key = t.key(run_id, name)
        lines, raw = object_lines(key)
        assert lines == records
        raw_len = sum(len(json.dumps(r, ensure_ascii=False, separators=(",", ":")).encode()) + 1 for r in records)
        row = file_row(t, key)
        assert row["records"] == len(records) and row["sha256"] == hashlib.sha256(raw).hexdigest()
        assert row["bytes"] == raw_len and row["endpoint"] == name and row["runId"] == run_id
        assert row["sourceId"] == t.source["sourceId"] and row["jobId"] == t.job_id
        [entry] = [e for e in run["endpoints"] if e["name"] == name]
        assert entry["status"] == "completed" and entry["records"] == len(records)
        assert entry["bytes"] == raw_len and entry["sha256"] == row["sha256"]
        tags = boto3.client("s3").get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"]
        assert tags == [{"Key": "retention", "Value": "30d"}]
        total_bytes += raw_len
    assert run["records"] == 280 and run["bytes"] == total_bytes
    job = t.job()
    assert "activeRunId" not in job and job["lastRunAt"]
    assert job["stats"]["runs"] == 1 and job["stats"]["completed"] == 1 and job["stats"]["records"] == 280
    assert job["stats"]["lastStatus"] == "completed"
    account = get_row("accounts", accountId=t.account_id)
    assert account["runsThisMonth"] == 1 and account["runsMonth"] == clock.now().strftime("%Y-%m")
    assert get_row("sources", accountId=t.account_id, sourceId=t.source["sourceId"])["lastRunAt"]
    [event] = events(t.account_id, "jobs.run.completed")
    assert event["resourceId"] == run_id and event["details"]["records"] == 280
    assert sent_emails() == [] and follow_ups(queue) == []
    # the next run of the month counts on
    second = t.new_run()
    assert deliver(t.message(second)) == OK
    assert get_row("accounts", accountId=t.account_id)["runsThisMonth"] == 2
    assert t.job()["stats"]["runs"] == 2


def test_all_endpoints_when_the_job_names_none(stripe, queue):
    stripe.data = {"customers": make_records("cus", 3)}
    t = Tenant(endpoints=None)
    run_id = t.new_run()
    assert deliver(t.message(run_id)) == OK
    run = t.run(run_id)
    assert len(run["endpoints"]) == 10            # every Stripe endpoint of the catalog
    assert run["status"] == "partial"              # the server knows only customers
    assert {e["name"]: e["status"] for e in run["endpoints"]}["customers"] == "completed"


def test_a_duplicate_message_runs_once(stripe, queue):
    stripe.data = {"customers": make_records("cus", 150), "charges": make_records("ch", 5)}
    t = Tenant()
    run_id = t.new_run()
    assert deliver(t.message(run_id)) == OK
    served = len(stripe.requests)
    finished = t.run(run_id)["finishedAt"]
    assert deliver(t.message(run_id)) == OK
    assert deliver(t.message(run_id, "made-up-token")) == OK
    assert len(stripe.requests) == served and t.run(run_id)["finishedAt"] == finished
    assert t.job()["stats"]["runs"] == 1


def test_a_message_for_a_run_someone_else_holds_does_nothing(stripe, queue):
    stripe.data = {"customers": make_records("cus", 5), "charges": []}
    t = Tenant()
    run_id = t.new_run()
    table("runs").update_item(Key={"accountId": t.account_id, "runId": run_id},
                              UpdateExpression="SET #s = :r, lease = :l",
                              ExpressionAttributeNames={"#s": "status"},
                              ExpressionAttributeValues={":r": "running", ":l": {
                                  "owner": "other", "expiresAt": clock.epoch() + 300}})
    assert deliver(t.message(run_id)) == OK
    assert stripe.requests == [] and t.run(run_id)["status"] == "running"
    # once the other worker's lease has expired, a redelivery takes the run over
    table("runs").update_item(Key={"accountId": t.account_id, "runId": run_id},
                              UpdateExpression="SET lease.expiresAt = :e",
                              ExpressionAttributeValues={":e": clock.epoch() - 1})
    assert deliver(t.message(run_id)) == OK
    assert t.run(run_id)["status"] == "completed"


def test_malformed_and_unknown_messages_are_skipped(stripe, queue):
    assert deliver({"accountId": 3}) == OK
    assert deliver({"accountId": "acc_x", "runId": "run_missing", "checkpoint": None}) == OK


def test_a_run_that_runs_out_of_time_resumes_from_its_checkpoint_without_duplicates(stripe, queue, monkeypatch):
    # ~3 KB of incompressible text per record, 100 per page: a 5 MiB part every ~18 pages
    stripe.data = {"customers": make_records("cus", 5000, blob=2300), "charges": make_records("ch", 40)}
    t = Tenant()
    run_id = t.new_run()
    from handlers.jobs import backup
    saved = []
    real_save = backup.save_checkpoint
    monkeypatch.setattr(backup, "save_checkpoint",
                        lambda run, owner, cp, *a: (saved.append(json.loads(json.dumps(cp, default=int))),
                                                    real_save(run, owner, cp, *a))[1])
    assert deliver(t.message(run_id), context=Context(pages=40)) == OK
    run = t.run(run_id)
    assert run["status"] == "running" and run["checkpoint"]["endpoint"] == "customers"
    first = saved[-1]
    assert first["parts"] and first["cursor"]["pages"] > 0 and first["records"] == first["cursor"]["pages"] * 100
    invocations = 1
    while True:
        messages = follow_ups(queue)
        if not messages:
            break
        [message] = messages
        assert message["checkpoint"] == t.run(run_id)["checkpoint"]["token"]
        # SQS may deliver the follow-up twice: only one delivery proceeds
        assert deliver(message, context=Context(pages=40)) == OK
        assert deliver(message, context=Context(pages=40)) == OK
        invocations += 1
        assert invocations < 10, [(c["cursor"], len(c["parts"])) for c in saved]
    assert invocations >= 2
    run = t.run(run_id)
    assert run["status"] == "completed", run.get("error")
    lines, raw = object_lines(t.key(run_id, "customers"))
    assert [r["id"] for r in lines] == [r["id"] for r in stripe.data["customers"]]
    assert lines == stripe.data["customers"]
    assert file_row(t, t.key(run_id, "customers"))["records"] == 5000
    assert file_row(t, t.key(run_id, "customers"))["sha256"] == hashlib.sha256(raw).hexdigest()
    assert object_lines(t.key(run_id, "charges"))[0] == stripe.data["charges"]
    assert run["records"] == 5040
    # resumed from the engine's cursor: committed pages are not fetched again
    assert saved[-1]["cursor"]["state"] and saved[-1]["cursor"]["state"]["cursor"].startswith("cus_")
    assert stripe.pages_served["customers"] < 50 + 20 * (invocations - 1)
    assert boto3.client("s3").list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_one_endpoint_failing_ends_the_run_partial_with_its_reason(stripe, queue):
    stripe.data = {"customers": make_records("cus", 120), "charges": make_records("ch", 5)}
    stripe.broken = {"charges"}
    t = Tenant()
    run_id = t.new_run()
    assert deliver(t.message(run_id)) == OK
    run = t.run(run_id)
    assert run["status"] == "partial" and "charges" in run["error"]
    entries = {e["name"]: e for e in run["endpoints"]}
    assert entries["customers"]["status"] == "completed" and entries["customers"]["records"] == 120
    assert entries["charges"]["status"] == "failed" and "404" in entries["charges"]["error"]
    assert object_lines(t.key(run_id, "customers"))[0] == stripe.data["customers"]
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert keys == [t.key(run_id, "customers")]
    assert get_row("sources", accountId=t.account_id, sourceId=t.source["sourceId"])["status"] == "active"
    assert t.job()["stats"]["partial"] == 1 and sent_emails() == []


def test_every_endpoint_failing_fails_the_run(stripe, queue):
    stripe.data = {}
    t = Tenant()
    run_id = t.new_run()
    assert deliver(t.message(run_id)) == OK
    run = t.run(run_id)
    assert run["status"] == "failed" and "Every endpoint failed" in run["error"]
    assert get_row("sources", accountId=t.account_id, sourceId=t.source["sourceId"])["status"] == "error"


def test_a_rejected_key_fails_the_run_marks_the_source_and_mails_the_owner_once_a_day(stripe, queue):
    stripe.data = {"customers": make_records("cus", 10), "charges": make_records("ch", 5)}
    t = Tenant(key=REJECTED)
    run_id = t.new_run()
    assert deliver(t.message(run_id)) == OK
    run = t.run(run_id)
    assert run["status"] == "failed" and "refused the credentials" in run["error"]
    assert REJECTED not in json.dumps(run, default=str)
    assert {e["name"]: e["status"] for e in run["endpoints"]} == {"customers": "failed", "charges": "cancelled"}
    source = get_row("sources", accountId=t.account_id, sourceId=t.source["sourceId"])
    assert source["status"] == "error" and source["lastAlertDay"] == clock.now().strftime("%Y-%m-%d")
    [mail] = sent_emails()
    assert mail["to"] == t.user["email"] and "Stripe live" in mail["subject"]
    assert "refused the credentials" in mail["text"] and REJECTED not in mail["text"]
    assert t.job()["stats"]["failed"] == 1 and "activeRunId" not in t.job()
    assert events(t.account_id, "jobs.run.failed")[0]["outcome"] == "failure"
    # the second failure the same day mails nobody
    second = t.new_run()
    assert deliver(t.message(second)) == OK
    assert t.run(second)["status"] == "failed"
    assert len(sent_emails()) == 1


def test_only_owners_are_mailed(stripe, queue):
    stripe.data = {}
    t = Tenant(key=REJECTED)
    manager = {"userId": new_id("usr"), "email": "manager@example.com", "status": "active"}
    table("users").put_item(Item=manager)
    table("users-accounts").put_item(Item={"userId": manager["userId"], "accountId": t.account_id,
                                           "role": "manager", "createdAt": clock.iso()})
    deliver(t.message(t.new_run()))
    assert [m["to"] for m in sent_emails()] == [t.user["email"]]


def test_cancel_stops_a_long_run_at_its_next_page(stripe, queue):
    stripe.data = {"customers": make_records("cus", 3000), "charges": make_records("ch", 5)}
    t = Tenant()
    run_id = t.new_run()

    def cancel_at(name, n):
        if name == "customers" and n == 3:      # a user cancels while page 4 is fetched
            table("runs").update_item(Key={"accountId": t.account_id, "runId": run_id},
                                      UpdateExpression="SET cancelRequested = :t",
                                      ExpressionAttributeValues={":t": True})

    stripe.on_page = cancel_at
    assert deliver(t.message(run_id)) == OK
    run = t.run(run_id)
    assert run["status"] == "cancelled"
    assert {e["name"]: e["status"] for e in run["endpoints"]} == {"customers": "cancelled", "charges": "cancelled"}
    # the page being written and at most two fetched ahead
    assert stripe.pages_served["customers"] <= 6 and "charges" not in stripe.pages_served
    assert boto3.client("s3").list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0
    assert boto3.client("s3").list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert t.job()["stats"]["cancelled"] == 1 and "activeRunId" not in t.job()


def test_a_fault_is_retried_and_on_the_last_receive_the_run_is_marked_failed(stripe, queue, monkeypatch):
    stripe.data = {"customers": make_records("cus", 10), "charges": make_records("ch", 5)}
    t = Tenant()
    run_id = t.new_run()
    from handlers.jobs import backup

    def s3_down(*args, **kwargs):
        raise RuntimeError("S3 is unavailable")

    monkeypatch.setattr(backup, "stored_sha256", s3_down)
    response = deliver(t.message(run_id), receives=1)
    assert len(response["batchItemFailures"]) == 1
    run = t.run(run_id)
    assert run["status"] == "running" and run["lease"]["expiresAt"] == 0   # a retry may proceed at once
    for receive in (2, 3, 4):
        assert len(deliver(t.message(run_id), receives=receive)["batchItemFailures"]) == 1
        assert t.run(run_id)["status"] == "running"
    response = deliver(t.message(run_id), receives=5)
    assert len(response["batchItemFailures"]) == 1                        # on to the dead-letter queue
    run = t.run(run_id)
    assert run["status"] == "failed" and "failed repeatedly" in run["error"]
    assert "activeRunId" not in t.job() and len(sent_emails()) == 1
    # a copy of the message arriving later finds the run finished
    assert deliver(t.message(run_id), receives=1) == OK


def test_the_storage_limit_stops_the_run_with_a_clear_error(stripe, queue):
    stripe.data = {"customers": make_records("cus", 500), "charges": make_records("ch", 5)}
    t = Tenant(storage=5 * 1024 ** 3 - 2000)       # the free plan's 5 GB, all but 2000 bytes
    run_id = t.new_run()
    assert deliver(t.message(run_id)) == OK
    run = t.run(run_id)
    assert run["status"] == "failed" and "storage limit" in run["error"] and "5 GB" in run["error"]
    entries = {e["name"]: e for e in run["endpoints"]}
    assert entries["customers"]["status"] == "failed" and "storage limit" in entries["customers"]["error"]
    assert boto3.client("s3").list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


def test_an_endpoint_the_engine_cannot_resume_is_walked_again_skipping_uploaded_pages(stripe, queue, monkeypatch):
    """The fallback for child endpoints, folder walks...: no engine state in the checkpoint."""
    stripe.data = {"customers": make_records("cus", 4000, blob=2300), "charges": make_records("ch", 3)}
    t = Tenant()
    run_id = t.new_run()
    from handlers.jobs import backup
    from handlers.shared.connectors.engine import Connector

    class Unresumable(Connector):
        def pages(self, name, resume=None):
            assert resume is None
            for page in super().pages(name):
                self.resume_state = None
                yield page

    monkeypatch.setattr(backup, "make_connector",
                        lambda platform, settings, credentials, refreshed: Unresumable(
                            platform, settings, credentials, on_credentials_refreshed=refreshed))
    assert deliver(t.message(run_id), context=Context(pages=30)) == OK
    checkpoint = t.run(run_id)["checkpoint"]
    assert checkpoint["parts"] and checkpoint["cursor"]["state"] is None and checkpoint["cursor"]["pages"] > 0
    [message] = follow_ups(queue)
    assert deliver(message) == OK
    run = t.run(run_id)
    assert run["status"] == "completed"
    assert object_lines(t.key(run_id, "customers"))[0] == stripe.data["customers"]
    assert run["records"] == 4003


def test_a_worker_whose_lease_was_taken_over_stops_without_touching_the_run(stripe, queue):
    stripe.data = {"customers": make_records("cus", 2000), "charges": make_records("ch", 3)}
    t = Tenant()
    run_id = t.new_run()

    def take_over(name, n):
        if n == 2:      # this worker stalled past its lease; another delivery took the run
            table("runs").update_item(Key={"accountId": t.account_id, "runId": run_id},
                                      UpdateExpression="SET lease = :l",
                                      ExpressionAttributeValues={":l": {"owner": "someone-else",
                                                                        "expiresAt": clock.epoch() + 300}})

    stripe.on_page = take_over
    assert deliver(t.message(run_id)) == OK
    run = t.run(run_id)
    assert run["status"] == "running" and run["lease"]["owner"] == "someone-else"
    assert boto3.client("s3").list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert "activeRunId" in t.job()


def test_a_fault_after_a_resume_keeps_the_checkpoint_and_the_retry_resumes(stripe, queue, monkeypatch):
    stripe.data = {"customers": make_records("cus", 4000, blob=2300), "charges": make_records("ch", 3)}
    t = Tenant()
    run_id = t.new_run()
    assert deliver(t.message(run_id), context=Context(pages=30)) == OK
    checkpoint = t.run(run_id)["checkpoint"]
    assert checkpoint["parts"]
    [message] = follow_ups(queue)
    from handlers.jobs import backup
    real = backup.cancel_requested
    calls = {"n": 0}

    def flaky(run):     # DynamoDB fails a few pages into the resumed endpoint
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("DynamoDB is unavailable")
        return real(run)

    monkeypatch.setattr(backup, "cancel_requested", flaky)
    assert len(deliver(message, receives=1)["batchItemFailures"]) == 1
    after = t.run(run_id)
    assert after["status"] == "running" and after["checkpoint"]["uploadId"] == checkpoint["uploadId"]
    assert [u["UploadId"] for u in boto3.client("s3").list_multipart_uploads(Bucket=BUCKET)["Uploads"]] \
        == [checkpoint["uploadId"]]                 # kept for the retry to resume
    assert deliver(message, receives=2) == OK
    run = t.run(run_id)
    assert run["status"] == "completed"
    assert object_lines(t.key(run_id, "customers"))[0] == stripe.data["customers"]
    assert object_lines(t.key(run_id, "charges"))[0] == stripe.data["charges"]


class Killed(BaseException):
    """The process dies here: nothing after this point runs (no handler, no cleanup)."""


def test_a_worker_killed_mid_run_resumes_after_its_last_uploaded_part_without_duplicates(stripe, queue, monkeypatch):
    # ~3 KB of incompressible text per record, 100 per page: a 5 MiB part every ~18 pages
    stripe.data = {"customers": make_records("cus", 4000, blob=2300), "charges": make_records("ch", 3)}
    t = Tenant()
    run_id = t.new_run()
    from handlers.jobs import backup
    real_next = backup.Prefetch.next
    calls = {"n": 0}

    def dies_on_page_30(self):
        calls["n"] += 1
        if calls["n"] == 30:
            raise Killed()
        return real_next(self)

    monkeypatch.setattr(backup.Prefetch, "next", dies_on_page_30)
    with pytest.raises(Killed):
        deliver(t.message(run_id))
    monkeypatch.setattr(backup.Prefetch, "next", real_next)
    run = t.run(run_id)
    checkpoint = run["checkpoint"]
    assert run["status"] == "running" and checkpoint["endpoint"] == "customers"
    assert len(checkpoint["parts"]) == 1 and checkpoint["records"] == checkpoint["cursor"]["pages"] * 100
    assert follow_ups(queue) == []                     # a killed worker sends nothing
    # the scheduler leaves it alone until the lease, then SQS's redelivery, are overdue
    assert int(run["deadline"]) == int(run["lease"]["expiresAt"]) + 6000
    # SQS redelivers the original message; while the dead worker's lease lasts it waits
    before = dict(stripe.pages_served)
    assert deliver(t.message(run_id), receives=2) == OK
    assert t.run(run_id)["status"] == "running" and stripe.pages_served == before
    table("runs").update_item(Key={"accountId": t.account_id, "runId": run_id},
                              UpdateExpression="SET lease.expiresAt = :e",
                              ExpressionAttributeValues={":e": clock.epoch() - 1})
    assert deliver(t.message(run_id), receives=3) == OK
    run = t.run(run_id)
    assert run["status"] == "completed", run.get("error")
    assert "activeState" not in run                    # out of the scheduler's stuck-run index
    lines, raw = object_lines(t.key(run_id, "customers"))
    assert lines == stripe.data["customers"]           # nothing lost, nothing twice
    assert file_row(t, t.key(run_id, "customers"))["records"] == 4000
    assert file_row(t, t.key(run_id, "customers"))["sha256"] == hashlib.sha256(raw).hexdigest()
    assert object_lines(t.key(run_id, "charges"))[0] == stripe.data["charges"]
    assert run["records"] == 4003
    # the second worker continued after the uploaded part instead of starting over
    pages = len(stripe.data["customers"]) // 100
    assert stripe.pages_served["customers"] - before["customers"] == pages - checkpoint["cursor"]["pages"]
    assert boto3.client("s3").list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_on_the_last_receive_a_kept_upload_is_aborted_with_the_run_failed(stripe, queue, monkeypatch):
    stripe.data = {"customers": make_records("cus", 3000, blob=2300), "charges": make_records("ch", 3)}
    t = Tenant()
    run_id = t.new_run()
    from handlers.jobs import backup
    real_next = backup.Prefetch.next
    calls = {"n": 0}

    def breaks_after_a_part(self):
        calls["n"] += 1
        if calls["n"] >= 25:
            raise RuntimeError("the platform connection broke")
        return real_next(self)

    monkeypatch.setattr(backup.Prefetch, "next", breaks_after_a_part)
    assert len(deliver(t.message(run_id), receives=4)["batchItemFailures"]) == 1
    kept = t.run(run_id)["checkpoint"]["uploadId"]
    assert [u["UploadId"] for u in boto3.client("s3").list_multipart_uploads(Bucket=BUCKET)["Uploads"]] == [kept]
    assert len(deliver(t.message(run_id), receives=5)["batchItemFailures"]) == 1
    run = t.run(run_id)
    assert run["status"] == "failed" and "failed repeatedly" in run["error"]
    assert boto3.client("s3").list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_a_message_failing_every_receive_ends_in_the_dead_letter_queue_with_its_run_failed(stripe, monkeypatch):
    """Through real SQS semantics (moto): a queue with a 1 s visibility timeout and a redrive
    policy of 3 receives, polled by offline mode's event source mapping, as AWS would."""
    from offline.model import Queue, QueueMapping
    from offline.runtime import Invocation
    from offline.triggers import QueuePoller

    sqs = boto3.client("sqs")
    dlq_url = sqs.create_queue(QueueName="jobs-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName="jobs", Attributes={
        "VisibilityTimeout": "1",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    monkeypatch.setenv("JOB_QUEUE_URL", url)
    monkeypatch.setenv("MAX_RECEIVES", "3")
    stripe.data = {"customers": make_records("cus", 10), "charges": make_records("ch", 5)}
    t = Tenant()
    run_id = t.new_run()
    from handlers.jobs import backup, worker

    def s3_down(*args, **kwargs):
        raise RuntimeError("S3 is unavailable")

    monkeypatch.setattr(backup, "stored_sha256", s3_down)

    def invoke(function: str, event: dict) -> Invocation:
        return Invocation(ok=True, result=worker.handler(event, Context()))

    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(t.message(run_id)))
    poller = QueuePoller(QueueMapping(queue="jobs", function="worker", batch_size=1, report_failures=True),
                         Queue(name="jobs", arn=arn, url=url, visibility_timeout=1, dead_letter="jobs-dlq",
                               max_receives=3), url, sqs, invoke, log=lambda line: None)
    poller.start()
    try:
        landed = []
        for _ in range(120):
            landed = sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=0).get("Messages", [])
            if landed:
                break
            time.sleep(0.25)
    finally:
        poller.request_stop()
        poller.stop()
    assert landed and json.loads(landed[0]["Body"])["runId"] == run_id
    run = t.run(run_id)
    assert run["status"] == "failed" and "failed repeatedly" in run["error"]
    assert "lease" not in run and "activeRunId" not in t.job()
    assert [m["subject"] for m in sent_emails()] == ["ListBackup: backup of Stripe live failed"]
    assert boto3.client("s3").list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
