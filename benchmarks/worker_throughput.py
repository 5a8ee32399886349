"""Benchmark (not a test): the backup worker's throughput and peak memory (issue 7 "Figures").

    .venv/bin/python benchmarks/worker_throughput.py [--sizes 10000 100000] [--repeat 1]

Three processes besides this one: moto as a server (``python -m moto.server``: S3,
DynamoDB, SQS, KMS, SES - its storage does not count), a Stripe-shaped paged server
(``GET /v1/<endpoint>?limit=&starting_after=``, 100 records a page, ~400-byte records made
on the fly), and for each measurement a fresh child process that runs either

- ``worker``: ``handlers.jobs.worker.handler`` on one job-queue message (a run of one
  endpoint of N records: pages -> gzip JSON Lines multipart upload -> sha256 of the stored
  object -> files row -> run finished), or
- ``baseline``: the same paging engine fetching the same pages and doing nothing with them.

Each child reports records/s and its own peak RSS (``VmHWM``, which starts afresh at exec). Targets: worker
throughput >= 0.8 x baseline; worker peak RSS at 100,000 records within 10% of 10,000.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.support import LambdaContext, free_port, peak_rss_mb, wait_port  # noqa: E402

PREFIX = "listbackup-bench-"
BUCKET = "listbackup-data-bench"
KEY = "sk_test_FakeBenchmarkKey0000000001"
ENDPOINTS = {"charges": 10_000, "customers": 100_000, "invoices": 1_000}   # records per endpoint
PAGE = 100


# ----------------------------------------------------------------------------- paged server

def record(prefix: str, n: int) -> dict:
    return {"id": f"{prefix}_{n:07d}", "object": prefix, "created": 1700000000 + n,
            "email": f"customer{n}@example.com", "name": f"Customer number {n}",
            "description": f"Benchmark record {n} with a little text to look like real data",
            "address": {"line1": f"{n} Main Street", "city": "Springfield", "postal_code": f"{n % 99999:05d}",
                        "country": "US"},
            "balance": (n * 37) % 10000, "currency": "usd", "livemode": False,
            "metadata": {"n": str(n), "segment": ["a", "b", "c"][n % 3]}}


def serve(port_file: str) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            parts = urlsplit(self.path)
            query = dict(parse_qsl(parts.query))
            name = parts.path.removeprefix("/v1/")
            total = ENDPOINTS.get(name)
            if total is None or self.headers.get("Authorization") != f"Bearer {KEY}":
                body = b'{"error":{}}'
                self.send_response(404 if total is None else 401)
            else:
                start = int(query["starting_after"].rsplit("_", 1)[1]) + 1 if "starting_after" in query else 0
                size = min(int(query.get("limit", 10)), PAGE)
                prefix = name[:3]
                data = [record(prefix, n) for n in range(start, min(start + size, total))]
                body = json.dumps({"object": "list", "data": data,
                                   "has_more": start + size < total}).encode()
                self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Path(port_file).write_text(str(server.server_port))
    server.serve_forever()


# ----------------------------------------------------------------------------- children


def child(mode: str, account_id: str, run_id: str, source_id: str, endpoint: str) -> None:
    if mode == "worker":
        from handlers.jobs import worker
        body = json.dumps({"accountId": account_id, "runId": run_id, "checkpoint": None})
        event = {"Records": [{"messageId": uuid.uuid4().hex, "receiptHandle": "x", "body": body,
                              "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                              "md5OfBody": "0" * 32, "eventSource": "aws:sqs",
                              "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:jobs",
                              "awsRegion": "us-east-1"}]}
        t0 = time.perf_counter()
        if os.environ.get("BENCH_PROFILE"):
            import cProfile, pstats
            prof = cProfile.Profile()
            result = prof.runcall(worker.handler, event, LambdaContext("listbackup-jobs-bench-worker", 1024))
            pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(40)
        else:
            result = worker.handler(event, LambdaContext("listbackup-jobs-bench-worker", 1024))
        seconds = time.perf_counter() - t0
        from handlers.jobs.backup import get_run
        run = get_run(account_id, run_id)
        assert result == {"batchItemFailures": []} and run["status"] == "completed", (result, run.get("error"))
        records = int(run["records"])
    else:
        from handlers.jobs.backup import make_connector
        from handlers.shared import sources
        from handlers.shared.connectors.platforms import get_platform
        from handlers.shared.clients import client
        client("s3")       # the same clients created, for a like-for-like RSS
        t0 = time.perf_counter()
        source = sources.get_source(account_id, source_id)
        connector = make_connector(get_platform("stripe"), {}, sources.load_credentials(source), None)
        records = 0
        for page in connector.pages(endpoint):
            records += len(page)
        seconds = time.perf_counter() - t0
    print(json.dumps({"records": records, "seconds": seconds,
                      "rss_mb": peak_rss_mb()}))


# ----------------------------------------------------------------------------- orchestration




def setup(env: dict) -> None:
    os.environ.update(env)
    import boto3

    from components import tables
    from tests.support import create_tables

    create_tables(tables.CORE_TABLES + tables.API_TABLES + tables.AUTH_TABLES + tables.ACCOUNT_TABLES,
                  prefix=PREFIX)
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    boto3.client("ses").verify_email_identity(EmailAddress=env["SES_FROM_EMAIL"])


def tenant(endpoint: str) -> tuple[str, str, str]:
    """An account, a Stripe source, a job of one endpoint and a pending run."""
    from handlers.shared import clock, sources
    from handlers.shared.clients import table
    from handlers.shared.ids import new_id

    now = clock.iso()
    account_id, user_id = new_id("acc"), new_id("usr")
    table("accounts").put_item(Item={"accountId": account_id, "name": "Bench", "plan": "enterprise",
                                     "ownSubscription": True, "rootAccountId": account_id,
                                     "path": account_id, "depth": 0, "storageBytes": 0,
                                     "sourceCount": 0, "createdAt": now})
    table("users-accounts").put_item(Item={"userId": user_id, "accountId": account_id, "role": "owner"})
    source = sources.create_source(account_id, name="Stripe", type="stripe", settings={},
                                   credentials={"api_key": KEY}, actor=user_id)
    job_id, run_id = new_id("job"), new_id("run")
    table("jobs").put_item(Item={"accountId": account_id, "jobId": job_id, "sourceId": source["sourceId"],
                                 "name": "bench", "endpoints": [endpoint], "status": "active",
                                 "activeRunId": run_id, "createdAt": now})
    table("runs").put_item(Item={"accountId": account_id, "runId": run_id, "jobId": job_id,
                                 "sourceId": source["sourceId"], "status": "pending", "createdAt": now,
                                 "endpoints": [], "records": 0, "bytes": 0, "checkpoint": None,
                                 "cancelRequested": False, "trigger": "manual"})
    return account_id, run_id, source["sourceId"]


def measure(mode: str, endpoint: str, env: dict) -> dict:
    account_id, run_id, source_id = tenant(endpoint)
    out = subprocess.run([sys.executable, __file__, "--child", mode, account_id, run_id, source_id, endpoint],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise SystemExit(f"{mode} child failed:\n{out.stderr[-4000:]}")
    if os.environ.get("BENCH_PROFILE"):
        print(out.stderr[-12000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=1, help="runs per size and mode (best kept)")
    parser.add_argument("--child", nargs=5, metavar=("MODE", "ACCOUNT", "RUN", "SOURCE", "ENDPOINT"))
    parser.add_argument("--serve", metavar="PORT_FILE")
    parser.add_argument("--json", type=Path, help="also write the figures here (benchmarks/run_all.py)")
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve)
    if args.child:
        return child(*args.child)

    by_size = {n: name for name, n in ENDPOINTS.items()}
    for size in args.sizes:
        if size not in by_size:
            raise SystemExit(f"sizes must be among {sorted(by_size)}")
    procs = []
    try:
        moto_port = free_port()
        procs.append(subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(moto_port)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        port_file = f"/tmp/worker-bench-{os.getpid()}.port"
        procs.append(subprocess.Popen([sys.executable, __file__, "--serve", port_file], cwd=ROOT))
        wait_port(moto_port)
        while not (Path(port_file).exists() and Path(port_file).read_text().strip()):
            time.sleep(0.05)        # the server writes its port once it listens
        platform_port = int(Path(port_file).read_text())
        wait_port(platform_port)
        env = {**os.environ, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
               "DYNAMODB_TABLE_PREFIX": PREFIX, "STAGE": "bench", "S3_BUCKET": BUCKET,
               "SES_FROM_EMAIL": "noreply@bench.listbackup.ai", "APP_URL": "https://app.bench",
               "JOB_QUEUE_URL": "", "OAUTH_PARAM_PREFIX": "/listbackup/bench/oauth/",
               "LISTBACKUP_PLATFORM_URLS": json.dumps({"stripe": f"http://127.0.0.1:{platform_port}"}),
               "POWERTOOLS_LOG_LEVEL": "WARNING", "LOG_LEVEL": "WARNING",
               "POWERTOOLS_SERVICE_NAME": "jobs"}
        setup(env)
        import boto3
        env["CREDENTIALS_KEY_ARN"] = boto3.client("kms").create_key()["KeyMetadata"]["Arn"]
        env["JOB_QUEUE_URL"] = boto3.client("sqs").create_queue(QueueName="bench-jobs")["QueueUrl"]
        os.environ.update(env)
        from handlers.shared import clients
        clients.reset()

        results = {}
        print(f"{'records':>8}  {'mode':<9} {'seconds':>8} {'records/s':>10} {'peak RSS':>10}")
        for size in args.sizes:
            for mode in ("baseline", "worker"):
                best = None
                for _ in range(args.repeat):
                    got = measure(mode, by_size[size], env)
                    assert got["records"] == size, got
                    if best is None or got["seconds"] < best["seconds"]:
                        best = {**got, "rss_mb": max(got["rss_mb"], (best or got)["rss_mb"])}
                results[(size, mode)] = best
                print(f"{size:>8}  {mode:<9} {best['seconds']:>8.2f} {size / best['seconds']:>10.0f} "
                      f"{best['rss_mb']:>8.1f} MB", flush=True)
        print()
        for size in args.sizes:
            ratio = results[(size, "baseline")]["seconds"] / results[(size, "worker")]["seconds"]
            print(f"{size:>8} records: worker throughput = {ratio:.2f} x baseline (target >= 0.8)")
        if len(args.sizes) >= 2:
            small, large = min(args.sizes), max(args.sizes)
            growth = results[(large, "worker")]["rss_mb"] / results[(small, "worker")]["rss_mb"] - 1
            print(f"worker peak RSS at {large} vs {small} records: {growth * 100:+.1f}% (target within 10%)")
        if args.json:
            args.json.write_text(json.dumps({f"{size}/{mode}": got for (size, mode), got in results.items()}))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)
        try:
            Path(f"/tmp/worker-bench-{os.getpid()}.port").unlink()
        except OSError:
            pass


if __name__ == "__main__":
    main()
