"""The tree (sources -> runs -> files and folders, with counts and sizes) and search (a
prefix of the path, in path order), both paginated and scoped to the caller's account."""

from __future__ import annotations

import pytest

from handlers.data import browse
from handlers.data import store as data_store
from tests.handlers.test_data_support import items, world  # noqa: F401 - fixture

TREE = "GET /data/tree"
SEARCH = "POST /data/search"


@pytest.fixture
def acme(world):
    t = world.tenant()
    stripe = world.source(t, "Stripe", runs=2, records=120, bytes_=54321)
    drive = world.source(t, "Drive", runs=1, records=4, bytes_=999)
    old = world.run(t, stripe, "2026-02-01T00:00:00.000Z")
    new = world.run(t, stripe, "2026-03-01T00:00:00.000Z")
    files = world.run(t, drive, "2026-03-05T00:00:00.000Z")
    ids = {
        "old-customers": world.backup_file(t, stripe, old, "customers.jsonl.gz"),
        "new-customers": world.backup_file(t, stripe, new, "customers.jsonl.gz",
                                           [{"id": i} for i in range(7)]),
        "new-charges": world.backup_file(t, stripe, new, "charges.jsonl.gz",
                                         [{"id": i} for i in range(5)]),
        "readme": world.backup_file(t, drive, files, "README.txt", raw=b"hello", content_type="text/plain"),
        "q1": world.backup_file(t, drive, files, "Reports/2026/q1.csv", raw=b"1,2", content_type="text/csv"),
        "q2": world.backup_file(t, drive, files, "Reports/2026/q2.csv", raw=b"3,4,5", content_type="text/csv"),
        "logo": world.backup_file(t, drive, files, "Reports/logo.png", raw=b"PNG!!!", content_type="image/png"),
    }
    return {"tenant": t, "stripe": stripe, "drive": drive, "runs": (old, new, files), "ids": ids}


def tree(world, tenant, **query):
    status, body = world.call(TREE, tenant, role="viewer", query=query or None)
    assert status == 200, body
    return items(body), body["data"]["nextCursor"]


def test_the_top_of_the_tree_is_one_folder_per_source_with_its_totals(world, acme):
    folders, cursor = tree(world, acme["tenant"])
    by_name = {f["name"]: f for f in folders}
    assert set(by_name) == {"Stripe", "Drive"} and cursor is None
    stripe = by_name["Stripe"]
    assert stripe == {**stripe, "type": "folder", "kind": "source", "sourceId": acme["stripe"],
                      "platform": "stripe", "runs": 2, "records": 120, "bytes": 54321}


def test_a_source_shows_its_runs_newest_first_with_what_they_hold_now(world, acme):
    t, (old, new, _) = acme["tenant"], acme["runs"]
    folders, _ = tree(world, t, sourceId=acme["stripe"])
    assert [f["runId"] for f in folders] == [new, old]
    newest = folders[0]
    sizes = sum(len(t.files[acme["ids"][k]]["body"]) for k in ("new-customers", "new-charges"))
    assert newest == {**newest, "kind": "run", "path": new, "files": 2, "deletedFiles": 0,
                      "size": sizes, "records": 12, "partial": False}
    # deleting a file shows at once
    world.call("DELETE /data/files/{fileId}", t, path={"fileId": acme["ids"]["new-charges"]})
    newest = tree(world, t, sourceId=acme["stripe"])[0][0]
    assert (newest["files"], newest["deletedFiles"], newest["records"]) == (1, 1, 7)
    assert newest["size"] == len(t.files[acme["ids"]["new-customers"]]["body"])


def test_a_run_shows_its_files_and_folders_with_counts_and_sizes(world, acme):
    t, run = acme["tenant"], acme["runs"][2]
    entries, cursor = tree(world, t, sourceId=acme["drive"], path=run)
    assert cursor is None
    assert [(e["type"], e.get("name")) for e in entries] == [("file", "README.txt"), ("folder", "Reports")]
    folder = entries[1]
    assert folder == {**folder, "path": f"{run}/Reports", "files": 3, "size": 3 + 5 + 6, "partial": False}
    inside, _ = tree(world, t, sourceId=acme["drive"], path=f"{run}/Reports")
    assert [(e["type"], e["name"]) for e in inside] == [("folder", "2026"), ("file", "logo.png")]
    assert inside[0]["files"] == 2 and inside[0]["size"] == 8
    deepest, _ = tree(world, t, sourceId=acme["drive"], path=f"{run}/Reports/2026/")
    assert [e["fileId"] for e in deepest] == [acme["ids"]["q1"], acme["ids"]["q2"]]


def test_tree_pages_never_split_an_entry_and_cover_everything(world, acme):
    t, run = acme["tenant"], acme["runs"][2]
    for n in range(4):
        world.backup_file(t, acme["drive"], run, f"a{n}.txt", raw=b"z")
    seen, cursor = [], None
    while True:
        query = {"sourceId": acme["drive"], "path": run, "limit": "2", **({"cursor": cursor} if cursor else {})}
        page, cursor = tree(world, t, **query)
        assert len(page) <= 2
        seen += [e["name"] for e in page]
        if not cursor:
            break
    assert seen == ["README.txt", "Reports", "a0.txt", "a1.txt", "a2.txt", "a3.txt"]


def test_a_folder_larger_than_one_read_is_marked_partial(world, acme, monkeypatch):
    t, run = acme["tenant"], acme["runs"][2]
    monkeypatch.setattr(data_store, "MAX_READ", 2)
    entries, cursor = tree(world, t, sourceId=acme["drive"], path=run)
    assert entries[-1]["name"] == "Reports" and entries[-1]["partial"] is True and cursor


@pytest.mark.parametrize("query, field", [
    ({"path": "run_x"}, "path"),                        # path needs a source
    ({"sourceId": "src_1", "path": "run_x/../y"}, "path"),
    ({"sourceId": "src_1", "path": "run x"}, "path"),
    ({"sourceId": "src 1"}, "sourceId"),
    ({"limit": "1000"}, "limit"),
    ({"folder": "x"}, "folder"),
])
def test_bad_tree_requests_are_refused(world, acme, query, field):
    status, body = world.call(TREE, acme["tenant"], query=query)
    assert status == 400 and field in body["fields"], body


def test_another_account_sees_an_empty_tree(world, acme):
    other = world.tenant()
    assert tree(world, other)[0] == []
    assert tree(world, other, sourceId=acme["stripe"])[0] == []
    assert tree(world, other, sourceId=acme["drive"], path=acme["runs"][2])[0] == []
    assert tree(world, other, sourceId=acme["drive"], path=f"{acme['runs'][2]}/Reports")[0] == []


# --------------------------------------------------------------------------- search

def search(world, tenant, **body):
    status, reply = world.call(SEARCH, tenant, role="viewer", body=body)
    assert status == 200, reply
    return items(reply), reply["data"]["nextCursor"]


def test_search_matches_a_prefix_of_the_path_in_path_order(world, acme):
    t, ids = acme["tenant"], acme["ids"]
    found, _ = search(world, t, query="customers")
    assert {f["fileId"] for f in found} == {ids["old-customers"], ids["new-customers"]}
    found, _ = search(world, t, query="Reports/")
    assert [f["fileId"] for f in found] == [ids["q1"], ids["q2"], ids["logo"]]
    found, _ = search(world, t, query="c")
    assert [f["path"] for f in found] == ["charges.jsonl.gz", "customers.jsonl.gz", "customers.jsonl.gz"]
    assert search(world, t, query="Customers")[0] == []            # case-sensitive
    assert search(world, t, query="q1")[0] == []                   # not a substring search
    found, _ = search(world, t, query="customers", sourceId=acme["drive"])
    assert found == []


def test_search_pages_and_its_cursor_fits_only_the_same_search(world, acme):
    t = acme["tenant"]
    first, cursor = search(world, t, query="Reports/", limit=2)
    assert len(first) == 2 and cursor
    rest, end = search(world, t, query="Reports/", limit=2, cursor=cursor)
    assert [f["name"] for f in first + rest] == ["q1.csv", "q2.csv", "logo.png"] and end is None
    status, body = world.call(SEARCH, t, body={"query": "c", "cursor": cursor})
    assert status == 400 and body["code"] == "invalid_request"


def test_search_reads_a_bounded_number_of_items_per_request(world, acme, monkeypatch):
    t = acme["tenant"]
    monkeypatch.setattr(browse, "SEARCH_MAX_READ", 2)
    page, cursor = search(world, t, query="c", sourceId=acme["drive"])   # nothing of Drive matches
    assert page == [] and cursor                                        # stopped, can continue
    page, cursor = search(world, t, query="c", sourceId=acme["drive"], cursor=cursor)
    assert page == [] and cursor is None


@pytest.mark.parametrize("body, field", [
    ({}, "query"), ({"query": ""}, "query"), ({"query": "a\nb"}, "query"),
    ({"query": "x", "limit": 0}, "limit"), ({"query": "x", "limit": 101}, "limit"),
    ({"query": "x", "sourceId": "../x"}, "sourceId"), ({"query": "x", "extra": 1}, "extra"),
])
def test_bad_searches_are_refused(world, acme, body, field):
    status, reply = world.call(SEARCH, acme["tenant"], body=body)
    assert status == 400 and reply["code"] == "validation_failed" and field in reply["fields"], reply


def test_search_never_finds_another_accounts_files(world, acme):
    other = world.tenant()
    assert search(world, other, query="c")[0] == []
    assert search(world, other, query="Reports/", sourceId=acme["drive"])[0] == []


def test_the_runs_level_costs_at_most_four_calls_however_many_runs_it_shows(world, dynamodb_calls):
    """A page of 25 runs used to cost a Query per run; now the runs and the source's files
    newest first (at most three Queries) - with the counts still exact."""
    t = world.tenant()
    source = world.source(t, "Stripe", runs=25, records=0, bytes_=0)
    runs = [world.run(t, source, f"2026-02-{day:02d}T00:00:00.000Z") for day in range(1, 26)]
    for n, run in enumerate(runs):
        world.backup_file(t, source, run, "customers.jsonl.gz", [{"id": i} for i in range(n % 4 + 1)])
    dynamodb_calls.clear()
    folders, cursor = tree(world, t, sourceId=source)
    assert len(dynamodb_calls) <= 4, dynamodb_calls
    assert [f["runId"] for f in folders] == runs[::-1] and cursor is None
    by_run = {f["runId"]: f for f in folders}
    for n, run in enumerate(runs):
        assert (by_run[run]["files"], by_run[run]["records"], by_run[run]["partial"]) == (1, n % 4 + 1, False)


def test_runs_whose_files_were_not_all_read_say_partial(world, monkeypatch):
    t = world.tenant()
    source = world.source(t, "Stripe", runs=3, records=0, bytes_=0)
    runs = [world.run(t, source, f"2026-02-0{day}T00:00:00.000Z") for day in (1, 2, 3)]
    for run in runs:
        for name in ("a", "b", "c"):
            world.backup_file(t, source, run, f"{name}.jsonl.gz")
    monkeypatch.setattr(data_store, "MAX_READ", 4)      # the newest four files only
    folders, _ = tree(world, t, sourceId=source)
    assert [f["partial"] for f in folders] == [True, True, True]
    monkeypatch.setattr(data_store, "MAX_READ", 1000)
    folders, _ = tree(world, t, sourceId=source)
    assert [(f["files"], f["partial"]) for f in folders] == [(3, False)] * 3
