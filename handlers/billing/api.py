"""Entry point of ``listbackup-billing-{stage}-api``: the plan catalog, the caller's
subscription (``subscription``), and Stripe's webhook (``webhook``)."""

from __future__ import annotations

from handlers.billing import subscription, webhook
from handlers.billing.routes import ROUTES
from handlers.shared.http import Request, api_handler
from handlers.shared.log import get_logger
from handlers.shared.plans import PLANS, plan_view

logger = get_logger("billing")


def list_plans(request: Request) -> dict:
    """Every plan, cheapest first; the whole catalog fits one page."""
    return {"items": [plan_view(plan) for plan in PLANS], "nextCursor": None, "currency": "usd"}


OPERATIONS = {
    "list_plans": list_plans,
    "get_subscription": subscription.get_subscription,
    "create_checkout": subscription.create_checkout,
    "create_portal": subscription.create_portal,
    "cancel_subscription": subscription.cancel_subscription,
    "list_invoices": subscription.list_invoices,
    "stripe_webhook": webhook.stripe_webhook,
}

handler = logger.inject_lambda_context(api_handler(ROUTES, OPERATIONS, logger))
