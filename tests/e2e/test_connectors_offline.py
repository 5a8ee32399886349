"""Connectors end to end through offline mode (issue 6, "Tests"): OAuth against a local fake
platform, Stripe sources against localstripe (and a proxy that rejects one key), and
credentials that never appear in clear in DynamoDB, an API response or a log line.

Two offline servers, both module-scoped:

- ``server``: ``--platform-url hubspot=<fake HubSpot>`` (``fake_platforms.FakeOAuthPlatform``
  answering the catalog's authorize, token and test-endpoint paths), ``--platform-url
  stripe=<localstripe>`` and the HubSpot OAuth app in ``--config oauthClients=...``.
- ``proxied``: ``--platform-url stripe=<proxy>``, the proxy (``RejectingProxy``) in front of
  the same localstripe answering 401 for one key and forwarding everything else.

Every API answer the tests receive goes through :func:`api` / :func:`fetch_recorded`, so
the last test can check all of them (and both servers' logs) for every credential used.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import zlib
from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.exceptions import ClientError

from handlers.shared.connectors.platforms import get_platform
from tests.connectors import localstripe_server
from tests.e2e import identity
from tests.e2e.fake_platforms import FakeOAuthPlatform, RejectingProxy, fetch
from tests.e2e.harness import OfflineServer

RETURN_URL = "http://localhost:3000/connected"
APP_ORIGIN = "http://localhost:3000"
CLIENT_ID = "e2e-hubspot-client-" + secrets.token_hex(4)
CLIENT_SECRET = "e2e-hubspot-secret-" + secrets.token_hex(12)
REJECTED_KEY = "sk_test_Rejected" + secrets.token_hex(12)

HUBSPOT = get_platform("hubspot")
_TEST_ENDPOINT = HUBSPOT.endpoint(HUBSPOT.test_endpoint)

# Every credential value this module hands to the product or gets issued, and every raw
# answer it received from the product: the last test checks one against the other.
SECRETS: set[str] = {CLIENT_SECRET, REJECTED_KEY}
RESPONSES: list[tuple[str, int, dict, bytes]] = []
SERVERS: list[OfflineServer] = []


def stripe_key(tag: str = "") -> str:
    key = f"sk_test_E2e{tag}{secrets.token_hex(16)}"
    SECRETS.add(key)
    return key


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def stripe_url():
    """localstripe on 127.0.0.1 (one per process: stopped here only if started here)."""
    already = "url" in localstripe_server._state
    url = localstripe_server.start()
    yield url
    if not already:
        localstripe_server.stop()


@pytest.fixture(scope="module")
def hubspot():
    fake = FakeOAuthPlatform(
        authorize_path=urlsplit(HUBSPOT.oauth.authorize_url).path,
        token_path=urlsplit(HUBSPOT.oauth.token_url).path,
        api_path=urlsplit(HUBSPOT.base_url).path + _TEST_ENDPOINT.path,
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def proxy(stripe_url):
    front = RejectingProxy(stripe_url, [REJECTED_KEY]).start()
    yield front
    front.stop()


def _clients_config() -> str:
    return "oauthClients=" + json.dumps({"hubspot": {"clientId": CLIENT_ID,
                                                     "clientSecret": CLIENT_SECRET}})


@pytest.fixture(scope="module")
def server(hubspot, stripe_url):
    offline = OfflineServer("--platform-url", f"hubspot={hubspot.url}",
                            "--platform-url", f"stripe={stripe_url}",
                            "--config", _clients_config()).start()
    SERVERS.append(offline)
    yield offline
    offline.stop()


@pytest.fixture(scope="module")
def proxied(proxy):
    offline = OfflineServer("--platform-url", f"stripe={proxy.url}").start()
    SERVERS.append(offline)
    yield offline
    offline.stop()


# --------------------------------------------------------------------------- helpers

def api(server: OfflineServer, method: str, path: str, body=None, *, token: str | None = None):
    reply = server.request(method, path, body, token=token)
    RESPONSES.append((f"{method} {path}", reply.status, reply.headers, reply.raw))
    return reply


def fetch_recorded(url: str) -> tuple[int, dict, bytes]:
    """GET a URL of the product without following its redirect."""
    status, headers, body = fetch(url)
    RESPONSES.append((f"GET {url}", status, headers, body))
    return status, headers, body


def sources_of(server: OfflineServer, user) -> list[dict]:
    reply = api(server, "GET", "/sources", token=user.access)
    assert reply.status == 200, reply
    return reply.json["data"]["items"]


def raw_source(server: OfflineServer, account_id: str, source_id: str) -> dict:
    item = identity.get_row(server, "sources", {"accountId": account_id, "sourceId": source_id})
    assert item is not None
    return item


def decrypt_stored(server: OfflineServer, item: dict, account_id: str | None = None,
                   source_id: str | None = None) -> dict:
    """The credentials of a raw source row, decrypted by the local KMS under the context
    of ``account_id``/``source_id`` (the row's own by default)."""
    context = {"accountId": account_id or item["accountId"]["S"],
               "sourceId": source_id or item["sourceId"]["S"]}
    blob = base64.b64decode(item["credentialsCiphertext"]["S"])
    plain = server.aws("kms").decrypt(CiphertextBlob=blob, EncryptionContext=context)["Plaintext"]
    document = zlib.decompress(plain[1:]) if plain[:1] == b"z" else plain[1:]
    assert plain[:1] in (b"j", b"z")
    return json.loads(document)


def state_row(server: OfflineServer, state: str) -> dict | None:
    return identity.get_row(server, "oauth-states", {"state": hashlib.sha256(state.encode()).hexdigest()})


def callback_url(server: OfflineServer) -> str:
    return f"{server.url}/integrations/hubspot/oauth/callback"


def initiate(server: OfflineServer, user, return_url: str = RETURN_URL, **extra):
    return api(server, "POST", "/integrations/hubspot/oauth/initiate",
               {"returnUrl": return_url, **extra}, token=user.access)


def consent(auth_url: str) -> str:
    """The user agrees at the platform: the URL the platform sends the browser back to."""
    status, headers, _ = fetch(auth_url)
    assert status == 302, (status, headers)
    return headers["location"]


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def assert_redirect_to_app(http_status: int, headers: dict, body: bytes, /,
                           **expected: str) -> dict:
    """A redirect to the app's return URL whose query holds ``expected``."""
    assert http_status == 302, (http_status, headers, body)
    location = headers["location"]
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}" == APP_ORIGIN and parts.path == "/connected", location
    query = query_of(location)
    for key, value in expected.items():
        assert query.get(key) == value, (key, query)
    assert b"Traceback" not in body
    return query


def connect(server: OfflineServer, hubspot: FakeOAuthPlatform, user, **extra) -> dict:
    """Initiate, consent and call back: the callback's answer and what led to it."""
    reply = initiate(server, user, **extra)
    assert reply.status == 200, reply
    data = reply.json["data"]
    back = consent(data["authUrl"])
    status, headers, body = fetch_recorded(back)
    return {"state": data["state"], "authUrl": data["authUrl"], "callback": back,
            "status": status, "headers": headers, "body": body}


def assert_refused_state(status: int, headers: dict, body: bytes) -> None:
    """An unknown, used or expired state: 400 invalid_request, no redirect anywhere."""
    assert status == 400, (status, headers, body)
    assert "location" not in headers
    answer = json.loads(body)
    assert answer["success"] is False and answer["code"] == "invalid_request", answer


# --------------------------------------------------------------------------- (a) OAuth

def test_oauth_connects_a_hubspot_source_with_the_tokens_stored(server, hubspot):
    user = identity.register(server)
    reply = initiate(server, user, name="Our HubSpot")
    assert reply.status == 200, reply
    auth_url, state = reply.json["data"]["authUrl"], reply.json["data"]["state"]

    # The authorize URL is the catalog's, on the local platform (path kept), with the app's
    # client id, the stage's callback, the catalog's scopes and the state.
    parts = urlsplit(auth_url)
    assert f"{parts.scheme}://{parts.netloc}" == hubspot.url
    assert parts.path == urlsplit(HUBSPOT.oauth.authorize_url).path
    params = query_of(auth_url)
    assert params["client_id"] == CLIENT_ID and params["response_type"] == "code"
    assert params["state"] == state and len(state) >= 43          # 32 random bytes
    assert params["redirect_uri"] == callback_url(server)
    assert set(params["scope"].split()) == set(HUBSPOT.oauth.scopes)
    assert CLIENT_SECRET not in auth_url

    # The state is stored by its hash only, with a ten-minute lifetime.
    row = state_row(server, state)
    assert row is not None and row["accountId"]["S"] == user.account_id
    assert row["returnUrl"]["S"] == RETURN_URL
    assert 590 <= int(row["expiresAt"]["N"]) - time.time() <= 610
    assert identity.get_row(server, "oauth-states", {"state": state}) is None

    calls_before = len(hubspot.token_calls)
    back = consent(auth_url)
    assert back.startswith(callback_url(server) + "?")
    code = query_of(back)["code"]
    assert query_of(back)["state"] == state

    status, headers, body = fetch_recorded(back)
    result = assert_redirect_to_app(status, headers, body, status="connected")
    source_id = result["sourceId"]
    assert code not in headers["location"] and state not in headers["location"]

    # Exactly one code exchange, at the catalog's token path, authenticated as the app.
    calls = hubspot.token_calls[calls_before:]
    assert [(c.grant_type, c.status) for c in calls] == [("authorization_code", 200)]
    assert calls[0].form["code"] == code
    assert calls[0].form["redirect_uri"] == callback_url(server)
    assert (calls[0].client_id, calls[0].client_secret) == (CLIENT_ID, CLIENT_SECRET)
    issued = calls[0].issued

    # The source: active, HubSpot, named as asked, tokens "set" and never shown.
    got = api(server, "GET", f"/sources/{source_id}", token=user.access)
    assert got.status == 200, got
    source = got.json["data"]
    assert source["type"] == "hubspot" and source["status"] == "active"
    assert source["name"] == "Our HubSpot"
    assert source["credentials"].get("access_token") == "set"
    assert source["credentials"].get("refresh_token") == "set"
    assert [s["sourceId"] for s in sources_of(server, user)] == [source_id]

    # What is stored is the issued tokens, encrypted for this source.
    stored = decrypt_stored(server, raw_source(server, user.account_id, source_id))
    assert stored["access_token"] == issued["access_token"]
    assert stored["refresh_token"] == issued["refresh_token"]
    assert abs(stored["expires_at"] - (time.time() + issued["expires_in"])) < 120

    # The state was consumed.
    assert state_row(server, state) is None

    # And the stored tokens work: the connection test calls the platform with them.
    tested = api(server, "POST", f"/sources/{source_id}/test", token=user.access)
    assert tested.status == 200, tested
    assert tested.json["data"]["lastTest"]["ok"] is True, tested.json
    assert tested.json["data"]["status"] == "active"
    assert hubspot.api_tokens[-1] == issued["access_token"]


def test_a_replayed_state_is_refused(server, hubspot):
    user = identity.register(server)
    first = connect(server, hubspot, user)
    assert_redirect_to_app(first["status"], first["headers"], first["body"], status="connected")
    calls_before = len(hubspot.token_calls)

    # The same callback again (a replay of the platform's redirect) ...
    assert_refused_state(*fetch_recorded(first["callback"]))
    # ... or the same state with a fresh code from the platform.
    second_code_url = consent(first["authUrl"])
    assert query_of(second_code_url)["code"] != query_of(first["callback"])["code"]
    assert_refused_state(*fetch_recorded(second_code_url))

    assert len(hubspot.token_calls) == calls_before          # no code was exchanged
    assert len(sources_of(server, user)) == 1


def test_an_expired_or_unknown_state_is_refused(server, hubspot):
    user = identity.register(server)
    reply = initiate(server, user)
    assert reply.status == 200, reply
    state = reply.json["data"]["state"]
    back = consent(reply.json["data"]["authUrl"])
    calls_before = len(hubspot.token_calls)

    # Expired, but not yet removed by DynamoDB's TTL (which may take days).
    identity.set_attribute(server, "oauth-states",
                           {"state": hashlib.sha256(state.encode()).hexdigest()},
                           "expiresAt", {"N": str(int(time.time()) - 1)})
    assert_refused_state(*fetch_recorded(back))

    # A state nobody issued, a missing one and an absurdly long one.
    code = query_of(back)["code"]
    for query in (f"code={code}&state={secrets.token_urlsafe(32)}", f"code={code}",
                  f"code={code}&state={'a' * 5000}"):
        assert_refused_state(*fetch_recorded(f"{callback_url(server)}?{query}"))

    assert len(hubspot.token_calls) == calls_before
    assert sources_of(server, user) == []


@pytest.mark.parametrize("foreign", [
    "https://evil.example.com/connected",
    "http://localhost:3001/connected",
    "https://localhost:3000/connected",
    "http://localhost:3000@evil.example.com/connected",
    "http://evil.example.com/?next=http://localhost:3000/connected",
    "//evil.example.com/connected",
    "javascript:alert(document.cookie)",
    "http://localhost:3000/connected\r\nSet-Cookie: x=1",
])
def test_a_foreign_return_url_is_refused_at_initiate(server, foreign):
    user = identity.register(server)
    reply = initiate(server, user, return_url=foreign)
    body = identity.assert_error(reply, 400, "validation_failed")
    assert "returnUrl" in json.dumps(body)
    assert "authUrl" not in json.dumps(body)


def test_a_foreign_return_url_in_a_stored_state_is_never_redirected_to(server, hubspot):
    user = identity.register(server)
    allowed = initiate(server, user, return_url="http://127.0.0.1:3000/connected?tab=sources")
    assert allowed.status == 200, allowed          # the other allowed origin of dev
    reply = initiate(server, user)
    assert reply.status == 200, reply
    state = reply.json["data"]["state"]
    back = consent(reply.json["data"]["authUrl"])
    identity.set_attribute(server, "oauth-states",
                           {"state": hashlib.sha256(state.encode()).hexdigest()},
                           "returnUrl", {"S": "https://evil.example.com/connected"})
    calls_before = len(hubspot.token_calls)
    status, headers, body = fetch_recorded(back)
    assert_refused_state(status, headers, body)
    assert b"evil.example.com" not in body
    assert len(hubspot.token_calls) == calls_before
    assert sources_of(server, user) == []


def test_callback_failures_go_back_to_the_app_with_an_error_code(server, hubspot):
    user = identity.register(server)
    # The user refuses at the platform.
    hubspot.decision = "deny"
    try:
        denied = connect(server, hubspot, user)
    finally:
        hubspot.decision = "allow"
    assert_redirect_to_app(denied["status"], denied["headers"], denied["body"],
                           status="error", error="access_denied")

    # The platform refuses the code (a forged or stale one).
    reply = initiate(server, user)
    back = consent(reply.json["data"]["authUrl"])
    forged = back.replace(f"code={query_of(back)['code']}", "code=forged-code")
    result = assert_redirect_to_app(*fetch_recorded(forged), status="error", error="exchange_failed")
    assert "sourceId" not in result
    assert hubspot.token_calls[-1].status == 400
    assert sources_of(server, user) == []


def test_tokens_near_expiry_are_refreshed_and_the_new_ones_stored(server, hubspot):
    user = identity.register(server)
    hubspot.expires_in = 30              # inside the engine's refresh margin
    try:
        done = connect(server, hubspot, user)
    finally:
        hubspot.expires_in = 1800
    source_id = assert_redirect_to_app(done["status"], done["headers"], done["body"],
                                       status="connected")["sourceId"]
    first = hubspot.token_calls[-1].issued
    calls_before = len(hubspot.token_calls)

    tested = api(server, "POST", f"/sources/{source_id}/test", token=user.access)
    assert tested.status == 200, tested
    assert tested.json["data"]["lastTest"]["ok"] is True, tested.json

    refresh = hubspot.token_calls[calls_before:]
    assert [(c.grant_type, c.status) for c in refresh] == [("refresh_token", 200)]
    assert refresh[0].form["refresh_token"] == first["refresh_token"]
    new = refresh[0].issued
    assert hubspot.api_tokens[-1] == new["access_token"]
    stored = decrypt_stored(server, raw_source(server, user.account_id, source_id))
    assert stored["access_token"] == new["access_token"]
    assert stored["refresh_token"] == new["refresh_token"]


# --------------------------------------------------------------------------- (b) Stripe

def test_a_stripe_source_against_localstripe_tests_ok(server):
    user = identity.register(server)
    key = stripe_key()
    created = api(server, "POST", "/sources", {"name": "Stripe (test mode)", "type": "stripe",
                                                "credentials": {"api_key": key}}, token=user.access)
    assert created.status == 201, created
    source = created.json["data"]
    assert source["status"] == "active" and source["credentials"] == {"api_key": "set"}
    assert source["lastTest"] is None

    tested = api(server, "POST", f"/sources/{source['sourceId']}/test", token=user.access)
    assert tested.status == 200, tested
    data = tested.json["data"]
    assert data["lastTest"]["ok"] is True and data["lastTest"]["status"] == 200, data
    assert data["status"] == "active"
    again = api(server, "GET", f"/sources/{source['sourceId']}", token=user.access).json["data"]
    assert again["lastTest"]["ok"] is True and again["status"] == "active"


def test_a_key_stripe_rejects_marks_the_source_error(proxied, proxy):
    user = identity.register(proxied)
    good = stripe_key("Good")

    def create(name: str, key: str) -> str:
        reply = api(proxied, "POST", "/sources", {"name": name, "type": "stripe",
                                                  "credentials": {"api_key": key}},
                    token=user.access)
        assert reply.status == 201, reply
        return reply.json["data"]["sourceId"]

    # Control: through the proxy, any other key reaches localstripe and works.
    ok_id = create("Good key", good)
    tested = api(proxied, "POST", f"/sources/{ok_id}/test", token=user.access)
    assert tested.status == 200 and tested.json["data"]["lastTest"]["ok"] is True, tested
    assert proxy.requests_with(good) and all(
        not f.rejected and f.status == 200 for f in proxy.requests_with(good))

    bad_id = create("Rejected key", REJECTED_KEY)
    tested = api(proxied, "POST", f"/sources/{bad_id}/test", token=user.access)
    assert tested.status == 200, tested
    data = tested.json["data"]
    assert data["status"] == "error", data
    assert data["lastTest"]["ok"] is False and data["lastTest"]["status"] == 401, data
    assert data["lastTest"]["message"]
    seen = proxy.requests_with(REJECTED_KEY)
    assert len(seen) == 1 and seen[0].rejected                 # 401 fails fast: no retries
    got = api(proxied, "GET", f"/sources/{bad_id}", token=user.access).json["data"]
    assert got["status"] == "error" and got["lastTest"]["ok"] is False

    # Entering a key that works gives the source another chance; its test passes again.
    fixed = api(proxied, "PUT", f"/sources/{bad_id}", {"credentials": {"api_key": stripe_key("Fix")}},
                token=user.access)
    assert fixed.status == 200 and fixed.json["data"]["status"] == "active", fixed
    retested = api(proxied, "POST", f"/sources/{bad_id}/test", token=user.access)
    assert retested.json["data"]["lastTest"]["ok"] is True, retested
    assert retested.json["data"]["status"] == "active"


# --------------------------------------------------------------------------- (c) credentials

def test_the_raw_row_holds_ciphertext_only(server, hubspot):
    user = identity.register(server)
    key = stripe_key("Row")
    created = api(server, "POST", "/sources", {"name": "Stripe", "type": "stripe",
                                                "credentials": {"api_key": key}}, token=user.access)
    assert created.status == 201, created
    source_id = created.json["data"]["sourceId"]
    done = connect(server, hubspot, user)
    hubspot_id = assert_redirect_to_app(done["status"], done["headers"], done["body"],
                                        status="connected")["sourceId"]
    tokens = hubspot.token_calls[-1].issued

    for source, values in ((source_id, [key]),
                           (hubspot_id, [tokens["access_token"], tokens["refresh_token"]])):
        item = raw_source(server, user.account_id, source)
        text = json.dumps(item)
        blob = base64.b64decode(item["credentialsCiphertext"]["S"])
        for value in values:
            assert value not in text
            assert value.encode() not in blob
            assert base64.b64encode(value.encode()).decode()[:-4] not in text
        assert not {"credentials", "api_key", "access_token", "refresh_token"} & set(item)
        assert set(item["credentialFields"]["L"][i]["S"] for i in range(len(item["credentialFields"]["L"]))) \
            >= ({"api_key"} if source == source_id else {"access_token", "refresh_token"})
        # It is the credentials, but only for this source ...
        decrypted = decrypt_stored(server, item)
        assert all(v in decrypted.values() for v in values)
        # ... not under another account's (or another source's) encryption context.
        for account, other in ((f"acc_{secrets.token_hex(6)}", source), (user.account_id, "src_other")):
            with pytest.raises(ClientError) as refused:
                decrypt_stored(server, item, account, other)
            assert refused.value.response["Error"]["Code"] in ("InvalidCiphertextException",
                                                               "AccessDeniedException")

    # No row of the sources or OAuth-states tables holds any credential of this module.
    dynamodb = server.aws("dynamodb")
    for table in ("listbackup-dev-sources", "listbackup-dev-oauth-states", "listbackup-dev-activity"):
        try:
            items = dynamodb.scan(TableName=table)["Items"]
        except ClientError:
            continue
        dump = json.dumps(items)
        leaked = [s for s in SECRETS | hubspot.secrets_seen() if s in dump]
        assert not leaked, (table, leaked)


def test_a_ciphertext_copied_onto_another_accounts_source_does_not_decrypt(server):
    owner, other = identity.register(server), identity.register(server)
    key_a, key_b = stripe_key("A"), stripe_key("B")
    ids = []
    for user, key in ((owner, key_a), (other, key_b)):
        reply = api(server, "POST", "/sources", {"name": "Stripe", "type": "stripe",
                                                  "credentials": {"api_key": key}}, token=user.access)
        assert reply.status == 201, reply
        ids.append(reply.json["data"]["sourceId"])
    stolen = raw_source(server, owner.account_id, ids[0])["credentialsCiphertext"]
    identity.set_attribute(server, "sources", {"accountId": other.account_id, "sourceId": ids[1]},
                           "credentialsCiphertext", stolen)

    tested = api(server, "POST", f"/sources/{ids[1]}/test", token=other.access)
    assert tested.status == 200, tested
    data = tested.json["data"]
    assert data["lastTest"]["ok"] is False and data["status"] == "error", data
    assert "could not be read" in data["lastTest"]["message"]
    assert key_a not in tested.raw.decode()
    # The owner's own source is untouched and still works.
    mine = api(server, "POST", f"/sources/{ids[0]}/test", token=owner.access)
    assert mine.json["data"]["lastTest"]["ok"] is True, mine


def test_no_api_response_or_log_line_holds_a_credential(server, hubspot):
    """Runs last: besides its own round of every source operation, it checks every answer
    this module received and both servers' logs for every credential used here."""
    user = identity.register(server)
    key, replacement = stripe_key("Log"), stripe_key("Log2")
    created = api(server, "POST", "/sources", {"name": "Stripe", "type": "stripe",
                                                "credentials": {"api_key": key}}, token=user.access)
    assert created.status == 201, created
    source_id = created.json["data"]["sourceId"]
    api(server, "GET", "/sources", token=user.access)
    api(server, "GET", f"/sources/{source_id}", token=user.access)
    api(server, "POST", f"/sources/{source_id}/test", token=user.access)
    updated = api(server, "PUT", f"/sources/{source_id}",
                  {"name": "Stripe (renamed)", "credentials": {"api_key": replacement}},
                  token=user.access)
    assert updated.status == 200, updated
    bad = api(server, "POST", "/sources", {"name": "Bad", "type": "stripe",
                                            "credentials": {"api_key": key + " not valid"}},
              token=user.access)
    assert bad.status == 400, bad
    api(server, "GET", "/activity", token=user.access)
    done = connect(server, hubspot, user)
    hubspot_id = query_of(done["headers"]["location"])["sourceId"]
    api(server, "GET", f"/sources/{hubspot_id}", token=user.access)
    api(server, "POST", f"/sources/{hubspot_id}/test", token=user.access)
    deleted = api(server, "DELETE", f"/sources/{source_id}", token=user.access)
    assert deleted.status == 200, deleted

    credentials = SECRETS | hubspot.secrets_seen()
    assert len(RESPONSES) > 20
    for what, status, headers, raw in RESPONSES:
        text = raw.decode("utf-8", "replace") + json.dumps(headers)
        leaked = [c for c in credentials if c in text]
        assert not leaked, (what, status, leaked)

    # Logs: no credential, and no OAuth state or code either (oauth.py promises both).
    states = {query_of(u)["state"] for u in (r[0].split(" ", 1)[1] for r in RESPONSES)
              if "/oauth/callback?" in u and "state=" in u}
    assert SERVERS
    for offline in SERVERS:
        log = offline.log_text()
        assert "request handled" in log
        leaked = [c for c in credentials | states if c in log]
        assert not leaked, leaked
