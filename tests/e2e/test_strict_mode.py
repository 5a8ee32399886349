"""Least privilege, proven at runtime (issue 11): offline mode's strict mode
(``--strict``, offline/strict.py) runs every function as its own moto IAM identity under
moto's IAM enforcement and checks every AWS call each function makes against its declared
policy, resources included.

The whole journey a customer takes - identity (register, verify, login, an API key),
connectors (a Stripe source on localstripe, its connection test, an OAuth start), a backup
run to completed, getting data back (list, download, delete and restore, export), billing
(Checkout and a signed webhook moving the plan) and analytics - passes in strict mode with
no call outside a policy and nothing refused. Then the same journey with one permission
taken away from one function (``--strict-revoke``, applied to the evaluated policy before
anything is provisioned) fails, and strict mode names the action.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import secrets
import urllib.request
import zipfile

import pytest

from offline.strict_hook import Need, check, decide, resource_matches
from tests.connectors import localstripe_server
from tests.connectors.stripe_checkout_server import StripeCheckoutServer, event, payload_of, signature
from tests.e2e.harness import OfflineServer
from tests.e2e.identity import emails, login, register, unique_email

CUSTOMERS = 9
PRODUCTS = 3
BILLING_KEY = "sk_test_e2e_strict_00000000000000000000fake"
WEBHOOK_SECRET = "whsec_e2e_strict_0000000000000000fake"
PRICES = {"starter": "price_starter_strict", "pro": "price_pro_strict",
          "enterprise": "price_enterprise_strict"}
AMOUNTS = {"starter": 2900, "pro": 9900, "enterprise": 29900}
APP = "http://localhost:3000"          # the dev stack's web app origin
WORKER = "listbackup-jobs-dev-worker"


# ------------------------------------------------------------------ the checker itself

def test_iam_wildcards_and_conditions_are_matched_as_iam_does():
    """The resource check is only as good as its matching: ARN wildcards per segment, index
    ARNs, object prefixes, and the conditions the program's policies use."""
    assert resource_matches("arn:aws:dynamodb:us-east-1:1:table/files/index/*",
                            "arn:aws:dynamodb:us-east-1:1:table/files/index/run-index")
    assert not resource_matches("arn:aws:dynamodb:us-east-1:1:table/files",
                                "arn:aws:dynamodb:us-east-1:1:table/files/index/run-index")
    assert resource_matches("arn:aws:s3:::bucket/data/*", "arn:aws:s3:::bucket/data/a/b/c.gz")
    assert not resource_matches("arn:aws:s3:::bucket/data/*", "arn:aws:s3:::bucket/exports/x.zip")
    assert not resource_matches("arn:aws:sqs:*:1:q", "arn:aws:sqs:us-east-1:2:q")

    policy = {"Statement": [
        {"Effect": "Allow", "Action": ["s3:ListBucketVersions"], "Resource": ["arn:aws:s3:::b"],
         "Condition": {"StringLike": {"s3:prefix": "data/*"}}},
        {"Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": ["arn:aws:kms:us-east-1:1:key/k"],
         "Condition": {"Null": {"kms:EncryptionContext:accountId": "false"}}},
        {"Effect": "Allow", "Action": ["dynamodb:PutItem", "dynamodb:UpdateItem"],
         "Resource": ["arn:aws:dynamodb:us-east-1:1:table/runs"]},
        {"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": ["arn:aws:sqs:us-east-1:1:q"],
         "Condition": {"ArnEquals": {"aws:SourceArn": "arn:aws:s3:::b"}}},
    ]}
    ctx = {"account": "1", "region": "us-east-1"}
    assert not check(policy, "s3", "ListObjectVersions", {"Bucket": "b", "Prefix": "data/x"}, ctx)["violation"]
    assert check(policy, "s3", "ListObjectVersions", {"Bucket": "b", "Prefix": "exports/"}, ctx)["violation"]
    assert check(policy, "s3", "ListObjectVersions", {"Bucket": "b"}, ctx)["violation"]
    with_context = {"KeyId": "k", "CiphertextBlob": b"x", "EncryptionContext": {"accountId": "a"}}
    assert not check(policy, "kms", "Decrypt", with_context, ctx)["violation"]
    assert check(policy, "kms", "Decrypt", {"KeyId": "k", "CiphertextBlob": b"x"}, ctx)["violation"]
    # a transaction is checked item by item, each with its own action
    record = check(policy, "dynamodb", "TransactWriteItems", {"TransactItems": [
        {"Put": {"TableName": "runs", "Item": {}}},
        {"ConditionCheck": {"TableName": "runs", "Key": {}, "ConditionExpression": "x"}}]}, ctx)
    assert [(c["action"], c["allowed"]) for c in record["checks"]] == [
        ("dynamodb:PutItem", True), ("dynamodb:ConditionCheckItem", False)]
    # a condition the checker cannot evaluate is reported, not silently trusted
    verdict = decide(policy, Need("sqs:SendMessage", "arn:aws:sqs:us-east-1:1:q"))
    assert verdict["allowed"] and verdict["ignoredConditions"] == ["ArnEquals aws:SourceArn"]


# ------------------------------------------------------------------ the journey

class JourneyFailed(AssertionError):
    def __init__(self, step: str, detail: str):
        super().__init__(f"the journey failed at {step!r}: {detail}")
        self.step, self.detail = step, detail


@contextlib.contextmanager
def step(name: str):
    try:
        yield
    except AssertionError as error:
        raise JourneyFailed(name, str(error)[:2000]) from error


def ok(reply, status: int = 200):
    assert reply.status == status, reply
    return reply.json["data"]


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as reply:
        return reply.read()


@pytest.fixture(scope="module")
def stripe():
    """localstripe with a platform account to back up, and the Checkout/portal server in
    front of it for billing."""
    already = "url" in localstripe_server._state
    url = localstripe_server.start()
    localstripe_server.flush(url)
    import stripe as stripe_lib

    key = f"sk_test_strict{secrets.token_hex(12)}"
    client = stripe_lib.StripeClient(key, base_addresses={"api": url})
    for i in range(CUSTOMERS):
        client.v1.customers.create(params={"email": f"c{i}@example.com", "name": f"Customer {i}"})
    for i in range(PRODUCTS):
        client.v1.products.create(params={"name": f"Product {i}"})
    checkout = StripeCheckoutServer(url).start()
    for plan_id, price in PRICES.items():
        checkout.create_price(BILLING_KEY, price, AMOUNTS[plan_id], plan_id.capitalize())
    yield {"url": url, "key": key, "checkout": checkout}
    checkout.stop()
    if not already:
        localstripe_server.stop()


def strict_server(stripe: dict, *extra: str) -> OfflineServer:
    return OfflineServer(
        "--strict", *extra,
        "--platform-url", f"stripe={stripe['url']}",
        "--stripe-api-base", stripe["checkout"].url,
        "--config", f"stripeSecretKey={BILLING_KEY}",
        "--config", f"stripeWebhookSecret={WEBHOOK_SECRET}",
        "--config", f"stripePriceIds={json.dumps(PRICES)}",
        "--config", 'oauthClients={"hubspot": {"clientId": "strict-id", "clientSecret": "strict-secret"}}',
        "--schedule-speed", "60")          # the scheduler's 5 minutes pass every 5 seconds


def journey(server: OfflineServer, stripe: dict) -> dict:
    """Everything a customer does, step by step; :class:`JourneyFailed` names the step that
    did not go as the customer expects."""
    seen: dict = {}
    with step("identity"):
        user = register(server, verify=True)
        login(server, user)
        api_key = ok(server.post("/api-keys", {"name": "CI"}, token=user.access), 201)
        assert ok(server.get("/account", token=api_key["key"]))["accountId"] == user.account_id
        assert server.request("DELETE", f"/api-keys/{api_key['keyId']}", token=user.access).status == 200
        assert server.get("/account", token=api_key["key"]).status == 403     # revoked at once
        assert ok(server.get("/auth/profile", token=user.access))["email"] == user.email
        seen["user"] = user

    with step("connectors"):
        source = ok(server.post("/sources", {"name": "Stripe", "type": "stripe",
                                             "credentials": {"api_key": stripe["key"]}},
                                token=user.access), 201)
        tested = server.post(f"/sources/{source['sourceId']}/test", token=user.access)
        assert tested.status == 200 and tested.json["data"]["lastTest"]["ok"] is True, tested
        started = ok(server.post("/integrations/hubspot/oauth/initiate",
                                 {"returnUrl": f"{APP}/sources"}, token=user.access))
        assert started["authUrl"] and started["state"]

    with step("backup"):
        job = ok(server.post("/jobs", {"sourceId": source["sourceId"], "name": "Customers and products",
                                       "schedule": {"frequency": "manual"},
                                       "endpoints": ["customers", "products"]}, token=user.access), 201)
        run_id = ok(server.post(f"/jobs/{job['jobId']}/run", token=user.access), 202)["runId"]

        def finished():
            run = ok(server.get(f"/runs/{run_id}", token=user.access))
            return run if run["status"] not in ("pending", "running") else None

        run = server.eventually(finished, timeout=90, interval=0.5)
        assert run["status"] == "completed", f"the run ended {run['status']}: {run.get('error')}"
        # localstripe also holds the billing plans' products
        assert run["records"] >= CUSTOMERS + PRODUCTS, run

    with step("data"):
        def indexed():
            listed = ok(server.get(f"/data/files?runId={run_id}", token=user.access))["items"]
            return listed if len(listed) == 2 and all(f["records"] is not None for f in listed) else None

        files = {f["name"]: f for f in server.eventually(indexed, timeout=60, interval=0.5)}
        first = ok(server.get("/data/files?limit=1", token=user.access))
        assert len(first["items"]) == 1 and first["nextCursor"], first
        rest = ok(server.get(f"/data/files?limit=1&cursor={first['nextCursor']}", token=user.access))
        assert rest["items"] and rest["items"][0]["fileId"] != first["items"][0]["fileId"]
        customers, products = files["customers.jsonl.gz"], files["products.jsonl.gz"]
        assert customers["records"] == CUSTOMERS, customers
        body = fetch(ok(server.get(f"/data/files/{customers['fileId']}/download-url",
                                   token=user.access))["url"])
        assert hashlib.sha256(body).hexdigest() == customers["sha256"]
        assert ok(server.get(f"/data/tree?sourceId={source['sourceId']}", token=user.access))["items"]
        assert ok(server.post("/data/search", {"query": "cust"}, token=user.access))["items"]
        assert server.request("DELETE", f"/data/files/{products['fileId']}", token=user.access).status == 200
        restored = ok(server.post(f"/data/files/{products['fileId']}/restore", token=user.access))
        assert restored["deleted"] is False and restored["sha256"] == products["sha256"]
        export = ok(server.post("/data/export", {"runId": run_id}, token=user.access), 202)

        def exported():
            state = ok(server.get(f"/data/exports/{export['exportId']}", token=user.access))
            return state if state["status"] not in ("pending", "running") else None

        state = server.eventually(exported, timeout=60, interval=0.5)
        assert state["status"] == "completed" and state["files"] == 2, state
        archive = zipfile.ZipFile(io.BytesIO(fetch(state["url"])))
        assert len(archive.namelist()) == 2 and archive.testzip() is None
        server.eventually(lambda: [m for m in emails(server, user.email)
                                   if "export" in (m.get("subject") or "").lower()], timeout=30)
        assert ok(server.get("/account/usage", token=user.access))["storageBytes"]["used"] > 0

    with step("billing"):
        checkout = stripe["checkout"]
        before = len(checkout.checkouts)
        ok(server.post("/billing/checkout", {"planId": "pro", "successUrl": f"{APP}/billing/done",
                                             "cancelUrl": f"{APP}/billing"}, token=user.access))
        sent = checkout.checkouts[before]
        session, _ = checkout.complete(sent["answer"]["id"], BILLING_KEY)
        payload = payload_of(event("checkout.session.completed", session))
        delivered = server.post("/billing/webhook", payload.encode(), headers={
            "content-type": "application/json; charset=utf-8",
            "stripe-signature": signature(payload, WEBHOOK_SECRET)})
        assert delivered.status == 200 and delivered.json["data"]["applied"] is True, delivered
        state = ok(server.get("/billing/subscription", token=user.access))
        assert state["plan"] == "pro" and state["status"] == "active", state

    with step("analytics"):
        overview = ok(server.get("/analytics/overview", token=user.access))
        assert overview["runs"]["completed"] == 1 and overview["sources"] == 1, overview
        assert overview["storageBytes"] == sum(f["size"] for f in files.values()), overview
        assert len(ok(server.get("/analytics/timeseries?days=7", token=user.access))["points"]) == 7
        kinds = {e["type"] for e in ok(server.get("/activity", token=user.access))["items"]}
        assert "billing.plan.change" in kinds, kinds
        assert ok(server.get("/system/status", token=user.access))["status"] in ("ok", "degraded")

    with step("more"):
        # an earlier version restored over a newer one (a copy keeping the retention tag)
        key = f"data/{user.account_id}/{source['sourceId']}/{run_id}/products.jsonl.gz"
        server.aws("s3").put_object(Bucket="listbackup-data-dev", Key=key, Body=b"overwritten")
        restored = ok(server.post(f"/data/files/{products['fileId']}/restore", token=user.access))
        assert restored["deleted"] is False and len(restored["versions"]) >= 3, restored
        body = fetch(ok(server.get(f"/data/files/{products['fileId']}/download-url",
                                   token=user.access))["url"])
        assert hashlib.sha256(body).hexdigest() == products["sha256"]
        # a teammate invited by e-mail
        invited = unique_email("teammate")
        ok(server.post(f"/accounts/{user.account_id}/invitations", {"email": invited, "role": "viewer"},
                       token=user.access), 201)
        server.eventually(lambda: emails(server, invited), timeout=30)
        # "sync now" runs the source's backup again
        synced = ok(server.post(f"/sources/{source['sourceId']}/sync", token=user.access), 202)

        def synced_run():
            run = ok(server.get(f"/runs/{synced['runId']}", token=user.access))
            return run if run["status"] not in ("pending", "running") else None

        # every Stripe endpoint this time; localstripe lacks a few (prices, ...): partial
        assert server.eventually(synced_run, timeout=90, interval=0.5)["status"] in ("completed", "partial")
    return seen


def strict_report(server: OfflineServer) -> dict:
    reply = server.get("", base="/_offline/strict")
    assert reply.status == 200, reply
    return reply.json


def violations(server: OfflineServer) -> list[dict]:
    reply = server.get("", base="/_offline/violations")
    assert reply.status == 200, reply
    return reply.json


def test_the_whole_journey_runs_within_each_functions_declared_policy(stripe):
    with strict_server(stripe) as server:
        journey(server, stripe)
        # the scheduler has run too (every 5 s at this speed)
        server.eventually(lambda: strict_report(server)["functions"]["listbackup-jobs-dev-scheduler"]["calls"],
                          timeout=20)
        report = strict_report(server)
        found = violations(server)
        log = server.log_text()

    print("\nstrict mode: AWS calls checked per function")
    for name, figures in report["functions"].items():
        print(f"  {name:40} {figures['calls']:5} calls {figures['checks']:5} checks "
              f"{figures['violations']} violations {figures['denied']} denied")
    print(f"  totals: {report['totals']}")
    assert found == [], json.dumps(found, indent=1)
    assert report["totals"]["violations"] == 0 and report["totals"]["denied"] == 0
    # every function took part, so every policy was exercised
    idle = [name for name, figures in report["functions"].items() if not figures["calls"]]
    assert idle == [], idle
    assert "STRICT" not in log.replace("strict:", "")
    assert "AccessDenied" not in log and "not authorized to perform" not in log


def test_a_missing_permission_fails_the_journey_loudly_and_names_the_action(stripe):
    """The backup worker without kms:Decrypt: moto refuses the call, the run fails (the
    worker takes the refusal for unreadable credentials), and strict mode names the action,
    the function and the key."""
    with strict_server(stripe, "--strict-revoke", f"{WORKER}=kms:Decrypt") as server:
        with pytest.raises(JourneyFailed) as failed:
            journey(server, stripe)
        found = violations(server)
        log = server.log_text()

    print(f"\nwithout kms:Decrypt on {WORKER}: {failed.value}\n  " +
          "\n  ".join(json.dumps(v)[:300] for v in found))
    assert failed.value.step == "backup", failed.value
    # what the customer sees blames the credentials; strict mode names the permission
    assert "the run ended failed: The source's stored credentials cannot be read" in failed.value.detail
    outside = [v for v in found if v["kind"] == "outside-policy"]
    assert outside and {(v["function"], v["action"]) for v in outside} == {(WORKER, "kms:Decrypt")}, found
    assert outside[0]["resource"].startswith("arn:aws:kms:us-east-1:123456789012:key/")
    denied = [v for v in found if v["kind"] == "denied"]
    assert denied and all(v["function"] == WORKER for v in denied), found
    assert "not authorized to perform: kms:Decrypt" in denied[0]["message"]
    assert f"[{WORKER}] STRICT VIOLATION: {WORKER} called kms:Decrypt on arn:aws:kms:" in log
    assert f"[{WORKER}] STRICT ACCESS DENIED: {WORKER} kms.Decrypt: AccessDenied" in log
