"""The Stripe connector against localstripe (a stateful fake Stripe API) on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import json
import uuid

import pytest
import stripe

from handlers.shared.connectors import model
from handlers.shared.connectors.engine import Connector, ConnectorError

# localstripe registers plain functions as aiohttp handlers.
pytestmark = pytest.mark.filterwarnings("ignore:Bare functions are deprecated:DeprecationWarning")

KEY = "sk_test_localstripeFAKEkey0001"


def stripe_platform(page_size: int) -> model.Platform:
    """The catalog's Stripe, or a Stripe-shaped platform while the catalog is missing, with
    a small page size."""
    try:
        from handlers.shared.connectors.platforms import CATALOG
        platform = CATALOG["stripe"]
    except (ImportError, KeyError):
        pagination = model.Pagination(model.CURSOR_AFTER_ID, cursor_param="starting_after",
                                      has_more_path="has_more")
        platform = model.Platform(
            id="stripe", name="Stripe", categories=("payments",), auth="api_key",
            base_url="https://api.stripe.com/v1", auth_header={"Authorization": "Bearer {api_key}"},
            endpoints=(model.Endpoint("customers", "/customers", "data", pagination),),
            test_endpoint="customers")
    endpoints = tuple(dataclasses.replace(e, pagination=dataclasses.replace(e.pagination, page_size=page_size))
                      for e in platform.endpoints)
    return dataclasses.replace(platform, endpoints=endpoints)


@pytest.fixture
def stripe_at_localstripe(localstripe_url, monkeypatch):
    monkeypatch.setenv("LISTBACKUP_PLATFORM_URLS", json.dumps({"stripe": localstripe_url}))
    return stripe.StripeClient(KEY, base_addresses={"api": localstripe_url})


def test_every_customer_exactly_once_with_a_small_page_size(stripe_at_localstripe, localstripe_url):
    run = uuid.uuid4().hex[:8]
    created = [stripe_at_localstripe.v1.customers.create(
        params={"email": f"c{n}-{run}@example.com", "name": f"Customer {n}"})["id"] for n in range(25)]

    sleeps = []
    connector = Connector(stripe_platform(5), {}, {"api_key": KEY}, sleep=sleeps.append)
    pages = connector.pages("customers")
    first = next(pages)
    assert len(first) == 5 and connector.requests == 1       # page by page
    got = [c["id"] for c in first] + [c["id"] for page in pages for c in page]

    assert len(got) == len(set(got))                          # nothing twice
    ours = [i for i in got if i in set(created)]
    assert ours == created                                    # every one, in localstripe's order
    assert connector.requests == -(-len(got) // 5)          # has_more: no extra request
    assert sleeps == []
    emails = {c["email"] for c in connector.records("customers") if c["id"] in set(created)}
    assert emails == {f"c{n}-{run}@example.com" for n in range(25)}


def test_the_stripe_test_call_succeeds(stripe_at_localstripe):
    Connector(stripe_platform(100), {}, {"api_key": KEY}).test()


def test_a_key_stripe_refuses_is_an_auth_error(stripe_at_localstripe):
    # localstripe accepts any key starting with sk_; a publishable key is refused with 401.
    secret = "pk_test_notasecretkey123"
    with pytest.raises(ConnectorError) as caught:
        Connector(stripe_platform(100), {}, {"api_key": secret}, sleep=lambda s: None).test()
    assert caught.value.kind == "auth" and caught.value.status == 401
    assert "Stripe" in caught.value.message and secret not in caught.value.message
