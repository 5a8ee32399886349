"""The paging engine against local fake platform APIs, one per pagination style."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import random
import threading
import time
import tracemalloc
from urllib.parse import urlsplit

import pytest

from handlers.shared.connectors import engine, model, oauth_client
from handlers.shared.connectors.engine import CHUNK, Connector, ConnectorError
from handlers.shared.connectors.model import Endpoint, OAuth, Pagination, Platform
from tests.connectors.platform_servers import FakePlatform, file_bytes, make_records, refused_port

API_KEY = "sk_live_FakeEngineKeyNotReal000001"
ALL_IDS = [r["id"] for r in make_records(23)]

# One endpoint shape per style, each modelled on a platform's documented API.
SHAPES = {
    # Mailchimp: ?count=&offset=, total_items in the body.
    "offset_total": (Pagination(model.OFFSET, page_size=5, limit_param="count",
                                offset_param="offset", total_path="total_items"),
                     "/lists/l1/members", "members", "GET", None),
    # Keap REST v1 / ActiveCampaign without a total: stop on a short page.
    "offset_short": (Pagination(model.OFFSET, page_size=5, limit_param="limit",
                                offset_param="offset"), "/contacts", "contacts", "GET", None),
    # Page numbers (?page=&per_page=), stop on a short page.
    "page": (Pagination(model.PAGE, page_size=5, page_param="page", limit_param="per_page"),
             "/api/items", "items", "GET", None),
    # Stripe: ?limit=&starting_after=<last id>, has_more.
    "cursor_after_id": (Pagination(model.CURSOR_AFTER_ID, page_size=5, cursor_param="starting_after",
                                   has_more_path="has_more"), "/v1/customers", "data", "GET", None),
    # Zendesk: next_page URL in the body.
    "next_url": (Pagination(model.NEXT_URL, page_size=5, limit_param="per_page",
                            cursor_path="next_page"), "/api/v2/tickets.json", "tickets", "GET", None),
    # Shopify: Link: <...>; rel="next".
    "link_header": (Pagination(model.LINK_HEADER, page_size=5, limit_param="limit"),
                    "/admin/api/2024-10/orders.json", "orders", "GET", None),
    # HubSpot: ?limit=&after=, paging.next.after in the body.
    "cursor_token": (Pagination(model.CURSOR_TOKEN, page_size=5, limit_param="limit",
                                cursor_param="after", cursor_path="paging.next.after"),
                     "/crm/v3/objects/contacts", "results", "GET", None),
    # Dropbox: POST list_folder, then POST list_folder/continue {"cursor"}, has_more.
    "cursor_post": (Pagination(model.CURSOR_POST, page_size=5, limit_param="limit",
                               cursor_param="cursor", cursor_path="cursor",
                               has_more_path="has_more",
                               continue_path="/2/files/list_folder/continue"),
                    "/2/files/list_folder", "entries", "POST", {"path": "", "recursive": True}),
    # Box: ?usemarker=true&limit=&marker=, next_marker in the body.
    "marker": (Pagination(model.MARKER, page_size=5, limit_param="limit", cursor_param="marker",
                          cursor_path="next_marker", extra={"usemarker": "true"}),
               "/2.0/folders/0/items", "entries", "GET", None),
    # One request, no pagination.
    "single": (Pagination(model.SINGLE, page_size=5), "/pipelines", "pipelines", "GET", None),
}
PAGED = [name for name in SHAPES if name != "single"]


def platform_for(shape: str, base_url: str, **changes) -> Platform:
    pagination, path, records_path, method, body = SHAPES[shape]
    endpoint = Endpoint(name="things", path=path, records_path=records_path,
                        pagination=pagination, method=method, body=body)
    fields = dict(id="synthetic", name="Synthetic", categories=("CRM",), auth="api_key",
                  base_url=base_url, auth_header={"Authorization": "Bearer {api_key}"},
                  endpoints=(endpoint,), test_endpoint="things")
    fields.update(changes)
    return Platform(**fields)


def server_for(shape: str, **kwargs) -> FakePlatform:
    pagination, _, records_path, method, _ = SHAPES[shape]
    kwargs.setdefault("method", method)
    return FakePlatform(pagination, records_path=records_path, **kwargs).start()


@pytest.fixture
def sleeps():
    return []


def connector(platform, sleeps, credentials=None, **kwargs):
    kwargs.setdefault("rng", random.Random(7))
    return Connector(platform, {}, credentials if credentials is not None else {"api_key": API_KEY},
                     sleep=sleeps.append, **kwargs)


def ids(pages):
    return [r["id"] for page in pages for r in page]


@pytest.fixture
def fake(request):
    servers = []

    def start(shape, **kwargs):
        server = server_for(shape, **kwargs)
        servers.append(server)
        return server
    yield start
    for server in servers:
        server.stop()


# ---------------------------------------------------------------------------- paging


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_record_once_in_order_page_by_page(fake, sleeps, shape):
    server = fake(shape)
    pages = connector(platform_for(shape, server.url), sleeps).pages("things")

    first = next(pages)
    assert len(server.requests) == 1            # the first page came before the second request
    rest = list(pages)

    got = [first] + rest
    assert ids(got) == ALL_IDS
    if shape == "single":
        assert [len(p) for p in got] == [23]
    else:
        assert [len(p) for p in got] == [5, 5, 5, 5, 3]
        assert len(server.requests) == 5
    assert sleeps == []
    for seen in server.requests:
        assert seen.headers["Authorization"] == f"Bearer {API_KEY}"


@pytest.mark.parametrize("shape", PAGED)
def test_page_size_and_fixed_parameters_are_sent(fake, sleeps, shape):
    server = fake(shape)
    list(connector(platform_for(shape, server.url), sleeps).pages("things"))
    first = server.requests[0]
    p = SHAPES[shape][0]
    sent = first.body if shape == "cursor_post" else first.query
    assert str(sent[p.limit_param]) == "5"
    if shape == "marker":
        assert all(r.query["usemarker"] == "true" for r in server.requests)
    if shape == "cursor_post":
        assert first.body == {"path": "", "recursive": True, "limit": 5}
        assert [r.path for r in server.requests[1:]] == ["/2/files/list_folder/continue"] * 4
        assert all(set(r.body) == {"cursor"} for r in server.requests[1:])


def test_an_empty_endpoint_yields_nothing(fake, sleeps):
    server = fake("cursor_after_id", records=[])
    assert list(connector(platform_for("cursor_after_id", server.url), sleeps).pages("things")) == []
    assert len(server.requests) == 1


def test_offset_with_a_total_stops_at_the_total_without_an_extra_request(fake, sleeps):
    server = fake("offset_total", records=make_records(20))
    got = list(connector(platform_for("offset_total", server.url), sleeps).pages("things"))
    assert [len(p) for p in got] == [5, 5, 5, 5]
    assert len(server.requests) == 4
    assert [r.query["offset"] for r in server.requests] == ["0", "5", "10", "15"]


def test_a_post_list_endpoint_takes_its_paging_in_the_json_body(fake, sleeps):
    # HubSpot search: POST {"limit", "after"}; the cursor comes back in paging.next.after.
    pagination = SHAPES["cursor_token"][0]
    server = fake("cursor_token", method="POST")
    endpoint = Endpoint(name="things", path="/crm/v3/objects/contacts/search", records_path="results",
                        pagination=pagination, method="POST", body={"filterGroups": []})
    platform = platform_for("cursor_token", server.url, endpoints=(endpoint,))
    assert ids(connector(platform, sleeps).pages("things")) == ALL_IDS
    assert server.requests[0].body == {"filterGroups": [], "limit": 5}
    assert set(server.requests[1].body) == {"filterGroups", "limit", "after"}
    assert all(r.method == "POST" for r in server.requests)


# ---------------------------------------------------------------------------- retries


@pytest.mark.parametrize("shape", list(SHAPES))
def test_429_waits_as_long_as_retry_after_says(fake, sleeps, shape):
    fault_at = 1 if shape == "single" else 2
    server = fake(shape, faults={fault_at: "429"})
    assert ids(connector(platform_for(shape, server.url), sleeps).pages("things")) == ALL_IDS
    assert sleeps == [7.0]
    assert len(server.requests) == (2 if shape == "single" else 6)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_transient_500_is_retried_with_jittered_backoff(fake, sleeps, shape):
    fault_at = 1 if shape == "single" else 3
    server = fake(shape, faults={fault_at: "500"})
    assert ids(connector(platform_for(shape, server.url), sleeps).pages("things")) == ALL_IDS
    assert len(sleeps) == 1 and 0.0 <= sleeps[0] <= 1.0


def test_retry_after_as_an_http_date(fake, sleeps):
    server = fake("cursor_after_id", faults={2: "429-date"})
    c = connector(platform_for("cursor_after_id", server.url), sleeps, clock=lambda: server.now)
    assert ids(c.pages("things")) == ALL_IDS
    assert len(sleeps) == 1 and 11.0 <= sleeps[0] <= 12.0


def test_503_with_retry_after_is_honoured(fake, sleeps):
    server = fake("next_url", faults={4: "503"})
    assert ids(connector(platform_for("next_url", server.url), sleeps).pages("things")) == ALL_IDS
    assert sleeps == [2.0]


def test_backoff_grows_exponentially_with_full_jitter_until_max_retries(fake, sleeps):
    server = fake("page", always="500")
    c = connector(platform_for("page", server.url), sleeps, max_retries=4, rng=random.Random(1))
    with pytest.raises(ConnectorError) as caught:
        list(c.pages("things"))
    assert caught.value.kind == "server" and caught.value.status == 500
    assert len(server.requests) == 5 and len(sleeps) == 4
    for attempt, delay in enumerate(sleeps):
        assert 0.0 <= delay <= 2 ** attempt
    # Full jitter: the delays are drawn, not fixed.
    assert len(set(sleeps)) == 4


def test_rate_limited_after_every_retry(fake, sleeps):
    server = fake("cursor_token", always="429")
    with pytest.raises(ConnectorError) as caught:
        list(connector(platform_for("cursor_token", server.url), sleeps, max_retries=2).pages("things"))
    assert caught.value.kind == "rate_limited" and caught.value.status == 429
    assert sleeps == [7.0, 7.0] and len(server.requests) == 3


def test_a_retry_after_longer_than_the_engine_waits_fails_at_once(fake, sleeps):
    server = fake("link_header", faults={1: "429-long"})
    with pytest.raises(ConnectorError) as caught:
        list(connector(platform_for("link_header", server.url), sleeps).pages("things"))
    assert caught.value.kind == "rate_limited" and "3600" in caught.value.message
    assert sleeps == [] and len(server.requests) == 1


def test_a_dropped_connection_is_retried(fake, sleeps):
    server = fake("marker", faults={2: "drop"})
    assert ids(connector(platform_for("marker", server.url), sleeps).pages("things")) == ALL_IDS
    assert len(sleeps) == 1


def test_no_answer_is_a_network_error_after_the_retries(sleeps):
    platform = platform_for("offset_short", f"http://127.0.0.1:{refused_port()}")
    with pytest.raises(ConnectorError) as caught:
        list(connector(platform, sleeps, max_retries=3).pages("things"))
    assert caught.value.kind == "network" and caught.value.status is None
    assert len(sleeps) == 3
    assert "127.0.0.1" not in caught.value.message


# ---------------------------------------------------------------------------- auth


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("status", ["401", "403"])
def test_a_refused_credential_fails_fast(fake, sleeps, shape, status):
    server = fake(shape, always=status)
    with pytest.raises(ConnectorError) as caught:
        list(connector(platform_for(shape, server.url), sleeps).pages("things"))
    error = caught.value
    assert error.kind == "auth" and error.status == int(status)
    assert "Synthetic" in error.message and status in error.message
    assert API_KEY not in error.message and API_KEY not in repr(error)
    assert len(server.requests) == 1 and sleeps == []


def test_a_401_midway_fails_fast_after_the_pages_before_it(fake, sleeps):
    server = fake("cursor_after_id", faults={3: "401"})
    pages = connector(platform_for("cursor_after_id", server.url), sleeps).pages("things")
    assert len(next(pages)) == 5 and len(next(pages)) == 5
    with pytest.raises(ConnectorError) as caught:
        next(pages)
    assert caught.value.kind == "auth" and len(server.requests) == 3 and sleeps == []


def test_googles_403_rate_limit_is_retried_not_refused(fake, sleeps):
    server = fake("cursor_token", faults={2: "403-rate"})
    assert ids(connector(platform_for("cursor_token", server.url), sleeps).pages("things")) == ALL_IDS
    assert len(sleeps) == 1 and 0.0 <= sleeps[0] <= 1.0


def test_another_4xx_is_a_server_error_without_retries(fake, sleeps):
    server = fake("page", always="404")
    with pytest.raises(ConnectorError) as caught:
        list(connector(platform_for("page", server.url), sleeps).pages("things"))
    assert caught.value.kind == "server" and caught.value.status == 404
    assert len(server.requests) == 1 and sleeps == []


def test_test_fetches_one_page_of_the_test_endpoint(fake, sleeps):
    server = fake("cursor_after_id")
    connector(platform_for("cursor_after_id", server.url), sleeps).test()
    assert len(server.requests) == 1 and server.requests[0].query["limit"] == "5"


def test_test_raises_what_the_platform_answers(fake, sleeps):
    server = fake("cursor_after_id", always="401")
    with pytest.raises(ConnectorError) as caught:
        connector(platform_for("cursor_after_id", server.url), sleeps).test()
    assert caught.value.kind == "auth"


# ---------------------------------------------------------------------------- malformed pages

COMMON_MALFORMED = ["not-json", "no-records", "records-not-list", "record-not-object"]
STYLE_MALFORMED = [
    ("offset_total", "bad-total"),
    ("cursor_after_id", "bad-has-more"),
    ("cursor_after_id", "missing-has-more"),
    ("cursor_after_id", "empty-more"),
    ("next_url", "bad-cursor"),
    ("next_url", "foreign-next"),
    ("next_url", "repeat-cursor"),
    ("link_header", "foreign-next"),
    ("link_header", "repeat-cursor"),
    ("cursor_token", "bad-cursor"),
    ("cursor_token", "repeat-cursor"),
    ("marker", "bad-cursor"),
    ("marker", "repeat-cursor"),
    ("cursor_post", "bad-cursor"),
    ("cursor_post", "bad-has-more"),
    ("cursor_post", "missing-has-more"),
    ("cursor_post", "repeat-cursor"),
    ("cursor_post", "empty-more"),
]


@pytest.mark.parametrize("shape,fault",
                         [(s, f) for s in SHAPES for f in COMMON_MALFORMED] + STYLE_MALFORMED)
def test_a_malformed_page_is_an_error_not_the_end(fake, sleeps, shape, fault):
    fault_at = 1 if shape == "single" else 3
    server = fake(shape, faults={fault_at: fault})
    pages = connector(platform_for(shape, server.url), sleeps).pages("things")
    got = []
    with pytest.raises(ConnectorError) as caught:
        for page in pages:
            got.append(page)
    assert caught.value.kind == "malformed"
    assert "Synthetic things" in caught.value.message
    assert len(server.requests) <= fault_at + 1
    assert sleeps == []
    if shape != "single":
        assert ids(got) == ALL_IDS[:len(ids(got))] and len(ids(got)) >= 5


def test_a_server_ignoring_the_offset_is_caught(fake, sleeps):
    # Every request answers the first page: the engine must not loop for ever.
    server = fake("offset_short")
    platform = platform_for("offset_short", server.url)
    broken = dataclasses.replace(platform.endpoints[0], pagination=dataclasses.replace(
        platform.endpoints[0].pagination, offset_param="ignored_offset"))
    platform = dataclasses.replace(platform, endpoints=(broken,))
    server.pagination = dataclasses.replace(server.pagination, offset_param="offset")
    with pytest.raises(ConnectorError) as caught:
        list(connector(platform, sleeps).pages("things"))
    assert caught.value.kind == "malformed" and len(server.requests) == 2


# ---------------------------------------------------------------------------- templates


def test_templates_fill_host_path_headers_and_fixed_parameters(fake, sleeps, monkeypatch):
    server = fake("cursor_token", datasets={"/api/v3/acct%2F7%3Fx/items": make_records(3)})
    pagination = dataclasses.replace(SHAPES["cursor_token"][0], extra={"locationId": "{location_id}"})
    endpoint = Endpoint(name="things", path="/v3/{account}/items", records_path="results",
                        pagination=pagination)
    platform = platform_for("cursor_token", "https://{subdomain}.platform.example/api",
                            endpoints=(endpoint,), id="templated",
                            auth_header={"X-Api-Key": "{api_key}", "X-Account": "{account}"})
    monkeypatch.setenv("LISTBACKUP_PLATFORM_URLS", json.dumps({"templated": server.url}))
    c = Connector(platform, {"subdomain": "acme", "account": "acct/7?x", "location_id": "loc 1"},
                  {"api_key": API_KEY}, sleep=sleeps.append)
    assert len(ids(c.pages("things"))) == 3
    seen = server.requests[0]
    assert seen.path == "/api/v3/acct%2F7%3Fx/items"          # a value cannot add a path segment
    assert seen.query["locationId"] == "loc 1"
    assert seen.headers["X-Api-Key"] == API_KEY and seen.headers["X-Account"] == "acct/7?x"
    assert "Authorization" not in seen.headers


def test_basic_auth_form(fake, sleeps):
    server = fake("page")
    platform = platform_for("page", server.url,
                            auth_header={"Authorization": "basic:{email}/token:{api_token}"})
    c = Connector(platform, {"email": "ann@example.com"}, {"api_token": "tok:en"},
                  sleep=sleeps.append)
    list(c.pages("things"))
    expected = base64.b64encode(b"ann@example.com/token:tok:en").decode()
    assert server.requests[0].headers["Authorization"] == f"Basic {expected}"


@pytest.mark.parametrize("settings,credentials", [({}, {}), ({"subdomain": ""}, {"api_key": "k"})])
def test_a_missing_setting_or_credential_is_a_config_error(sleeps, settings, credentials):
    platform = platform_for("page", "https://{subdomain}.example.test")
    with pytest.raises(ConnectorError) as caught:
        list(Connector(platform, settings, credentials, sleep=sleeps.append).pages("things"))
    assert caught.value.kind == "config" and caught.value.status is None


def test_an_unknown_endpoint_is_a_config_error(sleeps):
    with pytest.raises(ConnectorError) as caught:
        list(connector(platform_for("page", "http://127.0.0.1:9"), sleeps).pages("nope"))
    assert caught.value.kind == "config"


def test_a_header_value_with_a_line_break_is_refused(sleeps):
    platform = platform_for("page", "http://127.0.0.1:9")
    with pytest.raises(ConnectorError) as caught:
        list(connector(platform, sleeps, credentials={"api_key": "k\r\nX-Evil: 1"}).pages("things"))
    assert caught.value.kind == "config" and "k\r\n" not in caught.value.message


def test_every_url_passes_through_the_platform_url_rewrite(fake, sleeps, monkeypatch):
    server = fake("next_url")
    platform = platform_for("next_url", "https://api.zendesk.example/x", id="zd")
    monkeypatch.setenv("LISTBACKUP_PLATFORM_URLS", json.dumps({"zd": server.url}))
    assert ids(connector(platform, sleeps).pages("things")) == ALL_IDS


def test_a_next_link_to_the_real_host_is_rewritten_too(sleeps, monkeypatch):
    # The platform's next URL names its real host; offline, that host is the fake server.
    server = FakePlatform(SHAPES["next_url"][0], records_path="tickets").start()
    try:
        real = "https://acme.zendesk.example"
        original = server._page

        def page_with_real_host(*args, **kwargs):
            answer, headers = original(*args, **kwargs)
            if answer.get("next_page"):
                answer["next_page"] = answer["next_page"].replace(server.url, real)
            return answer, headers
        server._page = page_with_real_host
        platform = platform_for("next_url", real + "/api", id="zd2")
        monkeypatch.setenv("LISTBACKUP_PLATFORM_URLS", json.dumps({"zd2": server.url}))
        assert ids(connector(platform, sleeps).pages("things")) == ALL_IDS
    finally:
        server.stop()


# ---------------------------------------------------------------------------- child endpoints


def test_a_child_endpoint_runs_for_every_parent_record(fake, sleeps):
    lists = [{"id": "L1"}, {"id": "L2"}, {"id": "L3"}]
    members = {f"/lists/{l['id']}/members": make_records(7, prefix=l["id"] + "-") for l in lists}
    server = fake("offset_total", datasets={"/lists": lists, **members})
    pagination = SHAPES["offset_total"][0]
    platform = platform_for("offset_total", server.url, endpoints=(
        Endpoint(name="lists", path="/lists", records_path="members", pagination=pagination),
        Endpoint(name="list_members", path="/lists/{parent.id}/members", records_path="members",
                 pagination=pagination, parent="lists"),
    ))
    got = list(connector(platform, sleeps).pages("list_members"))
    assert [len(p) for p in got] == [5, 2] * 3
    assert ids(got) == [r["id"] for l in lists for r in members[f"/lists/{l['id']}/members"]]
    assert [r.path for r in server.requests][:3] == ["/lists", "/lists/L1/members", "/lists/L1/members"]


def test_a_parent_record_without_the_field_is_malformed(fake, sleeps):
    server = fake("single", datasets={"/lists": [{"name": "no id"}]})
    pagination = SHAPES["single"][0]
    platform = platform_for("single", server.url, endpoints=(
        Endpoint(name="lists", path="/lists", records_path="pipelines", pagination=pagination),
        Endpoint(name="members", path="/lists/{parent.id}/members", records_path="pipelines",
                 pagination=pagination, parent="lists"),
    ))
    with pytest.raises(ConnectorError) as caught:
        list(connector(platform, sleeps).pages("members"))
    assert caught.value.kind == "malformed"


# ---------------------------------------------------------------------------- OAuth refresh


def oauth_platform(base_url: str) -> Platform:
    return platform_for("cursor_token", base_url, id="oauthy", auth="oauth2",
                        auth_header={"Authorization": "Bearer {access_token}"},
                        oauth=OAuth(authorize_url=base_url + "/oauth/authorize",
                                    token_url=base_url + "/oauth/token"))


@pytest.fixture
def oauth_app(monkeypatch):
    calls = []

    def client_credentials(platform_id):
        calls.append(platform_id)
        return "client-1", "client-secret-1"
    monkeypatch.setattr(oauth_client, "client_credentials", client_credentials)
    return calls


def test_an_expiring_token_is_refreshed_before_the_request(fake, sleeps, oauth_app):
    server = fake("cursor_token", bearer="at-1")
    stored = []
    now = time.time()
    c = Connector(oauth_platform(server.url), {},
                  {"access_token": "at-1", "refresh_token": "rt-1", "expires_at": int(now + 30)},
                  sleep=sleeps.append, on_credentials_refreshed=stored.append, clock=lambda: now)
    assert ids(c.pages("things")) == ALL_IDS
    assert server.requests[0].path == "/oauth/token"
    assert [r.path for r in server.requests[1:]] == ["/crm/v3/objects/contacts"] * 5
    assert len(stored) == 1 and oauth_app == ["oauthy"]
    assert stored[0]["access_token"] == "at-2" and stored[0]["refresh_token"] == "rt-1"
    assert stored[0]["expires_at"] == int(now + 3600)


def test_a_401_refreshes_once_and_retries(fake, sleeps, oauth_app):
    server = fake("cursor_token", bearer="at-1")
    stored = []
    c = Connector(oauth_platform(server.url), {},
                  {"access_token": "at-1", "refresh_token": "rt-1", "expires_at": time.time() + 3000},
                  sleep=sleeps.append, on_credentials_refreshed=stored.append)
    pages = c.pages("things")
    assert len(next(pages)) == 5
    server.bearer = "revoked-elsewhere"          # the platform revokes the token midway
    server.token_answers = [(200, {"access_token": "at-9", "refresh_token": "rt-9", "expires_in": 3600})]
    assert len(ids(pages)) == 18
    assert [s["access_token"] for s in stored] == ["at-9"] and stored[0]["refresh_token"] == "rt-9"
    assert sleeps == []


def test_a_401_after_a_refresh_fails(fake, sleeps, oauth_app):
    server = fake("cursor_token", always="401")
    stored = []
    c = Connector(oauth_platform(server.url), {},
                  {"access_token": "at-1", "refresh_token": "rt-1", "expires_at": time.time() + 3000},
                  sleep=sleeps.append, on_credentials_refreshed=stored.append)
    with pytest.raises(ConnectorError) as caught:
        list(c.pages("things"))
    assert caught.value.kind == "auth" and len(stored) == 1
    assert [r.path for r in server.requests].count("/oauth/token") == 1


def test_a_rejected_refresh_token_is_an_auth_error(fake, sleeps, oauth_app):
    server = fake("cursor_token", bearer="at-1")
    server.token_answers = [(400, {"error": "invalid_grant"})]
    stored = []
    c = Connector(oauth_platform(server.url), {},
                  {"access_token": "at-1", "refresh_token": "rt-1", "expires_at": 0},
                  sleep=sleeps.append, on_credentials_refreshed=stored.append)
    with pytest.raises(ConnectorError) as caught:
        c.test()
    assert caught.value.kind == "auth" and "invalid_grant" in caught.value.message
    assert "rt-1" not in caught.value.message and stored == []


# ---------------------------------------------------------------------------- file stores

MB5 = 5 * 1024 * 1024


def drive_platform(base_url: str, **changes) -> Platform:
    # Google Drive: files.list with pageToken; content with ?alt=media.
    endpoint = Endpoint(name="files", path="/drive/v3/files", records_path="files",
                        pagination=Pagination(model.CURSOR_TOKEN, page_size=2, limit_param="pageSize",
                                              cursor_param="pageToken", cursor_path="nextPageToken"),
                        files=True, download_path="/drive/v3/files/{entry.id}?alt=media",
                        files_where={"mimeType": ("application/octet-stream", "text/plain")})
    fields = dict(endpoints=(endpoint,), test_endpoint="files", id="gdrive", name="Drive",
                  auth="oauth2", auth_header={"Authorization": "Bearer {access_token}"})
    fields.update(changes)
    return platform_for("cursor_token", base_url, **fields)


def file_server(files, pagination=None, **kwargs):
    p = pagination or Pagination(model.CURSOR_TOKEN, page_size=2, limit_param="pageSize",
                                 cursor_param="pageToken", cursor_path="nextPageToken")
    return FakePlatform(p, records_path="files", files=files, **kwargs).start()


def test_files_lists_file_entries_without_folders():
    server = file_server({"f1": 10, "f2": 20, "f3": 30})
    try:
        c = Connector(drive_platform(server.url), {}, {"access_token": "t"})
        assert [e["id"] for e in c.files()] == ["f1", "f2", "f3"]
    finally:
        server.stop()


def test_a_5mb_file_streams_in_bounded_chunks():
    hold = threading.Event()
    server = file_server({"big": MB5}, hold_download=hold)
    try:
        c = Connector(drive_platform(server.url), {}, {"access_token": "t"})
        entry = next(iter(c.files()))
        digest, total, peak, first_before_release = hashlib.sha256(), 0, 0, None
        tracemalloc.start()
        try:
            for chunk in c.download(entry):
                if first_before_release is None:
                    # The server holds the rest of the file until released: a chunk here
                    # means the content is streamed, not read whole.
                    first_before_release = not hold.is_set()
                    hold.set()
                digest.update(chunk)
                total += len(chunk)
                peak = max(peak, len(chunk))
            _, allocated_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            hold.set()
        assert first_before_release is True
        assert total == MB5 and digest.hexdigest() == hashlib.sha256(file_bytes("big", MB5)).hexdigest()
        assert 0 < peak <= CHUNK
        assert allocated_peak < 2 * 1024 * 1024
        seen = server.requests[-1]
        assert seen.path == "/drive/v3/files/big" and seen.query == {"alt": "media"}
        assert seen.headers["Authorization"] == "Bearer t"
    finally:
        server.stop()


def test_dropbox_downloads_are_a_post_with_an_api_arg_header(monkeypatch):
    pagination = SHAPES["cursor_post"][0]
    server = FakePlatform(pagination, records_path="entries", method="POST",
                          files={"id:aé1": 70000, "id:b2": 5}).start()
    try:
        endpoint = Endpoint(name="files", path="/2/files/list_folder", records_path="entries",
                            pagination=pagination, method="POST", body={"path": "", "recursive": True},
                            files=True, download_path="/2/files/download", download_method="POST",
                            download_headers={"Dropbox-API-Arg": {"path": "{entry.id}"}},
                            files_where={".tag": "file"})
        platform = platform_for("cursor_post", "https://api.dropboxapi.example", id="dbx",
                                endpoints=(endpoint,), test_endpoint="files",
                                content_base_url="https://content.dropboxapi.example",
                                auth_header={"Authorization": "Bearer {access_token}"})
        monkeypatch.setenv("LISTBACKUP_PLATFORM_URLS", json.dumps({"dbx": server.url}))
        c = Connector(platform, {}, {"access_token": "t"})
        entries = list(c.files())
        assert [e["id"] for e in entries] == ["id:aé1", "id:b2"]
        content = b"".join(c.download(entries[0]))
        assert content == file_bytes("id:aé1", 70000)
        seen = server.requests[-1]
        assert seen.method == "POST" and seen.path == "/2/files/download"
        assert seen.headers["Dropbox-API-Arg"] == '{"path":"id:a\\u00e91"}'
    finally:
        server.stop()


def test_a_download_redirect_to_another_host_drops_the_credentials():
    # Box: /files/{id}/content answers 302 to a signed URL on another host.
    server = file_server({"f1": 300000}, redirect_downloads=True)
    try:
        platform = drive_platform(server.url)
        endpoint = dataclasses.replace(platform.endpoints[0], download_path="/2.0/files/{id}/content")
        c = Connector(dataclasses.replace(platform, endpoints=(endpoint,)), {}, {"access_token": "t"})
        content = b"".join(c.download({"id": "f1"}))
        assert content == file_bytes("f1", 300000)
        first, signed = server.requests[-2:]
        assert first.path == "/2.0/files/f1/content" and first.headers["Authorization"] == "Bearer t"
        assert signed.path == "/signed/f1" and "Authorization" not in signed.headers
    finally:
        server.stop()


def test_a_download_is_retried_on_429_and_fails_fast_on_401(sleeps):
    server = file_server({"f1": 1000})
    try:
        c = Connector(drive_platform(server.url), {}, {"access_token": "t"}, sleep=sleeps.append)
        server.faults = {1: "429"}
        assert b"".join(c.download({"id": "f1"})) == file_bytes("f1", 1000)
        assert sleeps == [7.0]
        server.always = "401"
        with pytest.raises(ConnectorError) as caught:
            b"".join(c.download({"id": "f1"}))
        assert caught.value.kind == "auth"
    finally:
        server.stop()


def test_a_store_listed_one_folder_at_a_time_is_walked_into_every_subfolder(monkeypatch):
    # Box: /folders/{folder_id}/items lists one folder; entries of type folder are listed in turn.
    pagination = SHAPES["marker"][0]
    tree = {
        "0": [{"id": "1", "type": "file"}, {"id": "10", "type": "folder"}, {"id": "2", "type": "file"},
              {"id": "20", "type": "folder"}],
        "10": [{"id": "3", "type": "file"}, {"id": "30", "type": "folder"}],
        "20": [{"id": "4", "type": "file"}],
        "30": [{"id": f"5{n}", "type": "file"} for n in range(7)] + [{"id": "10", "type": "folder"}],
    }
    server = FakePlatform(pagination, records_path="entries", records=[],
                          datasets={f"/2.0/folders/{k}/items": v for k, v in tree.items()}).start()
    try:
        endpoint = Endpoint(name="files", path="/folders/{folder_id}/items", records_path="entries",
                            pagination=pagination, files=True, files_where={"type": "file"},
                            folders_where={"type": "folder"}, folder_setting="folder_id",
                            download_path="/files/{entry.id}/content")
        platform = platform_for("marker", "https://api.box.example/2.0", id="boxy",
                                endpoints=(endpoint,), test_endpoint="files")
        monkeypatch.setenv("LISTBACKUP_PLATFORM_URLS", json.dumps({"boxy": server.url}))
        c = Connector(platform, {"folder_id": "0"}, {"api_key": "k"})
        files = [e["id"] for e in c.files()]
        assert files == ["1", "2", "3", "4"] + [f"5{n}" for n in range(7)]
        folders = [r.path for r in server.requests if not r.query.get("marker")]
        # Breadth first; folder 10 seen again inside 30 is not listed twice.
        assert folders == ["/2.0/folders/0/items", "/2.0/folders/10/items",
                           "/2.0/folders/20/items", "/2.0/folders/30/items"]
    finally:
        server.stop()


def test_a_platform_without_files_is_a_config_error(sleeps):
    with pytest.raises(ConnectorError) as caught:
        list(connector(platform_for("page", "http://127.0.0.1:9"), sleeps).files())
    assert caught.value.kind == "config"


# ---------------------------------------------------------------------------- the catalog

from handlers.shared.connectors import platforms as catalog_module  # noqa: E402

CATALOG = dict(catalog_module.CATALOG)

SAMPLES = ("acme", "us6", "sk_test_FAKEfakeFAKEfake0000000000",
           "0123456789abcdef0123456789abcdef-us6", "ann@example.com", "https://acme.api-us1.com",
           "acme.myshopify.com", "shpat_0123456789abcdef0123456789abcdef", "a1b2c3d4" * 5,
           "pit-0123456789abcdef", "abcDEF123456", "12345", "x" * 40, "A" * 64)


def sample_value(f: model.Field) -> str:
    import re

    if not f.pattern:
        return "sample-" + f.name
    for candidate in SAMPLES:
        if re.fullmatch(f.pattern, candidate):
            return candidate
    pytest.fail(f"no sample value matches {f.name}'s pattern {f.pattern!r}")


def catalog_values(platform: Platform) -> tuple[dict, dict]:
    settings = {f.name: sample_value(f) for f in platform.setting_fields}
    credentials = {f.name: sample_value(f) for f in platform.credential_fields}
    if platform.auth == "oauth2":
        credentials.update(access_token="at-1", refresh_token="rt-1",
                           expires_at=int(time.time()) + 3600)
    return settings, credentials


def small(endpoint: Endpoint, size: int = 5) -> Endpoint:
    return dataclasses.replace(endpoint, pagination=dataclasses.replace(endpoint.pagination,
                                                                        page_size=size))


def with_ids(records: list[dict], id_field: str) -> list[dict]:
    for record in records:
        record.setdefault(id_field, record["id"])
    return records


def server_path(platform: Platform, endpoint: Endpoint, settings: dict, credentials: dict,
                parent: dict | None = None) -> str:
    c = Connector(platform, settings, credentials)
    values = {**c._values(), **({"parent": parent} if parent else {})}
    return urlsplit(c._url(platform.base_url, endpoint.path, values, "test")).path


CATALOG_ENDPOINTS = [(p.id, e.name) for p in CATALOG.values() for e in p.endpoints]


@pytest.mark.parametrize("platform_id", sorted(CATALOG))
def test_each_catalog_platform_tests_against_a_fake_of_its_api(platform_id, sleeps, monkeypatch):
    platform = CATALOG[platform_id]
    endpoint = platform.endpoint(platform.test_endpoint)
    p = endpoint.pagination
    records = with_ids(make_records(p.page_size + 2), p.id_field)
    server = FakePlatform(p, records=records, records_path=endpoint.records_path,
                          method=endpoint.method, max_page=p.page_size).start()
    try:
        monkeypatch.setenv("LISTBACKUP_PLATFORM_URLS", json.dumps({platform_id: server.url}))
        settings, credentials = catalog_values(platform)
        Connector(platform, settings, credentials, sleep=sleeps.append).test()
        assert len(server.requests) == 1
        first = server.requests[0]
        assert first.method == endpoint.method.upper()
        assert first.path == server_path(platform, endpoint, settings, credentials)
        for header in platform.auth_header:
            assert header in first.headers
        assert sleeps == []
    finally:
        server.stop()


@pytest.mark.parametrize("platform_id,endpoint_name", CATALOG_ENDPOINTS)
def test_every_catalog_endpoint_pages_every_record_once(platform_id, endpoint_name, sleeps,
                                                        monkeypatch):
    platform = CATALOG[platform_id]
    endpoint = small(platform.endpoint(endpoint_name))
    endpoints = [endpoint]
    p = endpoint.pagination
    records = with_ids(make_records(12), p.id_field)
    settings, credentials = catalog_values(platform)
    shapes, datasets, parents = {}, {}, [None]
    if endpoint.parent:
        parent = platform.endpoint(endpoint.parent)
        assert parent.parent is None, "the test covers one level of children"
        parents = with_ids([{"id": "P1"}, {"id": "P2"}], parent.pagination.id_field)
        parent_path = server_path(platform, parent, settings, credentials)
        shapes[parent_path] = (parent.pagination, parent.records_path)
        datasets[parent_path] = parents
        endpoints.append(parent)
    trimmed = dataclasses.replace(platform, endpoints=tuple(endpoints))
    server = FakePlatform(p, records=records, records_path=endpoint.records_path,
                          method=endpoint.method, max_page=p.page_size, shapes=shapes,
                          datasets=datasets).start()
    try:
        monkeypatch.setenv("LISTBACKUP_PLATFORM_URLS", json.dumps({platform_id: server.url}))
        pages = list(Connector(trimmed, settings, credentials, sleep=sleeps.append).pages(endpoint_name))
        expected = [r["id"] for r in records] * len(parents)
        assert ids(pages) == expected
        if p.style != model.SINGLE:
            assert {len(page) for page in pages} <= {5, 2}
        child_paths = {server_path(platform, endpoint, settings, credentials, parent)
                       for parent in parents}
        served = {r.path for r in server.requests} - set(shapes)
        if p.style == model.CURSOR_POST:
            served -= {urlsplit(platform.base_url).path.rstrip("/") + p.continue_path}
        assert served == child_paths
        assert sleeps == []
    finally:
        server.stop()


FILE_STORES = sorted(p.id for p in CATALOG.values() if any(e.files for e in p.endpoints))


@pytest.mark.parametrize("platform_id", FILE_STORES)
def test_every_catalog_file_store_lists_and_streams_files(platform_id, monkeypatch):
    platform = CATALOG[platform_id]
    endpoint = small(next(e for e in platform.endpoints if e.files), 2)
    settings, credentials = catalog_values(platform)
    sizes = {"f1": 100_000, "f2": 10, "f3": 3 * CHUNK + 1}
    server = FakePlatform(endpoint.pagination, records_path=endpoint.records_path,
                          method=endpoint.method, max_page=2, files=sizes,
                          redirect_downloads=platform_id == "box").start()
    try:
        if endpoint.folders_where:   # the fake folder is empty
            folder = {**settings, endpoint.folder_setting: "folder1"}
            server.datasets[server_path(platform, endpoint, folder, credentials)] = []
        monkeypatch.setenv("LISTBACKUP_PLATFORM_URLS", json.dumps({platform_id: server.url}))
        c = Connector(dataclasses.replace(platform, endpoints=(endpoint,)), settings, credentials)
        entries = list(c.files())
        expected = [r for r in server.records if engine._matches(r, endpoint.files_where)]
        assert entries == expected
        for entry in (e for e in entries if e["id"] in sizes):
            chunks = list(c.download(entry))
            assert b"".join(chunks) == file_bytes(entry["id"], sizes[entry["id"]])
            assert max(len(chunk) for chunk in chunks) <= CHUNK
        downloads = [r for r in server.requests if server._is_download(r.path, r.query)]
        assert downloads and all(r.method == endpoint.download_method.upper()
                                 or r.path.startswith("/signed/") for r in downloads)
    finally:
        server.stop()


def test_every_catalog_endpoint_uses_a_style_the_engine_implements():
    for platform in CATALOG.values():
        names = {e.name for e in platform.endpoints}
        assert platform.test_endpoint in names
        for endpoint in platform.endpoints:
            assert endpoint.pagination.style in model.STYLES
            assert endpoint.parent is None or endpoint.parent in names
            if endpoint.pagination.style == model.CURSOR_POST:
                assert endpoint.pagination.continue_path, (platform.id, endpoint.name)
            if endpoint.files:
                assert endpoint.download_path, (platform.id, endpoint.name)
            if endpoint.folders_where:
                assert endpoint.folder_setting, (platform.id, endpoint.name)
