"""The platform catalog (``handlers/shared/connectors/platforms.py``) against DESIGN section 6
and issue 6: every platform and endpoint, well-formed pagination, resolvable templates,
validation patterns, OAuth and file-store details; and each platform walked once through
the paging engine against a synthetic last page."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from handlers.shared.connectors import model
from handlers.shared.connectors.model import (CURSOR_AFTER_ID, CURSOR_POST, CURSOR_TOKEN,
                                              LINK_HEADER, MARKER, NEXT_URL, OFFSET, PAGE,
                                              SINGLE, STYLES)
from handlers.shared.connectors.platforms import CATALOG, derive_settings, get_platform

# DESIGN section 6, verbatim: the platforms ListBackup has offered and what each backs up.
DESIGN = {
    "keap": "contacts, companies, opportunities, orders, products, tags, tasks, notes, emails, "
            "transactions, subscriptions, users, files, affiliates, affiliate commissions, "
            "affiliate programs",
    "stripe": "customers, charges, invoices, subscriptions, payouts, products, prices, "
              "payment intents, refunds, events",
    "mailchimp": "lists, list members, segments, campaigns, reports, automations, templates",
    "zendesk": "tickets, users, organizations, groups, ticket fields, satisfaction ratings, "
               "macros, views",
    "shopify": "orders, customers, products, collections, inventory levels, transactions, "
               "fulfillments",
    "gohighlevel": "contacts, opportunities, pipelines, calendars, appointments, campaigns, "
                   "forms, surveys, workflows, conversations, users, custom fields, tags",
    "activecampaign": "contacts, lists, campaigns, automations, deals, deal stages, pipelines, "
                      "accounts, tags, custom fields, messages, forms, users, groups, notes, "
                      "tasks",
    "hubspot": "contacts, companies, deals, tickets, products, line items, quotes, forms, "
               "emails, lists, workflows, pipelines, owners, properties, engagements",
    # "the OAuth file stores Google Drive, Dropbox and Box"
    "google-drive": "files",
    "dropbox": "files",
    "box": "files",
}
FILE_STORES = {"google-drive", "dropbox", "box"}
OAUTH_PLATFORMS = {"gohighlevel", "hubspot", "google-drive", "dropbox", "box"}

# Issue 6, "One paging engine": offset and limit, page numbers, cursor after the last id
# with a has-more flag, a next-page URL in the body, the Link header, a cursor token in the
# body, a continue-with-cursor POST, and markers.
ISSUE_STYLES = {OFFSET, PAGE, CURSOR_AFTER_ID, NEXT_URL, LINK_HEADER, CURSOR_TOKEN,
                CURSOR_POST, MARKER}

# A realistic value and junk for every field with a pattern: (platform, field) -> (good, bad).
EXAMPLES = {
    ("keap", "api_key"): (["KeapAK-2f8a0c1d9e7b4a6c8d0e2f4a6b8c0d1e3f5a"],
                          ["", "short", "KeapAK 2f8a0c1d9e7b4a6c8d0e2f4a", "key\nX-Evil: 1"]),
    ("stripe", "api_key"): (["sk_test_51FAKEfakeFAKEfake0000XYZabc", "sk_live_FAKEfakeFAKEfake00000000",
                             "rk_live_FAKEfakeFAKEfake0000000"],
                            ["pk_test_51FAKEfakeFAKEfake0000", "sk_test_", "sk_prod_51FAKEfake",
                             "whsec_51FAKEfakeFAKEfake0000", "sk_test_51FAKE fake"]),
    ("mailchimp", "api_key"): (["0123456789abcdef0123456789abcdef-us21",
                                "fedcba9876543210fedcba9876543210-us6"],
                               ["0123456789abcdef0123456789abcdef", "0123456789abcdef-us21",
                                "0123456789abcdef0123456789abcdef-eu1", "anystring:key-us21"]),
    ("mailchimp", "dc"): (["us21", "us6"], ["eu1", "us21.evil.example", "us"]),
    ("zendesk", "subdomain"): (["acme", "acme-support"],
                               ["acme.evil.example", "acme/x", "Acme Support", "a@b", ""]),
    ("zendesk", "email"): (["agent@acme.com"], ["agent", "a b@acme.com", "agent@acme"]),
    ("zendesk", "api_token"): (["6wiIBWbGkBMo1mRDMuVwkw1EPsNkeUj95PIz2akv"],
                               ["short", "6wiIBWbGkBMo1mRDMuVw kw1EPsNkeUj95PIz2akv"]),
    ("shopify", "shop"): (["acme-store", "acme"],
                          ["acme.myshopify.com", "acme/admin", "ACME STORE", "a:1"]),
    ("shopify", "access_token"): (["shpat_" + "0123456789abcdef" * 2, "shpca_" + "a1" * 16],
                                  ["shpss_" + "0123456789abcdef" * 2, "shpat_xyz",
                                   "0123456789abcdef" * 2]),
    ("gohighlevel", "locationId"): (["ve9EPM428h8vShlRW1KT"], ["loc id", "../x", "a"]),
    ("activecampaign", "account"): (["acme", "acme-co"],
                                    ["acme.api-us1.com", "acme/api", "https://acme", ""]),
    ("activecampaign", "api_key"): (["0123456789abcdef" * 4 + "01234567"],
                                    ["abc", "g" * 72, "0123456789abcdef" * 6]),
    ("box", "folder_id"): (["0", "123456789012"], ["abc", "0/../1", ""]),
}

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]+)*)\}")
OAUTH_CREDENTIALS = {"access_token"}


def design_names(platform_id: str) -> list[str]:
    return [name.strip().replace(" ", "_") for name in DESIGN[platform_id].split(",")]


def strings(value):
    """Every string inside a JSON-like value (keys left out)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from strings(item)


def placeholders(*templates) -> set[str]:
    return {name for template in templates for text in strings(template)
            for name in PLACEHOLDER.findall(text)}


def auth_templates(platform) -> list[str]:
    out = []
    for template in platform.auth_header.values():
        if isinstance(template, str) and template.startswith("basic:"):
            out.append(template[len("basic:"):])
        else:
            out.append(template)
    return out


PLATFORMS = list(CATALOG.values())
ids = [platform.id for platform in PLATFORMS]
ENDPOINTS = [(platform, endpoint) for platform in PLATFORMS for endpoint in platform.endpoints]
endpoint_ids = [f"{platform.id}:{endpoint.name}" for platform, endpoint in ENDPOINTS]


# ------------------------------------------------------------------------ platforms, endpoints

def test_the_catalog_holds_exactly_the_design_platforms_in_design_order():
    assert list(CATALOG) == list(DESIGN)
    assert all(CATALOG[platform_id].id == platform_id for platform_id in CATALOG)


@pytest.mark.parametrize("platform_id", list(DESIGN))
def test_every_design_endpoint_is_backed_up(platform_id):
    names = [endpoint.name for endpoint in CATALOG[platform_id].endpoints]
    missing = [name for name in design_names(platform_id) if name not in names]
    assert not missing, f"{platform_id} lacks {missing}"


@pytest.mark.parametrize("platform", PLATFORMS, ids=ids)
def test_endpoint_names_are_unique_and_fit_an_object_key(platform):
    names = [endpoint.name for endpoint in platform.endpoints]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z][a-z0-9_]{0,62}", name) for name in names)
    assert all(endpoint.description for endpoint in platform.endpoints)


def test_get_platform_answers_each_platform_and_nothing_else():
    for platform_id, platform in CATALOG.items():
        assert get_platform(platform_id) is platform
    for unknown in ("", "Stripe", "salesforce", "../stripe", None, 3):
        assert get_platform(unknown) is None


@pytest.mark.parametrize("platform", PLATFORMS, ids=ids)
def test_names_categories_auth_and_test_endpoint(platform):
    assert platform.name and platform.categories
    assert all(re.fullmatch(r"[a-z][a-z-]*", category) for category in platform.categories)
    assert platform.auth == ("oauth2" if platform.id in OAUTH_PLATFORMS else "api_key")
    test = platform.endpoint(platform.test_endpoint)       # exists
    assert test.parent is None, "the test endpoint must be one call, not one per parent"
    assert platform.rate_limit.requests_per_second > 0 and platform.rate_limit.burst >= 1
    assert platform.rate_limit.notes


# ------------------------------------------------------------------------ pagination

@pytest.mark.parametrize(("platform", "endpoint"), ENDPOINTS, ids=endpoint_ids)
def test_every_pagination_is_complete_for_its_style(platform, endpoint):
    p = endpoint.pagination
    assert p.style in STYLES
    assert endpoint.records_path, "every listed response is an object holding the records"
    assert endpoint.method in ("GET", "POST")
    if p.style != SINGLE:
        assert 1 <= p.page_size <= 2000
    if p.style == OFFSET:
        assert p.offset_param and p.limit_param
    elif p.style == PAGE:
        assert p.page_param and p.limit_param and p.first_page in (0, 1)
    elif p.style == CURSOR_AFTER_ID:
        assert p.cursor_param and p.id_field and p.limit_param
    elif p.style == NEXT_URL:
        assert p.cursor_path
    elif p.style == LINK_HEADER:
        assert p.limit_param
    elif p.style in (CURSOR_TOKEN, MARKER):
        assert p.cursor_param and p.cursor_path
    elif p.style == CURSOR_POST:
        assert endpoint.method == "POST" and p.continue_path and p.cursor_param and p.cursor_path
    if endpoint.method == "POST":
        assert endpoint.body is not None


def test_the_styles_used_cover_every_style_issue_6_lists():
    used = {endpoint.pagination.style for _, endpoint in ENDPOINTS}
    assert ISSUE_STYLES <= used, f"unused: {ISSUE_STYLES - used}"
    assert used <= set(STYLES)


# ------------------------------------------------------------------------ templates

@pytest.mark.parametrize("platform", PLATFORMS, ids=ids)
def test_every_platform_template_resolves_from_its_fields(platform):
    known = {field.name for field in platform.fields}
    if platform.auth == "oauth2":
        known |= OAUTH_CREDENTIALS
    used = placeholders(platform.base_url, platform.content_base_url or "",
                        auth_templates(platform))
    assert used <= known, f"unknown: {used - known}"
    for endpoint in platform.endpoints:
        names = placeholders(endpoint.path, dict(endpoint.pagination.extra), endpoint.body or {},
                             endpoint.pagination.continue_path or "")
        parent = {name for name in names if name.startswith("parent.")}
        assert names - parent <= known, f"{endpoint.name}: unknown {names - parent - known}"
        assert bool(parent) == bool(endpoint.parent), f"{endpoint.name}: parent fields"
        download = placeholders(endpoint.download_path or "", dict(endpoint.download_headers))
        assert all(name.startswith("entry.") or name in known for name in download)


@pytest.mark.parametrize("platform", PLATFORMS, ids=ids)
def test_every_credential_is_sent_and_every_optional_template_value_is_derived(platform):
    header_names = placeholders(auth_templates(platform))
    for field in platform.credential_fields:
        assert field.name in header_names, f"{field.name} is asked for but never sent"
    # A template value the user may leave empty must be derivable from what they give.
    everything = placeholders(platform.base_url, auth_templates(platform), *[
        (e.path, dict(e.pagination.extra), e.body or {}) for e in platform.endpoints])
    settings, credentials = sample_values(platform, optional=False)
    derived = derive_settings(platform, settings, credentials)
    for field in platform.fields:
        if not field.required and field.name in everything:
            assert derived.get(field.name), f"{platform.id}.{field.name} is never derived"
            assert re.fullmatch(field.pattern, derived[field.name])


@pytest.mark.parametrize(("platform", "endpoint"),
                         [(p, e) for p, e in ENDPOINTS if e.parent],
                         ids=[f"{p.id}:{e.name}" for p, e in ENDPOINTS if e.parent])
def test_child_endpoints_expand_over_an_existing_parent(platform, endpoint):
    parent = platform.endpoint(endpoint.parent)
    assert parent.name != endpoint.name and parent.parent is None
    assert not endpoint.files


def test_the_documented_expansions():
    assert CATALOG["mailchimp"].endpoint("list_members").path == "/lists/{parent.id}/members"
    assert CATALOG["mailchimp"].endpoint("list_members").parent == "lists"
    assert CATALOG["mailchimp"].endpoint("segments").parent == "lists"
    assert CATALOG["shopify"].endpoint("inventory_levels").parent == "locations"
    assert CATALOG["shopify"].endpoint("transactions").parent == "orders"
    assert CATALOG["shopify"].endpoint("fulfillments").parent == "orders"
    assert CATALOG["gohighlevel"].endpoint("appointments").parent == "calendars"


# ------------------------------------------------------------------------ fields and patterns

def test_every_pattern_has_examples():
    patterned = {(p.id, f.name) for p in PLATFORMS for f in p.fields if f.pattern}
    assert patterned == set(EXAMPLES)


@pytest.mark.parametrize(("key", "examples"), list(EXAMPLES.items()),
                         ids=[f"{p}.{f}" for p, f in EXAMPLES])
def test_patterns_accept_real_values_and_refuse_junk(key, examples):
    platform_id, name = key
    field = next(f for f in CATALOG[platform_id].fields if f.name == name)
    pattern = re.compile(field.pattern)
    good, bad = examples
    for value in good:
        assert pattern.fullmatch(value), f"{key} refuses {value!r}"
    for value in bad:
        assert not pattern.fullmatch(value), f"{key} accepts {value!r}"


@pytest.mark.parametrize("platform", PLATFORMS, ids=ids)
def test_fields_are_labelled_and_secrets_are_the_credentials(platform):
    names = [field.name for field in platform.fields]
    assert len(names) == len(set(names))
    for field in platform.fields:
        assert field.label and field.help
        assert field.pattern is None or re.compile(field.pattern)
    if platform.auth == "api_key":
        assert any(f.secret and f.required for f in platform.fields)
    else:
        assert not platform.credential_fields, "OAuth platforms get their tokens by OAuth"
    settings = {"subdomain", "email", "shop", "account", "dc", "locationId", "folder_id"}
    for field in platform.fields:
        assert field.secret == (field.name not in settings), field.name


@pytest.mark.parametrize("platform", PLATFORMS, ids=ids)
def test_a_setting_in_a_host_name_cannot_change_the_host(platform):
    hosts = {name for template in (platform.base_url, platform.content_base_url)
             if template for name in PLACEHOLDER.findall(template.split("/")[2])}
    assert hosts == {"keap": set(), "mailchimp": {"dc"}, "zendesk": {"subdomain"},
                     "shopify": {"shop"}, "activecampaign": {"account"}}.get(platform.id, set())
    for name in hosts:
        field = next(f for f in platform.fields if f.name == name)
        assert field.pattern, name
        for evil in ("evil.example", "a/b", "a@b", "a:1", "a?b", "a#b", "", "a b"):
            assert not re.fullmatch(field.pattern, evil), f"{name} accepts {evil!r}"


# ------------------------------------------------------------------------ URLs, OAuth, files

def render(template: str, platform) -> str:
    settings, credentials = sample_values(platform)
    values = {**settings, **credentials}
    return PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), "x")), template)


@pytest.mark.parametrize("platform", PLATFORMS, ids=ids)
def test_every_url_is_https(platform):
    urls = [render(platform.base_url, platform), platform.docs_url]
    if platform.content_base_url:
        urls.append(render(platform.content_base_url, platform))
    if platform.oauth:
        urls += [platform.oauth.authorize_url, platform.oauth.token_url]
    for url in urls:
        parts = urlsplit(url)
        assert parts.scheme == "https" and parts.netloc and "{" not in url, url
    for endpoint in platform.endpoints:
        assert endpoint.path.startswith("/") and not endpoint.path.startswith("//")


@pytest.mark.parametrize("platform", PLATFORMS, ids=ids)
def test_oauth_platforms_have_authorize_and_token_urls_and_scopes(platform):
    if platform.id not in OAUTH_PLATFORMS:
        assert platform.oauth is None
        return
    oauth = platform.oauth
    assert oauth.authorize_url.startswith("https://") and oauth.token_url.startswith("https://")
    assert oauth.scopes and all(scope and " " not in scope for scope in oauth.scopes)
    assert oauth.token_auth in ("body", "basic") and oauth.refreshes
    assert "{access_token}" in json.dumps(dict(platform.auth_header))


def test_oauth_specifics():
    google = CATALOG["google-drive"].oauth
    assert google.authorize_params["access_type"] == "offline"
    assert google.authorize_params["prompt"] == "consent"
    assert google.scopes == ("https://www.googleapis.com/auth/drive.readonly",)
    assert CATALOG["dropbox"].oauth.authorize_params["token_access_type"] == "offline"
    ghl = CATALOG["gohighlevel"].oauth
    assert ghl.authorize_url == "https://marketplace.gohighlevel.com/oauth/chooselocation"
    assert ghl.token_url == "https://services.leadconnectorhq.com/oauth/token"
    hubspot = CATALOG["hubspot"].oauth
    assert hubspot.authorize_url == "https://app.hubspot.com/oauth/authorize"
    assert hubspot.token_url == "https://api.hubapi.com/oauth/v1/token"
    assert CATALOG["box"].oauth.token_url == "https://api.box.com/oauth2/token"
    assert all(s.endswith(".readonly") for s in ghl.scopes), "a backup only reads"


@pytest.mark.parametrize("platform", PLATFORMS, ids=ids)
def test_file_stores_list_files_with_download_paths(platform):
    listings = [endpoint for endpoint in platform.endpoints if endpoint.files]
    if platform.id not in FILE_STORES:
        assert not listings and not platform.content_base_url
        assert all(not e.download_path for e in platform.endpoints)
        return
    assert listings
    for endpoint in listings:
        assert endpoint.download_path and endpoint.download_path.startswith("/")
        assert "{entry.id}" in endpoint.download_path + json.dumps(dict(endpoint.download_headers))
        assert endpoint.download_method in ("GET", "POST")
        if endpoint.folders_where:
            assert endpoint.folder_setting in {f.name for f in platform.fields}
            assert "{%s}" % endpoint.folder_setting in endpoint.path


def test_the_brief_api_choices():
    keap, stripe, mailchimp, zendesk, shopify = (CATALOG[i] for i in (
        "keap", "stripe", "mailchimp", "zendesk", "shopify"))
    assert keap.base_url == "https://api.infusionsoft.com/crm/rest/v1"
    assert keap.auth_header == {"X-Keap-API-Key": "{api_key}"}

    assert stripe.base_url == "https://api.stripe.com/v1"
    assert stripe.auth_header == {"Authorization": "Bearer {api_key}"}
    for endpoint in stripe.endpoints:
        p = endpoint.pagination
        assert (endpoint.records_path, p.style, p.cursor_param, p.has_more_path) == \
               ("data", CURSOR_AFTER_ID, "starting_after", "has_more")
        assert p.page_size == 100
    assert stripe.endpoint("subscriptions").pagination.extra == {"status": "all"}

    assert mailchimp.base_url == "https://{dc}.api.mailchimp.com/3.0"
    assert mailchimp.auth_header == {"Authorization": "basic:anystring:{api_key}"}
    for endpoint in mailchimp.endpoints:
        p = endpoint.pagination
        assert (p.style, p.limit_param, p.offset_param, p.total_path) == \
               (OFFSET, "count", "offset", "total_items")

    assert zendesk.base_url == "https://{subdomain}.zendesk.com/api/v2"
    assert zendesk.auth_header == {"Authorization": "basic:{email}/token:{api_token}"}
    for endpoint in zendesk.endpoints:
        p = endpoint.pagination
        assert (p.style, p.limit_param, p.cursor_path, p.has_more_path, p.page_size) == \
               (NEXT_URL, "page[size]", "links.next", "meta.has_more", 100)

    assert re.fullmatch(r"https://\{shop\}\.myshopify\.com/admin/api/20\d\d-(01|04|07|10)",
                        shopify.base_url)
    assert shopify.auth_header == {"X-Shopify-Access-Token": "{access_token}"}
    assert shopify.endpoint("orders").pagination.style == LINK_HEADER
    assert shopify.endpoint("orders").pagination.page_size == 250
    assert shopify.endpoint("orders").pagination.extra == {"status": "any"}


def test_the_brief_api_choices_for_the_rest():
    ghl, ac, hubspot, drive, dropbox, box = (CATALOG[i] for i in (
        "gohighlevel", "activecampaign", "hubspot", "google-drive", "dropbox", "box"))
    assert ghl.base_url == "https://services.leadconnectorhq.com"
    assert ghl.auth_header["Version"] and ghl.auth_header["Authorization"] == "Bearer {access_token}"
    assert any(f.name == "locationId" and not f.secret for f in ghl.fields)

    assert ac.base_url == "https://{account}.api-us1.com/api/3"
    assert ac.auth_header == {"Api-Token": "{api_key}"}
    for endpoint in ac.endpoints:
        p = endpoint.pagination
        assert (p.style, p.limit_param, p.offset_param, p.total_path, p.page_size) == \
               (OFFSET, "limit", "offset", "meta.total", 100)

    for name in ("contacts", "companies", "deals", "tickets", "products", "line_items", "quotes"):
        endpoint = hubspot.endpoint(name)
        p = endpoint.pagination
        assert endpoint.path == f"/crm/v3/objects/{name}" and endpoint.records_path == "results"
        assert (p.style, p.cursor_param, p.cursor_path, p.page_size) == \
               (CURSOR_TOKEN, "after", "paging.next.after", 100)

    files = drive.endpoint("files")
    assert drive.base_url == "https://www.googleapis.com/drive/v3" and files.files
    assert (files.pagination.style, files.pagination.cursor_param, files.pagination.cursor_path) \
        == (CURSOR_TOKEN, "pageToken", "nextPageToken")
    assert files.download_path.startswith("/files/{entry.id}?alt=media")

    files = dropbox.endpoint("files")
    assert dropbox.base_url + files.path == "https://api.dropboxapi.com/2/files/list_folder"
    assert files.method == "POST" and files.pagination.style == CURSOR_POST
    assert files.pagination.continue_path == "/files/list_folder/continue"
    assert files.pagination.cursor_param == "cursor" and files.pagination.has_more_path == "has_more"
    assert dropbox.content_base_url + files.download_path == \
        "https://content.dropboxapi.com/2/files/download"

    files = box.endpoint("files")
    assert box.base_url + files.path == "https://api.box.com/2.0/folders/{folder_id}/items"
    assert files.pagination.style == MARKER and files.pagination.cursor_param == "marker"
    assert files.pagination.extra["usemarker"] == "true"
    assert files.download_path == "/files/{entry.id}/content"
    assert files.folders_where == {"type": "folder"} and files.folder_setting == "folder_id"


# ------------------------------------------------------------------------ derive_settings

def test_derive_settings():
    key = "0123456789abcdef0123456789abcdef-us21"
    assert derive_settings("mailchimp", {}, {"api_key": key}) == {"dc": "us21"}
    assert derive_settings(CATALOG["mailchimp"], {"dc": "us6"}, {"api_key": key}) == {"dc": "us6"}
    assert derive_settings("mailchimp", None, {"api_key": "no-data-centre"}) == {}
    assert derive_settings("gohighlevel", {}, {"access_token": "t", "locationId": "loc123456"}) \
        == {"locationId": "loc123456"}
    assert derive_settings("gohighlevel", {"locationId": "mine12345"}, {"locationId": "other1234"}) \
        == {"locationId": "mine12345"}
    assert derive_settings("box", {}, {}) == {"folder_id": "0"}
    assert derive_settings("box", {"folder_id": "42"}, {}) == {"folder_id": "42"}
    assert derive_settings("stripe", {"x": "y"}, {"api_key": "sk_test_1"}) == {"x": "y"}


def test_model_styles_are_the_issue_styles_and_single():
    assert set(model.STYLES) == ISSUE_STYLES | {SINGLE}


# ------------------------------------------------------------------------ through the engine

def sample_values(platform, optional: bool = True) -> tuple[dict, dict]:
    """Realistic settings and credentials for a platform, from EXAMPLES."""
    settings, credentials = {}, {}
    for field in platform.fields:
        if not field.required and not optional:
            continue
        value = EXAMPLES[(platform.id, field.name)][0][0]
        (credentials if field.secret else settings)[field.name] = value
    if platform.auth == "oauth2":
        credentials.update(access_token="ya29.access-token-value", refresh_token="refresh-value",
                           expires_at=4102444800)
    if platform.id == "gohighlevel":
        credentials["locationId"] = "ve9EPM428h8vShlRW1KT"   # in GoHighLevel's token answer
    return settings, credentials


def set_path(data: dict, path: str, value) -> None:
    parts = path.split(".")
    for part in parts[:-1]:
        data = data.setdefault(part, {})
    data[parts[-1]] = value


RECORD = {"id": "1", "lastMessageDate": 1700000000000, ".tag": "file", "type": "file",
          "name": "a.txt"}


def last_page(*endpoints) -> dict:
    """One page that satisfies every endpoint given and says there is no more."""
    data: dict = {}
    for endpoint in endpoints:
        set_path(data, endpoint.records_path, [dict(RECORD)])
        p = endpoint.pagination
        if p.has_more_path:
            set_path(data, p.has_more_path, False)
        if p.total_path:
            set_path(data, p.total_path, 1)
    return data


@pytest.mark.parametrize(("platform", "endpoint"), ENDPOINTS, ids=endpoint_ids)
def test_the_engine_walks_every_endpoint_with_the_catalog_templates(platform, endpoint):
    from handlers.shared.connectors.engine import Connector

    settings, credentials = sample_values(platform)
    settings = derive_settings(platform, settings, credentials)
    chain = [endpoint] + ([platform.endpoint(endpoint.parent)] if endpoint.parent else [])
    page = last_page(*chain)
    seen = []

    def answer(request):
        seen.append(request)
        return 200, {"content-type": "application/json"}, json.dumps(page)

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for method in ("GET", "POST"):
            mock.add_callback(method, re.compile(r"https://.*"), callback=answer)
        connector = Connector(platform, settings, credentials, sleep=lambda s: None)
        pages = list(connector.pages(endpoint.name))
    assert pages == [[RECORD]]
    base_host = urlsplit(render(platform.base_url, platform)).netloc
    secrets = [credentials[f.name] for f in platform.credential_fields] + [
        credentials[k] for k in ("access_token", "refresh_token") if k in credentials]
    for request in seen:
        url = urlsplit(request.url)
        assert url.scheme == "https" and url.netloc == base_host
        assert "{" not in request.url and "%7B" not in request.url
        assert not any(secret in request.url for secret in secrets), "a credential in a URL"
        sent = " ".join(f"{k}: {v}" for k, v in request.headers.items())
        for name in platform.auth_header:
            assert name in request.headers
        if platform.auth == "oauth2":
            assert "Bearer ya29.access-token-value" in sent
    query = parse_qs(urlsplit(seen[-1].url).query)
    p = endpoint.pagination
    if p.style in (OFFSET, PAGE, CURSOR_AFTER_ID, CURSOR_TOKEN, MARKER, NEXT_URL, LINK_HEADER) \
            and endpoint.method == "GET" and p.limit_param:
        assert query[p.limit_param] == [str(p.page_size)]


@pytest.mark.parametrize("platform", [CATALOG[i] for i in sorted(FILE_STORES)],
                         ids=sorted(FILE_STORES))
def test_the_engine_downloads_a_file_entry_of_every_file_store(platform):
    from handlers.shared.connectors.engine import Connector

    settings, credentials = sample_values(platform)
    settings = derive_settings(platform, settings, credentials)
    listing = next(e for e in platform.endpoints if e.files)
    seen = []

    def answer(request):
        seen.append(request)
        if "alt=media" in request.url or request.url.endswith(("/content", "/files/download")):
            return 200, {"content-type": "application/octet-stream"}, b"content-bytes"
        return 200, {"content-type": "application/json"}, json.dumps(last_page(listing))

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for method in ("GET", "POST"):
            mock.add_callback(method, re.compile(r"https://.*"), callback=answer)
        connector = Connector(platform, settings, credentials, sleep=lambda s: None)
        entries = list(connector.files())
        assert entries == [RECORD]
        content = b"".join(connector.download(entries[0]))
    assert content == b"content-bytes"
    download = seen[-1]
    assert download.method == listing.download_method
    host = urlsplit(render(platform.content_base_url or platform.base_url, platform)).netloc
    assert urlsplit(download.url).netloc == host
    if platform.id == "dropbox":
        assert json.loads(download.headers["Dropbox-API-Arg"]) == {"path": "1"}
    elif platform.id == "google-drive":
        assert urlsplit(download.url).path == "/drive/v3/files/1"
        assert parse_qs(urlsplit(download.url).query)["alt"] == ["media"]
    else:
        assert urlsplit(download.url).path == "/2.0/files/1/content"


def test_the_engine_walks_box_into_subfolders():
    from handlers.shared.connectors.engine import Connector

    box = CATALOG["box"]
    settings, credentials = sample_values(box, optional=False)
    listings = {
        "/2.0/folders/0/items": [{"type": "folder", "id": "7", "name": "Reports"},
                                 {"type": "file", "id": "1", "name": "a.txt"}],
        "/2.0/folders/7/items": [{"type": "file", "id": "2", "name": "b.txt"}],
    }
    seen = []

    def answer(request):
        path = urlsplit(request.url).path
        seen.append(path)
        return 200, {}, json.dumps({"entries": listings[path], "next_marker": None})

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback("GET", re.compile(r"https://api\.box\.com/.*"), callback=answer)
        entries = list(Connector(box, settings, credentials, sleep=lambda s: None).files())
    assert [entry["id"] for entry in entries] == ["1", "2"]
    assert seen == ["/2.0/folders/0/items", "/2.0/folders/7/items"]
