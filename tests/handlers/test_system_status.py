"""GET /system/status against real (moto) tables, bucket and queues."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from components.tables import API_TABLES, CORE_TABLES
from handlers.shared import clients
from handlers.system import api
from tests.support import BUCKET, PREFIX, api_event, call, create_tables, moto_env

MEMBER = {"userId": "usr_1", "accountId": "acc_1", "role": "viewer"}


@pytest.fixture
def stage(monkeypatch):
    moto_env(monkeypatch)
    with mock_aws():
        clients.reset()
        create_tables(CORE_TABLES + API_TABLES)
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        sqs = boto3.client("sqs")
        urls = {}
        for kind in ("job", "data", "index"):
            for name in (f"listbackup-{kind}-queue-test", f"listbackup-{kind}-queue-test-dlq"):
                urls[name] = sqs.create_queue(QueueName=name)["QueueUrl"]
        monkeypatch.setenv("STATUS_TABLES", ",".join(PREFIX + s.name for s in CORE_TABLES + API_TABLES))
        monkeypatch.setenv("STATUS_QUEUES", ",".join(urls.values()))
        yield urls
        clients.reset()


def get_status(identity=MEMBER):
    return call(api.handler, api_event("GET /system/status", identity=identity))


def test_every_dependency_reachable_is_ok_with_latencies(stage):
    status, body = get_status()
    assert status == 200 and body["success"] is True
    report = body["data"]
    assert report["status"] == "ok" and report["stage"] == "test"
    kinds = {}
    for check in report["checks"]:
        assert check["state"] == "ok" and check["latencyMs"] >= 0
        kinds.setdefault(check["kind"], set()).add(check["name"])
    assert len(kinds["table"]) == len(CORE_TABLES + API_TABLES)
    assert kinds["bucket"] == {BUCKET}
    assert len(kinds["queue"]) == 3 and len(kinds["deadLetterQueue"]) == 3


def test_messages_in_a_dead_letter_queue_make_the_stage_degraded(stage):
    boto3.client("sqs").send_message(QueueUrl=stage["listbackup-job-queue-test-dlq"], MessageBody="{}")
    status, body = get_status()
    assert status == 200 and body["data"]["status"] == "degraded"
    [dlq] = [c for c in body["data"]["checks"] if c["name"] == "listbackup-job-queue-test-dlq"]
    assert dlq["depth"] == 1


def test_a_missing_table_answers_503_naming_it(stage):
    boto3.client("dynamodb").delete_table(TableName=PREFIX + "runs")
    status, body = get_status()
    assert status == 503 and body["code"] == "unavailable"
    assert PREFIX + "runs" in body["error"]
    [runs] = [c for c in body["details"]["checks"] if c["name"] == PREFIX + "runs"]
    assert runs["state"] == "down" and runs["error"]
    assert all(c["state"] == "ok" for c in body["details"]["checks"] if c["name"] != PREFIX + "runs")


def test_a_missing_bucket_or_queue_answers_503(stage):
    boto3.client("sqs").delete_queue(QueueUrl=stage["listbackup-index-queue-test"])
    boto3.client("s3").delete_bucket(Bucket=BUCKET)
    status, body = get_status()
    assert status == 503
    down = {c["name"] for c in body["details"]["checks"] if c["state"] == "down"}
    assert down == {BUCKET, "listbackup-index-queue-test"}


def test_status_needs_a_member_identity(stage):
    status, body = call(api.handler, api_event("GET /system/status"))
    assert status == 403 and body["code"] == "forbidden"
