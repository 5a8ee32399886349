"""Getting data back, end to end through offline mode (issue 8): after a real Stripe backup
against localstripe, list the run's files, download one through its link and compare it
with localstripe's data, browse and search, export the run and open the zip, delete and
restore a file and watch the account's usage follow, and check that another account sees
none of it."""

from __future__ import annotations

import gzip
import io
import json
import re
import urllib.request
import zipfile

import pytest

from tests.connectors import localstripe_server
from tests.e2e.harness import OfflineServer
from tests.e2e.identity import emails, register

CUSTOMERS = 15
PRODUCTS = 4


@pytest.fixture(scope="module")
def stripe():
    with localstripe_server.tenant("data") as (url, key, client):
        for i in range(CUSTOMERS):
            client.v1.customers.create(params={"email": f"c{i}@example.com", "name": f"Customer {i}"})
        for i in range(PRODUCTS):
            client.v1.products.create(params={"name": f"Product {i}"})
        yield url, key, client


@pytest.fixture(scope="module")
def server(stripe):
    url, _, _ = stripe
    with OfflineServer("--platform-url", f"stripe={url}") as running:
        yield running


def fetch(url: str) -> tuple[bytes, dict]:
    with urllib.request.urlopen(url, timeout=30) as reply:
        return reply.read(), {k.lower(): v for k, v in reply.headers.items()}


def ok(reply, status: int = 200):
    assert reply.status == status, reply
    return reply.json["data"]


@pytest.fixture(scope="module")
def backup(server, stripe):
    """Alice's Stripe source, a job of customers and products, one completed run, indexed."""
    _, key, _ = stripe
    alice = register(server)
    source = ok(server.post("/sources", {"name": "Stripe", "type": "stripe",
                                         "credentials": {"api_key": key}}, token=alice.access), 201)
    job = ok(server.post("/jobs", {"sourceId": source["sourceId"], "name": "Customers and products",
                                   "schedule": {"frequency": "manual"},
                                   "endpoints": ["customers", "products"]}, token=alice.access), 201)
    run_id = ok(server.post(f"/jobs/{job['jobId']}/run", token=alice.access), 202)["runId"]

    def finished():
        run = server.get(f"/runs/{run_id}", token=alice.access).json["data"]
        return run if run["status"] not in ("pending", "running") else None

    run = server.eventually(finished, timeout=90, interval=0.5)
    assert run["status"] == "completed", run

    def indexed():
        # the indexer is asynchronous in offline mode: wait for both files and their counts
        listed = ok(server.get(f"/data/files?runId={run_id}", token=alice.access))["items"]
        return listed if len(listed) == 2 and all(f["records"] is not None for f in listed) else None

    files = server.eventually(indexed, timeout=60, interval=0.5)
    return {"user": alice, "sourceId": source["sourceId"], "runId": run_id, "jobId": job["jobId"],
            "files": {f["name"]: f for f in files}}


def usage(server, user) -> int:
    return ok(server.get("/account/usage", token=user.access))["storageBytes"]["used"]


def test_the_runs_files_are_listed_and_download_as_localstripe_serves_them(server, stripe, backup):
    _, _, client = stripe
    alice, files = backup["user"], backup["files"]
    assert set(files) == {"customers.jsonl.gz", "products.jsonl.gz"}
    customers = files["customers.jsonl.gz"]
    assert customers["records"] == CUSTOMERS and customers["deleted"] is False
    assert customers["sourceId"] == backup["sourceId"] and customers["runId"] == backup["runId"]
    assert files["products.jsonl.gz"]["records"] == PRODUCTS

    link = ok(server.get(f"/data/files/{customers['fileId']}/download-url", token=alice.access))
    body, headers = fetch(link["url"])
    assert len(body) == customers["size"]
    import hashlib
    assert hashlib.sha256(body).hexdigest() == customers["sha256"]
    assert 'filename="customers.jsonl.gz"' in headers["content-disposition"]
    downloaded = {r["id"]: r for r in map(json.loads, gzip.decompress(body).splitlines())}
    served = {c["id"]: c for c in client.v1.customers.list(params={"limit": 100})["data"]}
    assert set(downloaded) == set(served) and len(served) == CUSTOMERS
    for cid, record in served.items():
        assert (downloaded[cid]["email"], downloaded[cid]["name"]) == (record["email"], record["name"])

    one = ok(server.get(f"/data/files/{customers['fileId']}", token=alice.access))
    assert [v["current"] for v in one["versions"]] == [True]


def test_tree_and_search_find_the_backup(server, backup):
    alice = backup["user"]
    sources = ok(server.get("/data/tree", token=alice.access))["items"]
    assert [(s["kind"], s["sourceId"]) for s in sources] == [("source", backup["sourceId"])]
    runs = ok(server.get(f"/data/tree?sourceId={backup['sourceId']}", token=alice.access))["items"]
    [run] = runs
    assert run["runId"] == backup["runId"] and run["files"] == 2
    assert run["size"] == sum(f["size"] for f in backup["files"].values())
    assert run["records"] == CUSTOMERS + PRODUCTS
    inside = ok(server.get(f"/data/tree?sourceId={backup['sourceId']}&path={backup['runId']}",
                           token=alice.access))["items"]
    assert sorted(e["name"] for e in inside) == ["customers.jsonl.gz", "products.jsonl.gz"]
    found = ok(server.post("/data/search", {"query": "cust"}, token=alice.access))["items"]
    assert [f["fileId"] for f in found] == [backup["files"]["customers.jsonl.gz"]["fileId"]]


def test_exporting_the_run_gives_a_zip_of_its_files_and_a_mailed_link(server, backup):
    alice = backup["user"]
    queued = ok(server.post("/data/export", {"runId": backup["runId"]}, token=alice.access), 202)
    assert queued["status"] == "pending"

    def done():
        export = ok(server.get(f"/data/exports/{queued['exportId']}", token=alice.access))
        return export if export["status"] not in ("pending", "running") else None

    export = server.eventually(done, timeout=60, interval=0.5)
    assert export["status"] == "completed" and export["files"] == 2, export
    assert export["expiresAt"] and export["url"]
    data, headers = fetch(export["url"])
    assert f"listbackup-export-{queued['exportId']}.zip" in headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    prefix = f"{backup['sourceId']}/{backup['runId']}/"
    assert sorted(archive.namelist()) == [prefix + "customers.jsonl.gz", prefix + "products.jsonl.gz"]
    for name, meta in backup["files"].items():
        import hashlib
        assert hashlib.sha256(archive.read(prefix + name)).hexdigest() == meta["sha256"]

    # the mail goes out just after the export is recorded as completed
    mails = server.eventually(lambda: [m for m in emails(server, alice.email)
                                       if "export" in m.get("subject", "").lower()], timeout=30)
    text = json.dumps(mails[-1])
    assert re.search(rf"http://127\.0\.0\.1:\d+/v2/data/exports/{queued['exportId']}", text)
    # a fresh link at every visit
    assert ok(server.get(f"/data/exports/{queued['exportId']}", token=alice.access))["url"]


def test_delete_and_restore_move_the_accounts_usage(server, backup):
    alice = backup["user"]
    products = backup["files"]["products.jsonl.gz"]
    total = sum(f["size"] for f in backup["files"].values())
    server.eventually(lambda: usage(server, alice) == total, timeout=30)

    assert server.request("DELETE", f"/data/files/{products['fileId']}", token=alice.access).status == 200
    assert ok(server.get(f"/data/files/{products['fileId']}", token=alice.access))["deleted"] is True
    server.eventually(lambda: usage(server, alice) == total - products["size"], timeout=30)
    link = server.get(f"/data/files/{products['fileId']}/download-url", token=alice.access)
    assert link.status == 409

    restored = ok(server.post(f"/data/files/{products['fileId']}/restore", token=alice.access))
    assert restored["deleted"] is False and restored["sha256"] == products["sha256"]
    server.eventually(lambda: usage(server, alice) == total, timeout=30)
    body, _ = fetch(ok(server.get(f"/data/files/{products['fileId']}/download-url",
                                  token=alice.access))["url"])
    assert len(body) == products["size"]
    # and it stays that way once the indexer has seen whatever S3 sent
    import time
    time.sleep(2)
    assert usage(server, alice) == total


def test_another_account_sees_none_of_it(server, backup):
    alice = backup["user"]
    bob = register(server)
    export = ok(server.post("/data/export", {"fileIds": [backup["files"]["customers.jsonl.gz"]["fileId"]]},
                            token=alice.access), 202)
    for meta in backup["files"].values():
        file_id = meta["fileId"]
        for method, path in (("GET", f"/data/files/{file_id}"),
                             ("GET", f"/data/files/{file_id}/download-url"),
                             ("DELETE", f"/data/files/{file_id}"),
                             ("POST", f"/data/files/{file_id}/restore")):
            reply = server.request(method, path, token=bob.access)
            assert reply.status == 404 and reply.json["code"] == "not_found", (method, path, reply)
    assert server.get(f"/data/exports/{export['exportId']}", token=bob.access).status == 404
    for body in ({"runId": backup["runId"]}, {"sourceId": backup["sourceId"]},
                 {"fileIds": [backup["files"]["products.jsonl.gz"]["fileId"]]}):
        reply = server.post("/data/export", body, token=bob.access)
        assert reply.status == 404, (body, reply)
    for path in ("/data/files", f"/data/files?runId={backup['runId']}",
                 f"/data/files?sourceId={backup['sourceId']}", "/data/files?path=c",
                 "/data/tree", f"/data/tree?sourceId={backup['sourceId']}",
                 f"/data/tree?sourceId={backup['sourceId']}&path={backup['runId']}"):
        assert ok(server.get(path, token=bob.access))["items"] == [], path
    assert ok(server.post("/data/search", {"query": "c"}, token=bob.access))["items"] == []
    # Alice's data is all still there
    assert len(ok(server.get(f"/data/files?runId={backup['runId']}", token=alice.access))["items"]) == 2
    assert ok(server.get(f"/data/files/{backup['files']['products.jsonl.gz']['fileId']}",
                         token=alice.access))["deleted"] is False
