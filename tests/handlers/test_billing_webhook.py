"""``POST /billing/webhook`` with real Stripe signatures (computed with hmac by the test, as
Stripe's scheme says): valid, bad signature, stale timestamp, replayed event applied once,
out-of-order events, unknown event types; what each handled event does to the account;
failures that leave the event for Stripe's retry."""

from __future__ import annotations

import base64
import json
import os
import time

import pytest

from handlers.shared import clock
from tests.connectors.stripe_checkout_server import event, payload_of, signature
from tests.handlers.test_billing_support import (  # noqa: F401  (fixtures)
    PRICES, SECRET_KEY, WEBHOOK_PARAM, WEBHOOK_SECRET, billing, deliver,
    set_parameter, stripe_server, subscribe, subscription)
from tests.handlers.test_sources_support import events, get_row, seed_tenant

DAY = 86400


@pytest.fixture
def paying(billing):
    """An owner who went through checkout and paid for pro; the webhook not yet delivered.
    Answers (identity, account row, session, subscription)."""
    _, account, me = seed_tenant("owner")
    session, sub = subscribe(billing, me, "pro")
    return me, get_row("accounts", accountId=account["accountId"]), session, sub


def with_status(sub: dict, status: str, *, plan: str | None = None, **extra) -> dict:
    """The subscription as a later event would show it."""
    changed = json.loads(json.dumps(sub))
    changed["status"] = status
    if plan is not None:
        for item in changed["items"]["data"]:
            item["plan"] = {**item["plan"], "id": PRICES[plan]}
        changed["plan"] = {**changed["plan"], "id": PRICES[plan]}
    changed.update(extra)
    return changed


def account_row(me: dict) -> dict:
    return get_row("accounts", accountId=me["accountId"])


def event_row(event_id: str) -> dict | None:
    return get_row("billing-events", eventId=event_id)


def plan_changes(me: dict) -> list[dict]:
    return events(me["accountId"], "billing.plan.change")


# --------------------------------------------------------------------------- signatures

def test_a_signed_subscription_event_moves_the_account_to_its_plan(paying):
    me, _, _, sub = paying
    evt = event("customer.subscription.created", sub)
    status, body = deliver(evt)
    assert status == 200 and body["data"] == {"received": True, "applied": True, "reason": "applied"}
    data = subscription(me)
    assert data["plan"] == "pro" and data["status"] == "active"
    assert clock.parse_iso(data["currentPeriodEnd"]).timestamp() == sub["current_period_end"]
    [change] = plan_changes(me)
    assert change["actor"] == "stripe" and change["resourceId"] == sub["id"]
    assert change["details"]["plan"] == "pro" and change["details"]["previousPlan"] == "free"
    assert change["details"]["eventId"] == evt["id"]
    row = event_row(evt["id"])
    assert row["outcome"] == "applied" and row["accountId"] == me["accountId"]
    assert row["expiresAt"] > time.time() + 29 * DAY


def test_the_webhook_needs_no_credential_and_accepts_a_base64_body(paying):
    me, _, _, sub = paying
    from handlers.billing import api
    from tests.support import LambdaContext, api_event

    evt = event("customer.subscription.created", sub)
    payload = payload_of(evt)
    raw = api_event("POST /billing/webhook", body=payload)
    raw["body"], raw["isBase64Encoded"] = base64.b64encode(payload.encode()).decode(), True
    raw["headers"]["stripe-signature"] = signature(payload, WEBHOOK_SECRET)
    result = api.handler(raw, LambdaContext())
    assert result["statusCode"] == 200, result
    assert subscription(me)["plan"] == "pro"


@pytest.mark.parametrize("case", ["wrong secret", "other body", "no header", "garbage header",
                                  "no v1", "stale", "empty body"])
def test_a_delivery_stripe_did_not_sign_is_400_and_changes_nothing(paying, case):
    me, before, _, sub = paying
    evt = event("customer.subscription.created", sub)
    payload = payload_of(evt)
    kwargs = {
        "wrong secret": {"secret": "whsec_someone_else"},
        "other body": {"header": signature(payload_of({**evt, "id": "evt_other"}), WEBHOOK_SECRET)},
        "no header": {"header": ""},
        "garbage header": {"header": "t=abc,v1=zzz"},
        "no v1": {"header": signature(payload, WEBHOOK_SECRET).replace("v1=", "v0=")},
        "stale": {"timestamp": int(time.time()) - 301},
        "empty body": {"payload": "", "header": signature("", WEBHOOK_SECRET)},
    }[case]
    status, body = deliver(evt, **kwargs)
    assert status == 400 and body["code"] == "invalid_request", body
    assert account_row(me) == before
    assert event_row(evt["id"]) is None and plan_changes(me) == []


def test_a_signature_within_the_tolerance_is_accepted(paying):
    me, _, _, sub = paying
    status, _ = deliver(event("customer.subscription.created", sub), timestamp=int(time.time()) - 240)
    assert status == 200 and subscription(me)["plan"] == "pro"


def test_a_signed_body_that_is_not_an_event_is_400(paying):
    me, before, _, _ = paying
    payload = json.dumps({"hello": "world"})
    status, body = deliver({}, payload=payload, header=signature(payload, WEBHOOK_SECRET))
    assert status == 400 and body["code"] == "invalid_request"
    assert account_row(me) == before


def test_an_unconfigured_webhook_secret_answers_503_so_stripe_retries(paying):
    me, before, _, sub = paying
    set_parameter(WEBHOOK_PARAM, "unconfigured")
    evt = event("customer.subscription.created", sub)
    status, body = deliver(evt)
    assert status == 503 and body["code"] == "unavailable"
    assert account_row(me) == before and event_row(evt["id"]) is None


# --------------------------------------------------------------------------- once, in order

def test_an_unknown_event_type_is_acknowledged_and_ignored(paying):
    me, before, _, sub = paying
    evt = event("customer.subscription.trial_will_end", sub)
    status, body = deliver(evt)
    assert status == 200 and body["data"] == {"received": True, "applied": False,
                                              "reason": "unhandled_type"}
    assert account_row(me) == before and event_row(evt["id"]) is None
    assert deliver(event("payment_intent.succeeded", {"id": "pi_1", "object": "payment_intent"}))[0] == 200


def test_a_replayed_event_is_applied_once(paying):
    me, _, _, sub = paying
    created = event("customer.subscription.created", sub, created=int(time.time()) - 60)
    assert deliver(created)[1]["data"]["applied"] is True
    ended = event("customer.subscription.deleted", with_status(sub, "canceled"))
    assert deliver(ended)[1]["data"]["applied"] is True
    assert subscription(me)["plan"] == "free"
    # Stripe delivers both again (a retry after a timeout, a manual resend)
    for evt in (created, ended, created):
        status, body = deliver(evt)
        assert status == 200 and body["data"] == {"received": True, "applied": False,
                                                  "reason": "duplicate"}
    assert subscription(me)["plan"] == "free"
    assert len(plan_changes(me)) == 2


def test_an_event_older_than_the_state_is_ignored(paying):
    me, _, _, sub = paying
    now = int(time.time())
    newer = event("customer.subscription.updated", with_status(sub, "active", plan="starter"), created=now)
    older = event("customer.subscription.created", sub, created=now - 120)
    assert deliver(newer)[1]["data"]["applied"] is True
    status, body = deliver(older)
    assert status == 200 and body["data"] == {"received": True, "applied": False, "reason": "stale"}
    assert subscription(me)["plan"] == "starter"
    assert event_row(older["id"])["outcome"] == "stale"


def test_a_late_update_does_not_revive_a_deleted_subscription(paying):
    me, _, _, sub = paying
    now = int(time.time())
    deliver(event("customer.subscription.created", sub, created=now - 300))
    assert deliver(event("customer.subscription.deleted", with_status(sub, "canceled"), created=now))[0] == 200
    late = event("customer.subscription.updated", with_status(sub, "active"), created=now - 100)
    assert deliver(late)[1]["data"]["reason"] == "stale"
    assert subscription(me)["plan"] == "free" and subscription(me)["status"] == "canceled"


def test_events_of_the_same_second_all_apply(paying):
    me, _, _, sub = paying
    now = int(time.time())
    deliver(event("customer.subscription.created", sub, created=now))
    status, body = deliver(event("customer.subscription.updated",
                                 with_status(sub, "active", cancel_at_period_end=True), created=now))
    assert body["data"]["applied"] is True
    assert subscription(me)["cancelAtPeriodEnd"] is True


# --------------------------------------------------------------------------- what events do

def test_checkout_completed_reads_the_new_subscription_from_stripe(paying):
    me, _, session, sub = paying
    status, body = deliver(event("checkout.session.completed", session))
    assert status == 200 and body["data"]["applied"] is True
    data = subscription(me)
    assert data["plan"] == "pro" and data["status"] == "active"
    assert account_row(me)["subscriptionId"] == sub["id"]


def test_a_checkout_of_another_kind_is_ignored(paying):
    me, before, session, _ = paying
    status, body = deliver(event("checkout.session.completed", {**session, "mode": "payment"}))
    assert status == 200 and body["data"]["reason"] == "not_a_subscription"
    assert account_row(me) == before


def test_when_stripe_cannot_be_read_the_event_is_left_for_the_retry(paying, monkeypatch):
    me, before, session, _ = paying
    evt = event("checkout.session.completed", session)
    base = os.environ["LISTBACKUP_STRIPE_API_BASE"]
    monkeypatch.setenv("LISTBACKUP_STRIPE_API_BASE", "http://127.0.0.1:9")   # Stripe unreachable
    status, body = deliver(evt)
    assert status == 503 and body["code"] == "unavailable"
    assert event_row(evt["id"]) is None and account_row(me) == before
    monkeypatch.setenv("LISTBACKUP_STRIPE_API_BASE", base)
    status, body = deliver(evt)                      # Stripe's retry
    assert status == 200 and body["data"]["applied"] is True
    assert subscription(me)["plan"] == "pro"


def test_a_price_the_stage_does_not_sell_changes_nothing(paying):
    me, before, _, sub = paying
    foreign = json.loads(json.dumps(sub))
    foreign["items"]["data"][0]["plan"]["id"] = "price_someone_elses"
    foreign["plan"]["id"] = "price_someone_elses"
    status, body = deliver(event("customer.subscription.created", foreign))
    assert status == 200 and body["data"]["reason"] == "unknown_price"
    assert account_row(me) == before


def test_an_event_for_a_customer_of_no_account_is_acknowledged(billing):
    sub = {"id": "sub_nobody", "object": "subscription", "customer": "cus_nobody", "status": "active",
           "items": {"data": [{"price": {"id": PRICES["pro"]}}]}, "metadata": {}}
    status, body = deliver(event("customer.subscription.created", sub))
    assert status == 200 and body["data"]["reason"] == "unknown_customer"


def test_metadata_cannot_claim_an_account_that_has_another_customer(paying, billing):
    victim, victim_before, _, _ = paying
    _, _, attacker = seed_tenant("owner")
    _, attacker_sub = subscribe(billing, attacker, "enterprise")
    forged = {**attacker_sub, "customer": "cus_unlinked_elsewhere",
              "metadata": {"accountId": victim["accountId"]}}
    status, body = deliver(event("customer.subscription.created", forged))
    assert status == 200 and body["data"]["reason"] == "unknown_customer"
    assert account_row(victim) == victim_before


def test_the_current_api_shape_price_on_items_and_period_end_on_the_item(paying):
    me, _, _, sub = paying
    modern = {"id": sub["id"], "object": "subscription", "customer": sub["customer"],
              "status": "trialing", "cancel_at_period_end": False, "metadata": {},
              "items": {"object": "list", "data": [{
                  "id": "si_1", "object": "subscription_item",
                  "price": {"id": PRICES["enterprise"], "object": "price"},
                  "current_period_end": sub["current_period_end"]}]}}
    assert deliver(event("customer.subscription.created", modern))[1]["data"]["applied"] is True
    data = subscription(me)
    assert data["plan"] == "enterprise" and data["status"] == "trialing"
    assert data["currentPeriodEnd"] is not None


def test_an_incomplete_subscription_grants_nothing_yet(paying):
    me, before, _, sub = paying
    status, body = deliver(event("customer.subscription.created", with_status(sub, "incomplete")))
    assert status == 200 and body["data"]["applied"] is False
    assert account_row(me) == before


def test_deletion_returns_the_account_to_free_and_is_recorded(paying):
    me, _, _, sub = paying
    now = int(time.time())
    deliver(event("customer.subscription.created", sub, created=now - 10))
    deliver(event("customer.subscription.updated", with_status(sub, "active", cancel_at_period_end=True),
                  created=now - 5))
    assert subscription(me)["cancelAtPeriodEnd"] is True
    status, body = deliver(event("customer.subscription.deleted", with_status(sub, "canceled"), created=now))
    assert body["data"]["applied"] is True
    data = subscription(me)
    assert data["plan"] == "free" and data["status"] == "canceled"
    assert data["cancelAtPeriodEnd"] is False and data["currentPeriodEnd"] is None
    assert [c["details"]["plan"] for c in plan_changes(me)] == ["pro", "free"]


def test_the_deletion_of_an_old_subscription_does_not_end_the_new_one(paying, billing):
    me, _, session, old = paying
    now = int(time.time())
    deliver(event("customer.subscription.created", old, created=now - 50))
    deliver(event("customer.subscription.deleted", with_status(old, "canceled"), created=now - 40))
    _, new = billing.complete(session["id"], SECRET_KEY)       # subscribes again
    deliver(event("customer.subscription.created", new, created=now - 30))
    assert subscription(me)["plan"] == "pro"
    late_again = event("customer.subscription.deleted", with_status(old, "canceled"), created=now)
    status, body = deliver(late_again)
    assert status == 200 and body["data"]["applied"] is False
    assert subscription(me)["plan"] == "pro" and account_row(me)["subscriptionId"] == new["id"]


def test_a_sub_account_with_its_own_subscription_returns_to_its_parents_plan(billing):
    _, parent, parent_me = seed_tenant("owner", plan="starter")
    _, child, child_me = seed_tenant("owner", parent=get_row("accounts", accountId=parent["accountId"]))
    assert subscription(child_me)["plan"] == "starter"
    _, sub = subscribe(billing, child_me, "enterprise")
    now = int(time.time())
    deliver(event("customer.subscription.created", sub, created=now - 10))
    assert subscription(child_me)["plan"] == "enterprise" and subscription(child_me)["inheritedFrom"] is None
    assert subscription(parent_me)["plan"] == "starter"
    deliver(event("customer.subscription.deleted", with_status(sub, "canceled"), created=now))
    data = subscription(child_me)
    assert data["plan"] == "starter" and data["inheritedFrom"] == parent["accountId"]


# --------------------------------------------------------------------------- payments

def invoice_of(sub: dict, *, modern: bool = False) -> dict:
    invoice = {"id": f"in_{int(time.time() * 1000)}", "object": "invoice",
               "customer": sub["customer"], "status": "open", "amount_due": 9900}
    if modern:
        invoice["parent"] = {"type": "subscription_details",
                             "subscription_details": {"subscription": sub["id"]}}
    else:
        invoice["subscription"] = sub["id"]
    return invoice


def test_a_failed_payment_is_past_due_with_the_plan_kept_through_the_grace_period(paying):
    me, _, _, sub = paying
    now = int(time.time())
    deliver(event("customer.subscription.created", sub, created=now - 100))
    status, body = deliver(event("invoice.payment_failed", invoice_of(sub), created=now - 50))
    assert body["data"]["applied"] is True
    data = subscription(me)
    assert data["status"] == "past_due" and data["plan"] == "pro"
    assert data["pastDueSince"] is not None
    assert clock.parse_iso(data["graceEndsAt"]).timestamp() == now - 50 + 7 * DAY
    # a second failure does not restart the grace period
    deliver(event("invoice.payment_failed", invoice_of(sub, modern=True), created=now))
    assert int(account_row(me)["pastDueSince"]) == now - 50
    assert [e["type"] for e in events(me["accountId"]) if e["type"].startswith("billing.payment")] == \
        ["billing.payment.failed", "billing.payment.failed"]


def test_after_the_grace_period_the_free_limits_apply_and_a_payment_restores_the_plan(paying):
    me, _, _, sub = paying
    now = int(time.time())
    deliver(event("customer.subscription.created", sub, created=now - 8 * DAY))
    deliver(event("invoice.payment_failed", invoice_of(sub), created=now - 8 * DAY + 60))
    data = subscription(me)
    assert data["status"] == "past_due" and data["plan"] == "free" and data["subscribedPlan"] == "pro"
    assert data["usage"]["sources"]["limit"] == 3
    status, body = deliver(event("invoice.paid", invoice_of(sub), created=now))
    assert body["data"]["applied"] is True
    data = subscription(me)
    assert data["status"] == "active" and data["plan"] == "pro" and data["pastDueSince"] is None
    assert events(me["accountId"], "billing.payment.succeeded")


def test_a_late_failure_after_the_payment_that_fixed_it_is_ignored(paying):
    me, _, _, sub = paying
    now = int(time.time())
    deliver(event("customer.subscription.created", sub, created=now - 300))
    failed = event("invoice.payment_failed", invoice_of(sub), created=now - 200)
    paid = event("invoice.paid", invoice_of(sub), created=now - 100)
    deliver(paid)          # nothing was due: no change
    assert deliver(failed)[1]["data"]["applied"] is True
    assert deliver(event("invoice.paid", invoice_of(sub), created=now))[1]["data"]["applied"] is True
    late_failure = event("invoice.payment_failed", invoice_of(sub), created=now - 150)
    assert deliver(late_failure)[1]["data"]["applied"] is False
    assert subscription(me)["status"] == "active"


def test_a_past_due_subscription_update_starts_the_grace_period_too(paying):
    me, _, _, sub = paying
    now = int(time.time())
    deliver(event("customer.subscription.updated", with_status(sub, "past_due"), created=now))
    row = account_row(me)
    assert int(row["pastDueSince"]) == now and subscription(me)["status"] == "past_due"


def test_an_invoice_of_another_subscription_or_none_changes_nothing(paying):
    me, _, _, sub = paying
    deliver(event("customer.subscription.created", sub))
    before = account_row(me)
    other = {**invoice_of(sub), "subscription": "sub_not_this_one"}
    assert deliver(event("invoice.payment_failed", other))[1]["data"]["applied"] is False
    one_off = {k: v for k, v in invoice_of(sub).items() if k != "subscription"}
    assert deliver(event("invoice.payment_failed", one_off))[1]["data"]["applied"] is False
    assert account_row(me) == before


def test_a_fault_while_applying_releases_the_event_for_stripes_retry(paying, monkeypatch):
    me, before, _, sub = paying
    from handlers.billing import store

    def broken(*args, **kwargs):
        raise RuntimeError("DynamoDB had a bad moment")

    working = store.apply_item
    monkeypatch.setattr(store, "apply_item", broken)
    evt = event("customer.subscription.created", sub)
    status, body = deliver(evt)
    assert status == 500 and body["code"] == "internal"
    assert event_row(evt["id"]) is None and account_row(me) == before
    monkeypatch.setattr(store, "apply_item", working)
    assert deliver(evt)[1]["data"]["applied"] is True


def test_nothing_reads_a_table_with_a_scan(paying, monkeypatch):
    """The webhook finds its account by key (customer link, account row), never by Scan."""
    me, _, session, sub = paying
    import botocore.client

    calls = []
    original = botocore.client.BaseClient._make_api_call

    def spy(self, operation, params):
        calls.append(operation)
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", spy)
    deliver(event("checkout.session.completed", session))
    deliver(event("invoice.payment_failed", invoice_of(sub)))
    subscription(me)
    assert calls and "Scan" not in calls


@pytest.mark.parametrize("mangle", [
    lambda e: e.update(created="1795000000"),
    lambda e: e.update(created=10 ** 40),
    lambda e: e.update(created=True),
    lambda e: e.update(id="evt_" + "x" * 300),
    lambda e: e.update(data={"object": "sub_1"}),
    lambda e: e["data"]["object"].update(items={"data": {"0": {"price": "x"}}}),
    lambda e: e["data"]["object"].update(current_period_end=10 ** 40, cancel_at="soon"),
    lambda e: e["data"]["object"].update(status=["active"]),
    lambda e: e["data"]["object"].update(customer={"id": 7}, metadata={"accountId": "a" * 5000}),
    lambda e: e["data"]["object"].update(id={"nested": True}),
])
def test_a_signed_but_malformed_event_is_a_4xx_or_ignored_never_a_fault(paying, mangle):
    me, before, _, sub = paying
    evt = event("customer.subscription.updated", json.loads(json.dumps(sub)))
    mangle(evt)
    status, body = deliver(evt)
    assert status in (200, 400), body
    assert subscription(me)["plan"] in ("free", "pro")      # nothing odd was stored
    assert account_row(me).get("currentPeriodEnd") in (None, sub["current_period_end"])
