"""The billing service as the program declares it: its tables, the Stripe secrets as SSM
SecureStrings, the function's environment (names and price ids, never secrets), its
least-privilege grants, its routes, and the stack's Stripe settings."""

from __future__ import annotations

import json

import pytest

from offline.evaluate import evaluate
from tests.conftest import unwrap
from tests.infra.test_functions import role_policy_of
from tests.infra.test_project_config import DECLARED, stack_config

FUNCTION = "aws:lambda/function:Function"
TABLE = "aws:dynamodb/table:Table"
PARAMETER = "aws:ssm/parameter:Parameter"
ROUTE = "aws:apigatewayv2/route:Route"
ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/listbackup-{stack}-{name}"


def billing_function(program, stack):
    return program.one(FUNCTION, name=f"listbackup-billing-{stack}-api")


def grants(program, function) -> set[tuple[str, str]]:
    return {(a, r) for s in role_policy_of(program, function)["Statement"]
            for a in s["Action"] for r in s["Resource"]}


def test_billing_owns_its_event_and_customer_tables(program, stack):
    component = next(r for r in program.resources if r.type == "listbackup:billing:BillingService")
    events = program.one(TABLE, name=f"listbackup-{stack}-billing-events")
    customers = program.one(TABLE, name=f"listbackup-{stack}-billing-customers")
    assert events.parent == customers.parent == component.urn
    assert events.inputs["hashKey"] == "eventId"
    assert events.inputs["ttl"] == {"attributeName": "expiresAt", "enabled": True}
    assert customers.inputs["hashKey"] == "customerId" and "ttl" not in customers.inputs
    for table in (events, customers):
        assert table.inputs["billingMode"] == "PAY_PER_REQUEST"
        assert table.inputs["serverSideEncryption"] == {"enabled": True}


def test_the_stripe_secrets_are_secure_strings_unconfigured_until_set(program, stack):
    for key in ("stripe-secret-key", "stripe-webhook-secret"):
        param = program.one(PARAMETER, name=f"/listbackup/{stack}/{key}")
        assert param.inputs["type"] == "SecureString"
        assert unwrap(param.inputs["value"]) == "unconfigured"
        assert isinstance(param.inputs["value"], dict), "the value must stay a secret"


def test_configured_secrets_reach_ssm_and_never_the_environment():
    whsec = "whsec_infra_0000000000000000fake"
    program = evaluate("staging", overrides={"listbackup:stripeSecretKey": {"secure": "AAABAx"},
                                             "listbackup:stripeWebhookSecret": whsec})
    # a `secure:` value of a stack file arrives (under mocks) as a test value, still secret
    secret_param = program.one(PARAMETER, name="/listbackup/staging/stripe-secret-key")
    key = unwrap(secret_param.inputs["value"])
    assert key.startswith("test-") and isinstance(secret_param.inputs["value"], dict)
    webhook_param = program.one(PARAMETER, name="/listbackup/staging/stripe-webhook-secret")
    assert unwrap(webhook_param.inputs["value"]) == whsec
    dumped = json.dumps(billing_function(program, "staging").inputs, default=str)
    assert whsec not in dumped and key not in dumped


def test_the_function_gets_parameter_names_price_ids_and_the_apps_origins(program, stack):
    env = billing_function(program, stack).inputs["environment"]["variables"]
    assert env["STRIPE_SECRET_KEY_PARAM"] == f"/listbackup/{stack}/stripe-secret-key"
    assert env["STRIPE_WEBHOOK_SECRET_PARAM"] == f"/listbackup/{stack}/stripe-webhook-secret"
    assert env["CURSOR_SECRET_PARAM"] == f"/listbackup/{stack}/cursor-secret"
    config = stack_config(stack)
    prices = config.get("listbackup:stripePriceIds", DECLARED["stripePriceIds"]["default"])
    assert json.loads(env["STRIPE_PRICE_IDS"]) == json.loads(prices)     # JSON string config
    origins = env["ALLOWED_RETURN_ORIGINS"].split(",")
    assert set(config["listbackup:corsOrigins"]) <= set(origins)
    app = config["listbackup:appUrl"]
    assert "/".join(app.split("/")[:3]) in origins


def test_configured_price_ids_reach_the_function():
    prices = {"starter": "price_1Starter", "pro": "price_1Pro"}
    program = evaluate("dev", overrides={"listbackup:stripePriceIds": json.dumps(prices)})
    env = billing_function(program, "dev").inputs["environment"]["variables"]
    assert json.loads(env["STRIPE_PRICE_IDS"]) == prices


@pytest.mark.parametrize("prices, why", [
    ({"free": "price_free"}, "not a paid plan"),
    ({"platinum": "price_x"}, "not a paid plan"),
    ({"starter": "price_same", "pro": "price_same"}, "same price id"),
    ({"pro": ""}, "non-empty"),
    ({"pro": 12}, "non-empty"),
])
def test_bad_price_ids_stop_the_program_by_name(prices, why):
    with pytest.raises(ValueError, match="stripePriceIds") as raised:
        evaluate("dev", overrides={"listbackup:stripePriceIds": json.dumps(prices)})
    assert why in str(raised.value) and type(raised.value).__name__ == "SettingsError"


def test_least_privilege_exact_grants(program, stack):
    arn = lambda name: ARN.format(stack=stack, name=name)  # noqa: E731
    allowed = grants(program, billing_function(program, stack))
    logs = {(a, r) for a, r in allowed if a.startswith("logs:")}
    params = {f"arn:aws:ssm:us-east-1:123456789012:parameter/listbackup/{stack}/{k}"
              for k in ("cursor-secret", "stripe-secret-key", "stripe-webhook-secret")}
    assert allowed - logs == {
        *{("ssm:GetParameter", p) for p in params},
        ("dynamodb:GetItem", arn("accounts")), ("dynamodb:BatchGetItem", arn("accounts")),
        ("dynamodb:UpdateItem", arn("accounts")),
        ("dynamodb:BatchGetItem", arn("users")),
        ("dynamodb:BatchGetItem", arn("billing-events")), ("dynamodb:PutItem", arn("billing-events")),
        ("dynamodb:BatchGetItem", arn("billing-customers")), ("dynamodb:PutItem", arn("billing-customers")),
        ("dynamodb:PutItem", arn("activity")), ("dynamodb:UpdateItem", arn("activity-counters")),
    }
    assert not any("*" in a or r == "*" for a, r in allowed)


def test_the_webhook_is_public_and_every_other_billing_route_but_plans_is_authorized(program, stack):
    routes = {r.inputs["routeKey"]: r for r in program.of_type(ROUTE)
              if r.inputs["routeKey"].split(" ", 1)[1].startswith("/billing/")}
    public = {k for k, r in routes.items() if r.inputs["authorizationType"] == "NONE"}
    assert public == {"POST /billing/webhook", "GET /billing/plans"}
    assert set(routes) == {"GET /billing/plans", "GET /billing/subscription", "POST /billing/checkout",
                           "POST /billing/portal", "POST /billing/cancel", "GET /billing/invoices",
                           "POST /billing/webhook"}


def test_project_declares_the_stripe_settings():
    # a JSON string: Pulumi's project schema has no object type
    assert DECLARED["stripePriceIds"]["type"] == "string"
    assert set(json.loads(DECLARED["stripePriceIds"]["default"])) == {"starter", "pro", "enterprise"}
    for key in ("stripeSecretKey", "stripeWebhookSecret"):
        assert DECLARED[key]["secret"] is True and DECLARED[key]["default"] == ""
