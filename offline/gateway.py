"""A local API Gateway HTTP API (payload format 2.0) in front of the program's functions.

The gateway is given the API the program declares (routes, the Lambda authorizer, CORS:
``offline.model.Api``) and a way to invoke a function by name; it answers HTTP on
127.0.0.1 the way API Gateway answers on AWS:

- requests under ``base_path`` (``/v2``, the custom domain's API mapping) are matched
  against the program's route keys: literal segments beat ``{param}`` segments, which
  beat a greedy ``{proxy+}``; a method beats ``ANY``; ``$default`` catches the rest. No
  match is 404 ``{"message":"Not Found"}``, API Gateway's own body.
- the function receives a payload 2.0 event built as AWS builds it; its answer is turned
  into the HTTP response by the payload 2.0 rules (``statusCode``/``headers``/``cookies``/
  ``body``/``isBase64Encoded``, or any other JSON value as a 200 ``application/json`` body).
- routes with ``CUSTOM`` authorization go through the Lambda authorizer first: a missing
  identity source is 401 without calling it, a denial 403, a failing authorizer 500; its
  decisions are cached by identity source values for the authorizer's TTL, and its context
  reaches the handler as ``requestContext.authorizer.lambda``.
- with a CORS configuration, preflights are answered by the gateway itself and CORS headers
  are added to every other answer (the integration's own CORS headers are ignored, as on AWS).
- ``GET /_offline/<name>`` answers ``helpers[name]()`` as JSON; these never exist in AWS.

Nothing here imports the function runtime: ``invoke(name, event)`` returns anything shaped
like ``Invocation`` below. Standard library only.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import http.server
import json
import re
import secrets
import socket
import socketserver
import sys
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

if TYPE_CHECKING:
    from offline.model import Api, Authorizer, Route

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
STAGE = "$default"
DOMAIN_NAME = "127.0.0.1"
MAX_BODY_BYTES = 10 * 1024 * 1024          # API Gateway's payload limit
IDLE_TIMEOUT_S = 120                       # an idle keep-alive connection is closed after this
LINGER_S = 2.0                             # how long a refused body is drained before closing
AUTH_CACHE_MAX = 10_000

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_TEXT_TYPES = {"application/json", "application/xml", "application/x-www-form-urlencoded"}
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade",
               "te", "trailer", "proxy-authenticate", "proxy-authorization", "apigw-requestid"}
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_PARAM = re.compile(r"^\{([^{}+]+)(\+?)\}$")
_LITERAL, _PARAMETER, _GREEDY = 0, 1, 2


class Invocation(Protocol):
    """What ``invoke`` returns (the runtime's ``Invocation``; duck-typed, never imported)."""

    ok: bool                 # False: the function raised, timed out, or failed to start
    result: Any              # the handler's return value when ok
    error: str | None        # "timeout", "Runtime.HandlerError", "Runtime.InitError", ...
    message: str             # short; never a traceback
    duration_ms: float
    cold_start: bool


Invoke = Callable[[str, dict], Invocation]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _message(status: int, text: str | None = None) -> "_Response":
    """A body written by API Gateway itself: ``{"message": "Not Found"}`` and the like."""
    body = json.dumps({"message": text or HTTPStatus(status).phrase}, separators=(",", ":"))
    return _Response(status, [("content-type", "application/json")], body.encode())


def _json(status: int, value: Any) -> "_Response":
    body = json.dumps(value, separators=(",", ":"), default=str)
    return _Response(status, [("content-type", "application/json")], body.encode())


def _request_id() -> str:
    # API Gateway's ids look like "JKJaXmPLvHcESHA=": 15 characters and a pad.
    return base64.b64encode(secrets.token_bytes(11), altchars=b"-_").decode()


def _clf_time(epoch: float) -> str:
    t = time.gmtime(epoch)
    return (f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000")


def _http_date(epoch: float) -> str:
    t = time.gmtime(epoch)
    days = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    return (f"{days[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")


class _Malformed(Exception):
    """An answer from a function that API Gateway could not use (it answers 500)."""


@dataclass
class _Request:
    method: str
    target: str                           # the request-target as received
    protocol: str
    headers: list[tuple[str, str]]        # as received, in order
    body: bytes
    source_ip: str
    port: int

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name]
        return ",".join(values) if values else None


@dataclass
class _Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    function: str | None = None           # for the access log
    cold_start: bool = False
    cors: bool = True                     # False: a preflight, already answered as configured

    def has(self, name: str) -> bool:
        return any(k.lower() == name for k, _ in self.headers)


@dataclass
class _CompiledRoute:
    route: Any                            # offline.model.Route
    method: str                           # GET, ANY, ... or "$default"
    segments: list[tuple[int, str]] = field(default_factory=list)

    @property
    def rank(self) -> tuple:
        """Smaller is more specific: literal < {param} < {proxy+}, segment by segment."""
        if self.method == "$default":
            return ((9,), 1)
        return (tuple(kind for kind, _ in self.segments), self.method == "ANY")

    def match(self, parts: list[str]) -> dict[str, str] | None:
        params: dict[str, str] = {}
        for index, (kind, value) in enumerate(self.segments):
            if kind == _GREEDY:
                rest = "/".join(parts[index:])
                if not rest:
                    return None
                params[value] = unquote(rest)
                return params
            if index >= len(parts):
                return None
            segment = unquote(parts[index])
            if kind == _LITERAL:
                if segment != value:
                    return None
            else:
                if not segment:
                    return None
                params[value] = segment
        return params if len(parts) == len(self.segments) else None


def _compile(route: Any) -> _CompiledRoute:
    key = route.route_key.strip()
    if key == "$default":
        return _CompiledRoute(route, "$default")
    method, path = key.split(" ", 1)
    path = path.strip()
    parts = [] if path == "/" else path[1:].split("/")
    segments = []
    for index, part in enumerate(parts):
        match = _PARAM.match(part)
        if match is None:
            segments.append((_LITERAL, part))
        elif match.group(2):
            if index != len(parts) - 1:
                raise ValueError(f"route {key!r}: a greedy parameter must be the last segment")
            segments.append((_GREEDY, match.group(1)))
        else:
            segments.append((_PARAMETER, match.group(1)))
    return _CompiledRoute(route, method.upper(), segments)


class Gateway:
    """API Gateway HTTP API on 127.0.0.1; ``start()`` serves in a daemon thread."""

    def __init__(self, api: "Api | None", invoke: Invoke, *, base_path: str = "/v2",
                 helpers: Mapping[str, Callable[[], Any]] | None = None,
                 documents: Mapping[str, Callable[[], Any]] | None = None,
                 log: Callable[[str], None] = _stderr) -> None:
        self.api = api
        # GET documents under the base path that are not routes (``/openapi.json``)
        self.documents = dict(documents or {})
        self._invoke = invoke
        base_path = "/" + base_path.strip("/") if base_path.strip("/") else ""
        self.base_path = base_path
        self.helpers = dict(helpers or {})
        self._log_fn = log
        self._routes = [_compile(r) for r in (api.routes if api else [])]
        self._auth_cache: dict[tuple, tuple[float, Any]] = {}
        self._auth_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._host = "127.0.0.1"
        self._port: int | None = None
        for route in self._routes:
            self._check(route.route)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Bind and serve; the actual port. OSError when the port is busy."""
        if self._server is not None:
            raise RuntimeError("the gateway is already started")
        server = _Server((host, port), _Handler)
        server.gateway = self
        self._server = server
        self._host = host
        self._port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="offline-gateway", daemon=True)
        self._thread.start()
        return self._port

    def stop(self) -> None:
        """Stop accepting, close open connections; idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "Gateway":
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int | None:
        return self._port

    @property
    def url(self) -> str:
        host = self._host if self._host not in ("", "0.0.0.0") else "127.0.0.1"
        return f"http://{host}:{self._port}{self.base_path}"

    def clear_authorizer_cache(self) -> None:
        with self._auth_lock:
            self._auth_cache.clear()

    # -- the gateway proper --------------------------------------------------------------

    def _log(self, line: str) -> None:
        try:
            self._log_fn(line)
        except Exception:  # a broken log sink must not break a request
            pass

    def _check(self, route: Any) -> None:
        """Warn, once at start, about what this gateway cannot play."""
        authorization = (route.authorization or "NONE").upper()
        if authorization not in ("NONE", "CUSTOM"):
            self._log(f"gateway: route {route.route_key!r} uses {authorization} authorization, "
                      "which offline mode does not support: it will answer 500")
        if authorization == "CUSTOM":
            authorizer = route.authorizer
            if authorizer is None:
                self._log(f"gateway: route {route.route_key!r} is CUSTOM without an authorizer: "
                          "it will answer 500")
                return
            for source in authorizer.identity_sources:
                if not re.match(r"^\$request\.(header|querystring)\.[^.]+$", source):
                    self._log(f"gateway: authorizer {authorizer.id}: identity source {source!r} "
                              "is not supported offline: it always counts as missing")
            if authorizer.payload_version != "2.0":
                self._log(f"gateway: authorizer {authorizer.id}: payload format "
                          f"{authorizer.payload_version} is sent a 2.0 event offline")
        if getattr(route, "payload_version", "2.0") != "2.0":
            self._log(f"gateway: route {route.route_key!r}: payload format "
                      f"{route.payload_version} is sent a 2.0 event offline")

    def handle(self, request: _Request, request_id: str) -> _Response:
        """The answer to one request (never raises)."""
        try:
            response = self._route(request, request_id)
        except Exception as exc:
            self._log(f"gateway: {request_id} internal error: {type(exc).__name__}: "
                      f"{str(exc)[:200]}")
            response = _message(500, "Internal Server Error")
        if response.cors:
            self._add_cors(request, response)
        return response

    def _route(self, request: _Request, request_id: str) -> _Response:
        raw_path, _, raw_query = request.target.partition("?")
        raw_query = raw_query.partition("#")[0]
        if raw_path.startswith(("http://", "https://")):   # absolute-form request-target
            raw_path = urlsplit(raw_path).path or "/"
        if raw_path == "/_offline" or raw_path.startswith("/_offline/"):
            return self._helper(request, raw_path[len("/_offline/"):].strip("/"), request_id)
        if self.base_path:
            if raw_path != self.base_path and not raw_path.startswith(self.base_path + "/"):
                return _message(404, "Not Found")
            raw_path = raw_path[len(self.base_path):] or "/"
        if not raw_path.startswith("/"):
            return _message(404, "Not Found")

        if request.method == "GET" and raw_path in self.documents:
            return self._document(request, raw_path, request_id)

        cors = self.api.cors if self.api else None
        if (cors is not None and request.method == "OPTIONS" and request.header("origin")
                and request.header("access-control-request-method")):
            return self._preflight(request)

        found = self._match(request.method, raw_path)
        if found is None:
            return _message(404, "Not Found")
        compiled, path_params = found
        route = compiled.route
        event = self._event(request, route.route_key, raw_path, raw_query, path_params,
                            request_id)

        authorization = (route.authorization or "NONE").upper()
        if authorization == "CUSTOM":
            outcome = self._authorize(route, event, request)
            if isinstance(outcome, _Response):
                return outcome
            event["requestContext"]["authorizer"] = {"lambda": outcome}
        elif authorization != "NONE":
            self._log(f"gateway: {request_id} {route.route_key}: {authorization} authorization "
                      "is not supported offline")
            return _message(500, "Internal Server Error")

        return self._integrate(route, event, request_id)

    def _match(self, method: str, raw_path: str) -> tuple[_CompiledRoute, dict] | None:
        parts = [] if raw_path == "/" else raw_path[1:].split("/")
        best: tuple[_CompiledRoute, dict] | None = None
        for compiled in self._routes:
            if compiled.method == "$default":
                params: dict | None = {}
            elif compiled.method not in ("ANY", method):
                continue
            else:
                params = compiled.match(parts)
            if params is None:
                continue
            if best is None or compiled.rank < best[0].rank:
                best = (compiled, params)
        return best

    # -- events ---------------------------------------------------------------------------

    def _event(self, request: _Request, route_key: str, raw_path: str, raw_query: str,
               path_params: dict[str, str], request_id: str) -> dict:
        headers: dict[str, str] = {}
        cookies: list[str] = []
        for name, value in request.headers:
            name = name.lower()
            if name == "cookie":
                cookies += [c.strip() for c in value.split(";") if c.strip()]
                continue
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        forwarded = headers.get("x-forwarded-for")
        headers["x-forwarded-for"] = f"{forwarded}, {request.source_ip}" if forwarded else request.source_ip
        headers["x-forwarded-port"] = str(request.port)
        headers["x-forwarded-proto"] = "http"
        headers.setdefault("x-amzn-trace-id",
                           f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}")

        query: dict[str, str] = {}
        for name, value in parse_qsl(raw_query, keep_blank_values=True):
            query[name] = f"{query[name]},{value}" if name in query else value

        now = time.time()
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": raw_path,
            "rawQueryString": raw_query,
        }
        if cookies:
            event["cookies"] = cookies
        event["headers"] = headers
        if query:
            event["queryStringParameters"] = query
        event["requestContext"] = {
            "accountId": ACCOUNT_ID,
            "apiId": self.api.id if self.api else "offline",
            "domainName": DOMAIN_NAME,
            "domainPrefix": DOMAIN_NAME.split(".", 1)[0],
            "http": {
                "method": request.method,
                "path": raw_path,
                "protocol": request.protocol or "HTTP/1.1",
                "sourceIp": request.source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": STAGE,
            "time": _clf_time(now),
            "timeEpoch": int(now * 1000),
        }
        if path_params:
            event["pathParameters"] = path_params
        if request.body:
            body, encoded = _event_body(request.body, headers.get("content-type"))
            event["body"] = body
            event["isBase64Encoded"] = encoded
        else:
            event["isBase64Encoded"] = False
        return event

    # -- the Lambda authorizer ----------------------------------------------------------------

    def _authorize(self, route: Any, event: dict, request: _Request) -> dict | _Response:
        """The authorizer's context when allowed, or the answer API Gateway gives instead."""
        authorizer: Authorizer | None = route.authorizer
        request_id = event["requestContext"]["requestId"]
        if authorizer is None:
            self._log(f"gateway: {request_id} {route.route_key}: CUSTOM authorization "
                      "without an authorizer")
            return _message(500, "Internal Server Error")
        values = [_identity_value(source, event) for source in authorizer.identity_sources]
        if any(not value for value in values):
            return _message(401, "Unauthorized")

        route_arn = (f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:"
                     f"{event['requestContext']['apiId']}/{STAGE}/{request.method}"
                     f"{event['rawPath']}")
        cacheable = authorizer.ttl > 0 and bool(values)
        key = (authorizer.id, authorizer.function, tuple(values))
        answer: Any = None
        if cacheable:
            with self._auth_lock:
                cached = self._auth_cache.get(key)
                if cached is not None and cached[0] > time.monotonic():
                    answer = cached[1]
                elif cached is not None:
                    del self._auth_cache[key]

        if answer is None:
            auth_event = {
                "version": "2.0",
                "type": "REQUEST",
                "routeArn": route_arn,
                "identitySource": values,
                "routeKey": event["routeKey"],
                "rawPath": event["rawPath"],
                "rawQueryString": event["rawQueryString"],
            }
            for name in ("cookies", "headers", "queryStringParameters"):
                if name in event:
                    auth_event[name] = event[name]
            auth_event["requestContext"] = json.loads(json.dumps(event["requestContext"]))
            if "pathParameters" in event:
                auth_event["pathParameters"] = event["pathParameters"]
            invocation = self._call(authorizer.function, auth_event, request_id, None)
            if isinstance(invocation, _Response):
                return invocation
            try:
                answer = _authorizer_answer(invocation.result, authorizer.simple_responses)
            except _Malformed as exc:
                self._log(f"gateway: {request_id} authorizer {authorizer.function} gave a "
                          f"malformed answer: {exc}")
                return _message(500, "Internal Server Error")
            if cacheable:
                with self._auth_lock:
                    if len(self._auth_cache) >= AUTH_CACHE_MAX:
                        self._auth_cache.clear()
                    self._auth_cache[key] = (time.monotonic() + authorizer.ttl, answer)

        allowed, context = _decide(answer, route_arn)
        if not allowed:
            return _message(403, "Forbidden")
        return context

    # -- integration ----------------------------------------------------------------------------

    def _call(self, function: str, event: dict, request_id: str,
              timeout_ms: int | None) -> Invocation | _Response:
        """Invoke; a _Response when API Gateway would answer instead of the function."""
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["invocation"] = self._invoke(function, event)
            except BaseException as exc:  # the runtime itself failed
                box["raised"] = exc

        if timeout_ms is None:
            run()
        else:
            worker = threading.Thread(target=run, name=f"invoke-{function}", daemon=True)
            worker.start()
            worker.join(timeout_ms / 1000)
            if worker.is_alive():
                self._log(f"gateway: {request_id} integration {function} took over "
                          f"{timeout_ms} ms: 503")
                return _message(503, "Service Unavailable")
        if "raised" in box:
            exc = box["raised"]
            self._log(f"gateway: {request_id} invoking {function} raised "
                      f"{type(exc).__name__}: {str(exc)[:200]}")
            return _message(500, "Internal Server Error")
        invocation = box["invocation"]
        if not getattr(invocation, "ok", False):
            self._log(f"gateway: {request_id} function {function} failed: "
                      f"{getattr(invocation, 'error', None) or 'error'}: "
                      f"{str(getattr(invocation, 'message', '') or '')[:300]}")
            response = _message(500, "Internal Server Error")
            response.function = function
            response.cold_start = bool(getattr(invocation, "cold_start", False))
            return response
        return invocation

    def _integrate(self, route: Any, event: dict, request_id: str) -> _Response:
        timeout_ms = int(getattr(route, "timeout_ms", 30000) or 30000)
        invocation = self._call(route.function, event, request_id, timeout_ms)
        if isinstance(invocation, _Response):
            invocation.function = invocation.function or route.function
            return invocation
        try:
            response = _integration_response(invocation.result, bool(self.api and self.api.cors))
        except _Malformed as exc:
            self._log(f"gateway: {request_id} function {route.function} gave a malformed "
                      f"response: {exc}")
            response = _message(500, "Internal Server Error")
        response.function = route.function
        response.cold_start = bool(getattr(invocation, "cold_start", False))
        return response

    # -- helpers and CORS ---------------------------------------------------------------------

    def _helper(self, request: _Request, name: str, request_id: str) -> _Response:
        helper = self.helpers.get(name) if request.method == "GET" else None
        if helper is None:
            return _message(404, "Not Found")
        try:
            return _json(200, helper())
        except Exception as exc:
            self._log(f"gateway: {request_id} helper {name!r} failed: {type(exc).__name__}: "
                      f"{str(exc)[:200]}")
            return _message(500, "Internal Server Error")

    def _document(self, request: _Request, path: str, request_id: str) -> _Response:
        try:
            response = _json(200, self.documents[path]())
        except Exception as exc:
            self._log(f"gateway: {request_id} document {path!r} failed: {type(exc).__name__}")
            return _message(500, "Internal Server Error")
        response.cors = True
        return response

    def _allowed_origin(self, origin: str | None) -> str | None:
        cors = self.api.cors if self.api else None
        if cors is None or not origin:
            return None
        if "*" in cors.allow_origins:
            return "*"
        wanted = origin.rstrip("/").lower()
        if any(o.rstrip("/").lower() == wanted for o in cors.allow_origins):
            return origin
        return None

    def _preflight(self, request: _Request) -> _Response:
        cors = self.api.cors
        response = _Response(204, [("content-type", "application/json")], b"", cors=False)
        response.headers.append(("vary", "Origin"))
        origin = self._allowed_origin(request.header("origin"))
        if origin is None:
            return response
        response.headers.append(("access-control-allow-origin", origin))
        if cors.allow_methods:
            response.headers.append(("access-control-allow-methods", ",".join(cors.allow_methods)))
        if cors.allow_headers:
            response.headers.append(("access-control-allow-headers", ",".join(cors.allow_headers)))
        if cors.max_age is not None:
            response.headers.append(("access-control-max-age", str(cors.max_age)))
        if cors.allow_credentials:
            response.headers.append(("access-control-allow-credentials", "true"))
        return response

    def _add_cors(self, request: _Request, response: _Response) -> None:
        cors = self.api.cors if self.api else None
        if cors is None:
            return
        vary = [i for i, (k, _) in enumerate(response.headers) if k.lower() == "vary"]
        if vary:
            name, value = response.headers[vary[0]]
            if "origin" not in [v.strip().lower() for v in value.split(",")]:
                response.headers[vary[0]] = (name, f"{value}, Origin")
        else:
            response.headers.append(("vary", "Origin"))
        origin = self._allowed_origin(request.header("origin"))
        if origin is None:
            return
        response.headers.append(("access-control-allow-origin", origin))
        if cors.expose_headers:
            response.headers.append(("access-control-expose-headers", ",".join(cors.expose_headers)))
        if cors.allow_credentials:
            response.headers.append(("access-control-allow-credentials", "true"))


def _event_body(body: bytes, content_type: str | None) -> tuple[str, bool]:
    """Text as text, anything else base64, as API Gateway passes a body on."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    textual = (not media or media.startswith("text/") or media in _TEXT_TYPES
               or media.endswith(("+json", "+xml")))
    if textual:
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


def _identity_value(source: str, event: dict) -> str | None:
    kind, _, name = source.partition(".")[2].partition(".")
    if not source.startswith("$request.") or not name:
        return None
    if kind == "header":
        return event["headers"].get(name.lower())
    if kind == "querystring":
        return (event.get("queryStringParameters") or {}).get(name)
    return None


def _authorizer_answer(result: Any, simple: bool) -> Any:
    """Validate what the authorizer returned; the part worth caching."""
    if not isinstance(result, dict):
        raise _Malformed(f"expected an object, got {type(result).__name__}")
    context = result.get("context")
    if context is not None and not isinstance(context, dict):
        raise _Malformed("context is not an object")
    if simple:
        if not isinstance(result.get("isAuthorized"), bool):
            raise _Malformed("isAuthorized is missing or not a boolean")
        return {"simple": True, "allowed": result["isAuthorized"], "context": context or {}}
    policy = result.get("policyDocument")
    if not isinstance(policy, dict):
        raise _Malformed("policyDocument is missing")
    statements = policy.get("Statement")
    statements = [statements] if isinstance(statements, dict) else statements
    if not isinstance(statements, list) or not all(isinstance(s, dict) for s in statements):
        raise _Malformed("policyDocument.Statement is not a list of statements")
    return {"simple": False, "statements": statements, "context": context or {}}


def _decide(answer: dict, route_arn: str) -> tuple[bool, dict]:
    if answer["simple"]:
        return answer["allowed"], answer["context"]

    def listed(value: Any) -> list[str]:
        return [value] if isinstance(value, str) else [v for v in value or [] if isinstance(v, str)]

    def applies(statement: dict) -> bool:
        actions = listed(statement.get("Action"))
        resources = listed(statement.get("Resource"))
        return (any(fnmatch.fnmatchcase("execute-api:Invoke", a) for a in actions)
                and any(fnmatch.fnmatchcase(route_arn, r) for r in resources))

    effects = [s.get("Effect") for s in answer["statements"] if applies(s)]
    return ("Allow" in effects and "Deny" not in effects), answer["context"]


def _header_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    raise _Malformed(f"header value of type {type(value).__name__}")


def _integration_response(result: Any, cors: bool) -> _Response:
    """Payload 2.0 response rules."""
    if not (isinstance(result, dict) and "statusCode" in result):
        if isinstance(result, str):
            body = result
        else:
            body = json.dumps(result, separators=(",", ":"))
        return _Response(200, [("content-type", "application/json")], body.encode("utf-8"))

    status = result["statusCode"]
    if isinstance(status, str) and status.strip().isdigit():
        status = int(status)
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise _Malformed(f"statusCode {result['statusCode']!r}")
    headers_in = result.get("headers") or {}
    if not isinstance(headers_in, dict):
        raise _Malformed("headers is not an object")
    headers: list[tuple[str, str]] = []
    for name, value in headers_in.items():
        if not isinstance(name, str) or not _TOKEN.match(name):
            raise _Malformed(f"header name {name!r}")
        if value is None:
            continue
        value = _header_value(value)
        if any(c in value for c in "\r\n\0"):
            raise _Malformed(f"header {name} holds a line break")
        lower = name.lower()
        if lower in _HOP_BY_HOP or (cors and lower.startswith("access-control-")):
            continue
        headers.append((name, value))
    cookies = result.get("cookies") or []
    if not isinstance(cookies, list) or not all(isinstance(c, str) for c in cookies):
        raise _Malformed("cookies is not a list of strings")
    for cookie in cookies:
        if any(c in cookie for c in "\r\n\0"):
            raise _Malformed("a cookie holds a line break")
        headers.append(("set-cookie", cookie))
    body = result.get("body")
    if body is None:
        data = b""
    elif not isinstance(body, str):
        raise _Malformed(f"body is a {type(body).__name__}, not a string")
    elif result.get("isBase64Encoded"):
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise _Malformed("isBase64Encoded but the body is not base64") from None
    else:
        data = body.encode("utf-8")
    response = _Response(status, headers, data)
    if not response.has("content-type"):
        response.headers.insert(0, ("content-type", "application/json"))
    return response


# -- HTTP plumbing ---------------------------------------------------------------------------

class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True     # TIME_WAIT only: a listening port still refuses (Linux)
    allow_reuse_port = False
    # socketserver's default backlog is 5: a burst of clients connecting at once overflows
    # it and some are reset (seen under load, benchmarks/load_offline.py); API Gateway
    # takes them all.
    request_queue_size = 128
    gateway: Gateway

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)   # no getfqdn(): no name lookups
        host, port = self.server_address[:2]
        self.server_name, self.server_port = host, port

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._open_lock:
            open_now = list(self._open)
        for sock in open_now:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return  # a client went away: nothing to say
        self.gateway._log(f"gateway: connection from {client_address[0]} failed: "
                          f"{type(exc).__name__}: {str(exc)[:200]}")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = IDLE_TIMEOUT_S
    server: _Server

    def __getattr__(self, name: str) -> Any:
        # Every method reaches the gateway (an unknown one simply matches no route).
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        pass  # the gateway writes its own access line

    def log_message(self, format: str, *args: Any) -> None:
        self.server.gateway._log("gateway: " + (format % args))

    def handle_expect_100(self) -> bool:
        if self._declared_length() is not None and self._declared_length() > MAX_BODY_BYTES:
            return True  # no 100 Continue: the 413 comes instead
        return super().handle_expect_100()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed request lines, over-long lines or headers: a JSON answer, then close."""
        gateway = self.server.gateway
        request_id = _request_id()
        self.close_connection = True
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "Error"
        response = _message(code, phrase)
        try:
            self._write(response, request_id, head_only=False)
        except OSError:
            pass
        gateway._log(f"{self.command or '-'} - {code} 0.0ms {request_id} ({message or phrase})")

    def _declared_length(self) -> int | None:
        value = self.headers.get("content-length") if self.headers else None
        if value is None:
            return None
        value = value.strip()
        return int(value) if value.isdigit() else -1

    def _dispatch(self) -> None:
        gateway = self.server.gateway
        started = time.perf_counter()
        request_id = _request_id()
        path = self.path.partition("?")[0]
        response: _Response | None = None
        try:
            body = self._read_body()
            if isinstance(body, _Response):
                response = body
            else:
                request = _Request(
                    method=self.command, target=self.path, protocol=self.request_version,
                    headers=list(self.headers.items()), body=body,
                    source_ip=self.client_address[0], port=self.server.server_port)
                response = gateway.handle(request, request_id)
        except (ConnectionError, TimeoutError) as exc:
            self.close_connection = True
            gateway._log(f"{self.command} {path} - {_ms(started)}ms {request_id} "
                         f"(client gone: {type(exc).__name__})")
            return
        except Exception as exc:
            gateway._log(f"gateway: {request_id} internal error: {type(exc).__name__}: "
                         f"{str(exc)[:200]}")
            response = _message(500, "Internal Server Error")
        try:
            self._write(response, request_id, head_only=self.command == "HEAD")
        except OSError as exc:
            self.close_connection = True
            gateway._log(f"{self.command} {path} {response.status} {_ms(started)}ms {request_id} "
                         f"(client gone: {type(exc).__name__})")
            return
        extra = ""
        if response.function:
            extra = f" {response.function}" + (" cold" if response.cold_start else "")
        gateway._log(f"{self.command} {path} {response.status} {_ms(started)}ms {request_id}{extra}")
        if response.status == 413:
            self._linger()

    def _read_body(self) -> bytes | _Response:
        chunked = "chunked" in (self.headers.get("transfer-encoding") or "").lower()
        if chunked:
            return self._read_chunked()
        length = self._declared_length()
        if length is None or length == 0:
            return b""
        if length < 0:
            self.close_connection = True
            return _message(400, "Bad Request")
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            return _message(413, "Request Entity Too Large")
        body = self.rfile.read(length)
        if len(body) < length:
            raise ConnectionResetError("the body ended early")
        return body

    def _read_chunked(self) -> bytes | _Response:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1026)
            if not line:
                raise ConnectionResetError("the body ended early")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                return _message(400, "Bad Request")
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > MAX_BODY_BYTES:
                self.close_connection = True
                return _message(413, "Request Entity Too Large")
            chunk = self.rfile.read(size)
            if len(chunk) < size:
                raise ConnectionResetError("the body ended early")
            parts.append(chunk)
            self.rfile.readline(3)

    def _linger(self) -> None:
        """After refusing a body, read what the client still sends so it gets the answer."""
        try:
            self.connection.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + LINGER_S
            self.connection.settimeout(0.5)
            received = 0
            while time.monotonic() < deadline and received < 4 * MAX_BODY_BYTES:
                data = self.rfile.read1(65536)
                if not data:
                    break
                received += len(data)
        except OSError:
            pass

    def _write(self, response: _Response, request_id: str, *, head_only: bool) -> None:
        try:
            phrase = HTTPStatus(response.status).phrase
        except ValueError:
            phrase = ""
        no_body = response.status in (204, 304)
        body = b"" if (head_only or no_body) else response.body
        lines = [f"{self.protocol_version} {response.status} {phrase}".rstrip()]
        if not any(k.lower() == "date" for k, _ in response.headers):
            lines.append(f"date: {_http_date(time.time())}")
        for name, value in response.headers:
            lines.append(f"{name}: {value}")
        if not response.has("content-type"):
            lines.append("content-type: application/json")
        if not no_body:
            lines.append(f"content-length: {len(response.body)}")
        lines.append(f"apigw-requestid: {request_id}")
        if self.close_connection:
            lines.append("connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
        self.wfile.write(head + body)


def _ms(started: float) -> str:
    return f"{(time.perf_counter() - started) * 1000:.1f}"
