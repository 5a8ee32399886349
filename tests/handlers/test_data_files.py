"""Browsing files: the list and its filters, one file, download links; every id scoped to
the caller's account."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.handlers.test_data_support import items, world  # noqa: F401 - fixture

LIST = "GET /data/files"
ONE = "GET /data/files/{fileId}"
LINK = "GET /data/files/{fileId}/download-url"


@pytest.fixture
def acme(world):
    """A tenant with two sources: Stripe (two runs) and Keap (one run)."""
    t = world.tenant()
    stripe = world.source(t, "Stripe")
    keap = world.source(t, "Keap")
    run1 = world.run(t, stripe, "2026-02-01T00:00:00.000Z")
    run2 = world.run(t, stripe, "2026-03-01T00:00:00.000Z")
    run3 = world.run(t, keap, "2026-04-01T00:00:00.000Z")
    ids = {
        "customers1": world.backup_file(t, stripe, run1, "customers.jsonl.gz", created_at="2026-02-01T00:00:01Z"),
        "charges1": world.backup_file(t, stripe, run1, "charges.jsonl.gz", created_at="2026-02-01T00:00:02Z"),
        "customers2": world.backup_file(t, stripe, run2, "customers.jsonl.gz", created_at="2026-03-01T00:00:01Z"),
        "contacts": world.backup_file(t, keap, run3, "contacts.jsonl.gz", created_at="2026-04-01T00:00:01Z"),
        "report": world.backup_file(t, keap, run3, "reports/2026/q1.csv", raw=b"a,b\n1,2\n",
                                    content_type="text/csv", created_at="2026-04-01T00:00:02Z"),
    }
    return {"tenant": t, "stripe": stripe, "keap": keap, "runs": (run1, run2, run3), "ids": ids}


def names(listed: list[dict]) -> list[str]:
    return [f"{f['runId'][-4:]}:{f['path']}" for f in listed]


def test_files_list_newest_first_with_the_file_shape(world, acme):
    t, ids = acme["tenant"], acme["ids"]
    status, body = world.call(LIST, t)
    assert status == 200
    listed = items(body)
    assert [f["fileId"] for f in listed] == [ids["report"], ids["contacts"], ids["customers2"],
                                             ids["charges1"], ids["customers1"]]
    first = listed[1]
    stored = t.files[ids["contacts"]]
    assert first == {**first, "fileId": ids["contacts"], "sourceId": acme["keap"], "runId": acme["runs"][2],
                     "name": "contacts.jsonl.gz", "path": "contacts.jsonl.gz",
                     "size": len(stored["body"]), "contentType": "application/gzip", "records": 3,
                     "createdAt": "2026-04-01T00:00:01Z", "deleted": False}
    import hashlib
    assert first["sha256"] == hashlib.sha256(stored["body"]).hexdigest()
    assert body["data"]["nextCursor"] is None


def test_pages_follow_the_cursor_and_a_cursor_only_fits_its_own_list(world, acme):
    t = acme["tenant"]
    seen, cursor = [], None
    while True:
        query = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        status, body = world.call(LIST, t, query=query)
        assert status == 200 and len(items(body)) <= 2
        seen += [f["fileId"] for f in items(body)]
        cursor = body["data"]["nextCursor"]
        if not cursor:
            break
    assert len(seen) == 5 and set(seen) == set(acme["ids"].values())

    _, body = world.call(LIST, t, query={"limit": "2"})
    cursor = body["data"]["nextCursor"]
    # the same cursor with other filters, or by another account, is refused
    status, body = world.call(LIST, t, query={"cursor": cursor, "sourceId": acme["stripe"]})
    assert status == 400 and body["code"] == "invalid_request"
    other = world.tenant()
    status, body = world.call(LIST, other, query={"cursor": cursor})
    assert status == 400 and body["code"] == "invalid_request"
    status, body = world.call(LIST, t, query={"cursor": cursor[:-3] + "abc"})
    assert status == 400


def test_filters_by_source_run_path_type_dates_and_deleted(world, acme):
    t, ids, (run1, _, run3) = acme["tenant"], acme["ids"], acme["runs"]

    def listed(**query):
        status, body = world.call(LIST, t, query=query)
        assert status == 200, body
        return [f["fileId"] for f in items(body)]

    assert listed(sourceId=acme["stripe"]) == [ids["customers2"], ids["charges1"], ids["customers1"]]
    # a run's files come in path order
    assert listed(runId=run1) == [ids["charges1"], ids["customers1"]]
    assert listed(runId=run3, path="reports/") == [ids["report"]]
    # a path prefix across runs and sources, in path order
    assert set(listed(path="customers")) == {ids["customers1"], ids["customers2"]}
    assert listed(path="customers", sourceId=acme["keap"]) == []
    assert listed(path="c") == [ids["charges1"], *listed(path="contacts"), *listed(path="cu")]
    assert listed(contentType="text/csv") == [ids["report"]]
    assert listed(**{"from": "2026-03-01T00:00:00Z", "to": "2026-04-01T00:00:01Z"}) == [
        ids["contacts"], ids["customers2"]]
    assert listed(sourceId=acme["stripe"], to="2026-02-15T00:00:00+00:00") == [
        ids["charges1"], ids["customers1"]]
    assert listed(runId=run1, **{"from": "2026-02-01T00:00:02Z"}) == [ids["charges1"]]
    # an offset is a different instant: 01:00:02+01:00 is 00:00:02Z
    assert listed(runId=run1, **{"from": "2026-02-01T01:00:02+01:00"}) == [ids["charges1"]]
    assert listed(deleted="true") == []
    assert len(listed(deleted="false")) == 5


@pytest.mark.parametrize("query, field", [
    ({"limit": "0"}, "limit"), ({"limit": "101"}, "limit"), ({"limit": "x"}, "limit"),
    ({"from": "yesterday"}, "from"), ({"to": "2026-13-01"}, "to"),
    ({"from": "2026-03-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"}, "from"),
    ({"deleted": "yes"}, "deleted"), ({"sourceId": "../etc"}, "sourceId"),
    ({"runId": "a" * 200}, "runId"), ({"path": "x\u0000y"}, "path"),
    ({"sourceid": "src_1"}, "sourceid"),
])
def test_bad_filters_are_refused_naming_the_field(world, acme, query, field):
    status, body = world.call(LIST, acme["tenant"], query=query)
    assert status == 400 and body["code"] == "validation_failed", body
    assert field in body["fields"]


def test_a_row_the_indexer_has_not_seen_is_not_a_file_yet(world, acme):
    t = acme["tenant"]
    from handlers.shared.files import data_key, file_id_for
    key = data_key(t.account_id, acme["stripe"], acme["runs"][0], "invoices.jsonl.gz")
    # the worker's half of the row, before the object is indexed
    world.table("files").put_item(Item={"accountId": t.account_id, "fileId": file_id_for(key),
                                        "records": 9, "sha256": "ab" * 32, "runId": acme["runs"][0]})
    status, body = world.call(ONE, t, path={"fileId": file_id_for(key)})
    assert status == 404 and body["code"] == "not_found"
    assert file_id_for(key) not in [f["fileId"] for f in items(world.call(LIST, t)[1])]


def test_one_file_shows_its_versions(world, acme):
    t, file_id = acme["tenant"], acme["ids"]["contacts"]
    status, body = world.call(ONE, t, path={"fileId": file_id})
    assert status == 200
    data = body["data"]
    assert data["fileId"] == file_id and data["records"] == 3 and data["deleted"] is False
    [version] = data["versions"]
    assert version["current"] is True and version["restorable"] is False
    assert version["versionId"] == world.row(t, file_id)["versionId"]
    assert version["size"] == len(t.files[file_id]["body"])


def test_download_link_fetches_the_file_under_its_name_for_15_minutes(world, acme):
    t, file_id = acme["tenant"], acme["ids"]["report"]
    status, body = world.call(LINK, t, role="viewer", path={"fileId": file_id})
    assert status == 200, body
    data = body["data"]
    assert data["fileName"] == "q1.csv" and data["size"] == len(b"a,b\n1,2\n")
    query = parse_qs(urlsplit(data["url"]).query)
    assert query["X-Amz-Expires"] == ["900"]
    assert query["versionId"] == [world.row(t, file_id)["versionId"]]
    reply = requests.get(data["url"], timeout=10)
    assert reply.status_code == 200 and reply.content == b"a,b\n1,2\n"
    assert 'filename="q1.csv"' in reply.headers["content-disposition"]
    assert reply.headers["content-disposition"].startswith("attachment;")


def test_download_name_that_is_not_ascii_is_kept_exactly(world, acme):
    t = acme["tenant"]
    file_id = world.backup_file(t, acme["keap"], acme["runs"][2], 'Docs/Résumé "final".pdf',
                                raw=b"%PDF", content_type="application/pdf")
    _, body = world.call(LINK, t, path={"fileId": file_id})
    disposition = parse_qs(urlsplit(body["data"]["url"]).query)["response-content-disposition"][0]
    assert 'filename="R_sum_ _final_.pdf"' in disposition
    assert "filename*=UTF-8''R%C3%A9sum%C3%A9%20%22final%22.pdf" in disposition
    assert requests.get(body["data"]["url"], timeout=10).content == b"%PDF"


def test_another_account_sees_none_of_it(world, acme):
    other = world.tenant()
    a = acme["tenant"]
    for file_id in acme["ids"].values():
        for route in (ONE, LINK):
            status, body = world.call(route, other, path={"fileId": file_id})
            assert status == 404 and body["code"] == "not_found"
    assert items(world.call(LIST, other)[1]) == []
    assert items(world.call(LIST, other, query={"sourceId": acme["stripe"]})[1]) == []
    assert items(world.call(LIST, other, query={"runId": acme["runs"][0]})[1]) == []
    assert items(world.call(LIST, other, query={"path": "c"})[1]) == []
    # and the owner's data is untouched
    assert len(items(world.call(LIST, a)[1])) == 5


@pytest.mark.parametrize("file_id", ["fil_x", "nope", "fil_" + "0" * 32, "fil_" + "A" * 32])
def test_unknown_or_malformed_file_ids_are_404(world, acme, file_id):
    status, body = world.call(ONE, acme["tenant"], path={"fileId": file_id})
    assert status == 404 and body["code"] == "not_found"


def test_reads_need_a_member_role(world, acme):
    t, file_id = acme["tenant"], acme["ids"]["contacts"]
    for route, path in ((LIST, None), (ONE, {"fileId": file_id}), (LINK, {"fileId": file_id})):
        assert world.call(route, t, role="viewer", path=path)[0] == 200
        status, body = world.call(route, t, role="guest", path=path)
        assert status == 403 and body["code"] == "forbidden"
