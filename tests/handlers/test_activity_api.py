"""``listbackup-activity-{stage}-api`` as a caller sees it: the feed, one event, the stats.

Events are written with the shared writer (``handlers.shared.activity.record``) at chosen
times, into moto's tables; each route is driven with the API Gateway event it would get.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from handlers.activity import api
from handlers.activity.routes import ROUTES
from handlers.shared import activity, clock
from handlers.shared.clients import dynamodb
from tests.support import LambdaContext, api_event, call

A = {"userId": "usr_alice", "accountId": "acc_a", "role": "viewer"}
B = {"userId": "usr_bob", "accountId": "acc_b", "role": "owner"}
NOW = datetime(2026, 3, 15, 12, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def store(backend, monkeypatch):
    """moto's tables, the clock at NOW, and no Scan allowed anywhere."""
    monkeypatch.setattr(clock, "now", lambda: NOW)

    def refuse_scan(**_):
        raise AssertionError("the activity service must not Scan")

    dynamodb().meta.events.register("before-call.dynamodb.Scan", refuse_scan)
    yield


def seed(monkeypatch, moment: datetime, *, account: str = "acc_a", action: str = "auth.login",
         resource_type: str = "user", resource_id: str | None = "usr_alice",
         details: dict | None = None) -> str:
    monkeypatch.setattr(clock, "now", lambda: moment)
    try:
        return activity.record(account_id=account, action=action, actor="usr_alice",
                               resource_type=resource_type, resource_id=resource_id,
                               source_ip="198.51.100.7", details=details)
    finally:
        monkeypatch.setattr(clock, "now", lambda: NOW)


def feed(identity: dict = A, **query) -> tuple[int, dict]:
    return call(api.handler, api_event("GET /activity", identity=identity,
                                       query={k: str(v) for k, v in query.items()} or None),
                LambdaContext("listbackup-activity-test-api"))


def one(event_id: str, identity: dict = A) -> tuple[int, dict]:
    return call(api.handler, api_event("GET /activity/{eventId}", identity=identity,
                                       path={"eventId": event_id}))


def stats(identity: dict = A) -> tuple[int, dict]:
    return call(api.handler, api_event("GET /activity/stats", identity=identity))


def ids(body: dict) -> list[str]:
    return [item["eventId"] for item in body["data"]["items"]]


# ----------------------------------------------------------------------------- routes

def test_three_viewer_routes_as_the_design_lists_them():
    assert {(r.route_key, r.access, r.status) for r in ROUTES} == {
        ("GET /activity", "viewer", 200), ("GET /activity/stats", "viewer", 200),
        ("GET /activity/{eventId}", "viewer", 200)}
    assert all(r.body is None for r in ROUTES)


def test_a_caller_without_a_role_is_refused(store):
    status, body = feed({"userId": "usr_x", "accountId": "acc_a"})
    assert (status, body["code"]) == (403, "forbidden")


# ----------------------------------------------------------------------------- the feed

def test_feed_is_newest_first_with_the_event_view(store, monkeypatch):
    first = seed(monkeypatch, NOW - timedelta(hours=3), action="auth.register")
    second = seed(monkeypatch, NOW - timedelta(hours=2), action="auth.login",
                  details={"attempts": 2, "method": "password"})
    third = seed(monkeypatch, NOW - timedelta(hours=1, microseconds=1), action="api_key.create",
                 resource_type="api_key", resource_id="key_1")
    status, body = feed()
    assert status == 200 and body["success"] is True
    assert ids(body) == [third, second, first]
    assert body["data"]["nextCursor"] is None
    login = body["data"]["items"][1]
    assert login == {
        "eventId": second, "type": "auth.login", "actor": "usr_alice", "resourceType": "user",
        "resourceId": "usr_alice", "outcome": "success", "sourceIp": "198.51.100.7",
        "createdAt": "2026-03-15T10:00:00.000Z", "details": {"attempts": 2, "method": "password"}}


def test_an_empty_account_has_an_empty_feed(store):
    status, body = feed()
    assert status == 200 and body["data"] == {"items": [], "nextCursor": None}


def test_an_event_without_resource_id_shows_null(store, monkeypatch):
    seed(monkeypatch, NOW - timedelta(minutes=5), resource_id=None)
    [item] = feed()[1]["data"]["items"]
    assert item["resourceId"] is None and item["details"] == {}


@pytest.fixture
def mixed(store, monkeypatch):
    """Five events of account A of different types and resources, plus B's noise."""
    made = {
        "login": seed(monkeypatch, NOW - timedelta(minutes=50), action="auth.login"),
        "source1": seed(monkeypatch, NOW - timedelta(minutes=40), action="source.create",
                        resource_type="source", resource_id="src_1"),
        "source2": seed(monkeypatch, NOW - timedelta(minutes=30), action="source.update",
                        resource_type="source", resource_id="src_2"),
        "source1b": seed(monkeypatch, NOW - timedelta(minutes=20), action="source.update",
                         resource_type="source", resource_id="src_1"),
        "logout": seed(monkeypatch, NOW - timedelta(minutes=10), action="auth.logout"),
    }
    seed(monkeypatch, NOW - timedelta(minutes=15), account="acc_b", action="source.update",
         resource_type="source", resource_id="src_1")
    return made


@pytest.mark.parametrize("query, expected", [
    ({"type": "source.update"}, ["source1b", "source2"]),
    ({"type": "auth.login"}, ["login"]),
    ({"resourceType": "source"}, ["source1b", "source2", "source1"]),
    ({"resourceId": "src_1"}, ["source1b", "source1"]),
    ({"type": "source.update", "resourceId": "src_1"}, ["source1b"]),
    ({"resourceType": "user", "type": "source.create"}, []),
    ({"type": "no.such.type"}, []),
])
def test_each_filter_narrows_the_feed(mixed, query, expected):
    status, body = feed(**query)
    assert status == 200
    assert ids(body) == [mixed[name] for name in expected]
    assert body["data"]["nextCursor"] is None


def test_time_range_includes_both_ends(mixed):
    start, end = NOW - timedelta(minutes=40), NOW - timedelta(minutes=20)
    _, body = feed(**{"from": clock.iso(start), "to": clock.iso(end)})
    assert ids(body) == [mixed["source1b"], mixed["source2"], mixed["source1"]]
    _, body = feed(**{"from": clock.iso(NOW - timedelta(minutes=25))})
    assert ids(body) == [mixed["logout"], mixed["source1b"]]
    _, body = feed(to=clock.iso(NOW - timedelta(minutes=45)))
    assert ids(body) == [mixed["login"]]


def test_time_range_accepts_offsets_and_combines_with_filters(mixed):
    # 11:20 to 11:45 UTC written as Berlin time (+01:00).
    _, body = feed(**{"from": "2026-03-15T12:20:00+01:00", "to": "2026-03-15T12:45:00+01:00",
                      "type": "source.update"})
    assert ids(body) == [mixed["source1b"], mixed["source2"]]


def test_a_range_with_nothing_in_it_is_empty(mixed):
    _, body = feed(**{"from": "2020-01-01T00:00:00Z", "to": "2020-01-02T00:00:00Z"})
    assert body["data"] == {"items": [], "nextCursor": None}


@pytest.mark.parametrize("query, fields", [
    ({"from": "yesterday"}, ["from"]),
    ({"to": "2026-13-01T00:00:00Z"}, ["to"]),
    ({"from": "2026-03-15T12:00:00Z", "to": "2026-03-15T11:00:00Z"}, ["from", "to"]),
    ({"type": "x" * 257}, ["type"]),
    ({"limit": "0"}, ["limit"]),
    ({"limit": "101"}, ["limit"]),
    ({"limit": "ten"}, ["limit"]),
])
def test_bad_filters_are_400_validation_failed(mixed, query, fields):
    status, body = feed(**query)
    assert (status, body["code"], body["fields"]) == (400, "validation_failed", fields)


def test_pagination_with_limit_two_walks_every_event_once(store, monkeypatch):
    made = [seed(monkeypatch, NOW - timedelta(minutes=m)) for m in range(5, 0, -1)]
    newest_first = list(reversed(made))
    pages, cursor = [], None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        status, body = feed(**query)
        assert status == 200
        pages.append(ids(body))
        cursor = body["data"]["nextCursor"]
        if cursor is None:
            break
    assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:5]]


def test_a_full_last_page_carries_no_cursor(store, monkeypatch):
    made = [seed(monkeypatch, NOW - timedelta(minutes=m)) for m in (4, 3, 2, 1)]
    _, first = feed(limit=2)
    _, second = feed(limit=2, cursor=first["data"]["nextCursor"])
    assert ids(second) == [made[1], made[0]] and second["data"]["nextCursor"] is None


def test_a_sparse_filter_fills_its_pages(store, monkeypatch):
    wanted = []
    for minute in range(60, 0, -1):
        action = "source.delete" if minute % 15 == 0 else "auth.login"
        event_id = seed(monkeypatch, NOW - timedelta(minutes=minute), action=action)
        if action == "source.delete":
            wanted.append(event_id)
    wanted.reverse()
    _, first = feed(type="source.delete", limit=3)
    assert ids(first) == wanted[:3] and first["data"]["nextCursor"]
    _, second = feed(type="source.delete", limit=3, cursor=first["data"]["nextCursor"])
    assert ids(second) == wanted[3:]


def test_a_filtered_walk_with_bounded_reads_still_finds_every_match(store, monkeypatch):
    # Each request reads at most two Query pages of seven events: some pages come back short
    # (even empty) with a cursor, and following the cursors finds every match exactly once.
    monkeypatch.setattr(api, "QUERY_BATCH", 7)
    monkeypatch.setattr(api, "MAX_QUERY_ROUNDS", 2)
    wanted = [seed(monkeypatch, NOW - timedelta(minutes=m),
                   action="source.delete" if m % 15 == 0 else "auth.login") for m in range(60, 0, -1)]
    wanted = [e for e, m in zip(wanted, range(60, 0, -1)) if m % 15 == 0][::-1]
    found, cursor, requests = [], None, 0
    while True:
        status, body = feed(type="source.delete", limit=3, **({"cursor": cursor} if cursor else {}))
        assert status == 200 and len(body["data"]["items"]) <= 3
        found += ids(body)
        requests += 1
        cursor = body["data"]["nextCursor"]
        if cursor is None:
            break
    assert found == wanted
    assert requests > 2

def test_a_tampered_cursor_is_400(store, monkeypatch):
    for minute in (3, 2, 1):
        seed(monkeypatch, NOW - timedelta(minutes=minute))
    cursor = feed(limit=2)[1]["data"]["nextCursor"]
    tampered = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")
    for bad in (tampered, "not-a-cursor", cursor[:10]):
        status, body = feed(limit=2, cursor=bad)
        assert (status, body["code"]) == (400, "invalid_request")


def test_a_cursor_is_refused_with_other_filters_or_by_another_account(store, monkeypatch):
    for minute in (3, 2, 1):
        seed(monkeypatch, NOW - timedelta(minutes=minute))
        seed(monkeypatch, NOW - timedelta(minutes=minute), account="acc_b")
    cursor = feed(limit=2)[1]["data"]["nextCursor"]
    assert feed(limit=2, cursor=cursor)[0] == 200
    for other in ({"type": "auth.login"}, {"from": "2026-01-01T00:00:00Z"}):
        status, body = feed(limit=2, cursor=cursor, **other)
        assert (status, body["code"]) == (400, "invalid_request")
    status, body = feed(B, limit=2, cursor=cursor)
    assert (status, body["code"]) == (400, "invalid_request")


# ----------------------------------------------------------------------------- isolation

def test_another_accounts_events_never_appear_and_answer_404(store, monkeypatch):
    mine = seed(monkeypatch, NOW - timedelta(minutes=2), resource_id="src_shared",
                action="source.update", resource_type="source")
    theirs = [seed(monkeypatch, NOW - timedelta(minutes=m), account="acc_b", action="source.update",
                   resource_type="source", resource_id="src_shared") for m in (3, 1)]
    for query in ({}, {"type": "source.update"}, {"resourceId": "src_shared"},
                  {"resourceType": "source", "from": "2026-03-15T00:00:00Z"}):
        _, body = feed(**query)
        assert ids(body) == [mine], query
    assert ids(feed(B)[1]) == [theirs[1], theirs[0]]
    for event_id in theirs:
        status, body = one(event_id)
        assert (status, body["code"]) == (404, "not_found")
    assert one(mine, B)[0] == 404
    assert one(mine)[0] == 200


# ----------------------------------------------------------------------------- one event

def test_one_event_by_id(store, monkeypatch):
    event_id = seed(monkeypatch, NOW - timedelta(seconds=30), action="account.member.remove",
                    resource_type="member", resource_id="usr_carol", details={"role": "viewer"})
    status, body = one(event_id)
    assert status == 200
    assert body["data"]["eventId"] == event_id
    assert body["data"]["type"] == "account.member.remove"
    assert body["data"]["details"] == {"role": "viewer"}
    assert "accountId" not in body["data"] and "expiresAt" not in body["data"]


@pytest.mark.parametrize("event_id", [
    "evt_20260315T115959000000Z_00000000", "nope", "evt_" + "1" * 2000, "", "../acc_b"])
def test_unknown_or_malformed_event_ids_are_404(store, event_id):
    status, body = one(event_id)
    assert (status, body["code"]) == (404, "not_found")


# ----------------------------------------------------------------------------- stats

def test_stats_count_by_type_for_day_week_and_month(store, monkeypatch):
    plan = [  # (days ago, action, how many)
        (0, "auth.login", 3), (0, "source.create", 1),
        (1, "auth.login", 2),
        (6, "source.create", 4),
        (7, "auth.login", 5),
        (29, "source.delete", 1),
        (30, "auth.login", 7),      # outside the month
        (45, "source.create", 2),   # outside the month
    ]
    for days, action, times in plan:
        for i in range(times):
            seed(monkeypatch, NOW - timedelta(days=days, minutes=i), action=action)
    seed(monkeypatch, NOW, account="acc_b", action="auth.login")   # another account
    status, body = stats()
    assert status == 200
    assert body["data"] == {
        "day": {"since": "2026-03-15", "total": 4, "byType": {"auth.login": 3, "source.create": 1}},
        "week": {"since": "2026-03-09", "total": 10,
                 "byType": {"auth.login": 5, "source.create": 5}},
        "month": {"since": "2026-02-14", "total": 16,
                  "byType": {"auth.login": 10, "source.create": 5, "source.delete": 1}},
    }


def test_stats_of_an_account_without_events_are_zero(store):
    status, body = stats()
    assert status == 200
    assert {name: (w["total"], w["byType"]) for name, w in body["data"].items()} == {
        "day": (0, {}), "week": (0, {}), "month": (0, {})}

