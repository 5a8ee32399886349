"""Stripe Checkout and billing portal sessions on 127.0.0.1, in front of localstripe.

localstripe (``localstripe_server.py``) keeps customers, plans, subscriptions and invoices
but has no Checkout or billing portal. This server answers those two the way Stripe
documents them and forwards every other path to localstripe, so one base URL
(``--stripe-api-base`` offline, ``LISTBACKUP_STRIPE_API_BASE`` in handler tests) serves
both:

- ``POST /v1/checkout/sessions``: checks what Stripe checks (``mode``; ``line_items`` with
  a price that exists, looked up as a localstripe plan, since localstripe's plans are its
  prices; a customer that exists; ``success_url``) and answers a ``checkout.session`` with
  its hosted ``url``. ``GET /v1/checkout/sessions/{id}`` reads one back.
- ``POST /v1/billing_portal/sessions``: needs an existing ``customer``; answers a
  ``billing_portal.session`` with its ``url``.

Every request to these two is recorded (method, path, the decoded form parameters, the
API key) for the tests to assert on: ``server.checkouts``, ``server.portals``.

:meth:`StripeCheckoutServer.complete` plays the customer paying on the hosted page: it
creates the subscription in localstripe (card attached, first invoice paid) and marks the
session complete, as Stripe does before it sends ``checkout.session.completed``.

:func:`event` and :func:`signature` build webhook deliveries the way Stripe does: an event
envelope, and the ``Stripe-Signature`` header ``t=<ts>,v1=<hex HMAC-SHA256(secret,
"<ts>.<payload>")>`` computed here with hmac (not with the stripe library the handler uses
to verify it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

API_VERSION = "2026-10-28.endive"
_SEGMENT = re.compile(r"\[([^\]]*)\]")


# --------------------------------------------------------------------------- form decoding

def decode_form(body: str) -> dict:
    """Stripe's form encoding back into nested data: ``metadata[a]=1`` -> ``{"metadata":
    {"a": "1"}}``, ``line_items[0][price]=p`` -> ``{"line_items": [{"price": "p"}]}``."""
    out: dict = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        head = key.split("[", 1)[0]
        path = [head] + _SEGMENT.findall(key[len(head):])
        node: Any = out
        for here, there in zip(path, path[1:]):
            if isinstance(node, list):
                here = int(here)
                while len(node) <= here:
                    node.append(None)
                if node[here] is None:
                    node[here] = [] if there.isdigit() else {}
                node = node[here]
            else:
                node = node.setdefault(here, [] if there.isdigit() else {})
        last = path[-1]
        if isinstance(node, list):
            index = int(last)
            while len(node) <= index:
                node.append(None)
            node[index] = value
        else:
            node[last] = value
    return out


# --------------------------------------------------------------------------- webhooks

def event(event_type: str, obj: dict, *, created: int | None = None,
          event_id: str | None = None) -> dict:
    """A Stripe event envelope around ``obj`` (``data.object``)."""
    return {"id": event_id or f"evt_{secrets.token_hex(12)}", "object": "event",
            "api_version": API_VERSION, "created": int(time.time()) if created is None else created,
            "type": event_type, "livemode": False, "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None}, "data": {"object": obj}}


def payload_of(evt: dict) -> str:
    return json.dumps(evt, separators=(",", ":"))


def signature(payload: str, secret: str, timestamp: int | None = None) -> str:
    """The Stripe-Signature header for ``payload`` signed with ``secret`` at ``timestamp``."""
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{ts}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


# --------------------------------------------------------------------------- the server

class StripeCheckoutServer:
    def __init__(self, localstripe_url: str):
        self.upstream = localstripe_url.rstrip("/")
        self.checkouts: list[dict] = []       # {"path", "params", "key", "answer"}
        self.portals: list[dict] = []
        self.sessions: dict[str, dict] = {}
        self.forwarded: list[str] = []        # "METHOD /path" of what went to localstripe
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    # ------------------------------------------------------------ life cycle

    def start(self) -> "StripeCheckoutServer":
        server_self = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):   # quiet
                pass

            def _serve(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, payload = server_self.handle(
                    self.command, self.path, dict(self.headers.items()), body)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="stripe-checkout",
                         daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "StripeCheckoutServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self.checkouts.clear()
            self.portals.clear()
            self.sessions.clear()
            self.forwarded.clear()

    # ------------------------------------------------------------ dispatch

    def handle(self, method: str, raw_path: str, headers: dict, body: bytes):
        path = urlsplit(raw_path).path
        key = _api_key(headers)
        if method == "POST" and path == "/v1/checkout/sessions":
            return self._create_checkout(key, decode_form(body.decode()))
        if method == "GET" and path.startswith("/v1/checkout/sessions/"):
            session = self.sessions.get(path.rsplit("/", 1)[1])
            return _json(200, session) if session else _error(404, "No such checkout.session", "id")
        if method == "POST" and path == "/v1/billing_portal/sessions":
            return self._create_portal(key, decode_form(body.decode()))
        return self._forward(method, raw_path, headers, body)

    def _create_checkout(self, key: str | None, params: dict):
        record = {"path": "/v1/checkout/sessions", "params": params, "key": key}
        with self._lock:
            self.checkouts.append(record)
        if not key:
            return _error(401, "You did not provide an API key.", None, "authentication_error")
        mode = params.get("mode")
        if mode not in ("payment", "setup", "subscription"):
            return _error(400, "Missing required param: mode.", "mode")
        if not params.get("success_url"):
            return _error(400, "Missing required param: success_url.", "success_url")
        items = params.get("line_items") or []
        if mode == "subscription" and not items:
            return _error(400, "line_items is required in subscription mode.", "line_items")
        for index, item in enumerate(items):
            price = (item or {}).get("price")
            if not price or self._upstream_status(key, f"/v1/plans/{price}") != 200:
                return _error(400, f"No such price: '{price}'", f"line_items[{index}][price]")
        customer = params.get("customer")
        if customer and self._upstream_status(key, f"/v1/customers/{customer}") != 200:
            return _error(400, f"No such customer: '{customer}'", "customer")
        session_id = f"cs_test_{secrets.token_hex(16)}"
        now = int(time.time())
        session = {
            "id": session_id, "object": "checkout.session", "mode": mode, "status": "open",
            "payment_status": "unpaid", "customer": customer,
            "client_reference_id": params.get("client_reference_id"),
            "success_url": params["success_url"], "cancel_url": params.get("cancel_url"),
            "metadata": params.get("metadata") or {}, "subscription": None, "livemode": False,
            "created": now, "expires_at": now + 24 * 3600, "currency": "usd",
            "url": f"https://checkout.stripe.com/c/pay/{session_id}",
        }
        with self._lock:
            self.sessions[session_id] = session
            record["answer"] = session
        return _json(200, session)

    def _create_portal(self, key: str | None, params: dict):
        record = {"path": "/v1/billing_portal/sessions", "params": params, "key": key}
        with self._lock:
            self.portals.append(record)
        if not key:
            return _error(401, "You did not provide an API key.", None, "authentication_error")
        customer = params.get("customer")
        if not customer:
            return _error(400, "Missing required param: customer.", "customer")
        if self._upstream_status(key, f"/v1/customers/{customer}") != 200:
            return _error(400, f"No such customer: '{customer}'", "customer")
        session_id = f"bps_{secrets.token_hex(12)}"
        session = {"id": session_id, "object": "billing_portal.session", "customer": customer,
                   "return_url": params.get("return_url"), "livemode": False,
                   "created": int(time.time()),
                   "url": f"https://billing.stripe.com/p/session/test_{session_id}"}
        record["answer"] = session
        return _json(200, session)

    # ------------------------------------------------------------ localstripe

    def _forward(self, method: str, raw_path: str, headers: dict, body: bytes):
        with self._lock:
            self.forwarded.append(f"{method} {urlsplit(raw_path).path}")
        keep = {k: v for k, v in headers.items()
                if k.lower() in ("authorization", "content-type", "stripe-version",
                                 "idempotency-key", "accept")}
        request = urllib.request.Request(self.upstream + raw_path, data=body or None,
                                         method=method, headers=keep)
        try:
            with urllib.request.urlopen(request, timeout=15) as reply:
                return reply.status, {"content-type": reply.headers.get("content-type", "application/json")}, reply.read()
        except urllib.error.HTTPError as error:
            return error.code, {"content-type": error.headers.get("content-type", "application/json")}, error.read()

    def _upstream_status(self, key: str, path: str) -> int:
        request = urllib.request.Request(self.upstream + path, headers={"authorization": f"Bearer {key}"})
        try:
            with urllib.request.urlopen(request, timeout=15) as reply:
                return reply.status
        except urllib.error.HTTPError as error:
            return error.code

    def _stripe(self, key: str, method: str, path: str, params: dict | None = None) -> dict:
        from urllib.parse import urlencode

        data = urlencode(_flatten(params or {})).encode() if params is not None else None
        request = urllib.request.Request(
            self.upstream + path, data=data, method=method,
            headers={"authorization": f"Bearer {key}",
                     "content-type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(request, timeout=15) as reply:
            return json.loads(reply.read())

    # ------------------------------------------------------------ the customer pays

    def complete(self, session_id: str, key: str) -> tuple[dict, dict]:
        """Pay the session's subscription with a test card: a subscription exists in
        localstripe for the session's customer and price (its metadata as the session's
        ``subscription_data.metadata``), and the session is ``complete``. Answers
        (session, subscription) as Stripe would show them."""
        record = next(c for c in self.checkouts if (c.get("answer") or {}).get("id") == session_id)
        params = record["params"]
        customer = params["customer"]
        card = self._stripe(key, "POST", "/v1/payment_methods", {
            "type": "card", "card": {"number": "4242424242424242", "exp_month": "12",
                                     "exp_year": str(time.gmtime().tm_year + 3), "cvc": "123"}})
        self._stripe(key, "POST", f"/v1/payment_methods/{card['id']}/attach", {"customer": customer})
        self._stripe(key, "POST", f"/v1/customers/{customer}",
                     {"invoice_settings": {"default_payment_method": card["id"]}})
        price = params["line_items"][0]["price"]
        metadata = (params.get("subscription_data") or {}).get("metadata") or {}
        # localstripe names the price of a subscription item "plan" (its prices are plans)
        subscription = self._stripe(key, "POST", "/v1/subscriptions", {
            "customer": customer, "items": [{"plan": price}], "metadata": metadata})
        with self._lock:
            session = self.sessions[session_id]
            session.update(status="complete", payment_status="paid",
                           subscription=subscription["id"])
        return dict(session), subscription

    def subscription(self, key: str, subscription_id: str) -> dict:
        return self._stripe(key, "GET", f"/v1/subscriptions/{subscription_id}")

    def update_subscription(self, key: str, subscription_id: str, params: dict) -> dict:
        return self._stripe(key, "POST", f"/v1/subscriptions/{subscription_id}", params)

    def cancel_subscription(self, key: str, subscription_id: str) -> dict:
        """End the subscription now (what Stripe does at the end of a period that was set
        to cancel); answers the canceled subscription."""
        return self._stripe(key, "DELETE", f"/v1/subscriptions/{subscription_id}")

    def create_price(self, key: str, price_id: str, amount: int, name: str) -> None:
        """A monthly USD price (a localstripe plan) named ``price_id``, if missing."""
        if self._upstream_status(key, f"/v1/plans/{price_id}") == 200:
            return
        product = self._stripe(key, "POST", "/v1/products", {"name": name})
        self._stripe(key, "POST", "/v1/plans", {"id": price_id, "amount": str(amount),
                                                "currency": "usd", "interval": "month",
                                                "product": product["id"]})


def _flatten(params: dict, prefix: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    items = params.items() if isinstance(params, dict) else enumerate(params)
    for key, value in items:
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, (dict, list)):
            out += _flatten(value, name)
        elif isinstance(value, bool):
            out.append((name, "true" if value else "false"))
        elif value is not None:
            out.append((name, str(value)))
    return out


def _api_key(headers: dict) -> str | None:
    auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    return auth[len("Bearer "):] if auth.startswith("Bearer ") else None


def _json(status: int, data: Any):
    return status, {"content-type": "application/json", "request-id": f"req_{secrets.token_hex(7)}"}, \
        json.dumps(data).encode()


def _error(status: int, message: str, param: str | None, kind: str = "invalid_request_error"):
    error = {"type": kind, "message": message}
    if param:
        error["param"] = param
    if status == 404 or message.startswith("No such"):
        error["code"] = "resource_missing"
    return _json(status, {"error": error})
