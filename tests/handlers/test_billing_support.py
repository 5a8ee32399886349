"""Helpers for the billing tests (imported by test_billing_*.py; holds no tests): the
billing tables and Stripe secrets in moto, localstripe behind the local Checkout/portal
server (``tests/connectors/stripe_checkout_server.py``) as the function's Stripe API, calls
through the billing function, and signed webhook deliveries."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from components.tables import BILLING_TABLES
from tests.connectors import localstripe_server
from tests.connectors.stripe_checkout_server import (StripeCheckoutServer, event, payload_of,
                                                     signature)
from tests.support import STAGE, LambdaContext, api_event, create_tables, logging_to_stdout

SECRET_KEY = "sk_test_billing_0000000000000000000000fake"
WEBHOOK_SECRET = "whsec_test_billing_signing_secret_0000000fake"
KEY_PARAM = f"/listbackup/{STAGE}/stripe-secret-key"
WEBHOOK_PARAM = f"/listbackup/{STAGE}/stripe-webhook-secret"
APP = "https://app.test.listbackup.ai"
PRICES = {"starter": "price_starter_test", "pro": "price_pro_test",
          "enterprise": "price_enterprise_test"}
AMOUNTS = {"starter": 2900, "pro": 9900, "enterprise": 29900}


@pytest.fixture(scope="session")
def stripe_server():
    """localstripe with the stage's three prices, behind the Checkout/portal server."""
    already = "url" in localstripe_server._state
    upstream = localstripe_server.start()
    server = StripeCheckoutServer(upstream).start()
    for plan_id, price in PRICES.items():
        server.create_price(SECRET_KEY, price, AMOUNTS[plan_id], plan_id.capitalize())
    yield server
    server.stop()
    if not already:
        localstripe_server.stop()


@pytest.fixture
def billing(backend, monkeypatch, stripe_server):
    """The billing function's stage: its tables, the Stripe secrets in SSM, the price ids,
    the web app's origins, and the Stripe API redirected to the local server."""
    from handlers.billing import stripe_api

    create_tables(BILLING_TABLES)
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name=KEY_PARAM, Value=SECRET_KEY, Type="SecureString")
    ssm.put_parameter(Name=WEBHOOK_PARAM, Value=WEBHOOK_SECRET, Type="SecureString")
    monkeypatch.setenv("STRIPE_SECRET_KEY_PARAM", KEY_PARAM)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET_PARAM", WEBHOOK_PARAM)
    monkeypatch.setenv("STRIPE_PRICE_IDS", json.dumps(PRICES))
    monkeypatch.setenv("ALLOWED_RETURN_ORIGINS", f"{APP},http://localhost:3000")
    monkeypatch.setenv("LISTBACKUP_STRIPE_API_BASE", stripe_server.url)
    stripe_api.reset()
    stripe_server.reset()
    yield stripe_server
    stripe_api.reset()


@pytest.fixture
def billing_logs(capsys):
    """What the billing function logs, read with ``read()``."""
    from handlers.billing import api

    class Reader:
        def read(self) -> str:
            captured = capsys.readouterr()
            return captured.out + captured.err

    with logging_to_stdout(api.logger):
        yield Reader()


def set_parameter(name: str, value: str) -> None:
    from handlers.shared import params

    boto3.client("ssm").put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
    params.clear_cache()


# --------------------------------------------------------------------------- calls

def billing_raw(route_key: str, identity: dict | None = None, *, body: Any = None,
                query: dict | None = None, headers: dict | None = None) -> dict:
    from handlers.billing import api

    evt = api_event(route_key, identity=identity, body=body, query=query)
    evt["headers"].update(headers or {})
    return api.handler(evt, LambdaContext("listbackup-billing-test-api"))


def billing_call(route_key: str, identity: dict | None = None, **kwargs) -> tuple[int, dict]:
    result = billing_raw(route_key, identity, **kwargs)
    return result["statusCode"], json.loads(result["body"])


def deliver(evt: dict, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None,
            header: str | None = None, payload: str | None = None) -> tuple[int, dict]:
    """POST ``evt`` to the webhook as Stripe does: the exact bytes it signed."""
    body = payload if payload is not None else payload_of(evt)
    sig = header if header is not None else signature(body, secret, timestamp)
    headers = {"stripe-signature": sig, "content-type": "application/json; charset=utf-8",
               "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"}
    return billing_call("POST /billing/webhook", body=body, headers=headers)


def subscription_event(event_type: str, subscription: dict, **kwargs) -> dict:
    return event(event_type, subscription, **kwargs)


def checkout(identity: dict, plan: str = "pro") -> tuple[int, dict]:
    return billing_call("POST /billing/checkout", identity, body={
        "planId": plan, "successUrl": f"{APP}/billing/done?session={{CHECKOUT_SESSION_ID}}",
        "cancelUrl": f"{APP}/billing"})


def subscribe(server: StripeCheckoutServer, identity: dict, plan: str = "pro") -> tuple[dict, dict]:
    """Checkout through the API, then the customer pays: (session, subscription)."""
    status, body = checkout(identity, plan)
    assert status == 200, body
    session_id = body["data"]["url"].rsplit("/", 1)[1]
    return server.complete(session_id, SECRET_KEY)


def subscription(identity: dict) -> dict:
    status, body = billing_call("GET /billing/subscription", identity)
    assert status == 200, body
    return body["data"]
