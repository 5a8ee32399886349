"""Entry point of ``listbackup-billing-{stage}-api``."""

from __future__ import annotations

from handlers.billing.routes import ROUTES
from handlers.shared.http import Request, api_handler
from handlers.shared.log import get_logger
from handlers.shared.plans import PLANS, plan_view

logger = get_logger("billing")


def list_plans(request: Request) -> dict:
    """Every plan, cheapest first; the whole catalog fits one page."""
    return {"items": [plan_view(plan) for plan in PLANS], "nextCursor": None, "currency": "usd"}


handler = logger.inject_lambda_context(api_handler(ROUTES, {"list_plans": list_plans}, logger))
