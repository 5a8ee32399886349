"""``GET /integrations`` and ``GET /integrations/{type}``: the public platform catalog."""

from __future__ import annotations

import json

import pytest

from handlers.integrations import api
from handlers.integrations.routes import ROUTES
from handlers.shared.connectors.model import (OFFSET, Endpoint, Field, Pagination, Platform)
from handlers.shared.connectors.platforms import CATALOG
from tests.support import LambdaContext, api_event, call

PLATFORM_IDS = ["keap", "stripe", "mailchimp", "zendesk", "shopify", "gohighlevel",
                "activecampaign", "hubspot", "google-drive", "dropbox", "box"]
SUMMARY_KEYS = {"id", "name", "categories", "auth", "fileStore", "docsUrl"}
DETAIL_KEYS = SUMMARY_KEYS | {"fields", "endpoints", "testEndpoint", "rateLimit", "oauth"}
VIEWER = {"userId": "usr_1", "accountId": "acc_1", "role": "viewer"}


def get(route_key: str, *, path: dict | None = None, identity: dict | None = None):
    return call(api.handler, api_event(route_key, path=path, identity=identity),
                LambdaContext("listbackup-integrations-test-api"))


def platform(platform_type: str, identity: dict | None = None):
    return get("GET /integrations/{type}", path={"type": platform_type}, identity=identity)


def test_both_catalog_routes_are_public_gets():
    routes = {r.route_key: r for r in ROUTES}
    for key in ("GET /integrations", "GET /integrations/{type}"):
        assert routes[key].access == "public" and routes[key].status == 200


def test_the_list_answers_eleven_platforms_without_a_credential(backend):
    status, body = get("GET /integrations")
    assert status == 200 and body["success"] is True
    data = body["data"]
    assert data["nextCursor"] is None
    assert [item["id"] for item in data["items"]] == PLATFORM_IDS
    for item in data["items"]:
        assert set(item) == SUMMARY_KEYS
        assert item["auth"] in ("api_key", "oauth2") and item["name"] and item["categories"]
        assert item["docsUrl"].startswith("https://")
    assert [i["id"] for i in data["items"] if i["fileStore"]] == ["google-drive", "dropbox", "box"]
    assert {i["id"] for i in data["items"] if i["auth"] == "oauth2"} == \
        {"gohighlevel", "hubspot", "google-drive", "dropbox", "box"}


def test_a_signed_in_caller_sees_the_same_list(backend):
    assert get("GET /integrations", identity=VIEWER) == get("GET /integrations")


@pytest.mark.parametrize("platform_type", PLATFORM_IDS)
def test_each_platform_answers_its_connection_details(backend, platform_type):
    status, body = platform(platform_type)
    assert status == 200 and body["success"] is True
    view, entry = body["data"], CATALOG[platform_type]
    assert set(view) == DETAIL_KEYS
    assert view["id"] == platform_type and view["name"] == entry.name
    assert view["fields"] == [
        {"name": f.name, "label": f.label, "secret": f.secret, "required": f.required,
         "pattern": f.pattern, "help": f.help} for f in entry.fields]
    assert view["endpoints"] == [{"name": e.name, "description": e.description}
                                 for e in entry.endpoints]
    assert view["testEndpoint"] in [e["name"] for e in view["endpoints"]]
    assert view["rateLimit"]["requestsPerSecond"] > 0 and view["rateLimit"]["notes"]
    if view["auth"] == "oauth2":
        assert view["oauth"] == {"scopes": list(entry.oauth.scopes)}
        assert not any(f["secret"] for f in view["fields"])
    else:
        assert view["oauth"] is None
        assert any(f["secret"] and f["required"] for f in view["fields"])


@pytest.mark.parametrize("platform_type", PLATFORM_IDS)
def test_a_platform_view_carries_no_client_ids_urls_or_paging_internals(backend, platform_type):
    _, body = platform(platform_type)
    text = json.dumps(body["data"]).lower()
    for word in ("client", "authorize", "token_url", "oauth/token", "api.",
                 "records_path", "cursor", "page_size", "x-keap-api-key", "bearer"):
        assert word not in text, word


def test_the_same_platform_answers_a_signed_in_caller_alike(backend):
    assert platform("stripe", VIEWER) == platform("stripe")


def test_what_connecting_stripe_and_mailchimp_asks_for(backend):
    _, body = platform("stripe")
    (key,) = body["data"]["fields"]
    assert key["name"] == "api_key" and key["secret"] and key["required"]
    assert key["pattern"].startswith("(sk|rk)_(live|test)_")
    _, body = platform("mailchimp")
    fields = {f["name"]: f for f in body["data"]["fields"]}
    assert fields["api_key"]["secret"] and not fields["dc"]["secret"] and not fields["dc"]["required"]
    assert "list_members" in [e["name"] for e in body["data"]["endpoints"]]


@pytest.mark.parametrize("platform_type", ["salesforce", "Stripe", "stripe ", "..", "google_drive"])
def test_an_unknown_platform_is_404(backend, platform_type):
    status, body = platform(platform_type)
    assert status == 404
    assert body == {"success": False, "error": "No such platform", "code": "not_found"}


def test_both_answers_follow_the_catalog_itself(backend, monkeypatch):
    extra = Platform(id="example", name="Example", categories=("crm",), auth="api_key",
                     base_url="https://api.example.com", auth_header={"X-Key": "{api_key}"},
                     fields=(Field("api_key", "Key", help="The key"),),
                     endpoints=(Endpoint("things", "/things", "things", Pagination(OFFSET),
                                         description="Things"),),
                     test_endpoint="things", docs_url="https://example.com/docs")
    monkeypatch.setitem(CATALOG, "example", extra)
    _, body = get("GET /integrations")
    assert [item["id"] for item in body["data"]["items"]] == PLATFORM_IDS + ["example"]
    status, body = platform("example")
    assert status == 200 and body["data"]["endpoints"] == [{"name": "things", "description": "Things"}]
