"""``POST /billing/webhook``: Stripe's events move accounts between plans.

1. The Stripe-Signature header must sign the raw body with the stage's webhook secret,
   within five minutes (Stripe's scheme, checked by the stripe library); otherwise 400 and
   nothing changes.
2. Event types this service does not handle answer 200 and are ignored.
3. Each event id is recorded once in ``billing-events`` (conditional put, kept 30 days), in
   the same transaction as the account change and the audit event it makes: a replay
   answers 200 and changes nothing, and an event whose processing fails leaves no trace
   (the answer is 5xx), so Stripe's retry processes it.
4. Every state write is conditional on the account's ``billingUpdatedAt``: an event created
   before the state it would overwrite is ignored (Stripe does not deliver in order).

Cost: one BatchGetItem (the event's record, the customer's link, the account the event
names), a GetItem of the linked account when the event names none, a transaction linking
a new customer (checkout), and the transaction recording the event.

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
from handlers.shared import activity, clock
from handlers.shared.accounts import get_account, valid_id
from handlers.shared.clients import table
from handlers.shared.dynamo import get_many, transact
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
    """What an event does: ``writes`` (the account change and its audit event) commit with
    the event's record; when the change's condition fails (a later event was applied, or
    the subscription is not the account's), the outcome is ``refused`` instead."""

    def __init__(self, applied: bool, reason: str, account_id: str | None = None,
                 writes: list[dict] | None = None, refused: str | None = None):
        self.applied, self.reason, self.account_id = applied, reason, account_id
        self.writes, self.refused = writes or [], refused


class Lookup:
    """The rows the event's object leads to, read with the event's record in one call."""

    def __init__(self, customer_account_id: str | None, claimed: dict | None) -> None:
        self.customer_account_id, self.claimed = customer_account_id, claimed


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
    done, lookup = _read(event)
    if done:
        return {"received": True, "applied": False, "reason": "duplicate"}
    outcome = _dispatch(event, lookup)
    if not _commit(event, outcome):
        return {"received": True, "applied": False, "reason": "duplicate"}
    logger.info("stripe event", extra={"event_type": event["type"], "applied": outcome.applied,
                                       "reason": outcome.reason, "account_id": outcome.account_id})
    return {"received": True, "applied": outcome.applied, "reason": outcome.reason}


def _read(event: dict) -> tuple[bool, Lookup]:
    """Whether the event was processed already, and its object's customer link and claimed
    account: one BatchGetItem."""
    obj = event["object"]
    customer = _id(obj.get("customer"))
    claimed_id = _claimed_id(obj)
    keys: list[tuple[str, dict]] = [("billing-events", {"eventId": event["id"]})]
    if customer:
        keys.append(("billing-customers", {"customerId": customer}))
    if claimed_id:
        keys.append(("accounts", {"accountId": claimed_id}))
    rows = get_many(*keys)
    link = rows[1] if customer else None
    claimed = rows[-1] if claimed_id else None
    return rows[0] is not None, Lookup((link or {}).get("accountId"), claimed)


def _commit(event: dict, outcome: Outcome) -> bool:
    """Record the event with its writes, in one transaction; False when another delivery of
    it was recorded first. Writes refused by their condition: the event is recorded
    alone with the ``refused`` outcome."""
    reasons = transact([_record_item(event, outcome), *outcome.writes])
    if reasons is None:
        return True
    if reasons[0] == "ConditionalCheckFailed":
        return False
    if outcome.writes and reasons[1] == "ConditionalCheckFailed":
        outcome.applied, outcome.reason, outcome.writes = False, outcome.refused or "stale", []
        return _commit(event, outcome)
    raise RuntimeError(f"the event's transaction was cancelled: {reasons}")


def _record_item(event: dict, outcome: Outcome) -> dict:
    item: dict[str, Any] = {
        "eventId": event["id"], "type": event["type"], "created": event["created"],
        "receivedAt": clock.iso(), "expiresAt": clock.ttl_after(days=store.EVENT_RETENTION_DAYS),
        "outcome": outcome.reason}
    if outcome.account_id:
        item["accountId"] = outcome.account_id
    return {"Put": {"TableName": table("billing-events").name, "Item": item,
                    "ConditionExpression": "attribute_not_exists(eventId)"}}


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


def _dispatch(event: dict, lookup: Lookup) -> Outcome:
    kind, obj = event["type"], event["object"]
    if kind == "checkout.session.completed":
        return _checkout_completed(event, obj, lookup)
    account = _account_for(obj, lookup)
    if account is None:
        return Outcome(False, "unknown_customer")
    if kind == "customer.subscription.deleted":
        return _subscription_ended(event, account, obj)
    if kind.startswith("customer.subscription."):
        return _subscription_changed(event, account, snapshot(obj))
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


def _claimed_id(obj: Mapping[str, Any]) -> str | None:
    """The account id checkout put in the object's metadata (or the session's reference)."""
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    claimed = _id(metadata.get("accountId")) or _id(obj.get("client_reference_id"))
    return claimed if valid_id(claimed) else None


def _account_for(obj: Mapping[str, Any], lookup: Lookup) -> dict | None:
    """The account a Stripe object belongs to: through its customer (linked at checkout),
    else through the account id checkout put in its metadata, if that account has no other
    customer."""
    customer = _id(obj.get("customer"))
    account_id = lookup.customer_account_id
    if account_id:
        if lookup.claimed is not None and lookup.claimed["accountId"] == account_id:
            return lookup.claimed
        return get_account(account_id)
    account = lookup.claimed
    if account is None or customer is None:
        return None
    if account.get("stripeCustomerId") not in (None, "", customer):
        return None
    if store.link_customer(account["accountId"], customer) != customer:
        return None
    return {**account, "stripeCustomerId": customer}


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


def _event_items(account: dict, action: str, resource_id: str | None, event: dict,
                 **details: Any) -> list[dict]:
    return activity.items(account_id=account["accountId"], action=action, actor=ACTOR,
                          resource_type="subscription", resource_id=resource_id,
                          details={"eventId": event["id"], "eventType": event["type"],
                                   **{k: v for k, v in details.items() if v is not None}}).items


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
    change = store.apply_item(account["accountId"], event["created"], sets=sets,
                              removes=() if late else ("pastDueSince",),
                              if_not_exists={"pastDueSince": event["created"]} if late else None)
    previous = str(account.get("plan") or "free")
    action = "billing.plan.change" if previous != snap["planId"] else "billing.subscription.update"
    return Outcome(True, "applied", account["accountId"], refused="stale", writes=[
        change, *_event_items(account, action, sub_id, event, plan=snap["planId"],
                              previousPlan=previous, status=status,
                              cancelAtPeriodEnd=snap["cancelAtPeriodEnd"])])


def _ended(event: dict, account: dict, sub_id: str, status: str) -> Outcome:
    """The subscription is over: the free plan (a sub-account uses its parent's again)."""
    root = not account.get("parentAccountId")
    change = store.apply_item(account["accountId"], event["created"],
                              sets={"plan": "free", "ownSubscription": root,
                                    "subscriptionId": sub_id, "subscriptionStatus": status,
                                    "cancelAtPeriodEnd": False},
                              removes=("pastDueSince", "currentPeriodEnd"),
                              subscription=sub_id, or_none=True)
    return Outcome(True, "applied", account["accountId"], refused="stale_or_not_current", writes=[
        change, *_event_items(account, "billing.plan.change", sub_id, event, plan="free",
                              previousPlan=str(account.get("plan") or "free"), status=status)])


def _subscription_ended(event: dict, account: dict, obj: Mapping[str, Any]) -> Outcome:
    sub_id = _id(obj.get("id"))
    if not sub_id:
        return Outcome(False, "no_subscription", account["accountId"])
    return _ended(event, account, sub_id, "canceled")


@stripe_call("subscriptions.retrieve")
def _fetch_subscription(sub_id: str) -> dict:
    return plain(stripe_api.client().v1.subscriptions.retrieve(sub_id))


def _checkout_completed(event: dict, session: Mapping[str, Any], lookup: Lookup) -> Outcome:
    if session.get("mode") != "subscription":
        return Outcome(False, "not_a_subscription")
    account = _account_for(session, lookup)
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
    plan = str(account.get("plan") or "free")
    if event["type"] == "invoice.payment_failed":
        change = store.apply_item(account["accountId"], event["created"],
                                  sets={"subscriptionStatus": "past_due"},
                                  if_not_exists={"pastDueSince": event["created"]},
                                  subscription=sub_id)
        return Outcome(True, "applied", account["accountId"], refused="stale_or_not_current",
                       writes=[change, *_event_items(account, "billing.payment.failed", sub_id, event,
                                                     invoiceId=_id(invoice.get("id")), plan=plan)])
    # invoice.paid: a past-due account is paid up again
    if account.get("pastDueSince") is None and \
            account.get("subscriptionStatus") not in store.LATE_STATUSES:
        return Outcome(False, "nothing_to_change", account["accountId"])
    change = store.apply_item(account["accountId"], event["created"],
                              sets={"subscriptionStatus": "active"}, removes=("pastDueSince",),
                              subscription=sub_id)
    return Outcome(True, "applied", account["accountId"], refused="stale_or_not_current",
                   writes=[change, *_event_items(account, "billing.payment.succeeded", sub_id, event,
                                                 invoiceId=_id(invoice.get("id")), plan=plan)])
