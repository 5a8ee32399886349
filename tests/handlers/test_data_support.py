"""What the data service's tests share (no tests here): the stage in moto with a versioned
bucket, the exports table and the data queue, and tenants with real backed-up files -
objects in S3 indexed by the indexer's own converging code, plus the worker's half of the
row - so every test reads and changes state the way the product does."""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from components.tables import DATA_TABLES
from handlers.shared.file_index import converge
from handlers.shared.files import data_key, file_id_for, parse_data_key
from handlers.shared.ids import new_id
from tests.support import BUCKET, PREFIX, api_event, call, create_tables

API_BASE = "https://api.test.listbackup.ai/v2"


@dataclass
class Tenant:
    account_id: str
    user_id: str
    email: str
    role: str = "manager"
    files: dict[str, dict] = field(default_factory=dict)   # fileId -> {key, body, ...}

    def identity(self, role: str | None = None) -> dict:
        return {"userId": self.user_id, "accountId": self.account_id, "role": role or self.role}


class World:
    """The stage's AWS (moto) and helpers that create what the product would."""

    def __init__(self, queue_url: str):
        self.s3 = boto3.client("s3")
        self.dynamodb = boto3.resource("dynamodb")
        self.sqs = boto3.client("sqs")
        self.queue_url = queue_url

    def table(self, name: str):
        return self.dynamodb.Table(PREFIX + name)

    # -------------------------------------------------------------- tenants and sources

    def tenant(self, role: str = "manager", *, used: int = 0) -> Tenant:
        account_id, user_id = new_id("acc"), new_id("usr")
        email = f"{user_id}@example.com"
        self.table("accounts").put_item(Item={
            "accountId": account_id, "name": "Acme", "plan": "free", "rootAccountId": account_id,
            "path": account_id, "depth": 0, "storageBytes": used,
            "createdAt": "2026-01-01T00:00:00.000Z"})
        self.table("users").put_item(Item={"userId": user_id, "email": email, "status": "active",
                                           "name": "Ada"})
        self.table("users-accounts").put_item(Item={"userId": user_id, "accountId": account_id,
                                                    "role": role})
        return Tenant(account_id, user_id, email, role)

    def source(self, tenant: Tenant, name: str = "Stripe", *, runs: int = 0, records: int = 0,
               bytes_: int = 0) -> str:
        source_id = new_id("src")
        self.table("sources").put_item(Item={
            "accountId": tenant.account_id, "sourceId": source_id, "name": name, "type": "stripe",
            "status": "active", "createdAt": "2026-01-01T00:00:00.000Z"})
        self.table("jobs").put_item(Item={
            "accountId": tenant.account_id, "jobId": new_id("job"), "sourceId": source_id,
            "name": "Everything", "status": "active",
            "stats": {"runs": runs, "completed": runs, "partial": 0, "failed": 0, "cancelled": 0,
                      "records": records, "bytes": bytes_, "lastStatus": "completed"}})
        return source_id

    def run(self, tenant: Tenant, source_id: str, created_at: str = "2026-02-01T00:00:00.000Z",
            status: str = "completed") -> str:
        run_id = new_id("run")
        self.table("runs").put_item(Item={
            "accountId": tenant.account_id, "runId": run_id, "jobId": "job_x", "sourceId": source_id,
            "status": status, "createdAt": created_at, "finishedAt": created_at})
        return run_id

    # -------------------------------------------------------------- files

    def backup_file(self, tenant: Tenant, source_id: str, run_id: str, path: str,
                    records: list[dict] | None = None, *, created_at: str | None = None,
                    raw: bytes | None = None, content_type: str = "application/gzip") -> str:
        """An object as the worker stores it, indexed as the indexer would index it."""
        records = records if records is not None else [{"id": f"{path}-{i}"} for i in range(3)]
        body = raw if raw is not None else gzip.compress(
            b"".join(json.dumps(r).encode() + b"\n" for r in records), mtime=0)
        key = data_key(tenant.account_id, source_id, run_id, path)
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=body, ContentType=content_type,
                           Tagging="retention=30d")
        converge(BUCKET, parse_data_key(key))
        file_id = file_id_for(key)
        files = self.table("files")
        files.update_item(
            Key={"accountId": tenant.account_id, "fileId": file_id},
            UpdateExpression="SET records = :r, sha256 = :h, #b = :b, endpoint = :e, jobId = :j",
            ExpressionAttributeNames={"#b": "bytes"},
            ExpressionAttributeValues={":r": len(records), ":h": hashlib.sha256(body).hexdigest(),
                                       ":b": sum(len(json.dumps(r)) + 1 for r in records),
                                       ":e": path.split(".")[0], ":j": "job_x"})
        if created_at:
            files.update_item(Key={"accountId": tenant.account_id, "fileId": file_id},
                              UpdateExpression="SET createdAt = :c",
                              ExpressionAttributeValues={":c": created_at})
        tenant.files[file_id] = {"key": key, "body": body, "path": path, "sourceId": source_id,
                                 "runId": run_id}
        return file_id

    def row(self, tenant: Tenant, file_id: str) -> dict | None:
        return self.table("files").get_item(Key={"accountId": tenant.account_id, "fileId": file_id},
                                            ConsistentRead=True).get("Item")

    def storage(self, tenant: Tenant) -> int:
        return int(self.table("accounts").get_item(Key={"accountId": tenant.account_id},
                                                   ConsistentRead=True)["Item"]["storageBytes"])

    def activity(self, tenant: Tenant) -> list[dict]:
        from boto3.dynamodb.conditions import Key
        return self.table("activity").query(
            KeyConditionExpression=Key("accountId").eq(tenant.account_id))["Items"]

    def messages(self) -> list[dict]:
        reply = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                         AttributeNames=["All"])
        return reply.get("Messages", [])

    # -------------------------------------------------------------- the API

    def call(self, route_key: str, tenant: Tenant | None, *, role: str | None = None,
             body: Any = None, path: dict | None = None, query: dict | None = None) -> tuple[int, dict]:
        from handlers.data import api

        identity = tenant.identity(role) if tenant is not None else None
        return call(api.handler, api_event(route_key, identity=identity, body=body, path=path,
                                           query=query))


@pytest.fixture
def world(backend, monkeypatch) -> World:
    """``backend`` plus what the data service adds: a versioned bucket (as the program
    makes it), the exports table, the data queue and the API's base URL."""
    boto3.client("s3").put_bucket_versioning(Bucket=BUCKET,
                                             VersioningConfiguration={"Status": "Enabled"})
    create_tables(DATA_TABLES)
    queue_url = boto3.client("sqs").create_queue(QueueName="listbackup-data-queue-test")["QueueUrl"]
    monkeypatch.setenv("DATA_QUEUE_URL", queue_url)
    monkeypatch.setenv("API_BASE_URL", API_BASE)
    return World(queue_url)


def items(body: dict) -> list[dict]:
    assert body["success"] is True, body
    return body["data"]["items"]
