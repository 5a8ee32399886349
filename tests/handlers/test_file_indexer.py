"""The file indexer against moto: a real versioned bucket and the files table from its spec.

Each test drives ``handler`` with the SQS event S3 -> SQS would deliver and checks the
files row a user would browse.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote_plus

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws

from components.tables import CORE_TABLES, create_table_kwargs
from handlers.shared import clients
from handlers.shared.files import file_id_for

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "listbackup-data-test"
PREFIX = "listbackup-test-"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:listbackup-index-queue-test"
CONTEXT = SimpleNamespace(
    function_name="listbackup-core-test-fileIndexer", memory_limit_in_mb=256,
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:listbackup-core-test-fileIndexer",
    aws_request_id="req-test-1")


@pytest.fixture
def aws(monkeypatch):
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("DYNAMODB_TABLE_PREFIX", PREFIX)
    with mock_aws():
        clients.reset()
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        for name in ("files", "accounts", "analytics"):
            spec = next(t for t in CORE_TABLES if t.name == name)
            boto3.client("dynamodb").create_table(**create_table_kwargs(spec, PREFIX + name))
        yield SimpleNamespace(s3=s3, files=boto3.resource("dynamodb").Table(PREFIX + "files"),
                              accounts=boto3.resource("dynamodb").Table(PREFIX + "accounts"),
                              analytics=boto3.resource("dynamodb").Table(PREFIX + "analytics"))
        clients.reset()


@pytest.fixture
def indexer():
    from handlers.core import file_indexer
    return file_indexer


@pytest.fixture
def log_lines(indexer):
    """The indexer's structured log lines, as dicts (what CloudWatch would receive)."""
    handler = indexer.logger.registered_handler
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    handler.setStream(previous)


# --- events as S3 -> SQS delivers them --------------------------------------------------

def s3_record(event_name: str, key: str, version_id: str | None = None, bucket: str = BUCKET,
              size: int | None = None, etag: str | None = None) -> dict:
    obj: dict = {"key": quote_plus(key, safe="/"), "sequencer": "0065A1B2C3D4E5F601"}
    if size is not None:
        obj["size"] = size
    if etag is not None:
        obj["eTag"] = etag
    if version_id is not None:
        obj["versionId"] = version_id
    return {
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-11-26T01:02:03.000Z", "eventName": event_name,
        "userIdentity": {"principalId": "AWS:AROAEXAMPLE:listbackup-jobs-test-worker"},
        "requestParameters": {"sourceIPAddress": "10.0.0.1"},
        "responseParameters": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "index-data",
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                          "arn": f"arn:aws:s3:::{bucket}"},
               "object": obj},
    }


def sqs_message(body: dict, message_id: str | None = None) -> dict:
    text = json.dumps(body)
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": "AQEB" + uuid.uuid4().hex,
        "body": text,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1764118923000",
                       "SenderId": "AIDAJHIPRHEMV73VRJEBU", "ApproximateFirstReceiveTimestamp": "1764118923010"},
        "messageAttributes": {}, "md5OfBody": "00000000000000000000000000000000",
        "eventSource": "aws:sqs", "eventSourceARN": QUEUE_ARN, "awsRegion": "us-east-1",
    }


def notification(*records: dict) -> dict:
    return {"Records": list(records)}


def sqs_event(*messages: dict) -> dict:
    return {"Records": list(messages)}


def deliver(indexer, *bodies: dict) -> dict:
    """One SQS batch with one message per body; returns the handler's response."""
    return indexer.handler(sqs_event(*(sqs_message(b) for b in bodies)), CONTEXT)


def created_event(s3, key: str, event_name: str = "ObjectCreated:Put") -> dict:
    head = s3.head_object(Bucket=BUCKET, Key=key)
    return notification(s3_record(event_name, key, head.get("VersionId"),
                                  size=head["ContentLength"], etag=head["ETag"].strip('"')))


def row(aws, key: str) -> dict | None:
    account_id = key.split("/")[1]
    return aws.files.get_item(Key={"accountId": account_id, "fileId": file_id_for(key)},
                              ConsistentRead=True).get("Item")


def all_rows(aws) -> list[dict]:
    return aws.files.scan(ConsistentRead=True)["Items"]  # test inspection only


KEY = "data/acc_1/src_1/run_1/contacts.jsonl.gz"


# --- tests ------------------------------------------------------------------------------

def test_new_object_is_indexed_with_its_facts(aws, indexer):
    put = aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"x" * 1234, ContentType="application/gzip")

    assert deliver(indexer, created_event(aws.s3, KEY)) == {"batchItemFailures": []}

    item = row(aws, KEY)
    assert item is not None
    assert item["key"] == KEY
    assert item["name"] == "contacts.jsonl.gz"
    assert item["path"] == "contacts.jsonl.gz"
    assert item["sourceId"] == "src_1"
    assert item["runId"] == "run_1"
    assert item["size"] == 1234
    assert item["contentType"] == "application/gzip"
    assert item["etag"] == put["ETag"].strip('"')
    assert not item["etag"].startswith('"')
    assert item["versionId"] == put["VersionId"]
    assert item["deleted"] is False
    assert "deletedAt" not in item
    assert item["lastModified"].endswith("Z") and item["createdAt"] == item["lastModified"]
    assert item["indexedAt"].endswith("Z")


def test_nested_path_keeps_folders_in_path(aws, indexer):
    key = "data/acc_1/src_drive/run_9/Reports/2026/q3 summary.pdf"
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=b"%PDF", ContentType="application/pdf")

    assert deliver(indexer, created_event(aws.s3, key)) == {"batchItemFailures": []}

    item = row(aws, key)
    assert item["path"] == "Reports/2026/q3 summary.pdf"
    assert item["name"] == "q3 summary.pdf"


def test_redelivery_is_idempotent_and_keeps_worker_attributes(aws, indexer):
    aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"abc", ContentType="application/gzip")
    # The backup worker wrote its half of the row first.
    aws.files.put_item(Item={"accountId": "acc_1", "fileId": file_id_for(KEY),
                             "records": 42, "sha256": "ab" * 32, "endpoint": "contacts"})
    event = created_event(aws.s3, KEY)

    assert deliver(indexer, event) == {"batchItemFailures": []}
    first = row(aws, KEY)
    assert deliver(indexer, event) == {"batchItemFailures": []}
    assert deliver(indexer, event, event) == {"batchItemFailures": []}  # duplicate in one batch
    second = row(aws, KEY)

    assert len(all_rows(aws)) == 1
    facts = lambda item: {k: v for k, v in item.items() if k != "indexedAt"}  # noqa: E731
    assert facts(second) == facts(first)
    assert second["records"] == Decimal(42)
    assert second["sha256"] == "ab" * 32
    assert second["endpoint"] == "contacts"
    assert second["size"] == 3 and second["deleted"] is False


def test_delete_marker_marks_row_deleted_and_keeps_facts(aws, indexer):
    put = aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"x" * 500, ContentType="application/gzip")
    deliver(indexer, created_event(aws.s3, KEY))
    marker = aws.s3.delete_object(Bucket=BUCKET, Key=KEY)
    assert marker["DeleteMarker"] is True

    response = deliver(indexer, notification(
        s3_record("ObjectRemoved:DeleteMarkerCreated", KEY, marker["VersionId"])))

    assert response == {"batchItemFailures": []}
    item = row(aws, KEY)
    assert item["deleted"] is True
    assert item["deletedAt"].endswith("Z")
    assert item["size"] == 500  # restore needs to know what was there
    assert item["versionId"] == put["VersionId"]
    assert item["contentType"] == "application/gzip"


def test_removing_the_delete_marker_brings_the_file_back(aws, indexer):
    put = aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"x" * 77, ContentType="application/gzip")
    deliver(indexer, created_event(aws.s3, KEY))
    marker = aws.s3.delete_object(Bucket=BUCKET, Key=KEY)
    deliver(indexer, notification(s3_record("ObjectRemoved:DeleteMarkerCreated", KEY, marker["VersionId"])))
    assert row(aws, KEY)["deleted"] is True

    aws.s3.delete_object(Bucket=BUCKET, Key=KEY, VersionId=marker["VersionId"])
    response = deliver(indexer, notification(s3_record("ObjectRemoved:Delete", KEY, marker["VersionId"])))

    assert response == {"batchItemFailures": []}
    item = row(aws, KEY)
    assert item["deleted"] is False
    assert "deletedAt" not in item
    assert item["versionId"] == put["VersionId"]
    assert item["size"] == 77


def test_expiring_an_old_version_leaves_the_current_one(aws, indexer):
    old = aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"old", ContentType="application/gzip")
    deliver(indexer, created_event(aws.s3, KEY))
    new = aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"newer body", ContentType="application/gzip")
    deliver(indexer, created_event(aws.s3, KEY))
    created_at = row(aws, KEY)["createdAt"]

    aws.s3.delete_object(Bucket=BUCKET, Key=KEY, VersionId=old["VersionId"])
    response = deliver(indexer, notification(s3_record("LifecycleExpiration:Delete", KEY, old["VersionId"])))

    assert response == {"batchItemFailures": []}
    item = row(aws, KEY)
    assert item["deleted"] is False
    assert item["versionId"] == new["VersionId"]
    assert item["size"] == len(b"newer body")
    assert item["etag"] == new["ETag"].strip('"')
    assert item["createdAt"] == created_at  # first sighting, not overwritten


def test_late_created_event_records_current_state_not_the_event(aws, indexer):
    """An ObjectCreated event processed after the file was deleted does not resurrect it."""
    aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"abc")
    created = created_event(aws.s3, KEY)
    aws.s3.delete_object(Bucket=BUCKET, Key=KEY)

    assert deliver(indexer, created) == {"batchItemFailures": []}

    item = row(aws, KEY)
    assert item["deleted"] is True
    # First event seen was for a gone file: the row still says what and where it was.
    assert (item["key"], item["name"], item["sourceId"], item["runId"]) == (
        KEY, "contacts.jsonl.gz", "src_1", "run_1")
    assert item["createdAt"].endswith("Z")


def test_s3_test_event_is_ignored(aws, indexer):
    body = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-11-26T01:02:03.000Z",
            "Bucket": BUCKET, "RequestId": "5582815E1AEA5ADF", "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"}

    assert deliver(indexer, body) == {"batchItemFailures": []}
    assert all_rows(aws) == []


def test_key_outside_data_is_skipped(aws, indexer):
    key = "exports/acc_1/export_1.zip"
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=b"PK")

    assert deliver(indexer, created_event(aws.s3, key)) == {"batchItemFailures": []}
    assert all_rows(aws) == []


@pytest.mark.parametrize("key", [
    "data/acc-only",
    "data/acc_1/src_1",
    "data/a//r/x.csv",
    "data/a/s/r/../x.csv",
    "data/a/s/r/",
    "data/a/s/r/folder//x.csv",
])
def test_malformed_data_key_is_skipped_not_retried(aws, indexer, key, log_lines):
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=b"?")

    response = deliver(indexer, notification(s3_record("ObjectCreated:Put", key, size=1)))

    assert response == {"batchItemFailures": []}
    assert all_rows(aws) == []
    assert any(log["level"] == "WARNING" and log.get("key") == key for log in log_lines())


def test_failing_write_is_reported_for_that_message_only_and_retried(aws, indexer):
    good_key = "data/acc_1/src_1/run_1/orders.jsonl.gz"
    bad_key = "data/acc_1/src_1/run_1/contacts.jsonl.gz"
    for key in (good_key, bad_key):
        aws.s3.put_object(Bucket=BUCKET, Key=key, Body=b"data", ContentType="application/gzip")
    bad_file_id = file_id_for(bad_key)
    failures = {"left": 1}

    def throttle_once(params, **_):
        # Fault injected where boto3 would have sent the request: the service answers 400.
        request = json.loads(params["body"])
        if request["Key"]["fileId"] == {"S": bad_file_id} and failures["left"]:
            failures["left"] -= 1
            http = AWSResponse("https://dynamodb.us-east-1.amazonaws.com/", 400, {}, None)
            return http, {"Error": {"Code": "ProvisionedThroughputExceededException",
                                    "Message": "The level of configured provisioned throughput "
                                               "for the table was exceeded."},
                          "ResponseMetadata": {"HTTPStatusCode": 400}}
        return None

    dynamodb = clients.dynamodb()  # the client the handler uses
    dynamodb.meta.events.register("before-call.dynamodb.UpdateItem", throttle_once)
    good = sqs_message(created_event(aws.s3, good_key), "msg-good")
    bad = sqs_message(created_event(aws.s3, bad_key), "msg-bad")

    response = indexer.handler(sqs_event(good, bad), CONTEXT)

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-bad"}]}
    assert row(aws, good_key)["size"] == 4
    assert row(aws, bad_key) is None

    # SQS redelivers the failed message once its visibility timeout ends.
    assert indexer.handler(sqs_event(bad), CONTEXT) == {"batchItemFailures": []}
    assert row(aws, bad_key)["size"] == 4
    assert row(aws, bad_key)["deleted"] is False


def test_s3_fault_is_retried_not_recorded_as_deletion(aws, indexer, monkeypatch):
    aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"abc")
    event = created_event(aws.s3, KEY)
    s3 = clients.client("s3")
    from botocore.exceptions import ClientError

    def forbidden(**kwargs):
        raise ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadObject")

    monkeypatch.setattr(s3, "head_object", forbidden)
    message = sqs_message(event, "msg-1")
    other = sqs_message({"Service": "Amazon S3", "Event": "s3:TestEvent"}, "msg-2")

    assert indexer.handler(sqs_event(message, other), CONTEXT) == {
        "batchItemFailures": [{"itemIdentifier": "msg-1"}]}
    assert row(aws, KEY) is None


def test_url_encoded_key_indexes_the_real_name(aws, indexer):
    key = "data/acc_1/src_drive/run_1/Shared Docs/My File (1)+v2 ü.csv"
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=b"a,b\n", ContentType="text/csv")
    event = created_event(aws.s3, key)
    encoded = event["Records"][0]["s3"]["object"]["key"]
    assert encoded == "data/acc_1/src_drive/run_1/Shared+Docs/My+File+%281%29%2Bv2+%C3%BC.csv"

    assert deliver(indexer, event) == {"batchItemFailures": []}

    item = row(aws, key)
    assert item is not None and len(all_rows(aws)) == 1
    assert item["key"] == key
    assert item["name"] == "My File (1)+v2 ü.csv"
    assert item["path"] == "Shared Docs/My File (1)+v2 ü.csv"
    assert item["contentType"] == "text/csv"


def test_several_records_in_one_notification(aws, indexer):
    keys = [f"data/acc_1/src_1/run_1/part-{i}.jsonl.gz" for i in range(3)]
    records = []
    for key in keys:
        put = aws.s3.put_object(Bucket=BUCKET, Key=key, Body=b"z")
        records.append(s3_record("ObjectCreated:Put", key, put["VersionId"], size=1))

    assert deliver(indexer, notification(*records)) == {"batchItemFailures": []}
    assert sorted(r["key"] for r in all_rows(aws)) == keys


def test_unversioned_bucket_has_no_version_id(aws, indexer):
    bucket = "listbackup-data-plain"
    aws.s3.create_bucket(Bucket=bucket)
    aws.s3.put_object(Bucket=bucket, Key=KEY, Body=b"abc")

    assert deliver(indexer, notification(s3_record("ObjectCreated:Put", KEY, bucket=bucket, size=3))) == {
        "batchItemFailures": []}
    item = row(aws, KEY)
    assert item["size"] == 3 and "versionId" not in item and item["deleted"] is False


def test_log_line_names_the_file_and_outcome(aws, indexer, log_lines):
    aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"abc")
    deliver(indexer, created_event(aws.s3, KEY))

    logs = log_lines()
    indexed = [log for log in logs if log.get("message") == "file indexed"]
    assert len(indexed) == 1
    log = indexed[0]
    assert log["key"] == KEY and log["fileId"] == file_id_for(KEY) and log["accountId"] == "acc_1"
    assert log["outcome"] == "indexed" and log["function_request_id"] == "req-test-1"
    assert "testing" not in json.dumps(logs)  # no credentials


def test_importable_without_aws_environment():
    """Lambda imports the module at cold start: no AWS call, no env read, boto3 deferred."""
    code = ("import sys, handlers.core.file_indexer as m; "
            "assert callable(m.handler); assert 'boto3' not in sys.modules")
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True, timeout=120)


# --- the account's storage usage ----------------------------------------------------------

def seed_account(aws, account_id: str = "acc_1", used: int = 1000) -> None:
    aws.accounts.put_item(Item={"accountId": account_id, "name": "Acme", "plan": "free",
                                "storageBytes": used})


def storage(aws, account_id: str = "acc_1") -> int:
    return int(aws.accounts.get_item(Key={"accountId": account_id}, ConsistentRead=True)["Item"]["storageBytes"])


def source_storage(aws, account_id: str = "acc_1", source_id: str = "src_1") -> int:
    item = aws.analytics.get_item(Key={"accountId": account_id, "counter": f"source#{source_id}"},
                                  ConsistentRead=True).get("Item") or {}
    return int(item.get("storageBytes") or 0)


def test_storage_follows_files_through_delete_and_restore_counting_each_flip_once(aws, indexer):
    seed_account(aws)
    aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"x" * 300)
    event = created_event(aws.s3, KEY)
    assert deliver(indexer, event, event) == {"batchItemFailures": []}     # duplicate in one batch
    assert deliver(indexer, event) == {"batchItemFailures": []}            # and redelivered
    assert storage(aws) == 1300
    assert row(aws, KEY)["countedBytes"] == 300

    marker = aws.s3.delete_object(Bucket=BUCKET, Key=KEY)
    removed = notification(s3_record("ObjectRemoved:DeleteMarkerCreated", KEY, marker["VersionId"]))
    assert source_storage(aws) == 300                  # storage by source, in the same transaction
    deliver(indexer, removed)
    deliver(indexer, removed)
    assert storage(aws) == 1000 and row(aws, KEY)["countedBytes"] == 0
    assert source_storage(aws) == 0

    aws.s3.delete_object(Bucket=BUCKET, Key=KEY, VersionId=marker["VersionId"])   # restore
    restored = notification(s3_record("ObjectRemoved:Delete", KEY, marker["VersionId"]))
    deliver(indexer, restored)
    deliver(indexer, created_event(aws.s3, KEY))      # a late created event changes nothing
    assert storage(aws) == 1300 and source_storage(aws) == 300


def test_a_new_version_counts_its_own_size_and_expiry_lowers_usage(aws, indexer):
    seed_account(aws, used=0)
    aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"x" * 100)
    deliver(indexer, created_event(aws.s3, KEY))
    aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"x" * 250)
    deliver(indexer, created_event(aws.s3, KEY))
    assert storage(aws) == 250
    # lifecycle expiry removes every version
    for version in aws.s3.list_object_versions(Bucket=BUCKET, Prefix=KEY)["Versions"]:
        aws.s3.delete_object(Bucket=BUCKET, Key=KEY, VersionId=version["VersionId"])
    deliver(indexer, notification(s3_record("LifecycleExpiration:Delete", KEY)))
    assert storage(aws) == 0 and row(aws, KEY)["deleted"] is True


def test_the_worker_attributes_do_not_disturb_the_count(aws, indexer):
    seed_account(aws, used=0)
    aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"abcd")
    aws.files.put_item(Item={"accountId": "acc_1", "fileId": file_id_for(KEY), "records": 4,
                             "sha256": "ab" * 32})
    deliver(indexer, created_event(aws.s3, KEY))
    assert storage(aws) == 4 and row(aws, KEY)["records"] == 4


def test_a_concurrent_indexing_of_the_same_key_is_not_counted_twice(aws, indexer, monkeypatch):
    seed_account(aws, used=0)
    aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"x" * 40)
    event = created_event(aws.s3, KEY)
    from handlers.shared import file_index   # the converging code the indexer runs
    real = file_index._update_kwargs
    raced = {"left": 1}

    def interleaved(*args, **kwargs):
        # Another invocation indexes the same key between this one's read and its write.
        if raced["left"]:
            raced["left"] -= 1
            assert deliver(indexer, event) == {"batchItemFailures": []}
        return real(*args, **kwargs)

    monkeypatch.setattr(file_index, "_update_kwargs", interleaved)
    assert deliver(indexer, event) == {"batchItemFailures": []}
    assert storage(aws) == 40 and row(aws, KEY)["countedBytes"] == 40


def test_an_account_that_no_longer_exists_is_not_recreated(aws, indexer):
    aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"x" * 40)
    assert deliver(indexer, created_event(aws.s3, KEY)) == {"batchItemFailures": []}
    assert row(aws, KEY)["size"] == 40
    assert aws.accounts.get_item(Key={"accountId": "acc_1"}).get("Item") is None
