"""The billing service's part of the route table (DESIGN.md sections 4 and 7)."""

from handlers.shared.plans import PLANS
from handlers.shared.routing import (BOOLEAN, NULLABLE_STRING, NULLABLE_TIME, PAGE_QUERY,
                                     PLAN_LIMITS, PUBLIC, STRING, Route, nullable, obj, page)

_URL = {"type": "string", "minLength": 1, "maxLength": 2048,
        "description": "a page of this stage's web app (one of its allowed origins)"}
PAID_PLANS = [plan.plan_id for plan in PLANS if plan.monthly_price_cents > 0]

PLAN = obj({"planId": STRING, "name": STRING,
            "monthlyPrice": {"type": "number", "minimum": 0, "description": "US dollars"},
            "currency": {"type": "string", "enum": ["usd"]}, "limits": PLAN_LIMITS}, title="Plan")
_LIMIT = PLAN_LIMITS["properties"]["sources"]
_FIGURE = obj({"used": {"type": "integer"}, "limit": _LIMIT}, title="UsageFigure")
SUBSCRIPTION = obj({
    "accountId": STRING, "plan": {"type": "string", "description": "the plan in force"},
    "planName": STRING,
    "status": {"type": "string", "enum": ["active", "trialing", "past_due", "canceled"]},
    "subscribedPlan": {"type": "string", "description": "the plan the subscription is for"},
    "currentPeriodEnd": NULLABLE_TIME, "cancelAtPeriodEnd": BOOLEAN,
    "pastDueSince": NULLABLE_TIME, "graceEndsAt": NULLABLE_TIME, "hasBillingAccount": BOOLEAN,
    "inheritedFrom": nullable({"type": "string", "description": "the ancestor account whose "
                                                                "plan applies"}),
    "limits": obj({"retentionDays": PLAN_LIMITS["properties"]["retentionDays"],
                   "mostFrequentSchedule": PLAN_LIMITS["properties"]["mostFrequentSchedule"]}),
    "usage": obj({"sources": _FIGURE, "jobs": _FIGURE, "storageBytes": _FIGURE,
                  "subAccounts": _FIGURE}),
}, title="Subscription")
_AMOUNT = {"type": "number", "nullable": True, "description": "in the invoice's currency"}
INVOICE = obj({
    "invoiceId": NULLABLE_STRING, "number": NULLABLE_STRING, "status": NULLABLE_STRING,
    "currency": NULLABLE_STRING, "amount": _AMOUNT, "amountPaid": _AMOUNT, "amountDue": _AMOUNT,
    "createdAt": NULLABLE_TIME, "periodStart": NULLABLE_TIME, "periodEnd": NULLABLE_TIME,
    "hostedInvoiceUrl": NULLABLE_STRING, "invoicePdf": NULLABLE_STRING}, title="Invoice")
_REDIRECT_PAGE = obj({"url": {"type": "string", "minLength": 1,
                              "description": "the Stripe page to send the customer to"}})

ROUTES = (
    Route("GET", "/billing/plans", "list_plans", PUBLIC,
          summary="The plan catalog: price per month and limits of each plan",
          response=page(PLAN, currency={"type": "string", "enum": ["usd"]})),
    Route("GET", "/billing/subscription", "get_subscription", "manager",
          summary="The account's plan, subscription status (active, trialing, past_due, "
                  "canceled), current period end, cancel-at-period-end, and usage against "
                  "each limit",
          response=SUBSCRIPTION),
    Route("POST", "/billing/checkout", "create_checkout", "owner",
          summary="A Stripe Checkout page (subscription mode) for a paid plan; the success and "
                  "cancel URLs must be pages of this stage's web app. Answers {url}; 409 "
                  "conflict while a subscription is live (change plans in the portal)",
          body={"type": "object", "additionalProperties": False,
                "required": ["planId", "successUrl", "cancelUrl"],
                "properties": {"planId": {"type": "string", "enum": PAID_PLANS},
                               "successUrl": _URL, "cancelUrl": _URL}},
          response=_REDIRECT_PAGE),
    Route("POST", "/billing/portal", "create_portal", "owner",
          summary="A Stripe billing portal page (payment methods, invoices, plan changes) that "
                  "returns to returnUrl. Answers {url}; 409 conflict before a first checkout",
          body={"type": "object", "additionalProperties": False, "required": ["returnUrl"],
                "properties": {"returnUrl": _URL}},
          response=_REDIRECT_PAGE),
    Route("POST", "/billing/cancel", "cancel_subscription", "owner",
          summary="Cancel the subscription at the end of the current period (the plan stays "
                  "until then); 409 conflict when there is no live subscription",
          response=SUBSCRIPTION),
    Route("GET", "/billing/invoices", "list_invoices", "owner",
          summary="The account's Stripe invoices, newest first: number, amount, status, hosted "
                  "page and PDF; paginated",
          query=PAGE_QUERY, response=page(INVOICE)),
    Route("POST", "/billing/webhook", "stripe_webhook", PUBLIC,
          summary="Stripe's webhook: verified by its Stripe-Signature header (400 otherwise); "
                  "each event applied once; events of types it does not handle answer 200",
          response=obj({"received": {"type": "boolean", "enum": [True]}, "applied": BOOLEAN,
                        "reason": {"type": "string", "description": "applied, duplicate, "
                                                                    "unhandled_type, stale..."}})),
)
