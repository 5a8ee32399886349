"""OAuth 2 token calls: the authorization-code exchange, the refresh, and the stage's client
id and secret per platform.

Every call posts form data to the platform's token URL (through ``urls.rewrite``, so offline
mode can point it at a local server), authenticating the client in the form
(``token_auth="body"``) or with HTTP Basic (``"basic"``). The answer becomes credentials:
``access_token``, ``refresh_token`` (the old one is kept when the platform does not rotate
it), ``expires_at`` (epoch seconds, from ``expires_in``; None when the token does not
expire) and the answer's other scalar fields (GoHighLevel's ``locationId``, Dropbox's
``account_id``...). Nothing here logs or raises a token, a code or a secret.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Mapping
from urllib.parse import parse_qsl, quote_plus

import requests

from handlers.shared.connectors import urls
from handlers.shared.connectors.errors import ConnectorError
from handlers.shared.connectors.model import Platform

TIMEOUT = (5.0, 30.0)           # connect, read (seconds)
UNCONFIGURED = "unconfigured"   # the SSM value of a stage without an OAuth app for a platform
AUTH_STATUSES = (400, 401, 403)
DROPPED = ("expires_in",)


def client_credentials(platform_id: str) -> tuple[str, str]:
    """The stage's OAuth client id and secret for ``platform_id`` from SSM
    (``{OAUTH_PARAM_PREFIX}{platform_id}/client-id`` and ``/client-secret``)."""
    from botocore.exceptions import ClientError

    from handlers.shared import params

    prefix = os.environ.get("OAUTH_PARAM_PREFIX")
    if not prefix:
        raise ConnectorError("config", "OAuth is not configured on this stage")
    try:
        client_id = params.get_parameter(f"{prefix}{platform_id}/client-id")
        client_secret = params.get_parameter(f"{prefix}{platform_id}/client-secret")
    except ClientError:
        raise ConnectorError("config", f"No OAuth app is configured for {platform_id}") from None
    if UNCONFIGURED in (client_id.strip(), client_secret.strip()) or not client_id or not client_secret:
        raise ConnectorError("config", f"No OAuth app is configured for {platform_id}")
    return client_id, client_secret


def exchange_code(platform: Platform, code: str, redirect_uri: str, client_id: str,
                  client_secret: str, session: requests.Session | None = None, *,
                  clock: Callable[[], float] = time.time) -> dict:
    """Credentials from an authorization code (the OAuth callback)."""
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    return _token_call(platform, form, client_id, client_secret, session, {}, clock)


def refresh_tokens(platform: Platform, credentials: Mapping[str, Any], client_id: str,
                   client_secret: str, session: requests.Session | None = None, *,
                   clock: Callable[[], float] = time.time) -> dict:
    """New credentials from ``credentials["refresh_token"]``; fields the platform does not
    answer (the refresh token itself, when it is not rotated) are kept."""
    refresh_token = credentials.get("refresh_token")
    if not refresh_token:
        raise ConnectorError("auth", f"{platform.name}: there is no refresh token; connect the source again")
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return _token_call(platform, form, client_id, client_secret, session, credentials, clock)


def _token_call(platform: Platform, form: dict, client_id: str, client_secret: str,
                session: requests.Session | None, previous: Mapping[str, Any],
                clock: Callable[[], float]) -> dict:
    if platform.oauth is None:
        raise ConnectorError("config", f"{platform.name} does not use OAuth")
    auth = None
    if platform.oauth.token_auth == "basic":
        # RFC 6749 2.3.1: the id and secret are form-encoded before Basic encoding.
        auth = (quote_plus(client_id), quote_plus(client_secret))
    else:
        form = {**form, "client_id": client_id, "client_secret": client_secret}
    url = urls.rewrite(platform.id, platform.oauth.token_url)
    http = session or requests.Session()
    try:
        response = http.post(url, data=form, auth=auth, timeout=TIMEOUT,
                             headers={"Accept": "application/json"}, allow_redirects=False)
    except requests.RequestException as error:
        raise ConnectorError("network", f"{platform.name}'s token endpoint did not answer "
                                        f"({type(error).__name__})") from None
    finally:
        if session is None:
            http.close()
    body = _parse(response)
    status = response.status_code
    if status in AUTH_STATUSES:
        error = body.get("error") if isinstance(body, dict) else None
        reason = f" ({error})" if isinstance(error, str) and error.isidentifier() else ""
        raise ConnectorError("auth", f"{platform.name} refused the authorization{reason} "
                                     f"(HTTP {status})", status)
    if status >= 300:
        raise ConnectorError("server", f"{platform.name}'s token endpoint answered HTTP {status}", status)
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str) \
            or not body["access_token"]:
        raise ConnectorError("malformed", f"{platform.name}'s token endpoint answered no access token",
                             status)
    return _credentials(body, previous, clock)


def _parse(response: requests.Response) -> Any:
    if "application/x-www-form-urlencoded" in response.headers.get("Content-Type", ""):
        return dict(parse_qsl(response.text))
    try:
        return response.json()
    except ValueError:
        return None


def _credentials(body: Mapping[str, Any], previous: Mapping[str, Any],
                 clock: Callable[[], float]) -> dict:
    credentials = dict(previous)
    for key, value in body.items():
        if key not in DROPPED and isinstance(value, (str, int, float, bool)) and value is not None:
            credentials[key] = value
    if not body.get("refresh_token") and previous.get("refresh_token"):
        credentials["refresh_token"] = previous["refresh_token"]
    expires_in = body.get("expires_in")
    if isinstance(expires_in, str) and expires_in.isdigit():
        expires_in = int(expires_in)
    if isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool) and expires_in > 0:
        credentials["expires_at"] = int(clock() + expires_in)
    else:
        credentials["expires_at"] = None
    return credentials
