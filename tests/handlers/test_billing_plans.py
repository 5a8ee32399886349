"""``GET /billing/plans``: the public plan catalog of DESIGN section 7."""

from __future__ import annotations

from handlers.billing import api
from handlers.billing.routes import ROUTES
from handlers.shared.plans import GB, PLANS_BY_ID
from tests.support import LambdaContext, api_event, call

# DESIGN section 7: plan, $/month, sources, jobs, storage, retention days, sub-accounts,
# most frequent schedule (None: unlimited).
CATALOG = [
    ("free", 0, 3, 5, 5 * GB, 30, 1, "daily"),
    ("starter", 29, 10, 25, 25 * GB, 90, 2, "hourly"),
    ("pro", 99, 50, 100, 100 * GB, 365, 10, "hourly"),
    ("enterprise", 299, None, None, 1024 * GB, 7 * 365, None, "hourly"),
]


def plans(identity: dict | None = None) -> tuple[int, dict]:
    return call(api.handler, api_event("GET /billing/plans", identity=identity),
                LambdaContext("listbackup-billing-test-api"))


def test_billing_routes_and_their_roles_follow_design_section_4():
    assert {(r.route_key, r.access) for r in ROUTES} == {
        ("GET /billing/plans", "public"), ("POST /billing/webhook", "public"),
        ("GET /billing/subscription", "manager"), ("POST /billing/checkout", "owner"),
        ("POST /billing/portal", "owner"), ("POST /billing/cancel", "owner"),
        ("GET /billing/invoices", "owner")}
    assert all(r.status == 200 for r in ROUTES)


def test_plans_answer_without_a_credential():
    status, body = plans()
    assert status == 200 and body["success"] is True
    assert body["data"]["currency"] == "usd" and body["data"]["nextCursor"] is None


def test_plans_answer_a_signed_in_viewer_the_same():
    assert plans({"userId": "usr_1", "accountId": "acc_1", "role": "viewer"}) == plans()


def test_the_catalog_matches_design_section_7():
    _, body = plans()
    items = body["data"]["items"]
    assert [item["planId"] for item in items] == [row[0] for row in CATALOG]
    for item, (plan_id, price, sources, jobs, storage, retention, subs, schedule) in zip(items, CATALOG):
        assert item["name"] == plan_id.capitalize()
        assert item["monthlyPrice"] == price and item["currency"] == "usd"
        assert item["limits"] == {
            "sources": sources, "jobs": jobs, "storageBytes": storage,
            "retentionDays": retention, "subAccounts": subs, "mostFrequentSchedule": schedule}


def test_retention_is_30_90_365_and_2555_days():
    _, body = plans()
    assert [item["limits"]["retentionDays"] for item in body["data"]["items"]] == [30, 90, 365, 2555]
    assert PLANS_BY_ID["enterprise"].retention_days == 2555


def test_the_answer_carries_no_stripe_ids_or_internal_fields():
    _, body = plans()
    for item in body["data"]["items"]:
        assert set(item) == {"planId", "name", "monthlyPrice", "currency", "limits"}
