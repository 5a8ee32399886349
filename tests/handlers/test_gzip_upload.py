"""The gzip JSON-Lines multipart uploader against moto S3: one valid gzip of exactly the
records, parts of at least 5 MiB but the last, each part its own gzip member, the retention
tag, resuming from (uploadId, parts), and abort."""

from __future__ import annotations

import gzip
import json
import os
import zlib

import boto3
import pytest
from moto import mock_aws

from handlers.shared.gzip_upload import MIN_PART, GzipJsonLinesUpload

BUCKET = "gz-test"


@pytest.fixture
def s3(monkeypatch):
    for k, v in {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client


def pages(count: int, per_page: int = 100, blob: int = 4000, start: int = 0):
    """Pages of records with incompressible text (so parts fill up quickly)."""
    n = start
    for _ in range(count):
        page = []
        for _ in range(per_page):
            page.append({"id": n, "blob": os.urandom(blob // 2).hex(), "name": "Zoë ✓"})
            n += 1
        yield page


def read_lines(s3, key):
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return [json.loads(line) for line in gzip.decompress(body).splitlines()], body


def members(data: bytes) -> int:
    count = 0
    while data:
        d = zlib.decompressobj(31)
        d.decompress(data)
        data = d.unused_data
        count += 1
    return count


def test_small_object_is_one_gzip_member_with_the_records_and_the_tag(s3):
    up = GzipJsonLinesUpload(s3, BUCKET, "a.jsonl.gz", tags={"retention": "30d"})
    written = list(pages(2, per_page=3, blob=10))
    for page in written:
        up.write_page(page)
    result = up.complete()
    lines, raw = read_lines(s3, "a.jsonl.gz")
    assert lines == [r for p in written for r in p]
    assert result["records"] == 6 and result["size"] == len(raw)
    assert result["bytes"] == sum(len(json.dumps(r, ensure_ascii=False, separators=(",", ":")).encode()) + 1
                                  for p in written for r in p)
    tags = s3.get_object_tagging(Bucket=BUCKET, Key="a.jsonl.gz")["TagSet"]
    assert tags == [{"Key": "retention", "Value": "30d"}]
    assert s3.head_object(Bucket=BUCKET, Key="a.jsonl.gz")["ContentType"] == "application/gzip"


def test_empty_endpoint_is_a_valid_empty_gzip(s3):
    up = GzipJsonLinesUpload(s3, BUCKET, "e.jsonl.gz")
    assert up.complete()["records"] == 0
    assert read_lines(s3, "e.jsonl.gz")[0] == []


def test_large_object_parts_are_members_of_at_least_5_mib_and_concatenate(s3):
    up = GzipJsonLinesUpload(s3, BUCKET, "big.jsonl.gz")
    written = []
    for page in pages(40, per_page=100, blob=4000):     # ~16 MB of hex -> ~8 MB compressed
        written.extend(page)
        up.write_page(page)
        assert len(up._buffer) < MIN_PART                # bounded: never more than a part buffered
    assert len(up.parts) >= 1
    result = up.complete()
    lines, raw = read_lines(s3, "big.jsonl.gz")
    assert [r["id"] for r in lines] == [r["id"] for r in written] and lines == written
    assert members(raw) == len(up.parts) >= 2
    for number in range(1, len(up.parts)):
        head = s3.head_object(Bucket=BUCKET, Key="big.jsonl.gz", PartNumber=number)
        assert head["ContentLength"] >= MIN_PART
    assert result["records"] == len(written)


def test_resume_from_committed_state_writes_no_page_twice(s3):
    first = GzipJsonLinesUpload(s3, BUCKET, "r.jsonl.gz", tags={"retention": "90d"})
    all_pages = list(pages(40, per_page=100, blob=4000))
    for page in all_pages[:30]:
        first.write_page(page)
    state = first.committed
    assert state["pages"] > 0 and state["parts"] and state["pages"] < 30   # some pages only buffered
    # a new invocation: resumes after the committed pages, drops nothing
    second = GzipJsonLinesUpload.resume(s3, BUCKET, "r.jsonl.gz", json.loads(json.dumps(state)))
    for page in all_pages[state["pages"]:]:
        second.write_page(page)
    second.complete()
    lines, _ = read_lines(s3, "r.jsonl.gz")
    assert lines == [r for p in all_pages for r in p]
    assert s3.get_object_tagging(Bucket=BUCKET, Key="r.jsonl.gz")["TagSet"] == [{"Key": "retention", "Value": "90d"}]


def test_abort_leaves_no_object_and_no_upload(s3):
    up = GzipJsonLinesUpload(s3, BUCKET, "x.jsonl.gz")
    up.write_page([{"a": 1}])
    up.abort()
    up.abort()
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


def test_part_size_below_s3_minimum_is_refused(s3):
    with pytest.raises(ValueError):
        GzipJsonLinesUpload(s3, BUCKET, "y", part_size=1024)
