"""Fuzzing the published contract (issue 11): schemathesis against offline mode.

Offline mode serves the product with every stage setting a customer could reach filled in
(Stripe billing on localstripe behind the local Checkout/portal server, OAuth clients for
every OAuth platform, the Stripe platform on localstripe), so a 5xx can only be a fault of
ours. A user registers and signs in over HTTP, seeds real state through the API (a Stripe
source backed up for real, its files, an export, an invitation, a sub-account), and
schemathesis then runs every phase against ``/v2/openapi.json`` authenticated with that
user's owner API key (an access token would die at the first fuzzed ``POST /auth/logout``):

- examples and coverage (boundary values, missing and wrong-typed fields), then fuzzing
  with a fixed budget per operation, in both positive and negative modes;
- stateful: sequences that follow the document's links (a create, then reads, updates and
  deletes of what it created).

Required of every answer: no 5xx; status, content type, headers and body conform to the
document; schema-violating requests are refused; a deleted resource is gone and a created
one is there; and no answer carries a secret: no field named like a stored secret, none of
the stack's secret values (SSM SecureStrings, the user's password, the API key in use, the
platform credential), and (checked after the run against everything answered) none of the
secrets stored meanwhile (password hashes, API key hashes, invitation code hashes,
credential ciphertexts, e-mailed codes).

Deterministic: a fixed seed, derandomized generation, no example database, one worker.
Two checks are off, each for a reason of the platform, not a finding: API Gateway HTTP
APIs answer an unrouted method 404 ``{"message":"Not Found"}``, not 405 (so
``unsupported_method`` and ``allow_header_conformance`` do not apply), and a schema-valid
request may still break a business rule (a password too common, an unknown platform), so
``positive_data_acceptance`` does not hold by design. Figures (operations, requests per
phase, findings) are printed and attached to the test report.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections import Counter

import pytest
import schemathesis

from tests.connectors import localstripe_server
from tests.connectors.stripe_checkout_server import StripeCheckoutServer
from tests.e2e.harness import OfflineServer
from tests.e2e.identity import PASSWORD, emails, login, register, set_attribute

# The budget; CI runs the defaults. FUZZ_SEED and FUZZ_EXAMPLES explore further by hand.
SEED = int(os.environ.get("FUZZ_SEED", "20260311"))
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))   # fuzzing phase, per operation
STATEFUL_SCENARIOS = int(os.environ.get("FUZZ_SCENARIOS", "50"))   # link-following sequences...
STATEFUL_STEPS = 8                                          # ...of at most this many requests

STRIPE_KEY = "sk_test_fuzz_billing_0000000000000000fake"
WEBHOOK_SECRET = "whsec_fuzz_00000000000000000000000fake"
PRICES = {"starter": "price_starter_fuzz", "pro": "price_pro_fuzz",
          "enterprise": "price_enterprise_fuzz"}
OAUTH_PLATFORMS = ("gohighlevel", "hubspot", "google-drive", "dropbox", "box")
OAUTH_SECRET = "fuzz-oauth-client-secret-" + "0" * 16
PLATFORM_KEY = "sk_test_fuzzPlatformFake000000000000001"   # the seeded source's credential
CUSTOMERS = 3

# Fields that name a stored secret: none may appear in any answer, at any depth.
SECRET_FIELDS = {"passwordHash", "keyHash", "codeHash", "credentialsCiphertext",
                 "clientSecret", "client_secret", "access_token", "refresh_token",
                 "stripeSecretKey", "webhookSecret"}
# What e-mails carry that must never come back in an answer (identity.py's patterns).
MAILED_CODES = (re.compile(r"Or enter this code in the app: (\S+)"),
                re.compile(r"/reset-password\?token=([A-Za-z0-9_\-]+)"),
                re.compile(r"Or sign in and enter this code: (\S+)"))


class SecretWatch:
    """The stack's secret values and every answer body seen, for the secret check."""

    def __init__(self) -> None:
        self.values: set[str] = set()
        self.bodies: list[str] = []

    def add(self, *values) -> None:
        self.values.update(v for v in values if isinstance(v, str) and len(v) >= 8)

    def problems(self, text: str, values=None) -> list[str]:
        found = [f"the field {name!r}" for name in sorted(_keys(text) & SECRET_FIELDS)]
        found += [f"a secret value ({v[:4]}...)" for v in (values or self.values) if v in text]
        return found


WATCH = SecretWatch()


def _keys(text: str) -> set[str]:
    try:
        data = json.loads(text)
    except ValueError:
        return set()
    keys: set[str] = set()
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            keys.update(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return keys


@schemathesis.check
def no_secret_in_answers(ctx, response, case):
    """No answer carries a stored secret's field or one of the stack's secret values."""
    text = response.content.decode("utf-8", "replace") if response.content else ""
    WATCH.bodies.append(text)
    problems = WATCH.problems(text)
    if problems:
        raise AssertionError(f"{case.operation.label} answered {', '.join(problems)}")


FUZZER_KEY: dict[str, str] = {}       # the id of the API key the run authenticates with


@schemathesis.hook
def before_call(context, case, kwargs):
    """The run's own API key stays: once ``GET /api-keys`` shows its id, the fuzzer would
    revoke it, and every later request would be refused (403) instead of fuzzed."""
    if case.operation.label == "DELETE /api-keys/{keyId}" and FUZZER_KEY \
            and (case.path_parameters or {}).get("keyId") == FUZZER_KEY.get("keyId"):
        case.path_parameters["keyId"] = "key_kept_by_the_test"


# --------------------------------------------------------------------------- the stack

@pytest.fixture(scope="module")
def stripe():
    already = "url" in localstripe_server._state
    upstream = localstripe_server.start()
    checkout = StripeCheckoutServer(upstream).start()
    for plan_id, price in PRICES.items():
        checkout.create_price(STRIPE_KEY, price, 100, plan_id.capitalize())
    import stripe as stripe_lib

    platform = stripe_lib.StripeClient(PLATFORM_KEY, base_addresses={"api": upstream})
    for index in range(CUSTOMERS):
        platform.v1.customers.create(params={"email": f"fuzz{index}@example.com",
                                             "name": f"Fuzz customer {index}"})
    yield upstream, checkout
    checkout.stop()
    if not already:
        localstripe_server.stop()


@pytest.fixture(scope="module")
def server(stripe):
    upstream, checkout = stripe
    clients = {p: {"clientId": f"fuzz-{p}", "clientSecret": OAUTH_SECRET} for p in OAUTH_PLATFORMS}
    with OfflineServer("--stripe-api-base", checkout.url,
                       "--platform-url", f"stripe={upstream}",
                       "--config", f"stripeSecretKey={STRIPE_KEY}",
                       "--config", f"stripeWebhookSecret={WEBHOOK_SECRET}",
                       "--config", f"stripePriceIds={json.dumps(PRICES)}",
                       "--config", f"oauthClients={json.dumps(clients)}") as running:
        yield running


def _ok(reply, status: int = 200) -> dict:
    assert reply.status == status, reply
    return reply.json["data"]


def seed(server: OfflineServer) -> dict:
    """A signed-in owner with real state behind every kind of id the API hands out."""
    user = register(server, verify=True, name="Fuzz Owner", company="Fuzz Co")
    # The enterprise plan (a direct local write, as the load test does), so plan limits do
    # not stop creates after the third source: the fuzzer goes deeper than 402s.
    set_attribute(server, "accounts", {"accountId": user.account_id}, "plan", {"S": "enterprise"})
    login(server, user)
    token = user.access
    key = _ok(server.post("/api-keys", {"name": "fuzzer", "role": "owner"}, token=token), 201)
    source = _ok(server.post("/sources", {"name": "Stripe", "type": "stripe",
                                          "credentials": {"api_key": PLATFORM_KEY}},
                             token=token), 201)
    _ok(server.post(f"/sources/{source['sourceId']}/test", token=token))
    job = _ok(server.post("/jobs", {"sourceId": source["sourceId"], "name": "Customers",
                                    "schedule": {"frequency": "manual"},
                                    "endpoints": ["customers"]}, token=token), 201)
    run = _ok(server.post(f"/jobs/{job['jobId']}/run", token=token), 202)

    def finished():
        now = _ok(server.get(f"/runs/{run['runId']}", token=token))
        return now if now["status"] not in ("pending", "running") else None

    assert server.eventually(finished, timeout=90, interval=0.5)["status"] == "completed"
    files = server.eventually(lambda: _ok(server.get(f"/data/files?runId={run['runId']}",
                                                     token=token))["items"], timeout=30)
    export = _ok(server.post("/data/export", {"runId": run["runId"]}, token=token), 202)
    server.eventually(lambda: _ok(server.get(f"/data/exports/{export['exportId']}",
                                             token=token))["status"] == "completed", timeout=60)
    _ok(server.post(f"/accounts/{user.account_id}/invitations",
                    {"email": "invitee@example.com", "role": "viewer"}, token=token), 201)
    _ok(server.post(f"/accounts/{user.account_id}/sub-accounts", {"name": "Fuzz branch"},
                    token=token), 201)
    FUZZER_KEY["keyId"] = key["keyId"]
    return {"user": user, "key": key["key"], "files": files}


def known_secrets(server: OfflineServer, user, key: str) -> None:
    ssm = server.aws("ssm")
    pages = ssm.get_paginator("get_parameters_by_path").paginate(
        Path="/listbackup/dev/", Recursive=True, WithDecryption=True)
    for page in pages:
        WATCH.add(*(p["Value"] for p in page["Parameters"] if p["Type"] == "SecureString"))
    WATCH.add(PASSWORD, user.password, key, hashlib.sha256(key.encode()).hexdigest(),
              PLATFORM_KEY, STRIPE_KEY, WEBHOOK_SECRET, OAUTH_SECRET)


def stored_secrets(server: OfflineServer) -> set[str]:
    """Every secret the stack stored while it was fuzzed (test code may scan)."""
    dynamodb = server.aws("dynamodb")
    found: set[str] = set()
    for table, attribute in (("users", "passwordHash"), ("api-keys", "keyHash"),
                             ("invitations", "codeHash"), ("sources", "credentialsCiphertext")):
        for page in dynamodb.get_paginator("scan").paginate(TableName=f"listbackup-dev-{table}"):
            for item in page["Items"]:
                value = item.get(attribute, {})
                found.update(v for v in (value.get("S"), value.get("B")) if isinstance(v, str))
    for mail in emails(server):
        for pattern in MAILED_CODES:
            found.update(pattern.findall(mail.get("text") or ""))
    return {v for v in found if len(v) >= 8}


# --------------------------------------------------------------------------- the run

def config(base_url: str, key: str):
    return schemathesis.Config.from_dict({
        # No max-time: with one, schemathesis repeats fuzzing until the time is up; without,
        # each phase runs its budget once, so the run is bounded by count, not by the clock.
        "seed": SEED,
        "workers": 1,
        "base-url": base_url,
        "request-timeout": 60,
        "headers": {"Authorization": f"Bearer {key}"},
        "generation": {"mode": "all", "max-examples": FUZZ_EXAMPLES, "deterministic": True,
                       "database": "none"},
        "phases": {"stateful": {"max-steps": STATEFUL_STEPS,
                                "generation": {"max-examples": STATEFUL_SCENARIOS}}},
        "checks": {"unsupported_method": {"enabled": False},
                   "allow_header_conformance": {"enabled": False},
                   "positive_data_acceptance": {"enabled": False}},
    })


def run(schema) -> dict:
    from schemathesis.engine import events, from_schema

    figures: dict = {"operations": set(), "succeeded": set(), "requests": Counter(),
                     "statuses": Counter(),
                     "checks": Counter(), "findings": {}, "errors": []}
    started = time.monotonic()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            phase = getattr(event.phase, "value", str(event.phase))
            if phase != "stateful":
                figures["operations"].add(recorder.label)
            figures["requests"][phase] += len(recorder.interactions)
            for interaction in recorder.interactions.values():
                if interaction.response is not None:
                    figures["statuses"][interaction.response.status_code] += 1
                    if interaction.response.status_code < 400 and phase != "stateful":
                        figures["succeeded"].add(recorder.label)
            for case_id, checks in recorder.checks.items():
                for check in checks:
                    figures["checks"][check.name] += 1
                    if check.status.name != "SUCCESS" and check.failure_info is not None:
                        failure = check.failure_info.failure
                        title = f"{recorder.label}: {check.name}: {failure.title}"
                        figures["findings"].setdefault(title, (
                            f"{failure.message}\n{check.failure_info.code_sample}"))
        elif isinstance(event, (events.NonFatalError, events.FatalError)):
            figures["errors"].append(str(getattr(event, "info", None) or event.exception))
        elif isinstance(event, events.EngineFinished):
            figures["stop"] = str(event.stop_reason)
            for failure in event.failures:
                figures["findings"].setdefault(f"after run: {failure.title}", failure.message)
    figures["seconds"] = round(time.monotonic() - started, 1)
    return figures


def test_the_api_keeps_its_published_contract_under_fuzzing(server, record_property):
    state = seed(server)
    known_secrets(server, state["user"], state["key"])
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json",
                                           config=config(server.url, state["key"]))
    figures = run(schema)

    leaked = []
    stored = stored_secrets(server)
    for body in WATCH.bodies:
        leaked += WATCH.problems(body, stored - WATCH.values)
    summary = {"operations": len(figures["operations"]),
               "operations answered 2xx/3xx": len(figures["succeeded"]),
               "requests": dict(figures["requests"]), "total": sum(figures["requests"].values()),
               "statuses": dict(sorted(figures["statuses"].items())),
               "findings": len(figures["findings"]), "checks": dict(sorted(figures["checks"].items())),
               "stored secrets swept": len(stored), "seconds": figures["seconds"],
               "stop": figures.get("stop"),
               "never answered 2xx/3xx": sorted(figures["operations"] - figures["succeeded"])}
    print("fuzz figures:", json.dumps(summary))
    record_property("fuzz_figures", json.dumps(summary))

    assert not figures["errors"], figures["errors"]
    assert figures.get("stop") == "completed", summary
    assert summary["operations"] == sum(len(ops) for ops in schema.raw_schema["paths"].values())
    for check in ("no_secret_in_answers", "not_a_server_error", "response_schema_conformance",
                  "negative_data_rejection", "ignored_auth", "use_after_free"):
        assert figures["checks"][check] > 0, f"the check {check} did not run"
    assert not figures["findings"], "\n\n".join(f"{k}\n{v}" for k, v in figures["findings"].items())
    assert not leaked, sorted(set(leaked))
    assert figures["statuses"][500] == 0 and not any(s >= 500 for s in figures["statuses"])
