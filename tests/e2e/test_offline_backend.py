"""The product's backend through offline mode, over HTTP, as a client sees it."""

from __future__ import annotations

import json

from handlers.shared import tokens


def test_health_is_public(offline):
    reply = offline.get("/system/health")
    assert reply.status == 200
    assert reply.json["data"]["status"] == "ok" and reply.json["data"]["stage"] == "dev"


def test_status_with_a_valid_token(offline, member):
    reply = offline.get("/system/status", token=member["token"])
    assert reply.status == 200, reply
    report = reply.json["data"]
    assert report["status"] in ("ok", "degraded")
    names = {c["name"] for c in report["checks"]}
    assert "listbackup-dev-users" in names and "listbackup-data-dev" in names


def test_status_without_a_credential_is_401_from_the_gateway(offline):
    reply = offline.get("/system/status")
    assert reply.status == 401 and reply.json == {"message": "Unauthorized"}


def test_status_with_a_forged_token_is_403(offline, member):
    forged, _ = tokens.issue("x" * 64, stage="dev", typ="access", user_id=member["userId"],
                             account_id=member["accountId"], role="owner", version=0)
    reply = offline.get("/system/status", token=forged)
    assert reply.status == 403 and reply.json == {"message": "Forbidden"}


def test_unknown_route_is_404(offline):
    reply = offline.get("/no/such/route")
    assert reply.status == 404 and reply.json == {"message": "Not Found"}


def test_cors_preflight_from_an_allowed_origin(offline):
    reply = offline.request("OPTIONS", "/system/status", headers={
        "origin": "http://localhost:3000", "access-control-request-method": "GET",
        "access-control-request-headers": "authorization"})
    assert reply.status == 204
    assert reply.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "authorization" in reply.headers["access-control-allow-headers"].lower()


def test_an_object_under_data_is_indexed_through_the_index_queue(offline):
    key = "data/acc_e2e/src_1/run_1/contacts.jsonl.gz"
    offline.aws("s3").put_object(Bucket="listbackup-data-dev", Key=key, Body=b"{}\n",
                                 ContentType="application/gzip")
    from handlers.shared.files import file_id_for

    def row():
        item = offline.aws("dynamodb").get_item(
            TableName="listbackup-dev-files",
            Key={"accountId": {"S": "acc_e2e"}, "fileId": {"S": file_id_for(key)}}).get("Item")
        # moto applies an update attribute by attribute (DynamoDB does it atomically), so a
        # read racing the indexer's write can see the row half made: wait for the whole row
        return item if item and {"name", "deleted", "size", "countedBytes"} <= set(item) else None

    item = offline.eventually(row, timeout=30)
    assert item["name"]["S"] == "contacts.jsonl.gz" and item["deleted"]["BOOL"] is False
    assert item["size"]["N"] == "3"


def test_offline_helpers_list_resources_and_emails(offline):
    resources = offline.get("", base="/_offline/resources").json
    assert "listbackup-dev-files" in resources["tables"]
    assert "GET /system/status" in resources["routes"]
    assert isinstance(offline.get("", base="/_offline/emails").json, list)


def test_the_openapi_document_describes_every_route(offline):
    from handlers.routes import all_routes

    doc = offline.get("/openapi.json").json
    assert doc["openapi"] == "3.0.3"
    declared = {f"{m.upper()} {p}" for p, ops in doc["paths"].items() for m in ops}
    assert declared == {r.route_key for routes in all_routes().values() for r in routes}
    assert doc["paths"]["/system/health"]["get"]["security"] == []
