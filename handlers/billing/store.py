"""Billing state: the subscription fields of an account row, the customer -> account links
and the processed webhook events.

On the account row (accounts table): ``plan`` (what the subscription sells, ``free``
without one), ``ownSubscription``, ``stripeCustomerId``, ``subscriptionId``,
``subscriptionStatus`` (Stripe's word), ``currentPeriodEnd`` and ``pastDueSince`` (epoch
seconds), ``cancelAtPeriodEnd`` and ``billingUpdatedAt``: the ``created`` time of the
latest Stripe event applied. A write from an event is conditional on that stamp, so an
event older than the state it would overwrite changes nothing (Stripe does not deliver in
order).

Tables of the billing service: ``billing-customers`` (a Stripe customer id -> its account,
written when checkout creates the customer) and ``billing-events`` (ids of processed
events, kept 30 days by TTL, put conditionally - with the change the event makes - so each
event is applied once; see ``webhook.py``).
"""

from __future__ import annotations

from typing import Any, Mapping

from botocore.exceptions import ClientError

from handlers.shared import clock
from handlers.shared.accounts import get_account, grace_ends_at
from handlers.shared.clients import table
from handlers.shared.dynamo import transact

EVENT_RETENTION_DAYS = 30        # Stripe retries for 3 days and keeps events for 30
LIVE_STATUSES = ("active", "trialing", "past_due", "unpaid")
PAYING_STATUSES = ("active", "trialing")
LATE_STATUSES = ("past_due", "unpaid")
ENDED_STATUSES = ("canceled", "incomplete_expired", "paused")


def _condition_failed(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


# --------------------------------------------------------------------------- customers

def link_customer(account_id: str, customer_id: str) -> str:
    """Make ``customer_id`` the account's Stripe customer unless it already has one, and
    record the customer -> account link, in one transaction; the account's customer id
    (the winner of a race; "" when the account is gone)."""
    reasons = transact([
        {"Update": {
            "TableName": table("accounts").name, "Key": {"accountId": account_id},
            "UpdateExpression": "SET stripeCustomerId = :customer",
            "ConditionExpression": "attribute_exists(accountId) AND "
                                   "(attribute_not_exists(stripeCustomerId) OR stripeCustomerId = :customer)",
            "ExpressionAttributeValues": {":customer": customer_id}}},
        {"Put": {"TableName": table("billing-customers").name,
                 "Item": {"customerId": customer_id, "accountId": account_id,
                          "createdAt": clock.iso()}}},
    ])
    if reasons is None:
        return customer_id
    if reasons[0] != "ConditionalCheckFailed":
        raise RuntimeError(f"customer link cancelled: {reasons}")
    current = get_account(account_id) or {}
    return str(current.get("stripeCustomerId") or "")


# --------------------------------------------------------------------------- account state

def apply_item(account_id: str, created: int, *, sets: Mapping[str, Any],
               removes: tuple[str, ...] = (), if_not_exists: Mapping[str, Any] | None = None,
               subscription: str | None = None, or_none: bool = False) -> dict:
    """The transaction entry writing billing attributes from an event created at
    ``created`` (epoch seconds), conditional on no later event having been applied already
    and (with ``subscription``) on the account's subscription being that one (``or_none``:
    or none yet)."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {":created": created, ":now": clock.iso()}
    parts = ["billingUpdatedAt = :created", "updatedAt = :now"]
    for index, (name, value) in enumerate(sets.items()):
        names[f"#s{index}"] = name
        values[f":s{index}"] = value
        parts.append(f"#s{index} = :s{index}")
    for index, (name, value) in enumerate((if_not_exists or {}).items()):
        names[f"#n{index}"] = name
        values[f":n{index}"] = value
        parts.append(f"#n{index} = if_not_exists(#n{index}, :n{index})")
    expression = "SET " + ", ".join(parts)
    if removes:
        for index, name in enumerate(removes):
            names[f"#r{index}"] = name
        expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(removes)))
    condition = ("attribute_exists(accountId) AND (attribute_not_exists(billingUpdatedAt) "
                 "OR billingUpdatedAt <= :created)")
    if subscription is not None:
        values[":sub"] = subscription
        if or_none:
            condition += " AND (attribute_not_exists(subscriptionId) OR subscriptionId = :sub)"
        else:
            condition += " AND subscriptionId = :sub"
    update: dict[str, Any] = {"TableName": table("accounts").name, "Key": {"accountId": account_id},
                              "UpdateExpression": expression, "ConditionExpression": condition,
                              "ExpressionAttributeValues": values}
    if names:
        update["ExpressionAttributeNames"] = names
    return {"Update": update}


def mark_cancel_at_period_end(account_id: str, subscription_id: str, value: bool) -> dict | None:
    """What ``POST /billing/cancel`` learnt from Stripe, without moving the event stamp (the
    webhook that follows carries the same fact)."""
    try:
        return table("accounts").update_item(
            Key={"accountId": account_id},
            UpdateExpression="SET cancelAtPeriodEnd = :value, updatedAt = :now",
            ConditionExpression="subscriptionId = :sub",
            ExpressionAttributeValues={":value": value, ":sub": subscription_id, ":now": clock.iso()},
            ReturnValues="ALL_NEW")["Attributes"]
    except ClientError as error:
        if _condition_failed(error):
            return None
        raise


# --------------------------------------------------------------------------- views

def status_of(account: Mapping[str, Any]) -> str:
    """active, trialing, past_due or canceled, as the API shows it."""
    if account.get("pastDueSince") is not None:
        return "past_due"
    status = str(account.get("subscriptionStatus") or "")
    if status in LATE_STATUSES:
        return "past_due"
    if status in ENDED_STATUSES:
        return "canceled"
    if status == "trialing":
        return "trialing"
    return "active"


def has_live_subscription(account: Mapping[str, Any]) -> bool:
    return bool(account.get("subscriptionId")) and \
        str(account.get("subscriptionStatus") or "") in LIVE_STATUSES


def iso_of(epoch: Any) -> str | None:
    if epoch is None:
        return None
    try:
        from datetime import datetime, timezone

        return clock.iso(datetime.fromtimestamp(int(epoch), tz=timezone.utc))
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def billing_fields(holder: Mapping[str, Any]) -> dict[str, Any]:
    """The subscription part of ``GET /billing/subscription`` for the account whose plan
    applies (the account itself, or the ancestor whose plan it uses)."""
    return {
        "status": status_of(holder),
        "subscribedPlan": str(holder.get("plan") or "free"),
        "currentPeriodEnd": iso_of(holder.get("currentPeriodEnd")),
        "cancelAtPeriodEnd": bool(holder.get("cancelAtPeriodEnd")),
        "pastDueSince": iso_of(holder.get("pastDueSince")),
        "graceEndsAt": iso_of(grace_ends_at(dict(holder))),
        "hasBillingAccount": bool(holder.get("stripeCustomerId")),
    }
