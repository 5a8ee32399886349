"""The Stripe client of the billing function: one per process, from the secret key read from
SSM at runtime.

The stripe library is imported on first use (plans and subscription reads never pay for
it). The client is cached per (key, API base): a rotated key, picked up by the parameter
cache within five minutes, gets a new client; otherwise every call reuses the first one.
``LISTBACKUP_STRIPE_API_BASE`` is set only by offline mode (``--stripe-api-base``); the
public API cannot set it, and on AWS it is absent, so the library talks to Stripe.

Nothing here logs a key, a webhook secret or a Stripe error message (which may quote what
we sent); errors are logged by type and Stripe's code.
"""

from __future__ import annotations

import os
from typing import Any

from handlers.billing.config import UNCONFIGURED
from handlers.shared.http import ApiError
from handlers.shared.params import get_parameter

TIMEOUT_SECONDS = 10        # well inside the API function's 29 s
NETWORK_RETRIES = 2         # the library retries connection errors and 409/429/5xx safely
WEBHOOK_TOLERANCE_SECONDS = 300   # Stripe's default: a signature older than this is refused

_clients: dict[tuple[str, str | None], Any] = {}


def _secret(env: str, what: str) -> str:
    name = os.environ.get(env, "")
    value = get_parameter(name).strip() if name else ""
    if not value or value == UNCONFIGURED:
        raise ApiError("unavailable", f"Billing is not configured on this stage ({what})")
    return value


def api_base() -> str | None:
    return (os.environ.get("LISTBACKUP_STRIPE_API_BASE") or "").rstrip("/") or None


def client():
    """The process's ``stripe.StripeClient`` (503 ``unavailable`` until the stage has a key)."""
    key = _secret("STRIPE_SECRET_KEY_PARAM", "no Stripe secret key")
    base = api_base()
    cached = _clients.get((key, base))
    if cached is not None:
        return cached
    import stripe

    options: dict[str, Any] = {
        "http_client": stripe.RequestsClient(timeout=TIMEOUT_SECONDS),
        "max_network_retries": NETWORK_RETRIES,
    }
    if base:
        options["base_addresses"] = {"api": base}
    _clients.clear()            # at most one live client: a rotated key replaces the old one
    created = _clients[(key, base)] = stripe.StripeClient(key, **options)
    return created


def webhook_secret() -> str:
    return _secret("STRIPE_WEBHOOK_SECRET_PARAM", "no webhook secret")


def verify_signature(payload: str, header: str | None, secret: str) -> bool:
    """Whether ``header`` (Stripe-Signature) signs ``payload`` with ``secret`` within the
    tolerance: Stripe's own scheme, checked by the library."""
    import stripe

    try:
        stripe.WebhookSignature.verify_header(payload, header, secret,
                                              tolerance=WEBHOOK_TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError:
        return False
    return True


def stripe_error_code(exc: Exception) -> str | None:
    return getattr(exc, "code", None) or None


def is_stripe_error(exc: Exception) -> bool:
    import stripe

    return isinstance(exc, stripe.StripeError)


def is_missing(exc: Exception) -> bool:
    """A 404 from Stripe (an object that does not exist, e.g. a deleted customer)."""
    return getattr(exc, "http_status", None) == 404


def reset() -> None:
    """Forget the cached client (tests)."""
    _clients.clear()
