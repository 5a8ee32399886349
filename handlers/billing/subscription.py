"""The caller's subscription: read it, start one through Stripe Checkout, manage it in the
billing portal, cancel it at period end, list its invoices.

Everything acts on the caller's account (the token's). Checkout and the portal send the
customer back only to pages of the stage's web app; a URL elsewhere is 400 and nothing is
created. The plan itself changes only when Stripe's webhook says so (``webhook.py``).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping

from handlers.billing import config, store, stripe_api
from handlers.shared import activity, cursors
from handlers.shared.accounts import get_account, plan_holder, plan_in_force, valid_id
from handlers.shared.dynamo import as_int, get_many
from handlers.shared.http import ApiError, Request
from handlers.shared.log import get_logger
from handlers.shared.plans import PLANS_BY_ID, limit_of

logger = get_logger("billing")


def _account(request: Request) -> dict:
    account = get_account(request.account_id)
    if account is None:
        raise ApiError("not_found", "No such account")
    return account




def stripe_call(what: str) -> Callable:
    """Turn a Stripe failure into 503 ``unavailable`` (logged by type and Stripe's code)."""
    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except ApiError:
                raise
            except Exception as exc:
                if not stripe_api.is_stripe_error(exc):
                    raise
                logger.error("stripe call failed", extra={
                    "call": what, "error_type": type(exc).__name__,
                    "stripe_code": stripe_api.stripe_error_code(exc),
                    "http_status": getattr(exc, "http_status", None)})
                raise ApiError("unavailable", "The payment provider did not answer as expected; "
                                              "try again shortly") from None
        return inner
    return wrap


def plain(obj: Any) -> dict:
    """A Stripe object (or a dict) as plain JSON data."""
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return dict(obj or {})


# --------------------------------------------------------------------------- read

def subscription_view(account: dict) -> dict:
    # the account whose subscription sets this one's plan: itself or an ancestor
    holder = plan_holder(account)
    plan = plan_in_force(holder)

    def figure(used: Any, kind: str) -> dict:
        return {"used": as_int(used), "limit": limit_of(plan, kind)}

    return {
        "accountId": account["accountId"],
        "plan": plan.plan_id, "planName": plan.name,
        **store.billing_fields(holder),
        "inheritedFrom": holder["accountId"] if holder["accountId"] != account["accountId"] else None,
        "limits": {"retentionDays": plan.retention_days,
                   "mostFrequentSchedule": plan.most_frequent_schedule},
        "usage": {
            "sources": figure(account.get("sourceCount"), "sources"),
            "jobs": figure(account.get("jobCount"), "jobs"),
            "storageBytes": figure(account.get("storageBytes"), "storage_bytes"),
            "subAccounts": figure(account.get("subAccountCount"), "sub_accounts"),
        },
    }


def get_subscription(request: Request) -> dict:
    return subscription_view(_account(request))


# --------------------------------------------------------------------------- checkout

def _checked_url(body: Mapping[str, Any], field: str) -> str:
    url = body[field]
    if not config.url_allowed(url):
        raise ApiError("validation_failed", f"{field} must be a page of this stage's web app",
                       fields=[field])
    return url


@stripe_call("customer")
def _customer(client, request: Request, account: dict, user: dict | None) -> str:
    """The account's Stripe customer, created on first use with the account id in its
    metadata (a second customer created by a racing request is deleted again); ``user``:
    the caller's row (their address goes on the customer)."""
    existing = account.get("stripeCustomerId")
    if existing:
        return str(existing)
    params: dict[str, Any] = {"name": str(account.get("name") or "")[:256],
                              "metadata": {"accountId": account["accountId"]}}
    if user and user.get("email"):
        params["email"] = user["email"]
    created = client.v1.customers.create(params=params)["id"]
    winner = store.link_customer(account["accountId"], created)
    if winner != created:
        try:
            client.v1.customers.delete(created)
        except Exception as exc:   # an orphan customer with no subscription costs nothing
            logger.warning("orphan customer not deleted", extra={"error_type": type(exc).__name__})
    if not winner:
        raise ApiError("conflict", "The account changed meanwhile; try again")
    return winner


@stripe_call("checkout.sessions.create")
def _checkout_session(client, params: dict) -> dict:
    return plain(client.v1.checkout.sessions.create(params=params))


def create_checkout(request: Request) -> dict:
    body = request.body
    plan = PLANS_BY_ID[body["planId"]]
    success_url = _checked_url(body, "successUrl")
    cancel_url = _checked_url(body, "cancelUrl")
    price = config.price_of(plan.plan_id)
    if not price:
        raise ApiError("unavailable", f"The {plan.name} plan is not on sale on this stage")
    # the account and the caller (for a new customer's address), in one read
    account, user = get_many(("accounts", {"accountId": request.account_id}),
                             ("users", {"userId": request.user_id}), consistent=False) \
        if valid_id(request.account_id) and valid_id(request.user_id) else (_account(request), None)
    if account is None:
        raise ApiError("not_found", "No such account")
    if store.has_live_subscription(account):
        raise ApiError("conflict", "The account already has a subscription; change plans in the "
                                   "billing portal (POST /billing/portal)")
    client = stripe_api.client()
    customer = _customer(client, request, account, user)
    metadata = {"accountId": account["accountId"], "planId": plan.plan_id}
    session = _checkout_session(client, {
        "mode": "subscription", "customer": customer,
        "client_reference_id": account["accountId"],
        "line_items": [{"price": price, "quantity": 1}],
        "success_url": success_url, "cancel_url": cancel_url,
        "metadata": metadata, "subscription_data": {"metadata": metadata},
    })
    activity.record_request(request, "billing.checkout", "plan", plan.plan_id,
                            details={"sessionId": session.get("id", "")})
    return {"url": session["url"]}


# --------------------------------------------------------------------------- portal

@stripe_call("billing_portal.sessions.create")
def _portal_session(client, params: dict) -> dict:
    return plain(client.v1.billing_portal.sessions.create(params=params))


def create_portal(request: Request) -> dict:
    return_url = _checked_url(request.body, "returnUrl")
    account = _account(request)
    customer = account.get("stripeCustomerId")
    if not customer:
        raise ApiError("conflict", "This account has no billing account yet; subscribe first "
                                   "(POST /billing/checkout)")
    session = _portal_session(stripe_api.client(), {"customer": customer, "return_url": return_url})
    activity.record_request(request, "billing.portal", "account", account["accountId"])
    return {"url": session["url"]}


# --------------------------------------------------------------------------- cancel

@stripe_call("subscriptions.update")
def _cancel_at_period_end(client, subscription_id: str) -> dict:
    return plain(client.v1.subscriptions.update(subscription_id,
                                                 params={"cancel_at_period_end": True}))


def cancel_subscription(request: Request) -> dict:
    account = _account(request)
    subscription_id = account.get("subscriptionId")
    if not store.has_live_subscription(account):
        raise ApiError("conflict", "This account has no subscription to cancel")
    if not account.get("cancelAtPeriodEnd"):
        updated = _cancel_at_period_end(stripe_api.client(), subscription_id)
        account = store.mark_cancel_at_period_end(
            account["accountId"], subscription_id, bool(updated.get("cancel_at_period_end"))) \
            or _account(request)
        activity.record_request(request, "billing.cancel", "subscription", subscription_id,
                                details={"plan": str(account.get("plan") or "free")})
    return subscription_view(account)


# --------------------------------------------------------------------------- invoices

@stripe_call("invoices.list")
def _invoices(client, params: dict) -> dict:
    return plain(client.v1.invoices.list(params=params))


def _amount(value: Any) -> float | None:
    return None if value is None else as_int(value) / 100


def invoice_view(invoice: Mapping[str, Any]) -> dict:
    total = invoice.get("total", invoice.get("amount_due"))
    return {
        "invoiceId": invoice.get("id"), "number": invoice.get("number"),
        "status": invoice.get("status"), "currency": invoice.get("currency"),
        "amount": _amount(total), "amountPaid": _amount(invoice.get("amount_paid")),
        "amountDue": _amount(invoice.get("amount_due")),
        "createdAt": store.iso_of(invoice.get("created")),
        "periodStart": store.iso_of(invoice.get("period_start")),
        "periodEnd": store.iso_of(invoice.get("period_end")),
        "hostedInvoiceUrl": invoice.get("hosted_invoice_url"),
        "invoicePdf": invoice.get("invoice_pdf"),
    }


def list_invoices(request: Request) -> dict:
    scope = f"{request.account_id}:invoices"
    limit = cursors.limit_of(request.query)
    start = cursors.decode(request.query.get("cursor"), scope)
    account = _account(request)
    customer = account.get("stripeCustomerId")
    if not customer:
        return cursors.page([], None, scope)
    params: dict[str, Any] = {"customer": customer, "limit": limit}
    if start:
        after = start.get("after")
        if not isinstance(after, str) or not after:
            raise ApiError("invalid_request", "The cursor is not valid for this list", fields=["cursor"])
        params["starting_after"] = after
    listed = _invoices(stripe_api.client(), params)
    items = [invoice_view(plain(i)) for i in listed.get("data") or []]
    last = {"after": items[-1]["invoiceId"]} if listed.get("has_more") and items else None
    return cursors.page(items, last, scope)
