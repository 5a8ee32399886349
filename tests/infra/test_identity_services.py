"""The auth, account and activity services as the program declares them (billing:
test_billing_service.py)."""

from __future__ import annotations

import pytest

from tests.conftest import unwrap
from tests.infra.test_functions import role_policy_of
from tests.infra.test_project_config import stack_config

FUNCTION = "aws:lambda/function:Function"
TABLE = "aws:dynamodb/table:Table"


def component(program, type_):
    return next(r for r in program.resources if r.type == type_)


def grants(program, function) -> set[tuple[str, str]]:
    return {(a, r) for s in role_policy_of(program, function)["Statement"]
            for a in s["Action"] for r in s["Resource"]}


def test_each_service_declares_the_tables_it_writes(program, stack):
    tables = {r.inputs["name"]: r for r in program.of_type(TABLE)}
    owners = {"auth-tokens": "listbackup:auth:AuthService", "login-attempts": "listbackup:auth:AuthService",
              "invitations": "listbackup:account:AccountService",
              "activity-counters": "listbackup:core:CoreService"}
    for short, owner in owners.items():
        table = tables[f"listbackup-{stack}-{short}"]
        assert table.parent == component(program, owner).urn
        assert table.inputs["ttl"] == {"attributeName": "expiresAt", "enabled": True}
    invitations = tables[f"listbackup-{stack}-invitations"]
    assert [g["name"] for g in invitations.inputs["globalSecondaryIndexes"]] == ["code-index"]
    accounts = tables[f"listbackup-{stack}-accounts"]
    assert "root-path-index" in [g["name"] for g in accounts.inputs["globalSecondaryIndexes"]]


@pytest.mark.parametrize("service", ["auth", "account"])
def test_identity_functions_get_parameter_names_and_the_sender_never_secrets(program, stack, service):
    function = program.one(FUNCTION, name=f"listbackup-{service}-{stack}-api")
    env = function.inputs["environment"]["variables"]
    assert env["JWT_SECRET_PARAM"] == f"/listbackup/{stack}/jwt-secret"
    assert env["JWT_REFRESH_SECRET_PARAM"] == f"/listbackup/{stack}/jwt-refresh-secret"
    assert env["CURSOR_SECRET_PARAM"] == f"/listbackup/{stack}/cursor-secret"
    assert env["SES_FROM_EMAIL"] == stack_config(stack)["listbackup:sesFromEmail"]
    assert env["APP_URL"] == stack_config(stack)["listbackup:appUrl"]
    allowed = grants(program, function)
    sender = f"arn:aws:ses:us-east-1:123456789012:identity/{env['SES_FROM_EMAIL']}"
    assert {r for a, r in allowed if a.startswith("ses:")} == {sender}
    assert {r.rsplit("/", 1)[-1] for a, r in allowed if a == "ssm:GetParameter"} == {
        "jwt-secret", "jwt-refresh-secret", "cursor-secret"}


def test_the_cursor_secret_is_a_generated_secure_string(program, stack):
    param = program.one("aws:ssm/parameter:Parameter", name=f"/listbackup/{stack}/cursor-secret")
    assert param.inputs["type"] == "SecureString" and len(unwrap(param.inputs["value"])) >= 32


def test_activity_reads_only(program, stack):
    function = program.one(FUNCTION, name=f"listbackup-activity-{stack}-api")
    actions = {a for a, _ in grants(program, function)}
    assert actions == {"ssm:GetParameter", "dynamodb:GetItem", "dynamodb:Query",
                       "logs:CreateLogStream", "logs:PutLogEvents"}


def test_only_auth_and_account_write_memberships_and_users(program, stack):
    writers = set()
    for function in program.of_type(FUNCTION):
        for action, resource in grants(program, function):
            if action in ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem") and \
                    resource.endswith((f"table/listbackup-{stack}-users", f"table/listbackup-{stack}-users-accounts")):
                writers.add(function.inputs["name"])
    assert writers == {f"listbackup-auth-{stack}-api", f"listbackup-account-{stack}-api"}
