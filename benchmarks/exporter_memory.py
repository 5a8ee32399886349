"""Benchmark (not a test): the exporter's peak memory for a 200 MB export against a 20 MB one
(issue 8 "Tests": within 10%).

    .venv/bin/python benchmarks/exporter_memory.py [--sizes 20 200] [--file-mb 10] [--repeat 1]

moto runs as a server in its own process (``python -m moto.server``: its storage of the
backed-up objects and of the zip does not count). For each size this script stores that
many megabytes of backed-up objects (``--file-mb`` each, random bytes, as incompressible
as gzip output) under one run, indexes them with the indexer's own code, adds a pending
export of the run, and starts a fresh child process that runs
``handlers.data.exporter.handler`` on the export's queue message: the objects are streamed
from S3 into one zip written as a multipart upload. The child reports its peak RSS
(``VmHWM``) and the time taken; the zip is then checked (size, entry count).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.support import LambdaContext, free_port, peak_rss_mb, wait_port  # noqa: E402

PREFIX = "listbackup-bench-"
BUCKET = "listbackup-data-bench"
MB = 1024 * 1024



def child(account_id: str, export_id: str) -> None:
    from handlers.data import exporter

    body = json.dumps({"accountId": account_id, "exportId": export_id})
    event = {"Records": [{"messageId": uuid.uuid4().hex, "receiptHandle": "x", "body": body,
                          "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                          "md5OfBody": "0" * 32, "eventSource": "aws:sqs",
                          "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:listbackup-data-queue-bench",
                          "awsRegion": "us-east-1"}]}
    started = time.perf_counter()
    result = exporter.handler(event, LambdaContext("listbackup-data-bench-exporter", 512))
    seconds = time.perf_counter() - started
    from handlers.data.exports import get_export

    row = get_export(account_id, export_id)
    assert result == {"batchItemFailures": []} and row["status"] == "completed", (result, row)
    print(json.dumps({"seconds": seconds, "size": int(row["size"]), "files": int(row["files"]),
                      "rss_mb": peak_rss_mb()}))



# ----------------------------------------------------------------------------- orchestration




def setup(env: dict) -> None:
    os.environ.update(env)
    import boto3

    from components import tables
    from tests.support import create_tables

    create_tables(tables.CORE_TABLES + tables.DATA_TABLES, prefix=PREFIX)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    boto3.client("ses").verify_email_identity(EmailAddress=env["SES_FROM_EMAIL"])


def tenant(total_mb: int, file_mb: int) -> tuple[str, str]:
    """An account whose one run holds ``total_mb`` of objects, and a pending export of it."""
    from handlers.shared import clock
    from handlers.shared.clients import client, table
    from handlers.shared.file_index import converge
    from handlers.shared.files import data_key, parse_data_key
    from handlers.shared.ids import new_id

    account_id, user_id = new_id("acc"), new_id("usr")
    source_id, run_id, export_id = new_id("src"), new_id("run"), new_id("exp")
    table("accounts").put_item(Item={"accountId": account_id, "name": "Bench", "plan": "enterprise",
                                     "storageBytes": 0, "createdAt": clock.iso()})
    table("users").put_item(Item={"userId": user_id, "email": f"{user_id}@bench.example",
                                  "status": "active"})
    s3 = client("s3")
    remaining = total_mb
    n = 0
    while remaining > 0:
        size = min(file_mb, remaining)
        key = data_key(account_id, source_id, run_id, f"endpoint{n:03d}.jsonl.gz")
        s3.put_object(Bucket=BUCKET, Key=key, Body=os.urandom(size * MB), ContentType="application/gzip")
        converge(BUCKET, parse_data_key(key))
        remaining -= size
        n += 1
    table("exports").put_item(Item={"accountId": account_id, "exportId": export_id, "status": "pending",
                                    "scope": {"runId": run_id}, "requestedBy": user_id,
                                    "createdAt": clock.iso(), "attempts": 0})
    return account_id, export_id


def measure(total_mb: int, file_mb: int, env: dict) -> dict:
    account_id, export_id = tenant(total_mb, file_mb)
    out = subprocess.run([sys.executable, __file__, "--child", account_id, export_id],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise SystemExit(f"exporter child failed:\n{out.stderr[-4000:]}")
    got = json.loads(out.stdout.strip().splitlines()[-1])
    import boto3
    head = boto3.client("s3").head_object(Bucket=BUCKET, Key=f"exports/{account_id}/{export_id}.zip")
    assert head["ContentLength"] == got["size"] >= total_mb * MB, (head["ContentLength"], got)
    assert got["files"] == -(-total_mb // file_mb), got
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 200], help="export sizes in MB")
    parser.add_argument("--file-mb", type=int, default=10, help="size of each backed-up object")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size (lowest peak kept)")
    parser.add_argument("--child", nargs=2, metavar=("ACCOUNT", "EXPORT"))
    args = parser.parse_args()
    if args.child:
        return child(*args.child)

    moto = None
    try:
        port = free_port()
        moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port)
        env = {**os.environ, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
               "DYNAMODB_TABLE_PREFIX": PREFIX, "STAGE": "bench", "S3_BUCKET": BUCKET,
               "SES_FROM_EMAIL": "noreply@bench.listbackup.ai",
               "API_BASE_URL": "https://api.bench.listbackup.ai/v2",
               "POWERTOOLS_LOG_LEVEL": "WARNING", "LOG_LEVEL": "WARNING",
               "POWERTOOLS_SERVICE_NAME": "data"}
        setup(env)
        from handlers.shared import clients
        clients.reset()

        results = {}
        print(f"{'export':>8} {'files':>6} {'seconds':>8} {'MB/s':>7} {'peak RSS':>10}")
        for size in args.sizes:
            best = None
            for _ in range(args.repeat):
                got = measure(size, args.file_mb, env)
                if best is None or got["rss_mb"] < best["rss_mb"]:
                    best = got
            results[size] = best
            print(f"{size:>5} MB {best['files']:>6} {best['seconds']:>8.2f} "
                  f"{size / best['seconds']:>7.1f} {best['rss_mb']:>7.1f} MB", flush=True)
        if len(args.sizes) >= 2:
            small, large = min(args.sizes), max(args.sizes)
            ratio = results[large]["rss_mb"] / results[small]["rss_mb"]
            print(f"\nexporter peak RSS, {large} MB export vs {small} MB: {results[large]['rss_mb']:.1f} MB "
                  f"vs {results[small]['rss_mb']:.1f} MB = {ratio:.3f} x ({(ratio - 1) * 100:+.1f}%; "
                  f"target within 10%)")
    finally:
        if moto is not None:
            moto.terminate()
            moto.wait(timeout=10)


if __name__ == "__main__":
    main()
