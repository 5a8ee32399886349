"""Faults injected into real backups through offline mode (issue 11, "Faults, injected").

One offline mode for the module, started with ``--faults PLAN.json`` (``offline/faults.py``):
each test writes the rules it wants into the plan (the function processes re-read it) and
backs up its own account's Stripe data from :class:`FakeStripe` (which plays the 500 and
429 storms). The plan's settings compress time so a retry takes seconds, not an hour: the
job queue's visibility timeout is 10 s (and the worker's lease 2 s, less than it, as on AWS
where the lease is 300 s and the visibility 5,400 s), the index queue's 3 s, and the
scheduler runs 60 times faster (a tick every 5 s) to fail runs whose worker vanished.

Under each fault, :func:`audit` checks what a customer and an operator would rely on:

- every run reaches a terminal state;
- every stored object holds exactly the platform's records, none duplicated or lost, and
  every endpoint a run reports completed has its object (a failed one has none);
- every stored object is indexed exactly once: one current files row per object, with its
  size, checksum and record count, and no row for an object that does not exist;
- usage equals the truth recomputed from the data: the account's ``storageBytes`` (and
  ``GET /account/usage``) is the sum of its current objects' sizes, each source's analytics
  ``storageBytes`` the sum of its objects, the analytics counters (runs by status, records,
  bytes; per account and per source) and the job's stats match the runs table;
- nothing sits in a dead-letter queue except what the fault made undeliverable, each with
  its run failed and the reason recorded.

``-s`` prints the figures at the end; ``FAULTS_LOG=<file>`` keeps offline mode's log.
The last tests check the plan machinery itself, without offline mode.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import random
import secrets
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from offline import faults
from tests.e2e.fake_platforms import FakeStripe
from tests.e2e.harness import OfflineServer
from tests.e2e.identity import register

STAGE = "dev"
WORKER = f"listbackup-jobs-{STAGE}-worker"
INDEXER = f"listbackup-core-{STAGE}-fileIndexer"
JOBS_API = f"listbackup-jobs-{STAGE}-api"
DATA_API = f"listbackup-data-{STAGE}-api"
BUCKET = f"listbackup-data-{STAGE}"
TABLE = f"listbackup-{STAGE}-{{}}"
QUEUES = {kind: f"listbackup-{kind}-queue-{STAGE}" for kind in ("job", "data", "index")}
TERMINAL = ("completed", "partial", "failed", "cancelled")
FAILED_REPEATEDLY = "The backup failed repeatedly"
JOB_VISIBILITY = 10

SETTINGS = {
    "queues": {QUEUES["job"]: {"visibilityTimeout": JOB_VISIBILITY},
               QUEUES["index"]: {"visibilityTimeout": 3},
               QUEUES["data"]: {"visibilityTimeout": JOB_VISIBILITY}},
    "functions": {WORKER: {"environment": {
        # a killed worker's lease lapses before SQS hands its message out again
        "LEASE_SECONDS": "2",
        # past this, the scheduler fails a run whose worker vanished (longer than the
        # longest platform backoff, so a slow live run is never taken for a dead one)
        "RUN_DEADLINE_GRACE_SECONDS": "60"}}},
}


# =========================================================================== data

def customers(count: int, seed: int, blob: int = 0) -> list[dict]:
    """Stripe customers; ``blob`` bytes of incompressible metadata each (for big objects)."""
    rng = random.Random(seed)
    out = []
    for n in range(count):
        record: dict[str, Any] = {"id": f"cus_{seed:04d}{n:06d}", "object": "customer",
                                  "email": f"c{n}-{seed}@example.com", "name": f"Customer {n}",
                                  "created": 1_700_000_000 + n, "livemode": False}
        if blob:
            record["metadata"] = {"notes": base64.b64encode(rng.randbytes(blob)).decode()}
        out.append(record)
    return out


def products(count: int, seed: int) -> list[dict]:
    return [{"id": f"prod_{seed:04d}{n:05d}", "object": "product", "name": f"Product {n}",
             "active": n % 3 != 0} for n in range(count)]


# =========================================================================== fixtures

@pytest.fixture(scope="module")
def platform():
    with FakeStripe() as fake:
        yield fake


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    path = tmp_path_factory.mktemp("faults") / "plan.json"
    faults.write(path, {"seed": 11, "settings": SETTINGS, "faults": []})
    return path


@pytest.fixture(scope="module")
def server(platform, plan):
    with OfflineServer("--platform-url", f"stripe={platform.url}", "--faults", str(plan),
                       "--schedule-speed", "60") as running:
        running.dead_letters = []      # every message drained from a DLQ, with its queue
        yield running
        if os.environ.get("FAULTS_LOG"):       # to read what happened after the fact
            Path(os.environ["FAULTS_LOG"]).write_text(running.log_text())


@pytest.fixture(scope="module")
def figures(plan):
    """What the module did, printed at its end (for docs/reliability.md)."""
    rows: list[dict] = []
    yield rows
    by_kind = Counter(entry["fault"] for entry in faults.injected(plan))
    print("\n\nfault-injection figures")
    for row in rows:
        print(f"  {row['scenario']}: account {row['account']}: runs {row['runs']}, objects "
              f"{row['objects']}, records {row['records']}, faults injected {row['faults']}"
              f"{', platform storm answers ' + str(row['storms']) if row['storms'] else ''}, "
              f"dead letters {row['deadLetters']}")
    print(f"  faults injected in all: {sum(by_kind.values())} ({dict(by_kind)}); "
          f"audits passed: {len(rows)}")


@pytest.fixture
def tally(figures, plan):
    def add(scenario: str, found: dict, plan_path, rule_ids: list[str], storms: int = 0) -> None:
        figures.append({"scenario": scenario, "account": next(iter(found["runs"].values()))["accountId"],
                        "runs": Counter(r["status"] for r in found["runs"].values()),
                        "objects": len(found["objects"]),
                        "records": sum(f["records"] for f in found["objects"].values()),
                        "faults": sum(len(injected(plan_path, rule)) for rule in rule_ids),
                        "storms": storms, "deadLetters": len(found["deadLetters"])})

    return add


@pytest.fixture
def inject(plan, server, platform):
    """``inject(*rules)`` switches the running offline mode to these fault rules; they are
    switched off (and the platform calmed) when the test ends."""

    def switch(*rules: dict) -> None:
        faults.write(plan, {"seed": 11, "settings": SETTINGS, "faults": list(rules)})

    yield switch
    switch()
    platform.calm()


# =========================================================================== a backup

class Tenant:
    """A registered user with a Stripe source on the fake platform and a job of some of
    its endpoints."""

    def __init__(self, server: OfflineServer, platform: FakeStripe, datasets: dict[str, list[dict]],
                 endpoints: list[str] | None = None):
        self.server, self.platform = server, platform
        self.key = f"sk_test_{secrets.token_hex(12)}"
        platform.add_account(self.key, datasets)
        self.user = register(server)
        self.account_id = self.user.account_id
        source = server.post("/sources", {"name": "Stripe", "type": "stripe",
                                          "credentials": {"api_key": self.key}}, token=self.user.access)
        assert source.status == 201, source
        self.source_id = source.json["data"]["sourceId"]
        self.endpoints = endpoints or sorted(datasets)
        job = server.post("/jobs", {"sourceId": self.source_id, "name": "Faulty backup",
                                    "schedule": {"frequency": "manual"}, "endpoints": self.endpoints},
                          token=self.user.access)
        assert job.status == 201, job
        self.job_id = job.json["data"]["jobId"]

    def start(self):
        return self.server.post(f"/jobs/{self.job_id}/run", token=self.user.access)

    def run(self) -> str:
        started = self.start()
        assert started.status == 202, started
        return started.json["data"]["runId"]

    def wait(self, run_id: str, timeout: float = 120) -> dict:
        def finished():
            run = self.server.get(f"/runs/{run_id}", token=self.user.access).json["data"]
            return run if run["status"] in TERMINAL else None

        return self.server.eventually(finished, timeout=timeout, interval=0.5)


# =========================================================================== the audit

def _query(server: OfflineServer, table: str, account_id: str) -> list[dict]:
    from boto3.dynamodb.types import TypeDeserializer

    plain = TypeDeserializer()
    dynamodb = server.aws("dynamodb")
    items, start = [], None
    while True:
        kwargs = {"TableName": TABLE.format(table), "ConsistentRead": True,
                  "KeyConditionExpression": "accountId = :a",
                  "ExpressionAttributeValues": {":a": {"S": account_id}}}
        if start:
            kwargs["ExclusiveStartKey"] = start
        reply = dynamodb.query(**kwargs)
        items += [{k: plain.deserialize(v) for k, v in item.items()} for item in reply["Items"]]
        start = reply.get("LastEvaluatedKey")
        if not start:
            return items


def _objects(server: OfflineServer, account_id: str) -> dict[str, bytes]:
    s3 = server.aws("s3")
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"data/{account_id}/"):
        for entry in page.get("Contents", []):
            out[entry["Key"]] = s3.get_object(Bucket=BUCKET, Key=entry["Key"])["Body"].read()
    return out


def drain_dead_letters(server: OfflineServer) -> list[tuple[str, dict]]:
    """Take every message out of the three dead-letter queues (kept on ``server``)."""
    sqs = server.aws("sqs")
    for kind, name in QUEUES.items():
        url = sqs.get_queue_url(QueueName=f"{name}-dlq")["QueueUrl"]
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                           WaitTimeSeconds=0).get("Messages", [])
            if not messages:
                break
            for message in messages:
                server.dead_letters.append((kind, json.loads(message["Body"])))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return server.dead_letters


def _dead_letters_of(server: OfflineServer, account_id: str) -> list[tuple[str, dict]]:
    out = []
    for kind, body in drain_dead_letters(server):
        if kind == "index":
            keys = [(r.get("s3") or {}).get("object", {}).get("key", "") for r in body.get("Records") or []]
            if any(f"data/{account_id}/" in key for key in keys):
                out.append((kind, body))
        elif body.get("accountId") == account_id:
            out.append((kind, body))
    return out


def _records(body: bytes) -> list[dict]:
    return [json.loads(line) for line in gzip.decompress(body).splitlines() if line.strip()]


def audit(tenant: Tenant, *, timeout: float = 60) -> dict:
    """Check the account against the truth (see the module doc); answers what it found:
    runs, objects, dead letters. Waits (up to ``timeout``) for what is asynchronous: the
    indexer, and a message on its way to a dead-letter queue."""
    server, account_id = tenant.server, tenant.account_id
    runs = {r["runId"]: r for r in _query(server, "runs", account_id)}
    assert all(r["status"] in TERMINAL for r in runs.values()), \
        {r["runId"]: r["status"] for r in runs.values()}

    # ---- the stored data: exactly the platform's records, and only for completed endpoints
    objects = _objects(server, account_id)
    expected_keys = set()
    for run in runs.values():
        for endpoint in run.get("endpoints") or []:
            if endpoint.get("status") == "completed":
                expected_keys.add(f"data/{account_id}/{run['sourceId']}/{run['runId']}/"
                                  f"{endpoint['name']}.jsonl.gz")
                assert run["status"] in ("completed", "partial"), run
    assert set(objects) == expected_keys, (sorted(objects), sorted(expected_keys))
    contents = {}
    for key, body in objects.items():
        endpoint = key.rsplit("/", 1)[1][: -len(".jsonl.gz")]
        records = _records(body)
        ids = [r["id"] for r in records]
        duplicated = [i for i, n in Counter(ids).items() if n > 1]
        assert not duplicated, f"{key}: {len(duplicated)} record(s) stored twice: {duplicated[:5]}"
        assert records == tenant.platform.data(tenant.key, endpoint), \
            f"{key}: {len(records)} records stored, not the platform's"
        run = runs[key.split("/")[3]]
        [entry] = [e for e in run["endpoints"] if e["name"] == endpoint]
        assert int(entry["records"]) == len(records), (entry, len(records))
        contents[key] = {"size": len(body), "sha256": hashlib.sha256(body).hexdigest(),
                         "records": len(records), "sourceId": key.split("/")[2]}

    # ---- the index: one current row per object, with its facts; nothing else counted
    def indexed():
        rows = _query(server, "files", account_id)
        if any("key" not in r for r in rows):     # the worker's half, the indexer's to come
            return None
        current = {r["key"]: r for r in rows if not r.get("deleted")}
        if set(current) != set(objects):
            return None
        for key, facts in contents.items():
            row = current[key]
            if (int(row.get("size", -1)), row.get("sha256"), int(row.get("records", -1)),
                    int(row.get("countedBytes", -1))) != (facts["size"], facts["sha256"],
                                                          facts["records"], facts["size"]):
                return None
        if any(int(r.get("countedBytes") or 0) for r in rows if r.get("deleted")):
            return None
        return [rows]

    try:
        [rows] = server.eventually(indexed, timeout=timeout, interval=0.5)
    except AssertionError:
        shown = ("key", "size", "sha256", "records", "countedBytes", "deleted")
        rows = [{k: r.get(k) for k in shown} for r in _query(server, "files", account_id)]
        raise AssertionError(f"the index does not match the objects:\nobjects {contents}\nrows {rows}")
    assert len({r["fileId"] for r in rows}) == len(rows)

    # ---- usage: storage bytes, per account and per source
    stored = sum(f["size"] for f in contents.values())
    account = _query(server, "accounts", account_id)[0]
    assert int(account.get("storageBytes") or 0) == stored, (account.get("storageBytes"), stored)
    usage = server.get("/account/usage", token=tenant.user.access)
    assert usage.status == 200 and usage.json["data"]["storageBytes"]["used"] == stored, usage
    counters = {c["counter"]: c for c in _query(server, "analytics", account_id)}
    by_source = Counter()
    for facts in contents.values():
        by_source[facts["sourceId"]] += facts["size"]
    for source_id in {r["sourceId"] for r in runs.values()} | set(by_source):
        row = counters.get(f"source#{source_id}", {})
        assert int(row.get("storageBytes") or 0) == by_source[source_id], (source_id, row, by_source)

    # ---- usage: run counters recomputed from the runs table
    finished = [r for r in runs.values() if r["status"] in TERMINAL]
    truth = {"runs": len(finished), **{s: sum(1 for r in finished if r["status"] == s) for s in TERMINAL},
             "records": sum(int(r.get("records") or 0) for r in finished),
             "bytes": sum(int(r.get("bytes") or 0) for r in finished)}
    total = counters.get("total", {})
    assert {k: int(total.get(k) or 0) for k in truth} == truth, (total, truth)
    for source_id in {r["sourceId"] for r in finished}:
        mine = [r for r in finished if r["sourceId"] == source_id]
        row = counters[f"source#{source_id}"]
        assert int(row.get("runs") or 0) == len(mine), (row, len(mine))
        assert int(row.get("records") or 0) == sum(int(r.get("records") or 0) for r in mine)
    days = [c for name, c in counters.items() if name.startswith("day#")]
    assert sum(int(d.get("runs") or 0) for d in days) == len(finished)
    job = tenant.server.get(f"/jobs/{tenant.job_id}", token=tenant.user.access).json["data"]
    assert job.get("activeRunId") in (None, ""), job
    stats = job.get("stats") or {}
    mine = [r for r in finished if r.get("jobId") == tenant.job_id]
    assert int(stats.get("runs") or 0) == len(mine), (stats, [r["status"] for r in mine])
    for status in TERMINAL:
        assert int(stats.get(status) or 0) == sum(1 for r in mine if r["status"] == status), (status, stats)

    # ---- dead letters: only runs the fault made undeliverable, each failed with its reason
    gave_up = {r["runId"] for r in runs.values()
               if r["status"] == "failed" and str(r.get("error") or "").startswith(FAILED_REPEATEDLY)}

    def dead():
        letters = _dead_letters_of(server, account_id)
        found = {body.get("runId") for kind, body in letters if kind == "job"}
        return letters if gave_up <= found else None

    if gave_up:       # on its way: moto moves it at the receive after the last one
        letters = server.eventually(dead, timeout=timeout, interval=1.0)
    else:
        letters = _dead_letters_of(server, account_id)
    for kind, body in letters:
        assert kind == "job", f"a {kind} message was dead-lettered: {body}"
        run = runs[body["runId"]]
        assert run["status"] == "failed" and run.get("error"), run
    return {"runs": runs, "objects": contents, "deadLetters": letters}


def injected(plan, rule_id: str) -> list[dict]:
    return [entry for entry in faults.injected(plan) if entry["rule"] == rule_id]


# =========================================================================== scenarios

def test_a_backup_without_faults_passes_the_audit(
        server, platform, plan, inject, tally):
    """The control: what the audit expects holds when nothing goes wrong."""
    tenant = Tenant(server, platform, {"customers": customers(230, 1), "products": products(40, 1)})
    run = tenant.wait(tenant.run())
    assert run["status"] == "completed" and run["records"] == 270, run
    found = audit(tenant)
    assert len(found["objects"]) == 2 and not found["deadLetters"]
    tally("no fault", found, plan, [])


def test_dynamodb_throttling_is_retried_or_fails_the_run_with_its_reason(
        server, platform, plan, inject, tally):
    # A: throttled now and then, in the worker and in the indexer: SQS retries absorb it
    a = Tenant(server, platform, {"customers": customers(230, 2), "products": products(40, 2)})
    # B: its runs table refuses every single-item write: the run can never start
    b = Tenant(server, platform, {"customers": customers(30, 3)})
    # C: the transaction that ends the run is throttled once: nothing half-counted
    c = Tenant(server, platform, {"customers": customers(120, 4)})
    rules = [
        {"id": "ddb-a-worker", "function": WORKER, "service": "dynamodb", "match": a.account_id,
         "error": "ProvisionedThroughputExceededException", "every": 4, "times": 3},
        {"id": "ddb-a-indexer", "function": INDEXER, "service": "dynamodb", "match": a.account_id,
         "error": "ThrottlingException", "every": 2, "times": 3},
        {"id": "ddb-b-runs", "function": WORKER, "service": "dynamodb", "operation": "UpdateItem",
         "match": [b.account_id, TABLE.format("runs")], "error": "ProvisionedThroughputExceededException"},
        {"id": "ddb-c-end", "function": WORKER, "service": "dynamodb", "operation": "TransactWriteItems",
         "match": c.account_id, "error": "ThrottlingException", "times": 1},
    ]
    inject(*rules)
    run_a, run_b, run_c = a.run(), b.run(), c.run()
    done_a, done_c = a.wait(run_a, timeout=150), c.wait(run_c, timeout=150)
    assert done_a["status"] == "completed" and done_a["records"] == 270, done_a
    assert done_c["status"] == "completed" and done_c["records"] == 120, done_c
    done_b = b.wait(run_b, timeout=150)
    assert done_b["status"] == "failed", done_b
    assert done_b["error"] == f"{FAILED_REPEATEDLY} (ProvisionedThroughputExceededException)", done_b
    for tenant, rule_ids in ((a, ["ddb-a-worker", "ddb-a-indexer"]), (b, ["ddb-b-runs"]), (c, ["ddb-c-end"])):
        found = audit(tenant)
        tally("DynamoDB throttling", found, plan, rule_ids)
        assert all(injected(plan, rule) for rule in rule_ids), rule_ids
        if tenant is b:      # the one message the fault made undeliverable, its run failed
            assert [body["runId"] for _, body in found["deadLetters"]] == [run_b]
        else:
            assert found["deadLetters"] == []
    # B's job is free again: its next run (without the fault) completes
    inject()
    assert b.wait(b.run())["status"] == "completed"
    audit(b)


def test_s3_slowdown_is_retried_without_duplicates(
        server, platform, plan, inject, tally):
    tenant = Tenant(server, platform, {"customers": customers(230, 5), "products": products(40, 5)})
    inject({"id": "s3-worker", "function": WORKER, "service": "s3", "match": tenant.account_id,
            "operation": ["CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "GetObject"],
            "error": "SlowDown", "every": 2, "times": 3},
           {"id": "s3-indexer", "function": INDEXER, "service": "s3", "operation": "HeadObject",
            "match": tenant.account_id, "error": "SlowDown", "every": 2, "times": 2})
    run = tenant.wait(tenant.run(), timeout=150)
    assert run["status"] == "completed" and run["records"] == 270, run
    found = audit(tenant)
    assert not found["deadLetters"]
    assert len(injected(plan, "s3-worker")) == 3 and len(injected(plan, "s3-indexer")) == 2
    tally("S3 503 SlowDown", found, plan, ["s3-worker", "s3-indexer"])


def test_sqs_send_failures_end_the_request_clearly_and_leave_nothing_half_done(
        server, platform, plan, inject, tally):
    tenant = Tenant(server, platform, {"customers": customers(120, 6)})
    inject({"id": "sqs-run", "function": JOBS_API, "service": "sqs", "operation": "SendMessage",
            "match": tenant.account_id, "error": "ServiceUnavailable", "times": 1},
           {"id": "sqs-export", "function": DATA_API, "service": "sqs", "operation": "SendMessage",
            "match": tenant.account_id, "error": "ServiceUnavailable", "times": 1})
    refused = tenant.start()
    assert refused.status == 503 and refused.json["code"] == "unavailable", refused
    run = tenant.wait(tenant.run())
    assert run["status"] == "completed" and run["records"] == 120, run
    found = audit(tenant)
    statuses = sorted((r["status"], r.get("error")) for r in found["runs"].values())
    assert statuses == [("completed", None), ("failed", "The backup could not be queued")], statuses
    # an export request the queue refused answers 503; the next one is exported
    body = {"runId": run["runId"]}
    refused = server.post("/data/export", body, token=tenant.user.access)
    assert refused.status == 503 and refused.json["code"] == "unavailable", refused
    export = server.post("/data/export", body, token=tenant.user.access)
    assert export.status == 202, export
    export_id = export.json["data"]["exportId"]

    def exported():
        reply = server.get(f"/data/exports/{export_id}", token=tenant.user.access).json["data"]
        return reply if reply["status"] not in ("pending", "running") else None

    assert server.eventually(exported, timeout=60, interval=0.5)["status"] == "completed"
    exports = _query(server, "exports", tenant.account_id)
    assert sorted(e["status"] for e in exports) == ["completed", "failed"], exports
    assert all(e.get("error") for e in exports if e["status"] == "failed")
    tally("SQS send failure", found, plan, ["sqs-run", "sqs-export"])


def test_platform_500_and_429_storms_are_ridden_out_or_fail_the_endpoint_with_its_reason(
        server, platform, plan, inject, tally):
    tenant = Tenant(server, platform, {"customers": customers(430, 7), "products": products(40, 7)})
    key = tenant.key
    platform.storm(500, 3, resource="customers", api_key=key, skip=1)
    platform.storm(429, 3, retry_after="1", resource="customers", api_key=key, skip=1)
    # longer than the engine's retries (5): the endpoint gives up, the rest of the run goes on
    platform.storm(429, 6, retry_after="0", resource="products", api_key=key)
    run = tenant.wait(tenant.run(), timeout=150)
    assert run["status"] == "partial", run
    endpoints = {e["name"]: e for e in run["endpoints"]}
    assert endpoints["customers"]["status"] == "completed" and endpoints["customers"]["records"] == 430
    assert endpoints["products"]["status"] == "failed"
    assert endpoints["products"]["error"] == "Stripe answered HTTP 429 after 6 attempts"
    assert "products" in run["error"]
    found = audit(tenant)
    assert not found["deadLetters"]
    answers = platform.answers(key, "customers")
    assert [a.status for a in answers].count(500) == 3 and [a.status for a in answers].count(429) == 3
    for before, after in zip(answers, answers[1:]):
        if before.status == 429:      # Retry-After: 1 was honoured
            assert after.at - before.at >= 0.95, (before, after)
    assert len(platform.answers(key, "products")) == 6
    tally("platform 500/429 storms", found, plan, [], storms=12)


def test_a_function_killed_mid_invocation_loses_and_duplicates_nothing(
        server, platform, plan, inject, tally):
    # big enough for two parts: the worker dies uploading the second, after the first part
    # and its checkpoint are saved; the redelivered message resumes after the first part
    big = Tenant(server, platform, {"customers": customers(5000, 8, blob=1400)})
    # small: the worker dies completing the upload (nothing saved); the retry starts over
    small = Tenant(server, platform, {"customers": customers(150, 9), "products": products(30, 9)})
    inject({"id": "kill-worker-part", "function": WORKER, "service": "s3", "operation": "UploadPart",
            "match": big.account_id, "action": "kill", "after": 1, "times": 1},
           {"id": "kill-worker-complete", "function": WORKER, "service": "s3",
            "operation": "CompleteMultipartUpload", "match": small.account_id, "action": "kill",
            "after": 1, "times": 1},
           {"id": "kill-indexer", "function": INDEXER, "service": "dynamodb",
            "operation": "TransactWriteItems", "match": big.account_id, "action": "kill", "times": 1})
    run_big, run_small = big.run(), small.run()
    done_big, done_small = big.wait(run_big, timeout=180), small.wait(run_small, timeout=180)
    assert done_big["status"] == "completed" and done_big["records"] == 5000, done_big
    assert done_small["status"] == "completed" and done_small["records"] == 180, done_small
    for tenant, rules in ((big, ["kill-worker-part", "kill-indexer"]), (small, ["kill-worker-complete"])):
        found = audit(tenant)
        assert not found["deadLetters"]
        tally("function killed mid-invocation", found, plan, rules)
        for rule in rules:
            assert len(injected(plan, rule)) == 1, rule
    # the big object was stored in parts, one of them uploaded before the kill
    [(key, facts)] = [(k, v) for k, v in _objects_facts(big).items()]
    assert facts["size"] > 5 * 1024 * 1024
    exits = [line for line in server.log_text().splitlines() if "the environment exited" in line]
    assert any(WORKER in line for line in exits) and any(INDEXER in line for line in exits), exits


def _objects_facts(tenant: Tenant) -> dict[str, dict]:
    return {key: {"size": len(body)} for key, body in _objects(tenant.server, tenant.account_id).items()}


# =========================================================================== the machinery itself

def _hook_module(monkeypatch, tmp_path, plan: dict):
    """A fresh copy of offline/faults_hook.py (as a function process loads it), reading
    ``plan`` from a file, with its own state folder."""
    import importlib.util

    path = tmp_path / "plan.json"
    faults.write(path, plan)
    faults.reset_state(path)
    monkeypatch.setenv(faults.PLAN_ENV, str(path))
    monkeypatch.setenv(faults.STATE_ENV, str(faults.state_folder(path)))
    spec = importlib.util.spec_from_file_location("faults_hook_under_test", faults.HOOK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, path


def test_rules_fail_the_calls_they_select_with_the_services_own_errors(monkeypatch, tmp_path):
    import boto3
    from botocore.exceptions import ClientError
    from moto import mock_aws

    hook, path = _hook_module(monkeypatch, tmp_path, {"faults": [
        {"id": "reads", "service": "dynamodb", "operation": "GetItem", "match": "acc_one",
         "error": "ProvisionedThroughputExceededException", "every": 2, "times": 2},
        {"id": "slow", "service": "s3", "operation": "PutObject", "error": "SlowDown", "after": 1}]})
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        dynamodb = hook.instrument(boto3.client("dynamodb"))
        dynamodb.create_table(TableName="t", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                              AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                              BillingMode="PAY_PER_REQUEST")
        outcomes = []
        for key in ("acc_one", "acc_one", "acc_two", "acc_one", "acc_one", "acc_one", "acc_one"):
            try:
                dynamodb.get_item(TableName="t", Key={"k": {"S": key}})
                outcomes.append("ok")
            except ClientError as error:
                assert isinstance(error, dynamodb.exceptions.ProvisionedThroughputExceededException)
                assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
                outcomes.append(error.response["Error"]["Code"])
        # every 2nd call about acc_one, twice in all; acc_two's call is not counted
        assert outcomes == ["ok", "ProvisionedThroughputExceededException", "ok", "ok",
                            "ProvisionedThroughputExceededException", "ok", "ok"]
        s3 = hook.instrument(boto3.client("s3"))
        s3.create_bucket(Bucket="fault-test-bucket")
        s3.put_object(Bucket="fault-test-bucket", Key="first", Body=b"x")          # "after": 1
        with pytest.raises(ClientError) as raised:
            s3.put_object(Bucket="fault-test-bucket", Key="second", Body=b"x")
        assert raised.value.response["Error"]["Code"] == "SlowDown"
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        # the plan is re-read when it changes: no rules, no faults
        faults.write(path, {"faults": []})
        s3.put_object(Bucket="fault-test-bucket", Key="third", Body=b"x")
    log = faults.injected(path)
    assert [(e["rule"], e["operation"], e["fault"]) for e in log] == [
        ("reads", "GetItem", "ProvisionedThroughputExceededException"),
        ("reads", "GetItem", "ProvisionedThroughputExceededException"),
        ("slow", "PutObject", "SlowDown")]


def test_probabilities_are_fixed_by_the_seed_and_bounded_by_times():
    from offline import faults_hook

    rule = {"id": "p", "probability": 0.3}
    draws = [faults_hook.decide(rule, 7, n, 0) for n in range(1, 1001)]
    assert draws == [faults_hook.decide(rule, 7, n, 0) for n in range(1, 1001)]
    assert 240 < sum(draws) < 360
    assert draws != [faults_hook.decide(rule, 8, n, 0) for n in range(1, 1001)]
    assert not faults_hook.decide({"id": "t", "times": 2}, 7, 5, 2)
    assert [faults_hook.decide({"id": "e", "every": 3, "after": 2}, 0, n, 0) for n in range(1, 10)] == \
        [False, False, False, False, True, False, False, True, False]


@pytest.mark.parametrize("bad_plan, complaint", [
    ({"faults": [{"service": "dynamodb"}]}, "say which error"),
    ({"faults": [{"error": "Mystery"}]}, "unknown error 'Mystery'"),
    ({"faults": [{"error": "SlowDown", "probability": 1.5}]}, "probability"),
    ({"faults": [{"action": "kill", "error": "SlowDown"}]}, "a kill rule has no error"),
    ({"faults": [{"error": "SlowDown", "service": "dynamo"}]}, "no AWS service matches"),
    ({"faults": [{"error": "SlowDown", "every": 0}]}, "every must be a positive"),
    ({"faults": [{"error": "SlowDown", "color": "red"}]}, "unknown key(s) color"),
    ({"settings": {"queues": {"q": {"delay": 1}}}}, "may set only visibilityTimeout"),
    ({"settings": {"functions": {"f": {"environment": {"A": 1}}}}}, "maps names to strings"),
])
def test_a_plan_that_cannot_work_is_refused_with_the_reason(tmp_path, bad_plan, complaint):
    with pytest.raises(faults.PlanError) as refused:
        faults.parse(bad_plan, tmp_path / "plan.json")
    assert complaint in str(refused.value)
