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
from handlers.shared.dynamo import get_many
from handlers.shared.http import ApiError
from handlers.shared.plans import PLANS_BY_ID, Plan

MAX_DEPTH = 5            # a root and four levels below it
# A failed payment leaves the plan's limits in force this long; then the account falls back
# to the free plan's limits (nothing is deleted) until a payment succeeds.
PAST_DUE_GRACE_DAYS = 7


MAX_ID_CHARS = 128


def valid_id(value: Any) -> bool:
    """Whether ``value`` can be a key of ours (a path's id may be anything a client sends)."""
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS


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
    if not valid_id(account_id):
        raise ApiError("not_found", "No such account")
    if account_id == request.account_id:
        return in_scope(request, get_account(account_id), None)
    # the path's account and the caller's, in one read
    target, home = get_many(("accounts", {"accountId": account_id}),
                            ("accounts", {"accountId": request.account_id}), consistent=False) \
        if valid_id(request.account_id) else (get_account(account_id), None)
    return in_scope(request, target, home)


def in_scope(request, target: dict | None, home: dict | None) -> dict:
    """``target`` if it is the caller's account (``request.account_id``) or below ``home``,
    the caller's account row; 404 otherwise."""
    if target is None:
        raise ApiError("not_found", "No such account")
    if target["accountId"] == request.account_id:
        return target
    if home is None or home["accountId"] != request.account_id or not is_within(target, home):
        raise ApiError("not_found", "No such account")
    return target


def ancestor_ids(account: dict) -> list[str]:
    """The ids of the ancestors ``plan_holder`` may need to read (none when the account has
    its own subscription or is a root), nearest last: a caller reading other rows anyway
    reads these with them and hands them to ``plan_holder`` as its ``cache``."""
    if account.get("ownSubscription") or not account.get("parentAccountId"):
        return []
    return [i for i in str(account.get("path") or "").split("/")[:-1] if valid_id(i)][-MAX_DEPTH:]


def plan_holder(account: dict, cache: dict[str, dict | None] | None = None) -> dict:
    """The account whose subscription sets ``account``'s plan: itself, or the nearest
    ancestor with its own subscription. The ancestors it needs are read in one
    BatchGetItem (their ids are the account's ``path``); ``cache`` holds rows already read
    (by id, None for a missing one) and receives the ones read here."""
    if account.get("ownSubscription") or not account.get("parentAccountId"):
        return account
    rows = cache if cache is not None else {}
    ids = [i for i in ancestor_ids(account) if i not in rows]
    if ids:
        found = get_many(*(("accounts", {"accountId": i}) for i in ids), consistent=False)
        rows.update(zip(ids, found))
    holder, seen = account, 0
    while holder and not holder.get("ownSubscription") and holder.get("parentAccountId") \
            and seen < MAX_DEPTH + 1:
        parent_id = holder["parentAccountId"]
        if parent_id not in rows:        # a path that disagrees with the parent chain
            rows[parent_id] = get_account(parent_id)
        parent = rows[parent_id]
        if parent is None:
            break
        holder, seen = parent, seen + 1
    return holder


def effective_plan(account: dict) -> Plan:
    """A sub-account uses its parent's plan unless it has its own subscription."""
    return plan_in_force(plan_holder(account))


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
