"""Helpers for the sources, credentials and OAuth tests (imported by test_sources_*.py,
test_credentials.py and test_oauth_*.py; holds no tests): the stage's KMS key and OAuth
settings in moto, tenants seeded as the auth service writes them, calls through the
services' Lambda handlers, and a fake platform on 127.0.0.1 that the connector layer
reaches through ``LISTBACKUP_PLATFORM_URLS``."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

import boto3
import pytest
from boto3.dynamodb.conditions import Key

from handlers.shared import clock
from handlers.shared.clients import table
from handlers.shared.ids import new_id
from tests.support import STAGE, api_event, call, logging_to_stdout

APP_ORIGIN = "https://app.test.listbackup.ai"
API_BASE = "https://api.test.listbackup.ai/v2"
OAUTH_PREFIX = f"/listbackup/{STAGE}/oauth/"
CLIENT_SECRET = "cs-very-secret-oauth-client-secret"
STRIPE_KEY = "sk_test_FakeHunterTwoDoNotLeakAnywhere0000001"
OTHER_STRIPE_KEY = "sk_test_FakeSecondKeyAlsoNotReal0000002"
REJECTED_KEY = "sk_test_51RejectedByThePlatform000000000"
ACCESS_TOKEN = "at-0123456789-hubspot-access-token-secret"
REFRESH_TOKEN = "rt-9876543210-hubspot-refresh-token-secret"


# --------------------------------------------------------------------------- stage

@pytest.fixture
def stage(backend, monkeypatch):
    """The stage's credentials key, OAuth apps and URLs, on top of the ``backend`` fixture."""
    kms = boto3.client("kms")
    key_arn = kms.create_key(Description="listbackup credentials")["KeyMetadata"]["Arn"]
    monkeypatch.setenv("CREDENTIALS_KEY_ARN", key_arn)
    monkeypatch.setenv("OAUTH_PARAM_PREFIX", OAUTH_PREFIX)
    monkeypatch.setenv("ALLOWED_RETURN_ORIGINS", f"{APP_ORIGIN},http://localhost:3000")
    monkeypatch.setenv("API_BASE_URL", API_BASE)
    monkeypatch.delenv("LISTBACKUP_PLATFORM_URLS", raising=False)
    ssm = boto3.client("ssm")
    for platform_id in ("hubspot", "dropbox", "box", "google-drive", "gohighlevel"):
        ssm.put_parameter(Name=f"{OAUTH_PREFIX}{platform_id}/client-id",
                          Value=f"client-{platform_id}", Type="SecureString")
        ssm.put_parameter(Name=f"{OAUTH_PREFIX}{platform_id}/client-secret",
                          Value=CLIENT_SECRET, Type="SecureString")
    return key_arn


def unconfigure(platform_id: str) -> None:
    """The stage has no OAuth app for this platform (the SSM value ``unconfigured``)."""
    from handlers.shared import params

    ssm = boto3.client("ssm")
    for suffix in ("client-id", "client-secret"):
        ssm.put_parameter(Name=f"{OAUTH_PREFIX}{platform_id}/{suffix}", Value="unconfigured",
                          Type="SecureString", Overwrite=True)
    params.clear_cache()


# --------------------------------------------------------------------------- tenants

def seed_tenant(role: str = "manager", *, plan: str = "free", source_count: int = 0,
                parent: dict | None = None) -> tuple[dict, dict, dict]:
    """A user, an account and the user's membership; answers (user, account, identity)."""
    now = clock.iso()
    user_id, account_id = new_id("usr"), new_id("acc")
    user = {"userId": user_id, "email": f"{user_id}@example.com", "name": "Test User",
            "passwordHash": "scrypt$not-a-real-hash", "emailVerified": True, "status": "active",
            "tokenVersion": 0, "createdAt": now, "updatedAt": now, "preferences": {}}
    account = {"accountId": account_id, "name": "Acme", "plan": plan, "ownSubscription": parent is None,
               "createdAt": now, "updatedAt": now, "sourceCount": source_count, "jobCount": 0,
               "storageBytes": 0, "subAccountCount": 0}
    if parent is None:
        account.update(rootAccountId=account_id, path=account_id, depth=0)
    else:
        account.update(parentAccountId=parent["accountId"], rootAccountId=parent["rootAccountId"],
                       path=f"{parent['path']}/{account_id}", depth=int(parent["depth"]) + 1)
    table("users").put_item(Item=user)
    table("accounts").put_item(Item=account)
    table("users-accounts").put_item(Item={"userId": user_id, "accountId": account_id,
                                           "role": role, "createdAt": now})
    return user, account, who(user, account, role)


def who(user: dict, account: dict, role: str) -> dict:
    return {"userId": user["userId"], "accountId": account["accountId"], "role": role}


def get_row(table_name: str, **key) -> dict | None:
    return table(table_name).get_item(Key=key, ConsistentRead=True).get("Item")


def raw_item(table_name: str, **key) -> dict:
    """The row as DynamoDB stores it (low-level attribute values), not as boto3 shows it."""
    from tests.support import PREFIX

    typed = {k: {"S": v} for k, v in key.items()}
    return boto3.client("dynamodb").get_item(TableName=PREFIX + table_name, Key=typed)["Item"]


def events(account_id: str, action: str | None = None) -> list[dict]:
    rows = table("activity").query(KeyConditionExpression=Key("accountId").eq(account_id))["Items"]
    return [r for r in rows if action is None or r["type"] == action]


def source_count(account_id: str) -> int:
    return int(get_row("accounts", accountId=account_id).get("sourceCount", 0))


# --------------------------------------------------------------------------- calls

def sources_call(route_key: str, identity: dict | None, *, body: Any = None, path: dict | None = None,
                 query: dict | None = None) -> tuple[int, dict]:
    from handlers.sources import api

    return call(api.handler, api_event(route_key, identity=identity, body=body, path=path, query=query))


def integrations_raw(route_key: str, identity: dict | None, *, body: Any = None,
                     path: dict | None = None, query: dict | None = None) -> dict:
    from handlers.integrations import api
    from tests.support import LambdaContext

    return api.handler(api_event(route_key, identity=identity, body=body, path=path, query=query),
                       LambdaContext())


def integrations_call(route_key: str, identity: dict | None, **kwargs) -> tuple[int, dict]:
    result = integrations_raw(route_key, identity, **kwargs)
    return result["statusCode"], json.loads(result["body"]) if result.get("body") else {}


def create_stripe(identity: dict, key: str = STRIPE_KEY, name: str = "Stripe live") -> dict:
    status, body = sources_call("POST /sources", identity,
                                body={"name": name, "type": "stripe", "credentials": {"api_key": key}})
    assert status == 201, body
    return body["data"]


# --------------------------------------------------------------------------- logs

@pytest.fixture
def logs(capsys):
    """Everything the services' loggers write (at DEBUG), as one string per call of
    ``read()``."""
    from handlers.integrations import api as integrations_api
    from handlers.sources import api as sources_api

    class Reader:
        def read(self) -> str:
            captured = capsys.readouterr()
            return captured.out + captured.err

    with logging_to_stdout(sources_api.logger, "DEBUG"), \
            logging_to_stdout(integrations_api.logger, "DEBUG"):
        yield Reader()


# --------------------------------------------------------------------------- fake platform

@dataclass
class Seen:
    method: str
    path: str
    query: dict
    headers: dict
    form: dict
    body: bytes


Reply = tuple[int, Any, dict]
Handler = Callable[[Seen], Reply]


@dataclass
class FakePlatform:
    """A platform's API, OAuth and token hosts on one local port. ``routes`` maps
    ``"METHOD /path"`` to a function of the request answering (status, JSON body, headers)."""
    server: ThreadingHTTPServer
    routes: dict[str, Handler] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def on(self, route: str, handler: Handler | Reply) -> None:
        self.routes[route] = handler if callable(handler) else (lambda _seen, r=handler: r)

    def requests_to(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]


def _handler_class(fake: FakePlatform):
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            form = dict(parse_qsl(raw.decode("utf-8", "replace"))) \
                if "form-urlencoded" in (self.headers.get("Content-Type") or "") else {}
            seen = Seen(self.command, parts.path, dict(parse_qsl(parts.query)),
                        {k.lower(): v for k, v in self.headers.items()}, form, raw)
            fake.seen.append(seen)
            route = fake.routes.get(f"{self.command} {parts.path}")
            status, body, headers = route(seen) if route else (404, {"error": "not_found"}, {})
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _serve

        def log_message(self, *args) -> None:
            pass

    return Handler


@pytest.fixture
def platform(monkeypatch):
    """A fake platform on 127.0.0.1; ``platform.serve(*ids)`` points those platforms at it."""
    fake = FakePlatform(server=None)  # type: ignore[arg-type]
    fake.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(fake))
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()

    def serve(*platform_ids: str) -> FakePlatform:
        monkeypatch.setenv("LISTBACKUP_PLATFORM_URLS",
                           json.dumps({pid: fake.url for pid in platform_ids}))
        return fake

    fake.serve = serve  # type: ignore[attr-defined]
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def stripe_customers(seen: Seen) -> Reply:
    """Stripe's GET /v1/customers: 401 for a key it does not know."""
    key = seen.headers.get("authorization", "").removeprefix("Bearer ")
    if key not in (STRIPE_KEY, OTHER_STRIPE_KEY):
        return 401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}, {}
    return 200, {"object": "list", "data": [{"id": "cus_1", "object": "customer"}],
                 "has_more": False, "url": "/v1/customers"}, {}
