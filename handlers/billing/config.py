"""What the stack tells the billing function: Stripe price ids per plan, where Checkout and
the portal may send a customer back, and the names of the Stripe secrets' parameters.

``STRIPE_PRICE_IDS`` is JSON ``{"starter": "price_...", "pro": "price_...", ...}`` from the
stack's ``stripePriceIds``; ``ALLOWED_RETURN_ORIGINS`` the stage's web app origins
(``corsOrigins`` and ``appUrl``).
"""

from __future__ import annotations

import functools
import json
import os

from handlers.shared import origins
from handlers.shared.plans import PLANS_BY_ID

UNCONFIGURED = "unconfigured"


@functools.cache
def _price_ids(raw: str) -> dict[str, str]:
    try:
        configured = json.loads(raw) if raw else {}
    except ValueError:
        configured = {}
    if not isinstance(configured, dict):
        return {}
    return {str(plan): str(price) for plan, price in configured.items()
            if plan in PLANS_BY_ID and isinstance(price, str) and price}


def price_ids() -> dict[str, str]:
    """plan id -> Stripe price id, for the plans the stage sells."""
    return _price_ids(os.environ.get("STRIPE_PRICE_IDS", ""))


def price_of(plan_id: str) -> str | None:
    return price_ids().get(plan_id)


def plan_of_price(price_id: str | None) -> str | None:
    """The plan a Stripe price id sells, or None for a price this stage does not know."""
    if not price_id:
        return None
    for plan_id, price in price_ids().items():
        if price == price_id:
            return plan_id
    return None


def url_allowed(url: str) -> bool:
    """Whether Stripe may send a customer to ``url``: a page on one of the stage's web app
    origins (no open redirect through a Stripe page)."""
    return origins.return_url_allowed(url)
