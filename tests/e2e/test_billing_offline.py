"""Billing end to end through offline mode (issue 9): the product's program served with its
Stripe API at the local Checkout/portal server in front of localstripe
(``--stripe-api-base``), the Stripe secrets and price ids given as stack settings
(``--config``), and webhooks signed the way Stripe signs them.

A free account buys pro through Checkout; the signed ``checkout.session.completed``
moves it to pro and the higher limits apply on the next request. Cancelled at period end,
it keeps pro until Stripe ends the subscription; the signed
``customer.subscription.deleted`` returns it to free, with its data kept."""

from __future__ import annotations

import json

import pytest

from tests.connectors import localstripe_server
from tests.connectors.stripe_checkout_server import (StripeCheckoutServer, event, payload_of,
                                                     signature)
from tests.e2e.harness import OfflineServer
from tests.e2e.identity import register

KEY = "sk_test_e2e_billing_000000000000000000fake"
WEBHOOK_SECRET = "whsec_e2e_billing_0000000000000000fake"
PRICES = {"starter": "price_starter_e2e", "pro": "price_pro_e2e", "enterprise": "price_enterprise_e2e"}
AMOUNTS = {"starter": 2900, "pro": 9900, "enterprise": 29900}
APP = "http://localhost:3000"          # the dev stack's web app origin


@pytest.fixture(scope="module")
def stripe():
    already = "url" in localstripe_server._state
    upstream = localstripe_server.start()
    checkout = StripeCheckoutServer(upstream).start()
    for plan_id, price in PRICES.items():
        checkout.create_price(KEY, price, AMOUNTS[plan_id], plan_id.capitalize())
    yield checkout
    checkout.stop()
    if not already:
        localstripe_server.stop()


@pytest.fixture(scope="module")
def server(stripe):
    with OfflineServer("--stripe-api-base", stripe.url,
                       "--config", f"stripeSecretKey={KEY}",
                       "--config", f"stripeWebhookSecret={WEBHOOK_SECRET}",
                       "--config", f"stripePriceIds={json.dumps(PRICES)}") as running:
        yield running


def webhook(server: OfflineServer, evt: dict, *, secret: str = WEBHOOK_SECRET):
    payload = payload_of(evt)
    return server.post("/billing/webhook", payload.encode(), headers={
        "content-type": "application/json; charset=utf-8",
        "stripe-signature": signature(payload, secret)})


def add_source(server: OfflineServer, token: str, name: str):
    return server.post("/sources", {"name": name, "type": "stripe",
                                    "credentials": {"api_key": "sk_test_platformKeyFake0001"}},
                       token=token)


def billing_state(server: OfflineServer, token: str) -> dict:
    reply = server.get("/billing/subscription", token=token)
    assert reply.status == 200, reply
    return reply.json["data"]


@pytest.fixture(scope="module")
def customer(server):
    """An owner on the free plan with the three sources it allows."""
    user = register(server)
    for index in range(3):
        assert add_source(server, user.access, f"Stripe {index}").status == 201
    return user


def test_a_signed_webhook_moves_a_free_account_to_pro_and_its_limits_apply_at_once(server, stripe, customer):
    token = customer.access
    refused = add_source(server, token, "fourth")
    assert refused.status == 402 and refused.json["code"] == "plan_limit"
    assert billing_state(server, token)["plan"] == "free"

    started = server.post("/billing/checkout", {"planId": "pro", "successUrl": f"{APP}/billing/done",
                                                "cancelUrl": f"{APP}/billing"}, token=token)
    assert started.status == 200, started
    [sent] = stripe.checkouts
    assert started.json["data"]["url"] == sent["answer"]["url"]
    assert sent["key"] == KEY and sent["params"]["mode"] == "subscription"
    assert sent["params"]["line_items"] == [{"price": PRICES["pro"], "quantity": "1"}]
    assert sent["params"]["metadata"]["accountId"] == customer.account_id

    # the customer pays on Stripe's page; Stripe sends the signed event
    session, _ = stripe.complete(sent["answer"]["id"], KEY)
    evt = event("checkout.session.completed", session)
    forged = webhook(server, evt, secret="whsec_not_the_stages")
    assert forged.status == 400 and billing_state(server, token)["plan"] == "free"
    delivered = webhook(server, evt)
    assert delivered.status == 200 and delivered.json["data"]["applied"] is True, delivered
    again = webhook(server, evt)
    assert again.status == 200 and again.json["data"]["reason"] == "duplicate"

    state = billing_state(server, token)
    assert state["plan"] == "pro" and state["status"] == "active"
    assert state["usage"]["sources"] == {"used": 3, "limit": 50}
    assert add_source(server, token, "fourth").status == 201
    source_id = server.get("/sources", token=token).json["data"]["items"][0]["sourceId"]
    hourly = server.post("/jobs", {"sourceId": source_id, "name": "Hourly",
                                   "schedule": {"frequency": "hourly"}}, token=token)
    assert hourly.status == 201, hourly
    assert server.get("/account", token=token).json["data"]["plan"] == "pro"
    kinds = {e["type"] for e in server.get("/activity", token=token).json["data"]["items"]}
    assert {"billing.checkout", "billing.plan.change"} <= kinds

    ignored = webhook(server, event("customer.created", {"id": "cus_x", "object": "customer"}))
    assert ignored.status == 200 and ignored.json["data"]["reason"] == "unhandled_type"


def test_a_cancellation_at_period_end_returns_the_account_to_free(server, stripe, customer):
    token = customer.access
    assert billing_state(server, token)["plan"] == "pro"
    cancelled = server.post("/billing/cancel", token=token)
    assert cancelled.status == 200, cancelled
    assert cancelled.json["data"]["cancelAtPeriodEnd"] is True and cancelled.json["data"]["plan"] == "pro"
    [sent] = stripe.checkouts
    subscription_id = stripe.sessions[sent["answer"]["id"]]["subscription"]
    live = stripe.subscription(KEY, subscription_id)
    assert live["cancel_at_period_end"] is True
    assert webhook(server, event("customer.subscription.updated", live)).status == 200
    assert billing_state(server, token)["plan"] == "pro"          # paid until the period ends

    portal = server.post("/billing/portal", {"returnUrl": f"{APP}/billing"}, token=token)
    assert portal.status == 200 and portal.json["data"]["url"].startswith("https://billing.stripe.com/")
    invoices = server.get("/billing/invoices", token=token)
    assert invoices.status == 200 and [i["amount"] for i in invoices.json["data"]["items"]] == [99.0]

    # the period ends: Stripe ends the subscription and says so
    ended = stripe.cancel_subscription(KEY, subscription_id)
    delivered = webhook(server, event("customer.subscription.deleted", ended))
    assert delivered.status == 200 and delivered.json["data"]["applied"] is True, delivered
    state = billing_state(server, token)
    assert state["plan"] == "free" and state["status"] == "canceled"
    assert state["usage"]["sources"] == {"used": 4, "limit": 3}
    refused = add_source(server, token, "fifth")
    assert refused.status == 402 and refused.json["code"] == "plan_limit"
    # nothing was deleted
    assert len(server.get("/sources", token=token).json["data"]["items"]) == 4
    assert len(server.get("/jobs", token=token).json["data"]["items"]) == 1
