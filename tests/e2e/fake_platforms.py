"""Local stand-ins for a platform's servers, on 127.0.0.1, for the connector end-to-end tests.

:class:`FakeOAuthPlatform` plays an OAuth 2 platform (its consent page, token endpoint and
one API listing) the way offline mode reaches it through ``--platform-url ID=URL``: the
scheme, host and port of the catalog's URLs are replaced and the paths stay, so it answers
the catalog's own paths.

- ``GET <authorize path>``: the user's consent. It checks ``client_id``, ``response_type``
  and ``redirect_uri``, issues a one-time code and answers 302 to
  ``redirect_uri?code=...&state=...`` (or ``?error=access_denied&state=...`` when
  ``decision`` is ``"deny"``), as the platform's consent screen does once the user clicks.
- ``POST <token path>``: RFC 6749 form posts. ``authorization_code`` (the code must be
  unused and issued for the same ``redirect_uri``) and ``refresh_token``; the client is
  authenticated in the form or with HTTP Basic. Answers ``{access_token, refresh_token,
  expires_in, token_type}``; anything wrong answers 400 ``{"error": "invalid_grant"}`` (or
  401 ``invalid_client``).
- ``GET <api path>``: one page of records in ``{"results": [...]}`` (HubSpot's v3 shape,
  without ``paging``: the last page) for a live access token; 401 otherwise.

:class:`RejectingProxy` sits in front of another server (localstripe) and forwards every
request unchanged, except that a request whose API key (Bearer or Basic user) is one of
``rejected`` gets Stripe's 401 answer without reaching the server behind it.

:class:`FakeStripe` serves Stripe's list endpoints over fixed data sets, one per API key,
and answers 500 or 429 (with Retry-After) storms on demand, for the fault tests.

All of them record what they saw so tests can assert on it.
"""

from __future__ import annotations

import base64
import http.client
import json
import secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailers", "transfer-encoding", "upgrade", "content-length", "host"}


def fetch(url: str, method: str = "GET", headers: dict[str, str] | None = None,
          body: bytes | None = None, timeout: float = 60.0) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request that never follows a redirect: ``(status, headers, body)``, header
    names lower-cased."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(f"only http:// URLs are fetched here, not {url!r}")
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        connection.request(method, target, body=body, headers=headers or {})
        reply = connection.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        connection.close()


class _Server:
    """A ThreadingHTTPServer on a loopback port, in a daemon thread."""

    handler_class: type[BaseHTTPRequestHandler]

    def __init__(self) -> None:
        self.httpd: ThreadingHTTPServer | None = None
        self.url = ""
        self.lock = threading.Lock()

    def start(self):
        owner = self

        class Handler(self.handler_class):
            fake = owner

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, name=type(self).__name__,
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    fake: Any = None
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:   # quiet
        pass

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: Iterable[tuple[str, str]] = ()) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value: Any) -> None:
        self._send(status, json.dumps(value).encode(), [("Content-Type", "application/json")])


# --------------------------------------------------------------------------- OAuth platform

@dataclass
class TokenCall:
    grant_type: str
    form: dict
    client_id: str | None
    client_secret: str | None
    status: int
    issued: dict | None = None


@dataclass
class Grant:
    code: str
    redirect_uri: str
    client_id: str
    used: bool = False


class _OAuthHandler(_Handler):
    def do_GET(self) -> None:
        fake: FakeOAuthPlatform = self.fake
        parts = urlsplit(self.path)
        if parts.path == fake.authorize_path:
            return self._authorize(dict(parse_qsl(parts.query, keep_blank_values=True)))
        if parts.path == fake.api_path:
            return self._api()
        self._json(404, {"status": "error", "message": "not found"})

    def do_POST(self) -> None:
        fake: FakeOAuthPlatform = self.fake
        body = self._body()
        if urlsplit(self.path).path != fake.token_path:
            return self._json(404, {"status": "error", "message": "not found"})
        return self._token(dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)))

    # ---- consent
    def _authorize(self, query: dict) -> None:
        fake: FakeOAuthPlatform = self.fake
        with fake.lock:
            fake.authorize_requests.append(dict(query))
        redirect_uri, state = query.get("redirect_uri", ""), query.get("state", "")
        if query.get("client_id") != fake.client_id or query.get("response_type") != "code" \
                or not redirect_uri.startswith(("http://", "https://")):
            return self._json(400, {"error": "invalid_request"})
        if fake.decision == "deny":
            params = {"error": "access_denied", "error_description": "The user said no", "state": state}
        else:
            code = "code-" + secrets.token_urlsafe(16)
            with fake.lock:
                fake.grants[code] = Grant(code, redirect_uri, query["client_id"])
            params = {"code": code, "state": state}
        separator = "&" if urlsplit(redirect_uri).query else "?"
        self._send(302, b"", [("Location", redirect_uri + separator + urlencode(params))])

    # ---- token endpoint
    def _token(self, form: dict) -> None:
        fake: FakeOAuthPlatform = self.fake
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = self.headers.get("Authorization", "")
        if basic.lower().startswith("basic "):
            user, _, password = base64.b64decode(basic[6:]).decode().partition(":")
            client_id, client_secret = user, password
        grant_type = form.get("grant_type", "")
        status, answer, issued = 400, {"error": "invalid_grant"}, None
        with fake.lock:
            if client_id != fake.client_id or client_secret != fake.client_secret:
                status, answer = 401, {"error": "invalid_client"}
            elif grant_type == "authorization_code":
                grant = fake.grants.get(form.get("code", ""))
                if grant is not None and not grant.used and grant.redirect_uri == form.get("redirect_uri"):
                    grant.used = True
                    issued = fake._issue()
                    status, answer = 200, issued
            elif grant_type == "refresh_token":
                if form.get("refresh_token") in fake.refresh_tokens:
                    fake.refresh_tokens.discard(form["refresh_token"])   # rotated
                    issued = fake._issue()
                    status, answer = 200, issued
            else:
                answer = {"error": "unsupported_grant_type"}
            fake.token_calls.append(TokenCall(grant_type, dict(form), client_id, client_secret,
                                              status, issued))
        self._json(status, answer)

    # ---- API
    def _api(self) -> None:
        fake: FakeOAuthPlatform = self.fake
        authorization = self.headers.get("Authorization", "")
        token = authorization[7:] if authorization.startswith("Bearer ") else ""
        with fake.lock:
            fake.api_tokens.append(token)
            live = token in fake.access_tokens
        if not live:
            return self._json(401, {"status": "error", "category": "INVALID_AUTHENTICATION",
                                    "message": "Authentication credentials not found."})
        self._json(200, {"results": [dict(r) for r in fake.records]})


class FakeOAuthPlatform(_Server):
    handler_class = _OAuthHandler

    def __init__(self, *, authorize_path: str, token_path: str, api_path: str, client_id: str,
                 client_secret: str, expires_in: int = 1800, records: list[dict] | None = None):
        super().__init__()
        self.authorize_path, self.token_path, self.api_path = authorize_path, token_path, api_path
        self.client_id, self.client_secret = client_id, client_secret
        self.expires_in = expires_in          # of the tokens issued from now on
        self.decision = "allow"               # or "deny": the user refuses at the consent screen
        self.records = records if records is not None else [
            {"id": "1", "email": "owner1@example.com", "firstName": "Ada"},
            {"id": "2", "email": "owner2@example.com", "firstName": "Grace"}]
        self.grants: dict[str, Grant] = {}
        self.access_tokens: set[str] = set()
        self.refresh_tokens: set[str] = set()
        self.issued: list[dict] = []          # every token answer, oldest first
        self.authorize_requests: list[dict] = []
        self.token_calls: list[TokenCall] = []
        self.api_tokens: list[str] = []       # the bearer token of every API request

    def _issue(self) -> dict:
        """A new token pair (called with the lock held)."""
        answer = {"access_token": "fake-access-" + secrets.token_urlsafe(24),
                  "refresh_token": "fake-refresh-" + secrets.token_urlsafe(24),
                  "expires_in": self.expires_in, "token_type": "bearer"}
        self.access_tokens.add(answer["access_token"])
        self.refresh_tokens.add(answer["refresh_token"])
        self.issued.append(dict(answer))
        return answer

    def secrets_seen(self) -> set[str]:
        """Every token and code this platform issued, and the client secret."""
        with self.lock:
            out = {self.client_secret, *self.grants}
            for answer in self.issued:
                out |= {answer["access_token"], answer["refresh_token"]}
            return out


# --------------------------------------------------------------------------- 401 proxy

@dataclass
class Forwarded:
    method: str
    path: str
    key: str | None
    status: int
    rejected: bool


def api_key_of(authorization: str) -> str | None:
    """The API key of a Bearer or Basic (key as user name, Stripe's form) header."""
    if authorization.startswith("Bearer "):
        return authorization[7:].strip()
    if authorization.lower().startswith("basic "):
        try:
            return base64.b64decode(authorization[6:]).decode().partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            return None
    return None


class _ProxyHandler(_Handler):
    def _forward(self) -> None:
        proxy: RejectingProxy = self.fake
        body = self._body()
        key = api_key_of(self.headers.get("Authorization", ""))
        if key is not None and key in proxy.rejected:
            masked = key[:8] + "*" * max(0, len(key) - 12) + key[-4:]
            with proxy.lock:
                proxy.seen.append(Forwarded(self.command, self.path, key, 401, True))
            return self._json(401, {"error": {
                "type": "invalid_request_error", "code": "api_key_invalid",
                "message": f"Invalid API Key provided: {masked}"}})
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        status, reply_headers, reply_body = fetch(proxy.upstream + self.path, self.command,
                                                  headers=headers, body=body or None)
        with proxy.lock:
            proxy.seen.append(Forwarded(self.command, self.path, key, status, False))
        self._send(status, reply_body, [(k, v) for k, v in reply_headers.items()
                                        if k not in HOP_BY_HOP])

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _forward


class RejectingProxy(_Server):
    handler_class = _ProxyHandler

    def __init__(self, upstream: str, rejected: Iterable[str]):
        super().__init__()
        self.upstream = upstream.rstrip("/")
        self.rejected = set(rejected)
        self.seen: list[Forwarded] = []

    def requests_with(self, key: str) -> list[Forwarded]:
        with self.lock:
            return [f for f in self.seen if f.key == key]


# --------------------------------------------------------------------------- Stripe, with storms

@dataclass
class Storm:
    """The next ``count`` requests (with ``api_key`` and to ``resource`` only, when given)
    answer ``status``, after ``skip`` of them have been served normally."""
    status: int
    count: int
    retry_after: str | None = None
    resource: str | None = None
    api_key: str | None = None
    skip: int = 0
    answered: int = 0


@dataclass
class Served:
    at: float
    api_key: str
    resource: str
    starting_after: str | None
    status: int


class _StripeHandler(_Handler):
    def do_GET(self) -> None:
        fake: FakeStripe = self.fake
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        resource = parts.path.rsplit("/", 1)[-1]
        key = api_key_of(self.headers.get("Authorization", "")) or ""
        with fake.lock:
            datasets = fake.accounts.get(key)
        if datasets is None:
            return self._json(401, {"error": {"type": "invalid_request_error",
                                              "message": "Invalid API Key provided"}})
        if not parts.path.startswith("/v1/") or resource not in datasets:
            return self._json(404, {"error": {"type": "invalid_request_error",
                                              "message": f"Unrecognized request URL (GET: {parts.path})"}})
        after = query.get("starting_after") or None
        storm = fake._storm_for(key, resource)
        if storm is not None:
            fake._served(key, resource, after, storm.status)
            headers = [("Content-Type", "application/json")]
            if storm.retry_after is not None:
                headers.append(("Retry-After", storm.retry_after))
            kind = "rate_limit_error" if storm.status == 429 else "api_error"
            body = json.dumps({"error": {"type": kind, "message": f"storm: HTTP {storm.status}"}})
            return self._send(storm.status, body.encode(), headers)
        records, positions = datasets[resource]
        start = 0
        if after is not None:
            position = positions.get(after)
            if position is None:
                return self._json(400, {"error": {"type": "invalid_request_error",
                                                  "message": f"No such object: '{after}'"}})
            start = position + 1
        limit = max(1, min(int(query.get("limit") or 10), 100))
        page = records[start:start + limit]
        fake._served(key, resource, after, 200)
        self._json(200, {"object": "list", "url": parts.path, "data": page,
                         "has_more": start + len(page) < len(records)})


class FakeStripe(_Server):
    """Stripe's list endpoints (``GET /v1/<resource>?limit=&starting_after=``, answering
    Stripe's ``{"object": "list", "data", "has_more"}``) over fixed data sets, one set per
    API key (:meth:`add_account`), where a test can start a 500 or 429 storm
    (:meth:`storm`) while a backup runs. Every answer is recorded in ``served``."""

    handler_class = _StripeHandler

    def __init__(self):
        super().__init__()
        self.accounts: dict[str, dict[str, tuple[list[dict], dict[str, int]]]] = {}
        self.storms: list[Storm] = []
        self.served: list[Served] = []

    def add_account(self, api_key: str, datasets: dict[str, list[dict]]) -> None:
        with self.lock:
            self.accounts[api_key] = {
                name: (list(records), {r["id"]: i for i, r in enumerate(records)})
                for name, records in datasets.items()}

    def data(self, api_key: str, resource: str) -> list[dict]:
        with self.lock:
            return list(self.accounts[api_key][resource][0])

    def storm(self, status: int, count: int, *, retry_after: str | None = None,
              resource: str | None = None, api_key: str | None = None, skip: int = 0) -> Storm:
        storm = Storm(status, count, retry_after, resource, api_key, skip)
        with self.lock:
            self.storms.append(storm)
        return storm

    def calm(self) -> None:
        with self.lock:
            self.storms.clear()

    def _storm_for(self, api_key: str, resource: str) -> Storm | None:
        with self.lock:
            for storm in self.storms:
                if storm.answered >= storm.count or storm.resource not in (None, resource) \
                        or storm.api_key not in (None, api_key):
                    continue
                if storm.skip > 0:
                    storm.skip -= 1
                    return None
                storm.answered += 1
                return storm
        return None

    def _served(self, api_key: str, resource: str, after: str | None, status: int) -> None:
        import time

        with self.lock:
            self.served.append(Served(time.monotonic(), api_key, resource, after, status))

    def answers(self, api_key: str | None = None, resource: str | None = None) -> list[Served]:
        with self.lock:
            return [s for s in self.served
                    if api_key in (None, s.api_key) and resource in (None, s.resource)]
