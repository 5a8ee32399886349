"""``POST /billing/webhook``: Stripe's events move accounts between plans.

1. The Stripe-Signature header must sign the raw body with the stage's webhook secret,
   within five minutes (Stripe's scheme, checked by the stripe library); otherwise 400 and
   nothing changes.
2. Event types this service does not handle answer 200 and are ignored.
3. Each event id is claimed once in ``billing-events`` (conditional put, kept 30 days): a
   replay answers 200 and changes nothing. When processing fails the claim is released and
   the answer is 5xx, so Stripe's retry processes it.
4. Every state write is conditional on the account's ``billingUpdatedAt``: an event created
   before the state it would overwrite is ignored (Stripe does not deliver in order).

What each handled event does to the account the customer belongs to:

- ``checkout.session.completed``: links the customer to the account, then reads the new
  subscription from Stripe and applies it (as below).
- ``customer.subscription.created|updated``: the subscription's price is mapped to a plan
  through the stack's ``stripePriceIds``. Active or trialing: that plan. Past due or unpaid:
  that plan, ``pastDueSince`` set (after the grace period the free plan's limits apply;
  nothing is deleted). Canceled, expired or paused: the free plan. Incomplete (first payment
  pending): nothing yet.
- ``customer.subscription.deleted``: the free plan (a sub-account goes back to its
  parent's plan).
- ``invoice.payment_failed``: past due from now (the first failure starts the grace
  period). ``invoice.paid``: paid up again.

Each change is recorded in the account's activity feed (actor ``stripe``).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Mapping

from handlers.billing import config, store, stripe_api
from handlers.billing.subscription import plain, stripe_call
from handlers.shared import activity
from handlers.shared.accounts import get_account
from handlers.shared.http import ApiError, Request
from handlers.shared.log import get_logger

logger = get_logger("billing")

MAX_ID = 255
MAX_EPOCH = 10 ** 11      # year 5138: anything later is not a Stripe timestamp
HANDLED = ("checkout.session.completed", "customer.subscription.created",
           "customer.subscription.updated", "customer.subscription.deleted",
           "invoice.paid", "invoice.payment_failed")
ACTOR = "stripe"


class Outcome:
    def __init__(self, applied: bool, reason: str, account_id: str | None = None):
        self.applied, self.reason, self.account_id = applied, reason, account_id


# --------------------------------------------------------------------------- entry

def stripe_webhook(request: Request) -> dict:
    payload = _raw_body(request)
    secret = stripe_api.webhook_secret()
    if not stripe_api.verify_signature(payload, request.headers.get("stripe-signature"), secret):
        raise ApiError("invalid_request", "The Stripe-Signature header does not sign this body "
                                          "(or is too old)")
    event = _event(request.body)
    if event["type"] not in HANDLED:
        return {"received": True, "applied": False, "reason": "unhandled_type"}
    if not store.claim_event(event["id"], event["type"], event["created"]):
        return {"received": True, "applied": False, "reason": "duplicate"}
    try:
        outcome = _dispatch(event)
    except Exception:
        store.release_event(event["id"])
        raise
    store.finish_event(event["id"], outcome.reason, outcome.account_id)
    logger.info("stripe event", extra={"event_type": event["type"], "applied": outcome.applied,
                                       "reason": outcome.reason, "account_id": outcome.account_id})
    return {"received": True, "applied": outcome.applied, "reason": outcome.reason}


def _raw_body(request: Request) -> str:
    raw = (request.raw or {}).get("body") or ""
    if (request.raw or {}).get("isBase64Encoded"):
        try:
            raw = base64.b64decode(raw, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise ApiError("invalid_request", "The body is not valid base64") from None
    return raw


def _event(body: Any) -> dict:
    ok = isinstance(body, Mapping) and _id(body.get("id")) is not None \
        and isinstance(body.get("type"), str) and len(body["type"]) <= MAX_ID \
        and _epoch(body.get("created")) is not None \
        and isinstance(body.get("data"), Mapping) and isinstance(body["data"].get("object"), Mapping)
    if not ok:
        raise ApiError("invalid_request", "The body is not a Stripe event")
    return {"id": body["id"], "type": body["type"], "created": body["created"],
            "object": dict(body["data"]["object"])}


def _dispatch(event: dict) -> Outcome:
    kind, obj = event["type"], event["object"]
    if kind == "checkout.session.completed":
        return _checkout_completed(event, obj)
    if kind.startswith("customer.subscription."):
        account = _account_for(obj)
        if account is None:
            return Outcome(False, "unknown_customer")
        if kind == "customer.subscription.deleted":
            return _subscription_ended(event, account, obj)
        return _subscription_changed(event, account, snapshot(obj))
    account = _account_for(obj)
    if account is None:
        return Outcome(False, "unknown_customer")
    return _invoice(event, account, obj)


# --------------------------------------------------------------------------- accounts

def _id(value: Any) -> str | None:
    """An id field that may arrive expanded (``{"id": ...}``); None unless a plausible id."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) and 0 < len(value) <= MAX_ID else None


def _epoch(value: Any) -> int | None:
    """A Stripe timestamp (epoch seconds), or None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < MAX_EPOCH:
        return None
    return value


def _account_for(obj: Mapping[str, Any]) -> dict | None:
    """The account a Stripe object belongs to: through its customer (linked at checkout),
    else through the account id checkout put in its metadata, if that account has no other
    customer."""
    customer = _id(obj.get("customer"))
    account_id = store.account_of_customer(customer)
    if account_id:
        return get_account(account_id)
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    claimed = _id(metadata.get("accountId")) or _id(obj.get("client_reference_id"))
    if claimed is None or customer is None:
        return None
    account = get_account(claimed)
    if account is None:
        return None
    if account.get("stripeCustomerId") not in (None, "", customer):
        return None
    if store.link_customer(account["accountId"], customer) != customer:
        return None
    return get_account(claimed)


# --------------------------------------------------------------------------- subscriptions

def snapshot(sub: Mapping[str, Any]) -> dict:
    """What the account keeps of a subscription object (webhook payload or API answer, in
    current or older API versions: price or legacy plan; period end on the item or not)."""
    items = (sub.get("items") or {}).get("data") if isinstance(sub.get("items"), Mapping) else None
    first = items[0] if isinstance(items, list) and items and isinstance(items[0], Mapping) else {}
    price = _id(first.get("price")) or _id(first.get("plan")) or _id(sub.get("plan"))
    period_end = _epoch(sub.get("current_period_end")) or _epoch(first.get("current_period_end"))
    cancel_at = _epoch(sub.get("cancel_at"))
    at_end = sub.get("cancel_at_period_end") is True or (
        cancel_at is not None and period_end is not None and cancel_at <= period_end)
    status = sub.get("status") if isinstance(sub.get("status"), str) else ""
    return {"subscriptionId": _id(sub.get("id")), "status": status[:64],
            "priceId": price, "planId": config.plan_of_price(price),
            "currentPeriodEnd": period_end, "cancelAtPeriodEnd": at_end}


def _record(account: dict, action: str, resource_id: str | None, event: dict, **details: Any) -> None:
    activity.record(account_id=account["accountId"], action=action, actor=ACTOR,
                    resource_type="subscription", resource_id=resource_id,
                    details={"eventId": event["id"], "eventType": event["type"],
                             **{k: v for k, v in details.items() if v is not None}})


def _subscription_changed(event: dict, account: dict, snap: dict) -> Outcome:
    sub_id, status = snap["subscriptionId"], snap["status"]
    if not sub_id:
        return Outcome(False, "no_subscription", account["accountId"])
    if status in store.ENDED_STATUSES:
        return _ended(event, account, sub_id, status)
    if status not in store.LIVE_STATUSES:          # incomplete: the first payment is pending
        return Outcome(False, f"status_{status or 'unknown'}", account["accountId"])
    if snap["planId"] is None:
        logger.error("subscription price is not in stripePriceIds",
                     extra={"account_id": account["accountId"], "event_type": event["type"]})
        return Outcome(False, "unknown_price", account["accountId"])
    sets: dict[str, Any] = {"plan": snap["planId"], "ownSubscription": True,
                            "subscriptionId": sub_id, "subscriptionStatus": status,
                            "cancelAtPeriodEnd": snap["cancelAtPeriodEnd"]}
    if snap["currentPeriodEnd"] is not None:
        sets["currentPeriodEnd"] = snap["currentPeriodEnd"]
    late = status in store.LATE_STATUSES
    updated = store.apply(account["accountId"], event["created"], sets=sets,
                          removes=() if late else ("pastDueSince",),
                          if_not_exists={"pastDueSince": event["created"]} if late else None)
    if updated is None:
        return Outcome(False, "stale", account["accountId"])
    previous = str(account.get("plan") or "free")
    action = "billing.plan.change" if previous != snap["planId"] else "billing.subscription.update"
    _record(updated, action, sub_id, event, plan=snap["planId"], previousPlan=previous,
            status=status, cancelAtPeriodEnd=snap["cancelAtPeriodEnd"])
    return Outcome(True, "applied", account["accountId"])


def _ended(event: dict, account: dict, sub_id: str, status: str) -> Outcome:
    """The subscription is over: the free plan (a sub-account uses its parent's again)."""
    root = not account.get("parentAccountId")
    updated = store.apply(account["accountId"], event["created"],
                          sets={"plan": "free", "ownSubscription": root, "subscriptionId": sub_id,
                                "subscriptionStatus": status, "cancelAtPeriodEnd": False},
                          removes=("pastDueSince", "currentPeriodEnd"),
                          subscription=sub_id, or_none=True)
    if updated is None:
        return Outcome(False, "stale_or_not_current", account["accountId"])
    _record(updated, "billing.plan.change", sub_id, event, plan="free",
            previousPlan=str(account.get("plan") or "free"), status=status)
    return Outcome(True, "applied", account["accountId"])


def _subscription_ended(event: dict, account: dict, obj: Mapping[str, Any]) -> Outcome:
    sub_id = _id(obj.get("id"))
    if not sub_id:
        return Outcome(False, "no_subscription", account["accountId"])
    return _ended(event, account, sub_id, "canceled")


@stripe_call("subscriptions.retrieve")
def _fetch_subscription(sub_id: str) -> dict:
    return plain(stripe_api.client().v1.subscriptions.retrieve(sub_id))


def _checkout_completed(event: dict, session: Mapping[str, Any]) -> Outcome:
    if session.get("mode") != "subscription":
        return Outcome(False, "not_a_subscription")
    account = _account_for(session)
    if account is None:
        return Outcome(False, "unknown_customer")
    sub_id = _id(session.get("subscription"))
    if not sub_id:
        return Outcome(False, "no_subscription", account["accountId"])
    # The session does not say which price was bought: the subscription, read now, does.
    return _subscription_changed(event, account, snapshot(_fetch_subscription(sub_id)))


# --------------------------------------------------------------------------- invoices

def _invoice_subscription(invoice: Mapping[str, Any]) -> str | None:
    direct = _id(invoice.get("subscription"))
    if direct:
        return direct
    parent = invoice.get("parent") if isinstance(invoice.get("parent"), Mapping) else {}
    details = parent.get("subscription_details") if isinstance(parent.get("subscription_details"), Mapping) else {}
    return _id(details.get("subscription"))


def _invoice(event: dict, account: dict, invoice: Mapping[str, Any]) -> Outcome:
    sub_id = _invoice_subscription(invoice)
    if not sub_id:
        return Outcome(False, "not_a_subscription_invoice", account["accountId"])
    if event["type"] == "invoice.payment_failed":
        updated = store.apply(account["accountId"], event["created"],
                              sets={"subscriptionStatus": "past_due"},
                              if_not_exists={"pastDueSince": event["created"]}, subscription=sub_id)
        if updated is None:
            return Outcome(False, "stale_or_not_current", account["accountId"])
        _record(updated, "billing.payment.failed", sub_id, event, invoiceId=_id(invoice.get("id")),
                plan=str(updated.get("plan") or "free"))
        return Outcome(True, "applied", account["accountId"])
    # invoice.paid: a past-due account is paid up again
    if account.get("pastDueSince") is None and \
            account.get("subscriptionStatus") not in store.LATE_STATUSES:
        return Outcome(False, "nothing_to_change", account["accountId"])
    updated = store.apply(account["accountId"], event["created"],
                          sets={"subscriptionStatus": "active"}, removes=("pastDueSince",),
                          subscription=sub_id)
    if updated is None:
        return Outcome(False, "stale_or_not_current", account["accountId"])
    _record(updated, "billing.payment.succeeded", sub_id, event, invoiceId=_id(invoice.get("id")),
            plan=str(updated.get("plan") or "free"))
    return Outcome(True, "applied", account["accountId"])
