"""Delete (a delete marker) and restore (the previous version current again): S3, the files
row and the account's storage usage agree as soon as the API answers, and the indexer's
later event changes nothing."""

from __future__ import annotations

import json

import pytest

from handlers.shared.files import file_id_for
from tests.handlers.test_data_support import items, world  # noqa: F401 - fixture
from tests.support import BUCKET

DELETE = "DELETE /data/files/{fileId}"
RESTORE = "POST /data/files/{fileId}/restore"
ONE = "GET /data/files/{fileId}"


@pytest.fixture
def stored(world):
    t = world.tenant(used=1000)        # 1000 bytes of something else already counted
    source = world.source(t)
    run = world.run(t, source)
    file_id = world.backup_file(t, source, run, "customers.jsonl.gz",
                                [{"id": f"cus_{i}"} for i in range(50)])
    return t, file_id


def size_of(t, file_id) -> int:
    return len(t.files[file_id]["body"])


def current_body(world, t, file_id) -> bytes:
    return world.s3.get_object(Bucket=BUCKET, Key=t.files[file_id]["key"])["Body"].read()


def index_event(world, key: str) -> dict:
    """What the indexer gets from S3 -> SQS for ``key`` (any event: it reads the key's state)."""
    from urllib.parse import quote_plus
    record = {"eventName": "ObjectRemoved:DeleteMarkerCreated",
              "s3": {"bucket": {"name": BUCKET}, "object": {"key": quote_plus(key, safe="/")}}}
    return {"Records": [{"messageId": "m1", "receiptHandle": "r", "body": json.dumps({"Records": [record]}),
                         "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                         "md5OfBody": "0", "eventSource": "aws:sqs",
                         "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:index", "awsRegion": "us-east-1"}]}


def test_delete_marks_the_file_deleted_and_takes_it_out_of_usage_at_once(world, stored):
    t, file_id = stored
    assert world.storage(t) == 1000 + size_of(t, file_id)

    status, body = world.call(DELETE, t, path={"fileId": file_id})

    assert (status, body) == (200, {"success": True, "data": None})
    assert world.storage(t) == 1000
    row = world.row(t, file_id)
    assert row["deleted"] is True and row["countedBytes"] == 0 and row["deletedAt"].endswith("Z")
    versions = world.s3.list_object_versions(Bucket=BUCKET, Prefix=t.files[file_id]["key"])
    assert versions["DeleteMarkers"][0]["IsLatest"] is True and len(versions["Versions"]) == 1
    _, one = world.call(ONE, t, path={"fileId": file_id})
    assert one["data"]["deleted"] is True
    assert [v["deleteMarker"] for v in one["data"]["versions"]] == [True, False]
    assert one["data"]["versions"][1]["restorable"] is True
    status, link = world.call("GET /data/files/{fileId}/download-url", t, path={"fileId": file_id})
    assert status == 409 and link["code"] == "conflict"
    assert [f["fileId"] for f in items(world.call("GET /data/files", t, query={"deleted": "true"})[1])] == [file_id]
    [event] = [e for e in world.activity(t) if e["type"] == "data.file.delete"]
    assert event["resourceId"] == file_id and event["actor"] == t.user_id

    # the indexer's own event for the marker, later, changes nothing
    from handlers.core import file_indexer
    from tests.support import LambdaContext
    assert file_indexer.handler(index_event(world, t.files[file_id]["key"]), LambdaContext()) == {
        "batchItemFailures": []}
    assert world.storage(t) == 1000 and world.row(t, file_id)["deleted"] is True


def test_deleting_twice_counts_once_and_adds_no_second_marker(world, stored):
    t, file_id = stored
    assert world.call(DELETE, t, path={"fileId": file_id})[0] == 200
    assert world.call(DELETE, t, path={"fileId": file_id})[0] == 200
    assert world.storage(t) == 1000
    versions = world.s3.list_object_versions(Bucket=BUCKET, Prefix=t.files[file_id]["key"])
    assert len(versions["DeleteMarkers"]) == 1
    assert len([e for e in world.activity(t) if e["type"] == "data.file.delete"]) == 1


def test_restore_brings_a_deleted_file_back_into_usage(world, stored):
    t, file_id = stored
    before = world.row(t, file_id)
    world.call(DELETE, t, path={"fileId": file_id})

    status, body = world.call(RESTORE, t, path={"fileId": file_id})

    assert status == 200, body
    data = body["data"]
    assert data["deleted"] is False and data["deletedAt"] is None
    assert data["versionId"] == before["versionId"]          # the same version, no copy
    assert [v["deleteMarker"] for v in data["versions"]] == [False]
    assert world.storage(t) == 1000 + size_of(t, file_id)
    assert current_body(world, t, file_id) == t.files[file_id]["body"]
    assert data["sha256"] == before["sha256"] and data["records"] == 50
    [event] = [e for e in world.activity(t) if e["type"] == "data.file.restore"]
    assert event["details"]["how"] == "undelete"


def test_restore_of_a_file_that_is_not_deleted_copies_its_previous_version_over(world, stored):
    t, file_id = stored
    key = t.files[file_id]["key"]
    # a newer version of the same key (a retried endpoint, say), indexed
    world.s3.put_object(Bucket=BUCKET, Key=key, Body=b"x" * 10, ContentType="application/gzip",
                        Tagging="retention=30d")
    from handlers.shared.file_index import converge
    from handlers.shared.files import parse_data_key
    converge(BUCKET, parse_data_key(key))
    assert world.storage(t) == 1010

    status, body = world.call(RESTORE, t, path={"fileId": file_id})

    assert status == 200, body
    assert current_body(world, t, file_id) == t.files[file_id]["body"]
    assert world.storage(t) == 1000 + size_of(t, file_id)
    assert body["data"]["size"] == size_of(t, file_id) and body["data"]["deleted"] is False
    # the worker's checksum described the replaced content: no longer claimed
    assert body["data"]["sha256"] is None and body["data"]["records"] is None
    assert len(body["data"]["versions"]) == 3
    tags = world.s3.get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"]
    assert tags == [{"Key": "retention", "Value": "30d"}], "the retention tier travels with the copy"


def test_restore_a_chosen_version(world, stored):
    t, file_id = stored
    key = t.files[file_id]["key"]
    first = world.row(t, file_id)["versionId"]
    world.s3.put_object(Bucket=BUCKET, Key=key, Body=b"second", ContentType="application/gzip")
    world.call(DELETE, t, path={"fileId": file_id})

    status, body = world.call(RESTORE, t, path={"fileId": file_id}, query={"versionId": first})

    assert status == 200, body
    assert current_body(world, t, file_id) == t.files[file_id]["body"]
    assert world.storage(t) == 1000 + size_of(t, file_id)


def test_restore_refuses_what_it_cannot_do_and_changes_nothing(world, stored):
    t, file_id = stored
    current = world.row(t, file_id)["versionId"]
    for query, code, status_code in (
            (None, "conflict", 409),                              # not deleted, no earlier version
            ({"versionId": current}, "conflict", 409),            # already current
            ({"versionId": "no-such-version"}, "not_found", 404),
            ({"other": "x"}, "validation_failed", 400)):
        status, body = world.call(RESTORE, t, path={"fileId": file_id}, query=query)
        assert (status, body["code"]) == (status_code, code), (query, body)
    assert world.storage(t) == 1000 + size_of(t, file_id)
    assert len(world.s3.list_object_versions(Bucket=BUCKET, Prefix=t.files[file_id]["key"])["Versions"]) == 1


def test_a_file_whose_versions_all_expired_cannot_be_restored(world, stored):
    t, file_id = stored
    key = t.files[file_id]["key"]
    world.call(DELETE, t, path={"fileId": file_id})
    for entry in world.s3.list_object_versions(Bucket=BUCKET, Prefix=key).get("Versions", []):
        world.s3.delete_object(Bucket=BUCKET, Key=key, VersionId=entry["VersionId"])   # lifecycle
    status, body = world.call(RESTORE, t, path={"fileId": file_id})
    assert status == 409 and "left to restore" in body["error"]
    assert world.storage(t) == 1000


def test_viewers_may_not_delete_or_restore(world, stored):
    t, file_id = stored
    for route in (DELETE, RESTORE):
        status, body = world.call(route, t, role="viewer", path={"fileId": file_id})
        assert status == 403 and body["code"] == "forbidden"
    assert world.row(t, file_id)["deleted"] is False and world.storage(t) == 1000 + size_of(t, file_id)


def test_another_account_cannot_delete_or_restore(world, stored):
    t, file_id = stored
    other = world.tenant()
    for route in (DELETE, RESTORE):
        status, body = world.call(route, other, path={"fileId": file_id})
        assert status == 404 and body["code"] == "not_found"
    assert world.row(t, file_id)["deleted"] is False
    assert world.storage(t) == 1000 + size_of(t, file_id) and world.storage(other) == 0
    assert world.s3.list_object_versions(Bucket=BUCKET, Prefix=t.files[file_id]["key"]).get("DeleteMarkers") is None


def test_a_row_naming_another_accounts_key_is_never_acted_on(world, stored):
    """Defence in depth: a row whose key is outside the caller's data is not touched."""
    t, file_id = stored
    victim = world.tenant()
    key = f"data/{victim.account_id}/src_v/run_v/secret.jsonl.gz"
    world.s3.put_object(Bucket=BUCKET, Key=key, Body=b"secret")
    forged = file_id_for(f"data/{t.account_id}/forged")
    world.table("files").put_item(Item={"accountId": t.account_id, "fileId": forged, "key": key,
                                        "name": "secret.jsonl.gz", "path": "secret.jsonl.gz"})
    status, _ = world.call(DELETE, t, path={"fileId": forged})
    assert status == 404
    assert world.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"secret"
