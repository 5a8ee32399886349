"""The billing routes a customer uses, on moto with localstripe behind the local Checkout and
portal server: the subscription with usage, Checkout (what Stripe receives), the portal,
cancel at period end, invoices; roles, redirect targets, an unconfigured stage, Stripe
failures, and one Stripe client per process."""

from __future__ import annotations

import json

import pytest

from handlers.shared.clients import table
from handlers.shared.plans import GB
from tests.connectors.stripe_checkout_server import event
from tests.handlers.test_billing_support import (  # noqa: F401  (fixtures)
    APP, KEY_PARAM, PRICES, SECRET_KEY, billing, billing_call, billing_logs, checkout, deliver, set_parameter,
    stripe_server, subscribe, subscription)
from tests.handlers.test_sources_support import events, get_row, seed_tenant


def as_role(identity: dict, role: str) -> dict:
    return {**identity, "role": role}


def subscribed(server, me: dict, plan: str = "pro") -> dict:
    """``me``'s account paid for ``plan``: checkout, payment, the webhook. The subscription."""
    session, sub = subscribe(server, me, plan)
    status, body = deliver(event("checkout.session.completed", session))
    assert status == 200 and body["data"]["applied"], body
    return sub


# --------------------------------------------------------------------------- subscription

def test_a_new_account_is_on_free_with_its_usage_against_each_limit(billing):
    _, account, me = seed_tenant("owner")
    table("accounts").update_item(Key={"accountId": account["accountId"]},
                                  UpdateExpression="SET sourceCount = :s, jobCount = :j, storageBytes = :b",
                                  ExpressionAttributeValues={":s": 2, ":j": 4, ":b": GB})
    data = subscription(me)
    assert data["plan"] == "free" and data["status"] == "active" and data["subscribedPlan"] == "free"
    assert data["currentPeriodEnd"] is None and data["cancelAtPeriodEnd"] is False
    assert data["hasBillingAccount"] is False and data["inheritedFrom"] is None
    assert data["usage"] == {"sources": {"used": 2, "limit": 3}, "jobs": {"used": 4, "limit": 5},
                             "storageBytes": {"used": GB, "limit": 5 * GB},
                             "subAccounts": {"used": 0, "limit": 1}}
    assert data["limits"] == {"retentionDays": 30, "mostFrequentSchedule": "daily"}


def test_managers_read_the_subscription_viewers_may_not(billing):
    _, _, me = seed_tenant("manager")
    assert billing_call("GET /billing/subscription", me)[0] == 200
    status, body = billing_call("GET /billing/subscription", as_role(me, "viewer"))
    assert status == 403 and body["code"] == "forbidden"


def test_a_sub_account_shows_the_plan_it_inherits_and_from_whom(billing):
    _, parent, parent_me = seed_tenant("owner")
    subscribed(billing, parent_me, "pro")
    _, child, child_me = seed_tenant("owner", parent=get_row("accounts", accountId=parent["accountId"]))
    data = subscription(child_me)
    assert data["plan"] == "pro" and data["inheritedFrom"] == parent["accountId"]
    assert data["usage"]["sources"]["limit"] == 50


# --------------------------------------------------------------------------- checkout

def test_checkout_sends_stripe_a_subscription_for_the_plans_price_and_answers_its_url(billing):
    user, account, me = seed_tenant("owner")
    status, body = checkout(me, "starter")
    assert status == 200, body
    [sent] = billing.checkouts
    params, answer = sent["params"], sent["answer"]
    assert body["data"] == {"url": answer["url"]} and answer["url"].startswith("https://checkout.stripe.com/")
    assert sent["key"] == SECRET_KEY
    assert params["mode"] == "subscription"
    assert params["line_items"] == [{"price": PRICES["starter"], "quantity": "1"}]
    assert params["success_url"] == f"{APP}/billing/done?session={{CHECKOUT_SESSION_ID}}"
    assert params["cancel_url"] == f"{APP}/billing"
    assert params["client_reference_id"] == account["accountId"]
    assert params["metadata"] == {"accountId": account["accountId"], "planId": "starter"}
    assert params["subscription_data"] == {"metadata": {"accountId": account["accountId"],
                                                        "planId": "starter"}}
    # the customer: created in Stripe with the account id and the owner's address, linked
    customer_id = params["customer"]
    customer = billing._stripe(SECRET_KEY, "GET", f"/v1/customers/{customer_id}")
    assert customer["metadata"] == {"accountId": account["accountId"]}
    assert customer["email"] == user["email"]
    assert get_row("accounts", accountId=account["accountId"])["stripeCustomerId"] == customer_id
    assert get_row("billing-customers", customerId=customer_id)["accountId"] == account["accountId"]
    [recorded] = events(account["accountId"], "billing.checkout")
    assert recorded["resourceId"] == "starter" and recorded["actor"] == user["userId"]
    # nothing is bought until Stripe says so
    assert subscription(me)["plan"] == "free"


def test_a_second_checkout_reuses_the_customer(billing):
    _, _, me = seed_tenant("owner")
    assert checkout(me, "pro")[0] == 200
    assert checkout(me, "starter")[0] == 200
    first, second = billing.checkouts
    assert first["params"]["customer"] == second["params"]["customer"]
    assert [f for f in billing.forwarded if f == "POST /v1/customers"] == ["POST /v1/customers"]


@pytest.mark.parametrize("field, url", [
    ("successUrl", "https://evil.example.com/billing"),
    ("successUrl", "https://app.test.listbackup.ai.evil.com/x"),
    ("successUrl", "https://app.test.listbackup.ai@evil.com/x"),
    ("successUrl", "http://app.test.listbackup.ai/billing"),          # not the same origin
    ("successUrl", "https://app.test.listbackup.ai:8443/billing"),
    ("cancelUrl", "javascript:alert(1)"),
    ("cancelUrl", "//evil.example.com/x"),
    ("cancelUrl", "https://app.test.listbackup.ai/\nx"),
    ("cancelUrl", " https://app.test.listbackup.ai/billing"),
])
def test_checkout_refuses_a_return_url_off_the_web_app_and_creates_nothing(billing, field, url):
    _, account, me = seed_tenant("owner")
    body = {"planId": "pro", "successUrl": f"{APP}/ok", "cancelUrl": f"{APP}/no", field: url}
    status, reply = billing_call("POST /billing/checkout", me, body=body)
    assert status == 400 and reply["code"] == "validation_failed" and reply["fields"] == [field]
    assert billing.checkouts == [] and billing.forwarded == []
    assert "stripeCustomerId" not in get_row("accounts", accountId=account["accountId"])


def test_the_other_allowed_origin_and_a_default_port_are_accepted(billing):
    _, _, me = seed_tenant("owner")
    status, _ = billing_call("POST /billing/checkout", me, body={
        "planId": "pro", "successUrl": "http://localhost:3000/done",
        "cancelUrl": "https://APP.test.listbackup.ai:443/billing"})
    assert status == 200


@pytest.mark.parametrize("body, field", [
    ({"planId": "free", "successUrl": f"{APP}/a", "cancelUrl": f"{APP}/b"}, "planId"),
    ({"planId": "platinum", "successUrl": f"{APP}/a", "cancelUrl": f"{APP}/b"}, "planId"),
    ({"planId": "pro", "cancelUrl": f"{APP}/b"}, "successUrl"),
    ({"planId": "pro", "successUrl": f"{APP}/a", "cancelUrl": f"{APP}/b", "coupon": "x"}, "coupon"),
])
def test_checkout_validates_its_body(billing, body, field):
    _, _, me = seed_tenant("owner")
    status, reply = billing_call("POST /billing/checkout", me, body=body)
    assert status == 400 and reply["code"] == "validation_failed" and field in reply["fields"]
    assert billing.checkouts == []


@pytest.mark.parametrize("route, body", [
    ("POST /billing/checkout", {"planId": "pro", "successUrl": f"{APP}/a", "cancelUrl": f"{APP}/b"}),
    ("POST /billing/portal", {"returnUrl": f"{APP}/a"}),
    ("POST /billing/cancel", None),
    ("GET /billing/invoices", None),
])
@pytest.mark.parametrize("role", ["manager", "viewer"])
def test_only_owners_buy_cancel_and_see_invoices(billing, route, body, role):
    _, _, me = seed_tenant(role)
    status, reply = billing_call(route, me, body=body)
    assert status == 403 and reply["code"] == "forbidden"
    assert billing.checkouts == [] and billing.portals == [] and billing.forwarded == []


def test_checkout_while_subscribed_is_a_conflict_pointing_to_the_portal(billing):
    _, _, me = seed_tenant("owner")
    subscribed(billing, me)
    billing.reset()
    status, reply = checkout(me, "enterprise")
    assert status == 409 and reply["code"] == "conflict" and "portal" in reply["error"]
    assert billing.checkouts == []


def test_an_unconfigured_stage_answers_503_and_calls_nobody(billing):
    _, account, me = seed_tenant("owner")
    set_parameter(KEY_PARAM, "unconfigured")
    status, reply = checkout(me)
    assert status == 503 and reply["code"] == "unavailable"
    assert billing.forwarded == [] and billing.checkouts == []
    assert "stripeCustomerId" not in get_row("accounts", accountId=account["accountId"])


def test_a_plan_without_a_price_on_this_stage_is_not_on_sale(billing, monkeypatch):
    _, _, me = seed_tenant("owner")
    monkeypatch.setenv("STRIPE_PRICE_IDS", json.dumps({"pro": PRICES["pro"]}))
    status, reply = checkout(me, "enterprise")
    assert status == 503 and "not on sale" in reply["error"]


def test_a_stripe_refusal_is_503_and_the_key_never_reaches_the_logs(billing, monkeypatch, billing_logs):
    _, _, me = seed_tenant("owner")
    monkeypatch.setenv("STRIPE_PRICE_IDS", json.dumps({**PRICES, "pro": "price_does_not_exist"}))
    status, reply = checkout(me, "pro")
    assert status == 503 and reply["code"] == "unavailable"
    output = billing_logs.read()
    assert "stripe call failed" in output and '"stripe_code":"resource_missing"' in output and SECRET_KEY not in output
    assert SECRET_KEY not in json.dumps(reply)


def test_stripe_down_is_503(billing, monkeypatch):
    _, _, me = seed_tenant("owner")
    monkeypatch.setenv("LISTBACKUP_STRIPE_API_BASE", "http://127.0.0.1:9")   # nothing listens
    status, reply = checkout(me)
    assert status == 503 and reply["code"] == "unavailable"


def test_the_stripe_client_is_created_once_per_process(billing, monkeypatch):
    import stripe

    made = []
    original = stripe.StripeClient

    def counting(*args, **kwargs):
        made.append(kwargs.get("base_addresses"))
        return original(*args, **kwargs)

    monkeypatch.setattr(stripe, "StripeClient", counting)
    _, _, me = seed_tenant("owner")
    for plan in ("pro", "starter", "enterprise"):
        assert checkout(me, plan)[0] == 200
    assert made == [{"api": billing.url}]


# --------------------------------------------------------------------------- portal

def test_the_portal_needs_a_billing_account_first(billing):
    _, _, me = seed_tenant("owner")
    status, reply = billing_call("POST /billing/portal", me, body={"returnUrl": f"{APP}/billing"})
    assert status == 409 and reply["code"] == "conflict"
    assert billing.portals == []


def test_the_portal_opens_for_the_accounts_customer_and_returns_to_the_app(billing):
    _, account, me = seed_tenant("owner")
    subscribed(billing, me)
    status, reply = billing_call("POST /billing/portal", me, body={"returnUrl": f"{APP}/billing"})
    assert status == 200, reply
    [sent] = billing.portals
    assert sent["params"] == {"customer": get_row("accounts", accountId=account["accountId"])["stripeCustomerId"],
                              "return_url": f"{APP}/billing"}
    assert reply["data"] == {"url": sent["answer"]["url"]}
    assert events(account["accountId"], "billing.portal")


def test_the_portal_refuses_a_return_url_elsewhere(billing):
    _, _, me = seed_tenant("owner")
    subscribed(billing, me)
    billing.reset()
    status, reply = billing_call("POST /billing/portal", me, body={"returnUrl": "https://evil.example.com/"})
    assert status == 400 and reply["fields"] == ["returnUrl"] and billing.portals == []


# --------------------------------------------------------------------------- cancel

def test_cancel_without_a_subscription_is_a_conflict(billing):
    _, _, me = seed_tenant("owner")
    status, reply = billing_call("POST /billing/cancel", me)
    assert status == 409 and reply["code"] == "conflict"


def test_cancel_ends_the_subscription_at_period_end_and_keeps_the_plan_until_then(billing):
    _, account, me = seed_tenant("owner")
    sub = subscribed(billing, me)
    status, reply = billing_call("POST /billing/cancel", me)
    assert status == 200, reply
    assert reply["data"]["plan"] == "pro" and reply["data"]["cancelAtPeriodEnd"] is True
    assert billing.subscription(SECRET_KEY, sub["id"])["cancel_at_period_end"] is True
    assert len(events(account["accountId"], "billing.cancel")) == 1
    # asking again changes nothing more
    updates = [f for f in billing.forwarded if f == f"POST /v1/subscriptions/{sub['id']}"]
    assert billing_call("POST /billing/cancel", me)[0] == 200
    assert [f for f in billing.forwarded if f == f"POST /v1/subscriptions/{sub['id']}"] == updates
    assert len(events(account["accountId"], "billing.cancel")) == 1


# --------------------------------------------------------------------------- invoices

def test_no_billing_account_means_no_invoices(billing):
    _, _, me = seed_tenant("owner")
    status, reply = billing_call("GET /billing/invoices", me)
    assert status == 200 and reply["data"] == {"items": [], "nextCursor": None}


def test_invoices_show_number_amount_status_and_links_and_page_with_a_signed_cursor(billing):
    _, account, me = seed_tenant("owner")
    subscribed(billing, me, "pro")
    # a second subscription on the same customer: a second invoice
    billing.complete(billing.checkouts[-1]["answer"]["id"], SECRET_KEY)
    status, first = billing_call("GET /billing/invoices", me, query={"limit": "1"})
    assert status == 200, first
    [invoice] = first["data"]["items"]
    assert set(invoice) == {"invoiceId", "number", "status", "currency", "amount", "amountPaid",
                            "amountDue", "createdAt", "periodStart", "periodEnd",
                            "hostedInvoiceUrl", "invoicePdf"}
    assert invoice["status"] == "paid" and invoice["currency"] == "usd"
    assert invoice["amount"] == 99.0 and invoice["amountPaid"] == 99.0
    assert invoice["createdAt"].endswith("Z")
    cursor = first["data"]["nextCursor"]
    assert cursor
    status, second = billing_call("GET /billing/invoices", me, query={"limit": "1", "cursor": cursor})
    assert status == 200
    assert [i["invoiceId"] for i in second["data"]["items"]] != [invoice["invoiceId"]]
    assert len(second["data"]["items"]) == 1 and second["data"]["nextCursor"] is None
    # a cursor is bound to its account and cannot be forged
    _, _, other = seed_tenant("owner")
    assert billing_call("GET /billing/invoices", other, query={"cursor": cursor})[0] == 400
    assert billing_call("GET /billing/invoices", me, query={"cursor": cursor[:-2] + "xx"})[0] == 400
    assert billing_call("GET /billing/invoices", me, query={"limit": "0"})[0] == 400
