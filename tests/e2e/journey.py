"""The whole customer journey over HTTP through offline mode, taking every route of the API
at least once with a successful answer: shared by tests/e2e/test_strict_mode.py (least
privilege at runtime, issue 11) and benchmarks/request_cost.py (DynamoDB calls per route,
issue 12).

    with platforms() as outside, strict_server(outside) as server:
        journey(server, outside)
        server.sent             # every API request the journey made, with its answer's status

:func:`platforms` starts what lies outside the product, all on 127.0.0.1: localstripe with
a platform account to back up, the Checkout/portal server in front of it for billing, a
HubSpot-like OAuth platform (consent page, token endpoint) for the connect flow, and a Keap
API that holds its answer until told, so a backup can be cancelled while it runs.
:func:`strict_server` is offline mode in strict mode pointed at them.

:func:`journey` is a sequence of named steps; :class:`JourneyFailed` names the step that
did not go as the customer expects. Every request goes through :class:`JourneyServer`,
which records method, path, status and the time it was in flight (requests go one at a
time), so a caller can tell which routes were taken and attribute what happened meanwhile.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import threading
import time
import urllib.request
import zipfile
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator
from urllib.parse import urlsplit

from handlers.shared.connectors.platforms import get_platform
from tests.connectors import localstripe_server
from tests.connectors.stripe_checkout_server import StripeCheckoutServer, event, payload_of, signature
from tests.e2e import fake_platforms
from tests.e2e.harness import OfflineServer, Response
from tests.e2e.identity import (emails, invitation_code, login, register, reset_token,
                                switch, unique_email)

CUSTOMERS = 9
PRODUCTS = 3
BILLING_KEY = "sk_test_e2e_strict_00000000000000000000fake"
WEBHOOK_SECRET = "whsec_e2e_strict_0000000000000000fake"
PRICES = {"starter": "price_starter_strict", "pro": "price_pro_strict",
          "enterprise": "price_enterprise_strict"}
AMOUNTS = {"starter": 2900, "pro": 9900, "enterprise": 29900}
APP = "http://localhost:3000"          # the dev stack's web app origin
HUBSPOT_CLIENT = {"clientId": "strict-id", "clientSecret": "strict-secret"}
KEAP_KEY = "keap-journey-key-0000000000000000fake"
NEW_PASSWORD = "a brand new pass phrase 7"
RESET_PASSWORD = "the pass phrase after a reset 9"


# ------------------------------------------------------------------ what the journey sent

@dataclass(frozen=True)
class Sent:
    method: str
    path: str            # under /v2, with its query
    status: int
    started: float       # time.time() before sending and after the answer
    answered: float


class JourneyServer(OfflineServer):
    """Offline mode that records every API request (not the ``/_offline/`` helpers)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sent: list[Sent] = []

    def request(self, method, path, body=None, *, token=None, headers=None, base=None) -> Response:
        started = time.time()
        reply = super().request(method, path, body, token=token, headers=headers, base=base)
        if base is None:
            self.sent.append(Sent(method, path, reply.status, started, time.time()))
        return reply

    def visit(self, url: str) -> Response:
        """GET a URL of the API the way a browser lands on it, without following the
        redirect it answers (the OAuth callback sends the browser back to the app)."""
        assert url.startswith(self.url + "/"), url
        started = time.time()
        status, headers, raw = fake_platforms.fetch(url)
        self.sent.append(Sent("GET", url[len(self.url):], status, started, time.time()))
        return Response(status, headers, raw)


class RouteTable:
    """Which route of the table a request took: literal segments win over parameters, as
    API Gateway matches them (``/activity/stats`` before ``/activity/{eventId}``)."""

    def __init__(self, route_keys):
        self.keys = sorted(route_keys)
        templates = []
        for key in self.keys:
            method, path = key.split(" ", 1)
            pattern = re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(path))
            templates.append((path.count("{"), method, re.compile(f"^{pattern}$"), key))
        templates.sort(key=lambda t: t[0])
        self._templates = templates

    @classmethod
    def of_the_api(cls) -> "RouteTable":
        from handlers.routes import all_routes

        return cls(r.route_key for routes in all_routes().values() for r in routes)

    def route_of(self, method: str, path: str) -> str | None:
        path = path.split("?", 1)[0]
        for _, m, pattern, key in self._templates:
            if m == method and pattern.match(path):
                return key
        return None

    def not_taken(self, sent: list[Sent]) -> list[str]:
        """Routes no request of ``sent`` took with a successful answer (2xx or 3xx)."""
        taken = {self.route_of(s.method, s.path) for s in sent if 200 <= s.status < 400}
        return [key for key in self.keys if key not in taken]


# ------------------------------------------------------------------ outside the product

class HeldPlatform:
    """A Keap API on 127.0.0.1 that, once :meth:`hold` is called, keeps its next answer
    until :meth:`release`: a backup of it stays running for as long as a test needs (to
    cancel it). Answers one record per list."""

    def __init__(self):
        self.arrived = threading.Event()
        self.released = threading.Event()
        self.released.set()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):   # quiet
                pass

            def do_GET(self):
                owner.arrived.set()
                owner.released.wait(60)
                name = urlsplit(self.path).path.rstrip("/").rsplit("/", 1)[-1]
                body = json.dumps({name: [{"id": 1, "name": "held"}]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def hold(self) -> None:
        self.released.clear()
        self.arrived.clear()

    def release(self) -> None:
        self.released.set()

    def stop(self) -> None:
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Platforms:
    stripe_url: str                     # localstripe: the Stripe account backed up
    stripe_key: str
    checkout: StripeCheckoutServer      # billing's Stripe API (Checkout, portal, the rest forwarded)
    hubspot: fake_platforms.FakeOAuthPlatform
    keap: HeldPlatform


@contextlib.contextmanager
def platforms() -> Iterator[Platforms]:
    hubspot_spec = get_platform("hubspot")
    with localstripe_server.tenant("strict") as (url, key, client):
        for i in range(CUSTOMERS):
            client.v1.customers.create(params={"email": f"c{i}@example.com", "name": f"Customer {i}"})
        for i in range(PRODUCTS):
            client.v1.products.create(params={"name": f"Product {i}"})
        checkout = StripeCheckoutServer(url).start()
        hubspot = fake_platforms.FakeOAuthPlatform(
            authorize_path=urlsplit(hubspot_spec.oauth.authorize_url).path,
            token_path=urlsplit(hubspot_spec.oauth.token_url).path,
            api_path=urlsplit(hubspot_spec.base_url).path
            + hubspot_spec.endpoint(hubspot_spec.test_endpoint).path,
            client_id=HUBSPOT_CLIENT["clientId"], client_secret=HUBSPOT_CLIENT["clientSecret"]).start()
        keap = HeldPlatform()
        try:
            for plan_id, price in PRICES.items():
                checkout.create_price(BILLING_KEY, price, AMOUNTS[plan_id], plan_id.capitalize())
            yield Platforms(url, key, checkout, hubspot, keap)
        finally:
            keap.stop()
            hubspot.stop()
            checkout.stop()


def strict_server(outside: Platforms, *extra: str) -> JourneyServer:
    return JourneyServer(
        "--strict", *extra,
        "--platform-url", f"stripe={outside.stripe_url}",
        "--platform-url", f"hubspot={outside.hubspot.url}",
        "--platform-url", f"keap={outside.keap.url}",
        "--stripe-api-base", outside.checkout.url,
        "--config", f"stripeSecretKey={BILLING_KEY}",
        "--config", f"stripeWebhookSecret={WEBHOOK_SECRET}",
        "--config", f"stripePriceIds={json.dumps(PRICES)}",
        "--config", f"oauthClients={json.dumps({'hubspot': HUBSPOT_CLIENT})}",
        "--schedule-speed", "60")          # the scheduler's 5 minutes pass every 5 seconds


# ------------------------------------------------------------------ the journey

class JourneyFailed(AssertionError):
    def __init__(self, step: str, detail: str):
        super().__init__(f"the journey failed at {step!r}: {detail}")
        self.step, self.detail = step, detail


@contextlib.contextmanager
def step(name: str):
    try:
        yield
    except AssertionError as error:
        raise JourneyFailed(name, str(error)[:2000]) from error


def ok(reply, status: int = 200):
    assert reply.status == status, reply
    return reply.json["data"]


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as reply:
        return reply.read()


def journey(server: JourneyServer, outside: Platforms) -> dict:
    """Everything a customer does, step by step, through every route of the API."""
    seen: dict = {}
    with step("public"):
        assert ok(server.get("/system/health"))["status"] == "ok"
        assert [p["planId"] for p in ok(server.get("/billing/plans"))["items"]][0] == "free"
        assert "hubspot" in {p["id"] for p in ok(server.get("/integrations"))["items"]}
        assert ok(server.get("/integrations/hubspot"))["auth"] == "oauth2"

    with step("identity"):
        user = register(server, verify=True)
        login(server, user)
        user.take(ok(server.post("/auth/refresh", {"refreshToken": user.refresh})))
        api_key = ok(server.post("/api-keys", {"name": "CI"}, token=user.access), 201)
        assert ok(server.get("/account", token=api_key["key"]))["accountId"] == user.account_id
        assert [k["keyId"] for k in ok(server.get("/api-keys", token=user.access))["items"]] == [api_key["keyId"]]
        assert server.request("DELETE", f"/api-keys/{api_key['keyId']}", token=user.access).status == 200
        assert server.get("/account", token=api_key["key"]).status == 403     # revoked at once
        assert ok(server.get("/auth/profile", token=user.access))["email"] == user.email
        renamed = ok(server.request("PUT", "/auth/profile", {"name": "Strict Customer"}, token=user.access))
        assert renamed["name"] == "Strict Customer", renamed
        seen["user"] = user

    with step("connectors"):
        source = ok(server.post("/sources", {"name": "Stripe", "type": "stripe",
                                             "credentials": {"api_key": outside.stripe_key}},
                                token=user.access), 201)
        tested = server.post(f"/sources/{source['sourceId']}/test", token=user.access)
        assert tested.status == 200 and tested.json["data"]["lastTest"]["ok"] is True, tested
        renamed = ok(server.request("PUT", f"/sources/{source['sourceId']}", {"name": "Stripe (live)"},
                                    token=user.access))
        assert renamed["name"] == "Stripe (live)", renamed
        assert ok(server.get(f"/sources/{source['sourceId']}", token=user.access))["credentials"] == {
            "api_key": "set"}
        # OAuth: initiate, the user's consent at the platform, the platform's redirect back
        started = ok(server.post("/integrations/hubspot/oauth/initiate",
                                 {"returnUrl": f"{APP}/sources", "name": "HubSpot"}, token=user.access))
        assert started["authUrl"] and started["state"]
        status, headers, _ = fake_platforms.fetch(started["authUrl"])
        assert status == 302, (status, headers)
        back = server.visit(headers["location"])
        assert back.status == 302 and back.headers["location"].startswith(f"{APP}/sources?"), back
        assert "status=connected" in back.headers["location"], back.headers["location"]
        listed = {s["type"]: s for s in ok(server.get("/sources", token=user.access))["items"]}
        assert set(listed) == {"stripe", "hubspot"}, listed
        assert listed["hubspot"]["credentials"].get("access_token") == "set", listed

    with step("backup"):
        job = ok(server.post("/jobs", {"sourceId": source["sourceId"], "name": "Customers and products",
                                       "schedule": {"frequency": "manual"},
                                       "endpoints": ["customers", "products"]}, token=user.access), 201)
        run_id = ok(server.post(f"/jobs/{job['jobId']}/run", token=user.access), 202)["runId"]

        def finished():
            run = ok(server.get(f"/runs/{run_id}", token=user.access))
            return run if run["status"] not in ("pending", "running") else None

        run = server.eventually(finished, timeout=90, interval=0.5)
        assert run["status"] == "completed", f"the run ended {run['status']}: {run.get('error')}"
        # localstripe also holds the billing plans' products
        assert run["records"] >= CUSTOMERS + PRODUCTS, run
        assert [r["runId"] for r in ok(server.get(f"/jobs/{job['jobId']}/runs", token=user.access))["items"]] \
            == [run_id]
        assert ok(server.get(f"/jobs/{job['jobId']}", token=user.access))["stats"]["completed"] == 1
        assert [j["jobId"] for j in ok(server.get("/jobs", token=user.access))["items"]] == [job["jobId"]]
        renamed = ok(server.request("PUT", f"/jobs/{job['jobId']}", {"name": "Stripe: customers, products"},
                                    token=user.access))
        assert renamed["name"] == "Stripe: customers, products", renamed

    with step("data"):
        def indexed():
            listed = ok(server.get(f"/data/files?runId={run_id}", token=user.access))["items"]
            return listed if len(listed) == 2 and all(f["records"] is not None for f in listed) else None

        files = {f["name"]: f for f in server.eventually(indexed, timeout=60, interval=0.5)}
        first = ok(server.get("/data/files?limit=1", token=user.access))
        assert len(first["items"]) == 1 and first["nextCursor"], first
        rest = ok(server.get(f"/data/files?limit=1&cursor={first['nextCursor']}", token=user.access))
        assert rest["items"] and rest["items"][0]["fileId"] != first["items"][0]["fileId"]
        customers, products = files["customers.jsonl.gz"], files["products.jsonl.gz"]
        assert customers["records"] == CUSTOMERS, customers
        assert ok(server.get(f"/data/files/{customers['fileId']}", token=user.access))["sha256"] \
            == customers["sha256"]
        body = fetch(ok(server.get(f"/data/files/{customers['fileId']}/download-url",
                                   token=user.access))["url"])
        assert hashlib.sha256(body).hexdigest() == customers["sha256"]
        assert ok(server.get(f"/data/tree?sourceId={source['sourceId']}", token=user.access))["items"]
        assert ok(server.post("/data/search", {"query": "cust"}, token=user.access))["items"]
        assert server.request("DELETE", f"/data/files/{products['fileId']}", token=user.access).status == 200
        restored = ok(server.post(f"/data/files/{products['fileId']}/restore", token=user.access))
        assert restored["deleted"] is False and restored["sha256"] == products["sha256"]
        export = ok(server.post("/data/export", {"runId": run_id}, token=user.access), 202)

        def exported():
            state = ok(server.get(f"/data/exports/{export['exportId']}", token=user.access))
            return state if state["status"] not in ("pending", "running") else None

        state = server.eventually(exported, timeout=60, interval=0.5)
        assert state["status"] == "completed" and state["files"] == 2, state
        archive = zipfile.ZipFile(io.BytesIO(fetch(state["url"])))
        assert len(archive.namelist()) == 2 and archive.testzip() is None
        server.eventually(lambda: [m for m in emails(server, user.email)
                                   if "export" in (m.get("subject") or "").lower()], timeout=30)
        assert ok(server.get("/account/usage", token=user.access))["storageBytes"]["used"] > 0

    with step("billing"):
        checkout = outside.checkout
        before = len(checkout.checkouts)
        ok(server.post("/billing/checkout", {"planId": "pro", "successUrl": f"{APP}/billing/done",
                                             "cancelUrl": f"{APP}/billing"}, token=user.access))
        sent = checkout.checkouts[before]
        session, _ = checkout.complete(sent["answer"]["id"], BILLING_KEY)
        payload = payload_of(event("checkout.session.completed", session))
        delivered = server.post("/billing/webhook", payload.encode(), headers={
            "content-type": "application/json; charset=utf-8",
            "stripe-signature": signature(payload, WEBHOOK_SECRET)})
        assert delivered.status == 200 and delivered.json["data"]["applied"] is True, delivered
        state = ok(server.get("/billing/subscription", token=user.access))
        assert state["plan"] == "pro" and state["status"] == "active", state
        portal = ok(server.post("/billing/portal", {"returnUrl": f"{APP}/billing"}, token=user.access))
        assert portal["url"].startswith("https://billing.stripe.com/"), portal
        assert [i["amount"] for i in ok(server.get("/billing/invoices", token=user.access))["items"]] == [99.0]

    with step("analytics"):
        overview = ok(server.get("/analytics/overview", token=user.access))
        assert overview["runs"]["completed"] == 1 and overview["sources"] == 2, overview
        assert overview["storageBytes"] == sum(f["size"] for f in files.values()), overview
        assert len(ok(server.get("/analytics/timeseries?days=7", token=user.access))["points"]) == 7
        events = ok(server.get("/activity", token=user.access))["items"]
        kinds = {e["type"] for e in events}
        assert "billing.plan.change" in kinds, kinds
        assert ok(server.get(f"/activity/{events[0]['eventId']}", token=user.access)) == events[0]
        assert ok(server.get("/activity/stats", token=user.access))["week"]["total"] >= len(events)
        assert ok(server.get("/system/status", token=user.access))["status"] in ("ok", "degraded")

    with step("more"):
        # an earlier version restored over a newer one (a copy keeping the retention tag)
        key = f"data/{user.account_id}/{source['sourceId']}/{run_id}/products.jsonl.gz"
        server.aws("s3").put_object(Bucket="listbackup-data-dev", Key=key, Body=b"overwritten")
        restored = ok(server.post(f"/data/files/{products['fileId']}/restore", token=user.access))
        assert restored["deleted"] is False and len(restored["versions"]) >= 3, restored
        body = fetch(ok(server.get(f"/data/files/{products['fileId']}/download-url",
                                   token=user.access))["url"])
        assert hashlib.sha256(body).hexdigest() == products["sha256"]
        # a teammate invited by e-mail
        invited = unique_email("teammate")
        pending = ok(server.post(f"/accounts/{user.account_id}/invitations",
                                 {"email": invited, "role": "viewer"}, token=user.access), 201)
        server.eventually(lambda: emails(server, invited), timeout=30)
        # "sync now" runs the source's backup again
        synced = ok(server.post(f"/sources/{source['sourceId']}/sync", token=user.access), 202)

        def synced_run():
            run = ok(server.get(f"/runs/{synced['runId']}", token=user.access))
            return run if run["status"] not in ("pending", "running") else None

        # every Stripe endpoint this time; localstripe lacks a few (prices, ...): partial
        assert server.eventually(synced_run, timeout=90, interval=0.5)["status"] in ("completed", "partial")

    with step("team"):
        root = user.account_id
        mate = register(server, email=unique_email("mate"), name="Mate", verify=True)
        before = len(emails(server, mate.email))
        invitation = ok(server.post(f"/accounts/{root}/invitations", {"email": mate.email, "role": "viewer"},
                                    token=user.access), 201)
        code = invitation_code(server, mate.email, after=before)
        listed = {i["inviteId"]: i["status"] for i in
                  ok(server.get(f"/accounts/{root}/invitations", token=user.access))["items"]}
        assert listed.get(invitation["inviteId"]) == listed.get(pending["inviteId"]) == "pending", listed
        assert ok(server.post("/invitations/accept", {"inviteCode": code}, token=mate.access))["role"] == "viewer"
        promoted = ok(server.request("PUT", f"/accounts/{root}/members/{mate.user_id}", {"role": "manager"},
                                     token=user.access))
        assert promoted["role"] == "manager", promoted
        members = {m["userId"]: m["role"] for m in
                   ok(server.get(f"/accounts/{root}/members", token=user.access))["items"]}
        assert members == {user.user_id: "owner", mate.user_id: "manager"}, members
        assert server.request("DELETE", f"/accounts/{root}/members/{mate.user_id}",
                              token=user.access).status == 200
        # the e-mailed teammate never answered: the invitation is withdrawn
        assert server.request("DELETE", f"/accounts/{root}/invitations/{pending['inviteId']}",
                              token=user.access).status == 200

    with step("accounts"):
        ok(server.request("PUT", "/account", {"name": "Strict Ltd"}, token=user.access))
        sub = ok(server.post(f"/accounts/{root}/sub-accounts", {"name": "Team East"}, token=user.access), 201)
        tree = ok(server.get(f"/accounts/{root}/hierarchy", token=user.access))["items"]
        assert [a["accountId"] for a in tree] == [root, sub["accountId"]], tree
        switch(server, user, sub["accountId"])
        current = {a["accountId"]: a["current"] for a in ok(server.get("/accounts", token=user.access))["items"]}
        assert current == {root: False, sub["accountId"]: True}, current
        switch(server, user, root)

    with step("cancel"):
        # a backup that stays running (the platform holds its answer) is cancelled
        outside.keap.hold()
        held = ok(server.post("/sources", {"name": "Keap", "type": "keap",
                                           "credentials": {"api_key": KEAP_KEY}}, token=user.access), 201)
        job = ok(server.post("/jobs", {"sourceId": held["sourceId"], "name": "Tags", "endpoints": ["tags"],
                                       "schedule": {"frequency": "manual"}}, token=user.access), 201)
        run_id = ok(server.post(f"/jobs/{job['jobId']}/run", token=user.access), 202)["runId"]
        assert outside.keap.arrived.wait(60), "the backup never reached the platform"
        cancelled = ok(server.post(f"/jobs/{job['jobId']}/runs/{run_id}/cancel", token=user.access))
        assert cancelled["status"] == "cancelled" or cancelled["cancelRequested"] is True, cancelled
        outside.keap.release()

        def ended():
            run = ok(server.get(f"/runs/{run_id}", token=user.access))
            return run if run["status"] not in ("pending", "running") else None

        assert server.eventually(ended, timeout=60, interval=0.5)["status"] == "cancelled"
        assert server.request("DELETE", f"/jobs/{job['jobId']}", token=user.access).status == 200
        assert server.request("DELETE", f"/sources/{held['sourceId']}", token=user.access).status == 200

    with step("billing cancel"):
        ended = ok(server.post("/billing/cancel", token=user.access))
        assert ended["cancelAtPeriodEnd"] is True and ended["plan"] == "pro", ended

    with step("passwords"):
        user.take(ok(server.request("PUT", "/account/password",
                                    {"currentPassword": user.password, "newPassword": NEW_PASSWORD},
                                    token=user.access)))
        user.password = NEW_PASSWORD
        before = len(emails(server, user.email))
        ok(server.post("/auth/forgot-password", {"email": user.email}))
        token = reset_token(server, user.email, after=before)
        ok(server.post("/auth/reset-password", {"token": token, "password": RESET_PASSWORD}))
        user.password = RESET_PASSWORD
        login(server, user)
        assert server.post("/auth/logout", token=user.access).status == 200
        assert server.get("/auth/profile", token=user.access).status == 403     # signed out
        login(server, user)
    return seen
