"""Exports: the request (202, a queued message), the exporter (one zip streamed into a
multipart upload, the row, the e-mail), its failures, and GET /data/exports/{id}."""

from __future__ import annotations

import io
import json
import zipfile
from types import SimpleNamespace

import pytest
import requests

from handlers.data import exporter, zipstream
from tests.handlers.conftest import sent_emails
from tests.handlers.test_data_support import API_BASE, world  # noqa: F401 - fixture
from tests.support import BUCKET, LambdaContext

EXPORT = "POST /data/export"
STATUS = "GET /data/exports/{exportId}"


class Context(LambdaContext):
    def __init__(self, remaining_ms: int = 900_000):
        super().__init__("listbackup-data-test-exporter")
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def acme(world):
    t = world.tenant()
    source = world.source(t, "Stripe")
    run = world.run(t, source)
    other_run = world.run(t, source, "2026-03-01T00:00:00.000Z")
    ids = [world.backup_file(t, source, run, f"{name}.jsonl.gz", [{"id": f"{name}_{i}"} for i in range(20)])
           for name in ("customers", "charges", "invoices")]
    later = world.backup_file(t, source, other_run, "customers.jsonl.gz")
    return SimpleNamespace(tenant=t, source=source, run=run, other_run=other_run, ids=ids, later=later)


def sqs_event(world, *, receive_count: int = 1) -> dict:
    messages = world.messages()
    assert messages, "nothing was queued"
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": {"ApproximateReceiveCount": str(receive_count)}, "messageAttributes": {},
        "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:listbackup-data-queue-test",
        "awsRegion": "us-east-1"} for m in messages]}


def request(world, tenant, body, **kwargs) -> dict:
    status, reply = world.call(EXPORT, tenant, body=body, **kwargs)
    assert status == 202, reply
    return reply["data"]


def zip_of(world, key: str) -> zipfile.ZipFile:
    data = world.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return zipfile.ZipFile(io.BytesIO(data))


def test_exporting_a_run_makes_one_zip_of_its_files_and_mails_a_link(world, acme):
    t = acme.tenant
    queued = request(world, t, {"runId": acme.run})
    assert queued["status"] == "pending" and queued["url"] is None and queued["expiresAt"] is None
    event = sqs_event(world)
    assert json.loads(event["Records"][0]["body"]) == {"accountId": t.account_id,
                                                       "exportId": queued["exportId"]}

    assert exporter.handler(event, Context()) == {"batchItemFailures": []}

    status, body = world.call(STATUS, t, role="viewer", path={"exportId": queued["exportId"]})
    assert status == 200
    done = body["data"]
    assert done["status"] == "completed" and done["files"] == 3 and done["skipped"] == 0
    assert done["expiresAt"] > done["completedAt"]
    from handlers.shared import clock
    days = (clock.parse_iso(done["expiresAt"]) - clock.parse_iso(done["completedAt"])).days
    assert days == 7
    reply = requests.get(done["url"], timeout=10)
    assert reply.status_code == 200 and len(reply.content) == done["size"]
    assert f'listbackup-export-{queued["exportId"]}.zip' in reply.headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(reply.content))
    assert archive.testzip() is None
    expected = {f"{acme.source}/{acme.run}/{t.files[i]['path']}": t.files[i]["body"] for i in acme.ids}
    assert {n: archive.read(n) for n in archive.namelist()} == expected
    assert world.s3.head_object(Bucket=BUCKET, Key=f"exports/{t.account_id}/{queued['exportId']}.zip")

    [mail] = [m for m in sent_emails() if t.email in str(m["to"])]
    assert "ready" in mail["subject"]
    assert f"{API_BASE}/data/exports/{queued['exportId']}" in mail["text"]
    assert "X-Amz" not in mail["text"], "the mail links the API, never a presigned URL"
    types = [e["type"] for e in world.activity(t)]
    assert "data.export.request" in types and "data.export.completed" in types

    # each visit mints a fresh link
    again = world.call(STATUS, t, path={"exportId": queued["exportId"]})[1]["data"]
    assert again["url"] and again["expiresAt"] == done["expiresAt"]


def test_exporting_chosen_files_and_a_source(world, acme):
    t = acme.tenant
    chosen = request(world, t, {"fileIds": [acme.ids[1], acme.later]})
    exporter.handler(sqs_event(world), Context())
    row = world.call(STATUS, t, path={"exportId": chosen["exportId"]})[1]["data"]
    names = zip_of(world, f"exports/{t.account_id}/{chosen['exportId']}.zip").namelist()
    assert sorted(names) == sorted([f"{acme.source}/{acme.run}/charges.jsonl.gz",
                                    f"{acme.source}/{acme.other_run}/customers.jsonl.gz"])
    assert row["scope"] == {"fileIds": [acme.ids[1], acme.later]}

    whole = request(world, t, {"sourceId": acme.source})
    exporter.handler(sqs_event(world), Context())
    assert len(zip_of(world, f"exports/{t.account_id}/{whole['exportId']}.zip").namelist()) == 4


def test_deleted_files_are_left_out_of_a_run_export(world, acme):
    t = acme.tenant
    world.call("DELETE /data/files/{fileId}", t, path={"fileId": acme.ids[0]})
    queued = request(world, t, {"runId": acme.run})
    exporter.handler(sqs_event(world), Context())
    names = zip_of(world, f"exports/{t.account_id}/{queued['exportId']}.zip").namelist()
    assert sorted(n.rsplit("/", 1)[1] for n in names) == ["charges.jsonl.gz", "invoices.jsonl.gz"]


def test_a_large_export_goes_up_in_parts(world, acme, monkeypatch):
    import os
    t = acme.tenant
    big = world.backup_file(t, acme.source, acme.run, "events.jsonl.gz", raw=os.urandom(12 * 1024 * 1024))
    monkeypatch.setenv("EXPORT_PART_BYTES", str(5 * 1024 * 1024))
    parts = []
    real = zipstream.MultipartSink._upload_part

    def counted(self):
        parts.append(len(self._buffer))
        return real(self)

    monkeypatch.setattr(zipstream.MultipartSink, "_upload_part", counted)
    queued = request(world, t, {"fileIds": [big, acme.ids[0]]})
    exporter.handler(sqs_event(world), Context())
    archive = zip_of(world, f"exports/{t.account_id}/{queued['exportId']}.zip")
    assert archive.read(f"{acme.source}/{acme.run}/events.jsonl.gz") == t.files[big]["body"]
    assert len(parts) >= 3 and all(p >= 5 * 1024 * 1024 for p in parts[:-1])


@pytest.mark.parametrize("body, field", [
    ({}, "fileIds"), ({"runId": "run_1", "sourceId": "src_1"}, "runId"),
    ({"fileIds": []}, "fileIds"), ({"fileIds": ["nope"]}, "fileIds"),
    ({"fileIds": ["fil_" + "a" * 32] * 2}, "fileIds"), ({"runId": "../x"}, "runId"),
    ({"everything": True}, "everything"),
])
def test_bad_export_requests_are_refused_and_queue_nothing(world, acme, body, field):
    status, reply = world.call(EXPORT, acme.tenant, body=body)
    assert status == 400 and reply["code"] == "validation_failed", reply
    assert any(f.split(".")[0] == field for f in reply["fields"]), reply
    assert world.messages() == []


def test_exports_of_what_is_not_there_are_refused(world, acme):
    t = acme.tenant
    other = world.tenant()
    for body in ({"runId": acme.run}, {"sourceId": acme.source}, {"fileIds": [acme.ids[0]]},
                 {"runId": "run_missing"}):
        status, reply = world.call(EXPORT, other, body=body)
        assert status == 404 and reply["code"] == "not_found", (body, reply)
    empty_run = world.run(t, acme.source)
    status, reply = world.call(EXPORT, t, body={"runId": empty_run})
    assert status == 409 and reply["code"] == "conflict"
    world.call("DELETE /data/files/{fileId}", t, path={"fileId": acme.ids[0]})
    status, reply = world.call(EXPORT, t, body={"fileIds": [acme.ids[0], acme.ids[1]]})
    assert status == 409 and acme.ids[0] in reply["details"]["deleted"]
    assert world.messages() == []


def test_only_managers_export_but_every_member_reads_an_export(world, acme):
    t = acme.tenant
    status, reply = world.call(EXPORT, t, role="viewer", body={"runId": acme.run})
    assert status == 403 and reply["code"] == "forbidden" and world.messages() == []
    queued = request(world, t, {"runId": acme.run}, role="owner")
    assert world.call(STATUS, t, role="viewer", path={"exportId": queued["exportId"]})[0] == 200
    other = world.tenant()
    status, reply = world.call(STATUS, other, path={"exportId": queued["exportId"]})
    assert status == 404 and reply["code"] == "not_found"


def test_a_duplicate_delivery_does_nothing(world, acme):
    queued = request(world, acme.tenant, {"runId": acme.run})
    event = sqs_event(world)
    assert exporter.handler(event, Context()) == {"batchItemFailures": []}
    first = world.table("exports").get_item(Key={"accountId": acme.tenant.account_id,
                                                 "exportId": queued["exportId"]})["Item"]
    assert exporter.handler(event, Context()) == {"batchItemFailures": []}
    again = world.table("exports").get_item(Key={"accountId": acme.tenant.account_id,
                                                 "exportId": queued["exportId"]})["Item"]
    assert again == first and int(again["attempts"]) == 1
    assert len([m for m in sent_emails() if acme.tenant.email in str(m["to"])]) == 1


def test_a_failing_export_is_retried_then_marked_failed_before_the_dead_letter_queue(world, acme, monkeypatch):
    t = acme.tenant
    queued = request(world, t, {"runId": acme.run})
    event = sqs_event(world)
    s3 = exporter.client("s3")
    from botocore.exceptions import ClientError

    def broken(**kwargs):
        raise ClientError({"Error": {"Code": "SlowDown", "Message": "slow down"}}, "GetObject")

    monkeypatch.setattr(s3, "get_object", broken)
    failed = {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert exporter.handler(event, Context()) == failed
    row = world.call(STATUS, t, path={"exportId": queued["exportId"]})[1]["data"]
    assert row["status"] == "running" and row["url"] is None
    assert not world.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads"), "the upload was aborted"

    for record in event["Records"]:
        record["attributes"]["ApproximateReceiveCount"] = "5"      # the last allowed receive
    assert exporter.handler(event, Context()) == failed            # still reported: on to the DLQ
    row = world.call(STATUS, t, path={"exportId": queued["exportId"]})[1]["data"]
    assert row["status"] == "failed" and "failed repeatedly" in row["error"]
    [mail] = [m for m in sent_emails() if t.email in str(m["to"])]
    assert "failed" in mail["subject"]


def test_an_export_that_cannot_finish_in_time_fails_at_once_without_retry(world, acme):
    t = acme.tenant
    queued = request(world, t, {"runId": acme.run})
    assert exporter.handler(sqs_event(world), Context(remaining_ms=1_000)) == {"batchItemFailures": []}
    row = world.call(STATUS, t, path={"exportId": queued["exportId"]})[1]["data"]
    assert row["status"] == "failed" and "too large" in row["error"]
    assert not world.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads")


def test_files_deleted_after_the_request_leave_nothing_to_export(world, acme):
    t = acme.tenant
    queued = request(world, t, {"fileIds": [acme.ids[0]]})
    world.call("DELETE /data/files/{fileId}", t, path={"fileId": acme.ids[0]})
    assert exporter.handler(sqs_event(world), Context()) == {"batchItemFailures": []}
    row = world.call(STATUS, t, path={"exportId": queued["exportId"]})[1]["data"]
    assert row["status"] == "failed" and "nothing to export" in row["error"]


def test_an_export_past_its_expiry_shows_expired_without_a_link(world, acme):
    t = acme.tenant
    queued = request(world, t, {"runId": acme.run})
    exporter.handler(sqs_event(world), Context())
    world.table("exports").update_item(
        Key={"accountId": t.account_id, "exportId": queued["exportId"]},
        UpdateExpression="SET expiresAt = :past", ExpressionAttributeValues={":past": "2020-01-01T00:00:00.000Z"})
    row = world.call(STATUS, t, path={"exportId": queued["exportId"]})[1]["data"]
    assert row["status"] == "expired" and row["url"] is None


def test_malformed_and_unknown_messages_are_dropped(world, acme):
    for body in ({"accountId": 1}, {"accountId": acme.tenant.account_id, "exportId": "exp_missing"}, ["x"]):
        world.sqs.send_message(QueueUrl=world.queue_url, MessageBody=json.dumps(body))
    assert exporter.handler(sqs_event(world), Context()) == {"batchItemFailures": []}


def test_a_zip_written_as_a_stream_reads_back_with_zip64_entries(world):
    sink = zipstream.MultipartSink(world.s3, BUCKET, "exports/t/stream.zip")
    archive = zipstream.open_zip(sink)
    zipstream.add_entry(archive, "a/one.bin", [b"x" * 1000, b"y" * 10], size=None)
    zipstream.add_entry(archive, "b/two.txt", [b"hello"], size=5)
    archive.close()
    size = sink.complete()
    data = world.s3.get_object(Bucket=BUCKET, Key="exports/t/stream.zip")["Body"].read()
    assert len(data) == size
    readback = zipfile.ZipFile(io.BytesIO(data))
    assert readback.read("a/one.bin") == b"x" * 1000 + b"y" * 10 and readback.read("b/two.txt") == b"hello"
    with pytest.raises(ValueError):
        zipstream.MultipartSink(world.s3, BUCKET, "exports/t/x.zip", part_size=1024)


def test_a_delivery_waits_for_a_live_lease_and_takes_over_an_expired_one(world, acme):
    t = acme.tenant
    queued = request(world, t, {"runId": acme.run})
    event = sqs_event(world)
    key = {"accountId": t.account_id, "exportId": queued["exportId"]}
    import time
    world.table("exports").update_item(   # another invocation is working on it
        Key=key, UpdateExpression="SET #s = :running, #l = :lease",
        ExpressionAttributeNames={"#s": "status", "#l": "lease"},
        ExpressionAttributeValues={":running": "running",
                                   ":lease": {"owner": "other", "expiresAt": int(time.time()) + 600}})
    assert exporter.handler(event, Context()) == {"batchItemFailures": []}
    assert world.table("exports").get_item(Key=key)["Item"]["status"] == "running"
    assert not world.s3.list_objects_v2(Bucket=BUCKET, Prefix="exports/").get("Contents")

    world.table("exports").update_item(   # ... and vanished: its lease ran out
        Key=key, UpdateExpression="SET #l.expiresAt = :past",
        ExpressionAttributeNames={"#l": "lease"}, ExpressionAttributeValues={":past": 1})
    assert exporter.handler(event, Context()) == {"batchItemFailures": []}
    row = world.table("exports").get_item(Key=key)["Item"]
    assert row["status"] == "completed" and "lease" not in row


def test_an_export_of_chosen_files_checks_up_to_300_ids_within_four_calls(world, acme, dynamodb_calls):
    """Ids are checked 100 to a BatchGetItem: 300 (the most a request may name) cost three
    reads and the transaction that stores the export; a 301st id is refused up front."""
    from handlers.data.routes import EXPORT_FILE_IDS
    from handlers.shared.files import file_id_for

    t = acme.tenant
    ids = []
    for n in range(EXPORT_FILE_IDS):
        key = f"data/{t.account_id}/src_x/run_x/f{n}.jsonl.gz"
        ids.append(file_id_for(key))
        world.table("files").put_item(Item={"accountId": t.account_id, "fileId": ids[-1], "key": key,
                                            "path": f"f{n}.jsonl.gz", "size": 1})
    dynamodb_calls.clear()
    queued = request(world, t, {"fileIds": ids})
    assert dynamodb_calls == ["BatchGetItem"] * 3 + ["TransactWriteItems"]
    assert queued["status"] == "pending"
    dynamodb_calls.clear()
    status, reply = world.call(EXPORT, t, body={"fileIds": ids + [acme.ids[1]]})
    assert (status, reply["code"], reply["fields"]) == (400, "validation_failed", ["fileIds"])
    assert dynamodb_calls == []
