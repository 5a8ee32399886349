"""Accounts, memberships and the scope rule every handler applies.

An account row: ``accountId, name, plan, ownSubscription, parentAccountId, rootAccountId,
path ("acc_root/acc_child/..."), depth, createdAt, updatedAt`` plus usage counters
(``sourceCount, jobCount, storageBytes, subAccountCount``, ``runsMonth``/``runsThisMonth``)
kept by atomic updates on writes. A membership row (users-accounts): ``userId, accountId,
role, createdAt``.

Billing keeps the account's subscription on the same row (handlers/billing/store.py):
``stripeCustomerId, subscriptionId, subscriptionStatus, currentPeriodEnd,
cancelAtPeriodEnd, pastDueSince`` (epoch seconds of the first failed payment; absent when
paid up) and ``billingUpdatedAt`` (the ``created`` epoch of the latest Stripe event applied).
"""

from __future__ import annotations

from typing import Any

from handlers.shared import clock
from handlers.shared.clients import table
from handlers.shared.http import ApiError
from handlers.shared.plans import PLANS_BY_ID, Plan

MAX_DEPTH = 5            # a root and four levels below it
# A failed payment leaves the plan's limits in force this long; then the account falls back
# to the free plan's limits (nothing is deleted) until a payment succeeds.
PAST_DUE_GRACE_DAYS = 7


def get_account(account_id: str | None) -> dict | None:
    if not account_id:
        return None
    return table("accounts").get_item(Key={"accountId": account_id}).get("Item")


def membership(user_id: str | None, account_id: str | None) -> dict | None:
    if not user_id or not account_id:
        return None
    return table("users-accounts").get_item(Key={"userId": user_id, "accountId": account_id}).get("Item")


def is_within(account: dict, ancestor: dict) -> bool:
    """``account`` is ``ancestor`` or below it."""
    return account["accountId"] == ancestor["accountId"] or str(account.get("path", "")).startswith(
        str(ancestor.get("path", ancestor["accountId"])) + "/")


def scoped_account(request, account_id: str) -> dict:
    """The account a path names, if it is the caller's account or one of its descendants;
    404 otherwise (another tenant's id must not be distinguishable from a missing one)."""
    target = get_account(account_id)
    if target is None:
        raise ApiError("not_found", "No such account")
    if target["accountId"] == request.account_id:
        return target
    home = get_account(request.account_id)
    if home is None or not is_within(target, home):
        raise ApiError("not_found", "No such account")
    return target


def effective_plan(account: dict) -> Plan:
    """A sub-account uses its parent's plan unless it has its own subscription."""
    seen = 0
    while account and not account.get("ownSubscription") and account.get("parentAccountId") \
            and seen < MAX_DEPTH + 1:
        parent = get_account(account["parentAccountId"])
        if parent is None:
            break
        account, seen = parent, seen + 1
    return plan_in_force(account)


def grace_ends_at(account: dict) -> int | None:
    """Epoch seconds when a past-due account's grace period ends (None: paid up)."""
    since = account.get("pastDueSince")
    if since is None:
        return None
    try:
        return int(since) + PAST_DUE_GRACE_DAYS * 86400
    except (TypeError, ValueError):
        return 0


def plan_in_force(account: dict) -> Plan:
    """The plan an account row holds, unless a payment has been failing for longer than
    the grace period: then the free plan's limits apply (data is kept)."""
    ends = grace_ends_at(account)
    if ends is not None and ends <= clock.epoch():
        return PLANS_BY_ID["free"]
    return PLANS_BY_ID.get(str(account.get("plan", "free")), PLANS_BY_ID["free"])


def account_view(account: dict, role: str | None = None) -> dict[str, Any]:
    view = {
        "accountId": account["accountId"], "name": account.get("name", ""),
        "plan": effective_plan(account).plan_id,
        "parentAccountId": account.get("parentAccountId"),
        "depth": int(account.get("depth", 0)),
        "createdAt": account.get("createdAt"), "updatedAt": account.get("updatedAt"),
    }
    if role is not None:
        view["role"] = role
    return view
