"""A backup that really runs: a Stripe source on localstripe, a job limited to customers,
run over HTTP through offline mode, landing in S3 and indexed (issue 7)."""

from __future__ import annotations

import gzip
import hashlib
import json

import pytest

from handlers.shared.files import file_id_for
from tests.connectors import localstripe_server
from tests.e2e.harness import OfflineServer
from tests.e2e.identity import register

CUSTOMERS = 12


@pytest.fixture(scope="module")
def stripe():
    with localstripe_server.tenant("backup") as (url, key, client):
        ids = [client.v1.customers.create(params={"email": f"c{i}@example.com", "name": f"Customer {i}"})["id"]
               for i in range(CUSTOMERS)]
        yield url, key, ids


@pytest.fixture(scope="module")
def server(stripe):
    url, _, _ = stripe
    with OfflineServer("--platform-url", f"stripe={url}") as running:
        yield running


def test_a_manual_stripe_backup_lands_in_s3_with_exactly_the_customers(server, stripe):
    _, key, customer_ids = stripe
    user = register(server)
    source = server.post("/sources", {"name": "Stripe", "type": "stripe",
                                      "credentials": {"api_key": key}}, token=user.access)
    assert source.status == 201, source
    source_id = source.json["data"]["sourceId"]
    job = server.post("/jobs", {"sourceId": source_id, "name": "Customers",
                                "schedule": {"frequency": "manual"}, "endpoints": ["customers"]},
                      token=user.access)
    assert job.status == 201, job
    job_id = job.json["data"]["jobId"]
    started = server.post(f"/jobs/{job_id}/run", token=user.access)
    assert started.status == 202, started
    run_id = started.json["data"]["runId"]

    def finished():
        run = server.get(f"/runs/{run_id}", token=user.access).json["data"]
        return run if run["status"] not in ("pending", "running") else None

    run = server.eventually(finished, timeout=60, interval=0.5)
    assert run["status"] == "completed", run
    assert run["records"] == CUSTOMERS

    key_name = f"data/{user.account_id}/{source_id}/{run_id}/customers.jsonl.gz"
    body = server.aws("s3").get_object(Bucket="listbackup-data-dev", Key=key_name)["Body"].read()
    records = [json.loads(line) for line in gzip.decompress(body).splitlines() if line.strip()]
    assert sorted(r["id"] for r in records) == sorted(customer_ids)

    def indexed():
        item = server.aws("dynamodb").get_item(
            TableName="listbackup-dev-files",
            Key={"accountId": {"S": user.account_id}, "fileId": {"S": file_id_for(key_name)}}).get("Item")
        return item if item and "sha256" in item and "size" in item else None

    item = server.eventually(indexed, timeout=30)
    assert int(item["records"]["N"]) == CUSTOMERS
    assert item["sha256"]["S"] == hashlib.sha256(body).hexdigest()
    assert int(item["size"]["N"]) == len(body)
    assert item["deleted"]["BOOL"] is False
