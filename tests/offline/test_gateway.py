"""The offline gateway over real HTTP on 127.0.0.1, in front of a fake function runtime."""

from __future__ import annotations

import base64
import http.client
import json
import re
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import pytest

from offline.gateway import Gateway
from offline.model import Api, Authorizer, Cors, Route

ORIGIN = "https://app.example.test"


@dataclass
class Invocation:
    ok: bool
    result: Any = None
    error: str | None = None
    message: str = ""
    duration_ms: float = 1.0
    cold_start: bool = False


def crash(event: dict) -> Invocation:
    return Invocation(ok=False, error="Runtime.HandlerError", message="ValueError: boom")


class FakeRuntime:
    """``invoke(name, event)``: records the events, answers per function name."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, dict]] = []
        self.lock = threading.Lock()

    def __call__(self, name: str, event: dict) -> Invocation:
        with self.lock:
            self.calls.append((name, json.loads(json.dumps(event))))
        answer = self.answers[name]
        if callable(answer):
            answer = answer(event)
        return answer if isinstance(answer, Invocation) else Invocation(ok=True, result=answer)

    def events(self, name: str) -> list[dict]:
        return [event for called, event in self.calls if called == name]


def authorizer_answer(event: dict) -> Any:
    credential = event["identitySource"][0]
    if credential == "Bearer good":
        return {"isAuthorized": True, "context": {"userId": "u1", "accountId": "a1", "role": "owner"}}
    if credential.startswith("Bearer good-"):
        return {"isAuthorized": True, "context": {"userId": credential[len("Bearer good-"):]}}
    if credential == "Bearer crash":
        return crash(event)
    if credential == "Bearer weird":
        return "yes"
    return {"isAuthorized": False}


def echo(event: dict) -> dict:
    return {"statusCode": 200, "headers": {"content-type": "application/json"},
            "body": json.dumps({"routeKey": event["routeKey"]})}


def slow(event: dict) -> dict:
    time.sleep(0.6)
    return {"statusCode": 200, "body": "late"}


AUTH = Authorizer(id="auth-0", function="authorizer", identity_sources=["$request.header.Authorization"],
                  ttl=0, simple_responses=True, payload_version="2.0")
AUTH_CACHED = Authorizer(id="auth-60", function="authorizer",
                         identity_sources=["$request.header.Authorization"],
                         ttl=60, simple_responses=True, payload_version="2.0")
AUTH_QUERY = Authorizer(id="auth-q", function="authorizer", identity_sources=["$request.querystring.token"],
                        ttl=0, simple_responses=True, payload_version="2.0")


def public(route_key: str, function: str, **kwargs: Any) -> Route:
    return Route(route_key=route_key, function=function, authorization="NONE", authorizer=None, **kwargs)


def private(route_key: str, function: str, authorizer: Authorizer = AUTH) -> Route:
    return Route(route_key=route_key, function=function, authorization="CUSTOM", authorizer=authorizer)


ROUTES = [
    public("GET /system/health", "health"),
    public("POST /echo/{thing}", "echo"),
    public("GET /sources/{sourceId}", "source"),
    public("GET /sources/mine", "mine"),
    public("GET /sources/{sourceId}/files/{fileId}", "file"),
    public("GET /files/{path+}", "files"),
    public("ANY /any/{proxy+}", "any"),
    public("GET /any/exact", "exact"),
    public("GET /crash", "crash"),
    public("GET /timeout", "timeout"),
    public("GET /slow", "slow", timeout_ms=200),
    public("GET /list", "list"),
    public("GET /plain-dict", "plain-dict"),
    public("GET /text", "text"),
    public("GET /binary", "binary"),
    public("GET /cookies", "cookies"),
    public("GET /broken", "broken"),
    public("GET /cors-own", "cors-own"),
    private("GET /private", "private"),
    private("GET /cached", "cached", AUTH_CACHED),
    private("GET /by-query", "by-query", AUTH_QUERY),
]

ANSWERS: dict[str, Any] = {
    "authorizer": authorizer_answer,
    "health": {"statusCode": 200, "headers": {"content-type": "application/json"},
               "body": '{"success":true,"data":{"status":"ok"}}'},
    "echo": echo, "source": echo, "mine": echo, "file": echo, "files": echo, "any": echo,
    "exact": echo, "private": echo, "cached": echo, "by-query": echo,
    "crash": crash,
    "timeout": Invocation(ok=False, error="timeout", message="Task timed out after 3.00 seconds"),
    "slow": slow,
    "list": [1, 2, {"three": 3}],
    "plain-dict": {"hello": "world"},
    "text": "just text",
    "binary": {"statusCode": 200, "headers": {"Content-Type": "image/png"},
               "body": base64.b64encode(b"\x89PNG\x00\xff").decode(), "isBase64Encoded": True},
    "cookies": {"statusCode": 201, "cookies": ["a=1; Path=/", "b=2; HttpOnly"], "body": "{}"},
    "broken": {"statusCode": 200, "body": {"not": "a string"}},
    "cors-own": {"statusCode": 200, "headers": {"Access-Control-Allow-Origin": "https://evil.test",
                                                "x-custom": "kept"}, "body": "{}"},
}


@pytest.fixture
def make_gateway():
    started: list[Gateway] = []

    def make(*, cors: Cors | None = None, answers: dict | None = None, routes: list | None = None,
             helpers: dict[str, Callable[[], Any]] | None = None, base_path: str = "/v2"):
        runtime = FakeRuntime({**ANSWERS, **(answers or {})})
        lines: list[str] = []
        api = Api(id="api123", name="listbackup-test-api", routes=routes or ROUTES, cors=cors)
        gateway = Gateway(api, runtime, base_path=base_path, helpers=helpers, log=lines.append)
        gateway.start()
        started.append(gateway)
        return gateway, runtime, lines

    yield make
    for gateway in started:
        gateway.stop()


@pytest.fixture
def gw(make_gateway):
    return make_gateway()


class Answer:
    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = response.headers
        self.body = response.read()

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


def call(gateway: Gateway, method: str, path: str, *, headers: dict | list | None = None,
         body: bytes | str | None = None) -> Answer:
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        items = headers.items() if isinstance(headers, dict) else (headers or [])
        for name, value in items:
            connection.putheader(name, value)
        data = body.encode() if isinstance(body, str) else body
        if data is not None:
            connection.putheader("Content-Length", str(len(data)))
        connection.endheaders(data)
        return Answer(connection.getresponse())
    finally:
        connection.close()


# -- routing and the event ----------------------------------------------------------------------

def test_public_route_event_has_the_payload_2_shape(gw):
    gateway, runtime, _ = gw
    answer = call(gateway, "POST", "/v2/echo/a%20b%2Fc?x=1&y=2&x=3&empty=",
                  headers=[("Content-Type", "application/json"), ("X-Multi", "one"),
                           ("X-Multi", "two"), ("Cookie", "session=abc; theme=dark"),
                           ("User-Agent", "pytest-agent")],
                  body='{"hello":"world"}')
    assert answer.status == 200
    (event,) = runtime.events("echo")
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /echo/{thing}"
    assert event["rawPath"] == "/echo/a%20b%2Fc"
    assert event["rawQueryString"] == "x=1&y=2&x=3&empty="
    assert event["pathParameters"] == {"thing": "a b/c"}
    assert event["queryStringParameters"] == {"x": "1,3", "y": "2", "empty": ""}
    assert event["cookies"] == ["session=abc", "theme=dark"]
    assert "cookie" not in event["headers"]
    assert all(name == name.lower() for name in event["headers"])
    assert event["headers"]["x-multi"] == "one,two"
    assert event["headers"]["content-type"] == "application/json"
    assert event["body"] == '{"hello":"world"}'
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["accountId"] == "123456789012"
    assert context["apiId"] == "api123"
    assert context["domainName"] == "127.0.0.1"
    assert context["stage"] == "$default"
    assert context["routeKey"] == "POST /echo/{thing}"
    assert context["http"] == {"method": "POST", "path": "/echo/a%20b%2Fc", "protocol": "HTTP/1.1",
                               "sourceIp": "127.0.0.1", "userAgent": "pytest-agent"}
    assert re.fullmatch(r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000", context["time"])
    assert abs(context["timeEpoch"] - time.time() * 1000) < 60_000
    assert "authorizer" not in context
    assert answer.header("apigw-requestid") == context["requestId"]


def test_request_ids_are_fresh(gw):
    gateway, runtime, _ = gw
    ids = {call(gateway, "GET", "/v2/system/health").header("apigw-requestid") for _ in range(5)}
    assert len(ids) == 5
    assert ids == {e["requestContext"]["requestId"] for e in runtime.events("health")}


def test_event_without_query_path_params_or_body_omits_them(gw):
    gateway, runtime, _ = gw
    answer = call(gateway, "GET", "/v2/system/health")
    assert answer.status == 200 and answer.json() == {"success": True, "data": {"status": "ok"}}
    (event,) = runtime.events("health")
    for absent in ("queryStringParameters", "pathParameters", "body", "cookies"):
        assert absent not in event
    assert event["rawQueryString"] == ""
    assert event["isBase64Encoded"] is False


def test_binary_body_is_base64(gw):
    gateway, runtime, _ = gw
    data = bytes(range(256))
    call(gateway, "POST", "/v2/echo/bin", headers={"Content-Type": "application/octet-stream"}, body=data)
    (event,) = runtime.events("echo")
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == data


def test_text_body_without_content_type_is_text(gw):
    gateway, runtime, _ = gw
    call(gateway, "POST", "/v2/echo/t", body="plain words")
    (event,) = runtime.events("echo")
    assert event["body"] == "plain words" and event["isBase64Encoded"] is False


def test_literal_segment_beats_parameter(gw):
    gateway, runtime, _ = gw
    assert call(gateway, "GET", "/v2/sources/mine").json() == {"routeKey": "GET /sources/mine"}
    assert call(gateway, "GET", "/v2/sources/s-1").json() == {"routeKey": "GET /sources/{sourceId}"}
    assert runtime.events("source")[0]["pathParameters"] == {"sourceId": "s-1"}
    answer = call(gateway, "GET", "/v2/sources/s-1/files/f-2")
    assert answer.json() == {"routeKey": "GET /sources/{sourceId}/files/{fileId}"}
    assert runtime.events("file")[0]["pathParameters"] == {"sourceId": "s-1", "fileId": "f-2"}


def test_greedy_proxy_and_any_method(gw):
    gateway, runtime, _ = gw
    assert call(gateway, "GET", "/v2/files/a/b/c%20d.txt").json() == {"routeKey": "GET /files/{path+}"}
    assert runtime.events("files")[0]["pathParameters"] == {"path": "a/b/c d.txt"}
    assert call(gateway, "DELETE", "/v2/any/x/y").json() == {"routeKey": "ANY /any/{proxy+}"}
    assert runtime.events("any")[0]["pathParameters"] == {"proxy": "x/y"}
    # a method and a literal path beat ANY and a greedy parameter
    assert call(gateway, "GET", "/v2/any/exact").json() == {"routeKey": "GET /any/exact"}
    assert call(gateway, "POST", "/v2/any/exact").json() == {"routeKey": "ANY /any/{proxy+}"}
    # a greedy parameter needs at least one character
    assert call(gateway, "GET", "/v2/files/").status == 404


def test_unknown_route_method_mismatch_and_outside_base_path_are_404(gw):
    gateway, runtime, _ = gw
    for method, path in [("GET", "/v2/nope"), ("DELETE", "/v2/system/health"),
                         ("GET", "/system/health"), ("GET", "/v2x/system/health"),
                         ("GET", "/v2/sources/"), ("OPTIONS", "/v2/system/health")]:
        answer = call(gateway, method, path)
        assert answer.status == 404, (method, path)
        assert answer.json() == {"message": "Not Found"}
        assert answer.header("content-type") == "application/json"
        assert answer.header("apigw-requestid")
    assert runtime.calls == []


def test_head_has_no_body_but_a_length(gw):
    gateway, _, _ = gw
    answer = call(gateway, "HEAD", "/v2/nope")
    assert answer.status == 404 and answer.body == b""
    assert answer.header("content-length") == str(len(b'{"message":"Not Found"}'))


# -- the Lambda authorizer -----------------------------------------------------------------------

def test_missing_authorization_is_401_without_calling_the_authorizer(gw):
    gateway, runtime, _ = gw
    for headers in ({}, {"Authorization": ""}):
        answer = call(gateway, "GET", "/v2/private", headers=headers)
        assert answer.status == 401
        assert answer.json() == {"message": "Unauthorized"}
    assert runtime.calls == []


def test_denied_is_403(gw):
    gateway, runtime, _ = gw
    answer = call(gateway, "GET", "/v2/private", headers={"Authorization": "Bearer nope"})
    assert answer.status == 403
    assert answer.json() == {"message": "Forbidden"}
    assert [name for name, _ in runtime.calls] == ["authorizer"]


def test_allowed_handler_sees_the_authorizer_context(gw):
    gateway, runtime, _ = gw
    answer = call(gateway, "GET", "/v2/private?q=1", headers={"authorization": "Bearer good"})
    assert answer.status == 200
    (auth_event,) = runtime.events("authorizer")
    assert auth_event["version"] == "2.0" and auth_event["type"] == "REQUEST"
    assert auth_event["routeArn"] == "arn:aws:execute-api:us-east-1:123456789012:api123/$default/GET/private"
    assert auth_event["identitySource"] == ["Bearer good"]
    assert auth_event["routeKey"] == "GET /private"
    assert auth_event["rawPath"] == "/private"
    assert auth_event["rawQueryString"] == "q=1"
    assert auth_event["headers"]["authorization"] == "Bearer good"
    assert auth_event["queryStringParameters"] == {"q": "1"}
    assert auth_event["requestContext"]["requestId"] == answer.header("apigw-requestid")
    (event,) = runtime.events("private")
    assert event["requestContext"]["authorizer"] == {
        "lambda": {"userId": "u1", "accountId": "a1", "role": "owner"}}


def test_querystring_identity_source(gw):
    gateway, runtime, _ = gw
    assert call(gateway, "GET", "/v2/by-query").status == 401
    assert runtime.calls == []
    assert call(gateway, "GET", "/v2/by-query?token=Bearer%20good").status == 200
    assert runtime.events("authorizer")[0]["identitySource"] == ["Bearer good"]


@pytest.mark.parametrize("credential", ["Bearer crash", "Bearer weird"])
def test_authorizer_crash_or_malformed_answer_is_500(gw, credential):
    gateway, runtime, lines = gw
    answer = call(gateway, "GET", "/v2/private", headers={"Authorization": credential})
    assert answer.status == 500
    assert answer.json() == {"message": "Internal Server Error"}
    assert runtime.events("private") == []
    assert any("authorizer" in line for line in lines)


def test_cached_decisions_by_identity_source(gw):
    gateway, runtime, _ = gw
    for _ in range(2):
        assert call(gateway, "GET", "/v2/cached", headers={"Authorization": "Bearer good-u1"}).status == 200
    assert len(runtime.events("authorizer")) == 1
    # the cached context still reaches the handler
    assert [e["requestContext"]["authorizer"] for e in runtime.events("cached")] == \
        [{"lambda": {"userId": "u1"}}] * 2
    assert call(gateway, "GET", "/v2/cached", headers={"Authorization": "Bearer good-u2"}).status == 200
    assert len(runtime.events("authorizer")) == 2
    assert runtime.events("cached")[-1]["requestContext"]["authorizer"] == {"lambda": {"userId": "u2"}}
    # denials are cached too
    for _ in range(2):
        assert call(gateway, "GET", "/v2/cached", headers={"Authorization": "Bearer no"}).status == 403
    assert len(runtime.events("authorizer")) == 3


def test_ttl_0_invokes_the_authorizer_every_time(gw):
    gateway, runtime, _ = gw
    for _ in range(3):
        assert call(gateway, "GET", "/v2/private", headers={"Authorization": "Bearer good"}).status == 200
    assert len(runtime.events("authorizer")) == 3


def test_failures_are_not_cached(gw):
    gateway, runtime, _ = gw
    for _ in range(2):
        assert call(gateway, "GET", "/v2/cached", headers={"Authorization": "Bearer crash"}).status == 500
    assert len(runtime.events("authorizer")) == 2


# -- integration responses --------------------------------------------------------------------

def test_handler_crash_is_a_generic_500_and_one_log_line(gw):
    gateway, _, lines = gw
    answer = call(gateway, "GET", "/v2/crash")
    assert answer.status == 500
    assert answer.json() == {"message": "Internal Server Error"}
    assert b"boom" not in answer.body
    failures = [line for line in lines if "crash" in line and "Runtime.HandlerError" in line]
    assert len(failures) == 1


def test_function_timeout_is_500(gw):
    gateway, _, lines = gw
    answer = call(gateway, "GET", "/v2/timeout")
    assert answer.status == 500 and answer.json() == {"message": "Internal Server Error"}
    assert any("timeout" in line for line in lines)


def test_integration_over_the_route_timeout_is_503(gw):
    gateway, _, _ = gw
    started = time.monotonic()
    answer = call(gateway, "GET", "/v2/slow")
    assert answer.status == 503
    assert answer.json() == {"message": "Service Unavailable"}
    assert time.monotonic() - started < 0.55


@pytest.mark.parametrize("path, body", [
    ("/v2/list", [1, 2, {"three": 3}]),
    ("/v2/plain-dict", {"hello": "world"}),
])
def test_result_without_status_code_is_200_json(gw, path, body):
    gateway, _, _ = gw
    answer = call(gateway, "GET", path)
    assert answer.status == 200
    assert answer.header("content-type") == "application/json"
    assert answer.json() == body


def test_string_result_is_passed_as_is(gw):
    gateway, _, _ = gw
    answer = call(gateway, "GET", "/v2/text")
    assert answer.status == 200 and answer.body == b"just text"


def test_base64_response_is_decoded(gw):
    gateway, _, _ = gw
    answer = call(gateway, "GET", "/v2/binary")
    assert answer.status == 200
    assert answer.body == b"\x89PNG\x00\xff"
    assert answer.header("content-type") == "image/png"
    assert answer.header("content-length") == "6"


def test_cookies_become_set_cookie_headers(gw):
    gateway, _, _ = gw
    answer = call(gateway, "GET", "/v2/cookies")
    assert answer.status == 201
    assert answer.headers.get_all("set-cookie") == ["a=1; Path=/", "b=2; HttpOnly"]


def test_malformed_integration_response_is_500(gw):
    gateway, _, lines = gw
    answer = call(gateway, "GET", "/v2/broken")
    assert answer.status == 500 and answer.json() == {"message": "Internal Server Error"}
    assert any("broken" in line and "malformed" in line for line in lines)


# -- CORS -----------------------------------------------------------------------------------

CORS = Cors(allow_origins=[ORIGIN], allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["authorization", "content-type"], expose_headers=["retry-after"],
            max_age=600, allow_credentials=True)


def test_preflight_from_an_allowed_origin(make_gateway):
    gateway, runtime, _ = make_gateway(cors=CORS)
    answer = call(gateway, "OPTIONS", "/v2/private", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert answer.status == 204
    assert answer.header("access-control-allow-origin") == ORIGIN
    assert answer.header("access-control-allow-methods") == "GET,POST,OPTIONS"
    assert answer.header("access-control-allow-headers") == "authorization,content-type"
    assert answer.header("access-control-max-age") == "600"
    assert answer.header("access-control-allow-credentials") == "true"
    assert answer.header("apigw-requestid")
    assert runtime.calls == []  # neither the authorizer nor any function


def test_preflight_from_another_origin_has_no_cors_headers(make_gateway):
    gateway, runtime, _ = make_gateway(cors=CORS)
    answer = call(gateway, "OPTIONS", "/v2/system/health", headers={
        "Origin": "https://evil.test", "Access-Control-Request-Method": "GET"})
    assert answer.status == 204
    assert not [k for k in answer.headers if k.lower().startswith("access-control-")]
    assert runtime.calls == []


def test_wildcard_origin(make_gateway):
    gateway, _, _ = make_gateway(cors=Cors(allow_origins=["*"], allow_methods=["GET"]))
    answer = call(gateway, "OPTIONS", "/v2/system/health", headers={
        "Origin": "https://anyone.test", "Access-Control-Request-Method": "GET"})
    assert answer.header("access-control-allow-origin") == "*"
    assert call(gateway, "GET", "/v2/system/health",
                headers={"Origin": "https://anyone.test"}).header("access-control-allow-origin") == "*"


def test_cors_headers_on_normal_and_gateway_answers(make_gateway):
    gateway, _, _ = make_gateway(cors=CORS)
    for path, status in [("/v2/system/health", 200), ("/v2/private", 401), ("/v2/nope", 404)]:
        answer = call(gateway, "GET", path, headers={"Origin": ORIGIN})
        assert answer.status == status
        assert answer.header("access-control-allow-origin") == ORIGIN
        assert answer.header("access-control-expose-headers") == "retry-after"
        assert answer.header("access-control-allow-credentials") == "true"
        assert "Origin" in answer.header("vary")
    other = call(gateway, "GET", "/v2/system/health", headers={"Origin": "https://evil.test"})
    assert other.status == 200 and other.header("access-control-allow-origin") is None
    assert "Origin" in other.header("vary")


def test_integration_cors_headers_are_replaced_by_the_gateway(make_gateway):
    gateway, _, _ = make_gateway(cors=CORS)
    answer = call(gateway, "GET", "/v2/cors-own", headers={"Origin": ORIGIN})
    assert answer.headers.get_all("access-control-allow-origin") == [ORIGIN]
    assert answer.header("x-custom") == "kept"


def test_non_preflight_options_is_routed_as_usual(make_gateway):
    gateway, runtime, _ = make_gateway(cors=CORS)
    assert call(gateway, "OPTIONS", "/v2/system/health", headers={"Origin": ORIGIN}).status == 404
    assert call(gateway, "OPTIONS", "/v2/any/x", headers={"Origin": ORIGIN}).json() == \
        {"routeKey": "ANY /any/{proxy+}"}


def test_without_cors_a_preflight_is_an_ordinary_request(gw):
    gateway, runtime, _ = gw
    answer = call(gateway, "OPTIONS", "/v2/any/x", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
    assert answer.status == 200 and answer.header("access-control-allow-origin") is None
    assert len(runtime.events("any")) == 1


# -- offline helpers, limits, robustness ---------------------------------------------------------

def test_offline_helpers(make_gateway):
    def failing() -> Any:
        raise RuntimeError("nope")

    gateway, runtime, _ = make_gateway(helpers={
        "resources": lambda: {"functions": ["a", "b"]}, "failing": failing})
    answer = call(gateway, "GET", "/_offline/resources")
    assert answer.status == 200 and answer.json() == {"functions": ["a", "b"]}
    assert answer.header("content-type") == "application/json"
    assert call(gateway, "GET", "/_offline/unknown").json() == {"message": "Not Found"}
    assert call(gateway, "GET", "/_offline/unknown").status == 404
    assert call(gateway, "POST", "/_offline/resources").status == 404
    assert call(gateway, "GET", "/_offline/failing").status == 500
    assert runtime.calls == []


def test_body_over_10_mb_is_413(gw):
    gateway, runtime, _ = gw
    answer = call(gateway, "POST", "/v2/echo/big", body=b"x" * (10 * 1024 * 1024 + 1))
    assert answer.status == 413
    assert answer.json() == {"message": "Request Entity Too Large"}
    assert runtime.calls == []
    # exactly 10 MB is fine
    assert call(gateway, "POST", "/v2/echo/big", body=b"x" * (10 * 1024 * 1024)).status == 200


def test_declared_oversize_body_is_refused_before_it_is_sent(gw):
    gateway, _, _ = gw
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(b"POST /v2/echo/x HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n")
        head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 413 ")


def test_chunked_request_body(gw):
    gateway, runtime, _ = gw
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(b"POST /v2/echo/c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                     b"Content-Type: text/plain\r\nConnection: close\r\n\r\n"
                     b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        response = b""
        while chunk := sock.recv(4096):
            response += chunk
    assert response.startswith(b"HTTP/1.1 200 ")
    assert runtime.events("echo")[0]["body"] == "hello world"


def test_server_survives_garbage_and_broken_clients(gw):
    gateway, _, lines = gw
    # garbage request line
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(b"\x00\xff garbage \r\n\r\n")
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b'{"message":"Bad Request"}' in answer
    # a client that disconnects halfway through its body
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(b"POST /v2/echo/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
    # a client that disconnects before reading the answer
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=5)
    sock.sendall(b"GET /v2/system/health HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.close()
    # an over-long request line
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 414 ")
    assert call(gateway, "GET", "/v2/system/health").status == 200
    assert not any("Traceback" in line for line in lines)


def test_exception_inside_the_gateway_is_a_500_and_it_keeps_serving(make_gateway):
    def exploding(name: str, event: dict) -> Invocation:
        raise RuntimeError("runtime bug")

    gateway, _, lines = make_gateway()
    gateway._invoke = exploding
    answer = call(gateway, "GET", "/v2/system/health")
    assert answer.status == 500 and answer.json() == {"message": "Internal Server Error"}
    assert any("RuntimeError" in line for line in lines)
    gateway._invoke = FakeRuntime(ANSWERS)
    assert call(gateway, "GET", "/v2/system/health").status == 200


def test_keep_alive_serves_several_requests_on_one_connection(gw):
    gateway, _, _ = gw
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=5)
    try:
        for _ in range(3):
            connection.request("GET", "/v2/system/health")
            response = connection.getresponse()
            assert response.status == 200
            response.read()
    finally:
        connection.close()


def test_access_log_never_holds_the_credential_or_the_body(gw):
    gateway, _, lines = gw
    answer = call(gateway, "GET", "/v2/private?secret=s3cr3t", headers={"Authorization": "Bearer good"})
    call(gateway, "POST", "/v2/echo/x", body='{"password":"hunter2"}')
    request_id = answer.header("apigw-requestid")
    (access,) = [line for line in lines if request_id in line]
    assert access.startswith("GET /v2/private 200 ")
    assert re.search(r" \d+\.\dms ", access)
    text = "\n".join(lines)
    assert "Bearer good" not in text and "hunter2" not in text and "s3cr3t" not in text


def test_busy_port_raises_and_stop_frees_it(make_gateway):
    gateway, _, _ = make_gateway()
    other = Gateway(None, FakeRuntime({}), log=lambda line: None)
    with pytest.raises(OSError):
        other.start(port=gateway.port)
    port = gateway.port
    assert gateway.url == f"http://127.0.0.1:{port}/v2"
    gateway.stop()
    gateway.stop()  # idempotent
    with pytest.raises(OSError):
        call(gateway, "GET", "/v2/system/health")
    again = Gateway(None, FakeRuntime({}), log=lambda line: None)
    assert again.start(port=port) == port
    try:
        assert call(again, "GET", "/v2/system/health").status == 404
    finally:
        again.stop()
