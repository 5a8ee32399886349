"""OAuth 2 token calls against a local token endpoint, and the stage's client credentials."""

from __future__ import annotations

import base64
import json

import boto3
import pytest
from moto import mock_aws

from handlers.shared import clients, params
from handlers.shared.connectors import oauth_client
from handlers.shared.connectors.errors import ConnectorError
from handlers.shared.connectors.model import Endpoint, OAuth, Platform
from tests.connectors.platform_servers import TokenServer, refused_port
from tests.support import moto_env

JSON = "application/json"
NOW = 1_800_000_000.0
CLIENT_ID, CLIENT_SECRET = "client-id-1", "cl1ent+secret/x="
CODE = "auth-code-SECRET"


def platform(token_auth: str = "body", token_url: str = "https://oauth.platform.example/oauth/token",
             **oauth) -> Platform:
    return Platform(id="oauthy", name="Oauthy", categories=("crm",), auth="oauth2",
                    base_url="https://api.platform.example", auth_header={"Authorization": "Bearer {access_token}"},
                    endpoints=(Endpoint("things", "/things"),), test_endpoint="things",
                    oauth=OAuth(authorize_url="https://oauth.platform.example/authorize",
                                token_url=token_url, token_auth=token_auth, **oauth))


@pytest.fixture
def token_server(monkeypatch):
    server = TokenServer().start()
    monkeypatch.setenv("LISTBACKUP_PLATFORM_URLS", json.dumps({"oauthy": server.url}))
    yield server
    server.stop()


def exchange(p=None, **kwargs):
    return oauth_client.exchange_code(p or platform(), CODE, "https://api.example/cb",
                                      CLIENT_ID, CLIENT_SECRET, clock=lambda: NOW, **kwargs)


def test_exchange_code_posts_the_form_to_the_rewritten_token_url(token_server):
    token_server.answers = [(200, {"access_token": "at-1", "refresh_token": "rt-1", "expires_in": 3599,
                                   "token_type": "Bearer", "locationId": "loc123",
                                   "scope": "a b", "restricted_to": [{"x": 1}]}, JSON)]
    credentials = exchange()
    assert credentials == {"access_token": "at-1", "refresh_token": "rt-1", "expires_at": int(NOW + 3599),
                           "token_type": "Bearer", "locationId": "loc123", "scope": "a b"}
    seen = token_server.requests[0]
    assert seen.path == "/oauth/token"                         # only the host was rewritten
    assert seen.body == {"grant_type": "authorization_code", "code": CODE,
                         "redirect_uri": "https://api.example/cb", "client_id": CLIENT_ID,
                         "client_secret": CLIENT_SECRET}
    assert seen.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert "Authorization" not in seen.headers


def test_basic_client_authentication(token_server):
    token_server.answers = [(200, {"access_token": "at-1", "expires_in": 60}, JSON)]
    exchange(platform("basic"))
    seen = token_server.requests[0]
    user, _, password = base64.b64decode(seen.headers["Authorization"].split()[1]).decode().partition(":")
    assert (user, password) == ("client-id-1", "cl1ent%2Bsecret%2Fx%3D")   # RFC 6749 2.3.1
    assert "client_secret" not in seen.body and "client_id" not in seen.body


def test_a_token_without_expiry(token_server):
    token_server.answers = [(200, {"access_token": "at-1", "token_type": "bearer"}, JSON)]
    assert exchange()["expires_at"] is None


def test_a_form_encoded_answer_is_understood(token_server):
    token_server.answers = [(200, "access_token=at-1&expires_in=120&refresh_token=rt-1",
                             "application/x-www-form-urlencoded")]
    credentials = exchange()
    assert credentials["access_token"] == "at-1" and credentials["expires_at"] == int(NOW + 120)


def test_refresh_keeps_the_refresh_token_when_none_is_returned(token_server):
    token_server.answers = [(200, {"access_token": "at-2", "expires_in": 3600}, JSON)]
    old = {"access_token": "at-1", "refresh_token": "rt-1", "expires_at": 5, "locationId": "loc"}
    new = oauth_client.refresh_tokens(platform(), old, CLIENT_ID, CLIENT_SECRET, clock=lambda: NOW)
    assert new == {"access_token": "at-2", "refresh_token": "rt-1", "expires_at": int(NOW + 3600),
                   "locationId": "loc"}
    assert token_server.requests[0].body == {"grant_type": "refresh_token", "refresh_token": "rt-1",
                                             "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    assert old["access_token"] == "at-1"                       # the caller's dict is not changed


def test_refresh_takes_a_rotated_refresh_token(token_server):
    token_server.answers = [(200, {"access_token": "at-2", "refresh_token": "rt-2", "expires_in": 60}, JSON)]
    new = oauth_client.refresh_tokens(platform(), {"refresh_token": "rt-1"}, CLIENT_ID, CLIENT_SECRET)
    assert new["refresh_token"] == "rt-2"


def test_refresh_without_a_refresh_token_is_an_auth_error(token_server):
    with pytest.raises(ConnectorError) as caught:
        oauth_client.refresh_tokens(platform(), {"access_token": "at"}, CLIENT_ID, CLIENT_SECRET)
    assert caught.value.kind == "auth" and token_server.requests == []


@pytest.mark.parametrize("status,body,content_type,kind", [
    (400, {"error": "invalid_grant", "error_description": "Bad code auth-code-SECRET"}, JSON, "auth"),
    (401, {"error": "invalid_client"}, JSON, "auth"),
    (400, "<html>nope</html>", "text/html", "auth"),
    (500, {"error": "server_error"}, JSON, "server"),
    (503, "busy", "text/plain", "server"),
    (200, "<html>not json</html>", "text/html", "malformed"),
    (200, {"token_type": "bearer"}, JSON, "malformed"),
    (200, {"access_token": 42}, JSON, "malformed"),
])
def test_token_errors(token_server, status, body, content_type, kind):
    token_server.answers = [(status, body, content_type)]
    with pytest.raises(ConnectorError) as caught:
        exchange()
    error = caught.value
    assert error.kind == kind and error.status == status
    assert "Oauthy" in error.message
    for secret in (CODE, CLIENT_SECRET, CLIENT_ID):
        assert secret not in error.message and secret not in repr(error)
    if body == {"error": "invalid_grant", "error_description": "Bad code auth-code-SECRET"}:
        assert "invalid_grant" in error.message


def test_an_unreachable_token_endpoint_is_a_network_error(monkeypatch):
    monkeypatch.setenv("LISTBACKUP_PLATFORM_URLS", json.dumps({"oauthy": f"http://127.0.0.1:{refused_port()}"}))
    with pytest.raises(ConnectorError) as caught:
        exchange()
    assert caught.value.kind == "network"


def test_a_platform_without_oauth_is_a_config_error():
    plain = Platform(id="k", name="K", categories=(), auth="api_key", base_url="https://k.example",
                     auth_header={}, endpoints=(Endpoint("x", "/x"),), test_endpoint="x")
    with pytest.raises(ConnectorError) as caught:
        oauth_client.exchange_code(plain, CODE, "https://cb", CLIENT_ID, CLIENT_SECRET)
    assert caught.value.kind == "config"


def test_a_given_session_is_used(token_server):
    import requests

    token_server.answers = [(200, {"access_token": "at-1"}, JSON)]
    session = requests.Session()
    calls = []
    original = session.post
    session.post = lambda *a, **k: calls.append(k["timeout"]) or original(*a, **k)
    exchange(session=session)
    assert calls == [(5.0, 30.0)]


# ------------------------------------------------------------------ client credentials

PREFIX = "/listbackup/test/oauth/"


@pytest.fixture
def ssm(monkeypatch):
    moto_env(monkeypatch)
    monkeypatch.setenv("OAUTH_PARAM_PREFIX", PREFIX)
    with mock_aws():
        clients.reset()
        params.clear_cache()
        yield boto3.client("ssm")
        clients.reset()
        params.clear_cache()


def put(ssm, name, value):
    ssm.put_parameter(Name=PREFIX + name, Value=value, Type="SecureString")


def test_client_credentials_come_from_the_stage_parameters(ssm):
    put(ssm, "hubspot/client-id", "hub-id")
    put(ssm, "hubspot/client-secret", "hub-secret")
    assert oauth_client.client_credentials("hubspot") == ("hub-id", "hub-secret")


@pytest.mark.parametrize("client_id,client_secret", [("unconfigured", "unconfigured"),
                                                     ("hub-id", "unconfigured"), (None, None)])
def test_an_unconfigured_oauth_app_is_a_config_error(ssm, client_id, client_secret):
    if client_id is not None:
        put(ssm, "hubspot/client-id", client_id)
        put(ssm, "hubspot/client-secret", client_secret)
    with pytest.raises(ConnectorError) as caught:
        oauth_client.client_credentials("hubspot")
    assert caught.value.kind == "config" and "hubspot" in caught.value.message
    assert "hub-id" not in caught.value.message


def test_no_oauth_prefix_is_a_config_error(monkeypatch):
    monkeypatch.delenv("OAUTH_PARAM_PREFIX", raising=False)
    with pytest.raises(ConnectorError) as caught:
        oauth_client.client_credentials("hubspot")
    assert caught.value.kind == "config"
