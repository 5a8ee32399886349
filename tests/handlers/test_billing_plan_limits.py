"""Plans across the product: the source, job, sub-account and schedule-frequency limits of
each plan hold at their boundary (402 ``plan_limit``), through the services that create
or change those things; a plan change by Stripe's webhook applies at once; a lapsed
payment falls back to the free plan's limits without deleting anything.

The counters the limits read (``sourceCount``, ``jobCount``, ``subAccountCount``) are
seeded one below the limit; the last allowed create and the first refused one go through
the real API functions."""

from __future__ import annotations

import time
from typing import Any

import pytest

from handlers.shared import sources as source_store
from handlers.shared.clients import table
from handlers.shared.plans import PLANS, PLANS_BY_ID
from tests.connectors.stripe_checkout_server import event
from tests.handlers.test_billing_support import (  # noqa: F401  (fixtures)
    billing, deliver, stripe_server, subscribe, subscription)
from tests.handlers.test_sources_support import STRIPE_KEY, get_row, seed_tenant, stage  # noqa: F401
from tests.support import api_event, call

LIMITED = [p.plan_id for p in PLANS if p.sources is not None]     # free, starter, pro
DAY = 86400
HOURLY = {"frequency": "hourly", "time": "00:15"}
DAILY = {"frequency": "daily", "time": "02:00"}

pytestmark = pytest.mark.usefixtures("stage", "billing")


def service_call(service: str, route_key: str, identity: dict, *, body: Any = None,
                 path: dict | None = None) -> tuple[int, dict]:
    import importlib

    api = importlib.import_module(f"handlers.{service}.api")
    return call(api.handler, api_event(route_key, identity=identity, body=body, path=path))


def new_source(me: dict, name: str = "Stripe") -> tuple[int, dict]:
    return service_call("sources", "POST /sources", me, body={
        "name": name, "type": "stripe", "credentials": {"api_key": STRIPE_KEY}})


def new_job(me: dict, source_id: str, schedule: dict = DAILY) -> tuple[int, dict]:
    return service_call("jobs", "POST /jobs", me, body={
        "sourceId": source_id, "name": "Nightly", "schedule": schedule})


def new_sub_account(me: dict, name: str = "Branch") -> tuple[int, dict]:
    return service_call("account", "POST /accounts/{accountId}/sub-accounts", me,
                        body={"name": name}, path={"accountId": me["accountId"]})


def set_counter(account_id: str, counter: str, value: int) -> None:
    table("accounts").update_item(Key={"accountId": account_id},
                                  UpdateExpression=f"SET {counter} = :v",
                                  ExpressionAttributeValues={":v": value})


def refused(reply: tuple[int, dict]) -> bool:
    status, body = reply
    return status == 402 and body["code"] == "plan_limit"


def a_source(account: dict) -> dict:
    return source_store.create_source(account["accountId"], name="Stripe", type="stripe",
                                      settings={}, credentials={"api_key": STRIPE_KEY})


# --------------------------------------------------------------------------- each boundary

@pytest.mark.parametrize("plan_id", LIMITED)
def test_sources_up_to_the_plans_limit_and_not_one_more(plan_id):
    limit = PLANS_BY_ID[plan_id].sources
    _, account, me = seed_tenant("manager", plan=plan_id, source_count=limit - 1)
    assert new_source(me)[0] == 201
    reply = new_source(me)
    assert refused(reply) and f"allows {limit} source" in reply[1]["error"]
    assert get_row("accounts", accountId=account["accountId"])["sourceCount"] == limit


@pytest.mark.parametrize("plan_id", LIMITED)
def test_jobs_up_to_the_plans_limit_and_not_one_more(plan_id):
    limit = PLANS_BY_ID[plan_id].jobs
    _, account, me = seed_tenant("manager", plan=plan_id)
    source = a_source(account)
    set_counter(account["accountId"], "jobCount", limit - 1)
    assert new_job(me, source["sourceId"])[0] == 201
    assert refused(new_job(me, source["sourceId"]))
    assert get_row("accounts", accountId=account["accountId"])["jobCount"] == limit


@pytest.mark.parametrize("plan_id", LIMITED)
def test_sub_accounts_up_to_the_plans_limit_and_not_one_more(plan_id):
    limit = PLANS_BY_ID[plan_id].sub_accounts
    _, account, me = seed_tenant("owner", plan=plan_id)
    set_counter(account["accountId"], "subAccountCount", limit - 1)
    assert new_sub_account(me)[0] == 201
    assert refused(new_sub_account(me, "One too many"))


def test_enterprise_has_no_source_job_or_sub_account_limit():
    _, account, me = seed_tenant("owner", plan="enterprise", source_count=10_000)
    assert new_source(me)[0] == 201
    source = a_source(account)
    set_counter(account["accountId"], "jobCount", 10_000)
    set_counter(account["accountId"], "subAccountCount", 10_000)
    assert new_job(me, source["sourceId"], HOURLY)[0] == 201
    assert new_sub_account(me)[0] == 201


def test_the_free_limit_with_real_sources_not_just_a_counter():
    _, account, me = seed_tenant("manager")
    for index in range(3):
        assert new_source(me, f"Stripe {index}")[0] == 201
    assert refused(new_source(me, "Stripe 3"))
    status, body = service_call("sources", "GET /sources", me)
    assert status == 200 and len(body["data"]["items"]) == 3


@pytest.mark.parametrize("plan_id, hourly_allowed", [
    ("free", False), ("starter", True), ("pro", True), ("enterprise", True)])
def test_hourly_schedules_on_create_and_on_change_follow_the_plan(plan_id, hourly_allowed):
    _, account, me = seed_tenant("manager", plan=plan_id)
    source = a_source(account)
    created = new_job(me, source["sourceId"], HOURLY)
    assert (created[0] == 201) is hourly_allowed and refused(created) is not hourly_allowed
    status, job = new_job(me, source["sourceId"], DAILY)
    assert status == 201
    changed = service_call("jobs", "PUT /jobs/{jobId}", me, body={"schedule": HOURLY},
                           path={"jobId": job["data"]["jobId"]})
    assert (changed[0] == 200) is hourly_allowed and refused(changed) is not hourly_allowed
    if not hourly_allowed:   # nothing changed
        row = get_row("jobs", accountId=account["accountId"], jobId=job["data"]["jobId"])
        assert row["schedule"]["frequency"] == "daily"


def test_a_sub_account_creates_within_its_parents_plan():
    _, parent, _ = seed_tenant("owner", plan="pro")
    _, child, child_me = seed_tenant("manager", parent=get_row("accounts", accountId=parent["accountId"]),
                                     source_count=3)
    assert new_source(child_me)[0] == 201          # free would stop at 3; pro allows 50


# --------------------------------------------------------------------------- plan changes

def test_a_webhook_upgrade_applies_at_once_and_a_downgrade_keeps_the_data(billing):
    _, account, me = seed_tenant("owner")
    for index in range(3):
        assert new_source(me, f"Stripe {index}")[0] == 201
    assert refused(new_source(me, "fourth"))
    source_id = service_call("sources", "GET /sources", me)[1]["data"]["items"][0]["sourceId"]
    assert refused(new_job(me, source_id, HOURLY))

    _, sub = subscribe(billing, me, "pro")
    now = int(time.time())
    assert deliver(event("customer.subscription.created", sub, created=now - 10))[0] == 200
    assert new_source(me, "fourth")[0] == 201                   # no cache, no wait
    assert new_job(me, source_id, HOURLY)[0] == 201
    assert new_sub_account(me, "one")[0] == 201 and new_sub_account(me, "two")[0] == 201

    ended = dict(sub, status="canceled")
    assert deliver(event("customer.subscription.deleted", ended, created=now))[0] == 200
    assert subscription(me)["plan"] == "free"
    assert refused(new_source(me, "fifth"))
    assert refused(new_job(me, source_id, HOURLY))
    assert refused(new_sub_account(me, "three"))
    # nothing is deleted: four sources, the hourly job and two sub-accounts remain
    assert len(service_call("sources", "GET /sources", me)[1]["data"]["items"]) == 4
    jobs = service_call("jobs", "GET /jobs", me)[1]["data"]["items"]
    assert [j["schedule"]["frequency"] for j in jobs] == ["hourly"]
    assert get_row("accounts", accountId=account["accountId"])["subAccountCount"] == 2


def test_a_lapsed_payment_falls_back_to_free_limits_after_the_grace_period(billing):
    _, account, me = seed_tenant("owner")
    _, sub = subscribe(billing, me, "pro")
    now = int(time.time())
    deliver(event("customer.subscription.created", sub, created=now - 9 * DAY))
    set_counter(account["accountId"], "sourceCount", 3)
    invoice = {"id": "in_lapsed", "object": "invoice", "customer": sub["customer"],
               "subscription": sub["id"]}
    deliver(event("invoice.payment_failed", invoice, created=now - 6 * DAY))
    assert new_source(me, "within grace")[0] == 201             # 6 days: still pro
    table("accounts").update_item(Key={"accountId": account["accountId"]},
                                  UpdateExpression="SET pastDueSince = :t",
                                  ExpressionAttributeValues={":t": now - 7 * DAY - 1})
    assert refused(new_source(me, "after grace"))               # the free plan's 3
    deliver(event("invoice.paid", dict(invoice, id="in_paid"), created=now))
    assert new_source(me, "paid up")[0] == 201
