"""The sources and integrations services, and the OAuth app parameters, under mocks."""

from __future__ import annotations

import json

from offline.evaluate import evaluate
from tests.conftest import unwrap
from tests.infra.test_functions import role_policy_of
from tests.infra.test_project_config import stack_config

FUNCTION = "aws:lambda/function:Function"


def statements(program, name):
    return role_policy_of(program, program.one(FUNCTION, name=name))["Statement"]


def test_only_sources_and_the_worker_may_decrypt_credentials_and_only_with_their_context(program, stack):
    key_arn = program.one("aws:kms/key:Key").state["arn"]
    users = {}
    for function in program.of_type(FUNCTION):
        for st in role_policy_of(program, function)["Statement"]:
            if any(a.startswith("kms:") for a in st["Action"]):
                assert st["Resource"] == [key_arn]
                assert st["Condition"] == {"Null": {"kms:EncryptionContext:accountId": "false",
                                                    "kms:EncryptionContext:sourceId": "false"}}
                users[function.inputs["name"]] = set(st["Action"])
    # the worker re-encrypts OAuth tokens it refreshes; the callback only stores them
    assert users == {f"listbackup-sources-{stack}-api": {"kms:Encrypt", "kms:Decrypt"},
                     f"listbackup-jobs-{stack}-worker": {"kms:Encrypt", "kms:Decrypt"},
                     f"listbackup-integrations-{stack}-api": {"kms:Encrypt"}}


def test_connector_functions_know_where_things_are_by_name(program, stack):
    for service in ("sources", "integrations"):
        env = program.one(FUNCTION, name=f"listbackup-{service}-{stack}-api").inputs["environment"]["variables"]
        assert env["CREDENTIALS_KEY_ARN"] == program.one("aws:kms/key:Key").state["arn"]
        assert env["OAUTH_PARAM_PREFIX"] == f"/listbackup/{stack}/oauth/"
        assert env["ALLOWED_RETURN_ORIGINS"] == ",".join(stack_config(stack)["listbackup:corsOrigins"])
        assert env["API_BASE_URL"] == program.outputs["apiUrl"]


def test_every_oauth_platform_has_its_app_parameters_unconfigured_by_default(program, stack):
    from handlers.shared.connectors.platforms import CATALOG

    params = {p.inputs["name"]: p for p in program.of_type("aws:ssm/parameter:Parameter")}
    oauth_ids = sorted(i for i, p in CATALOG.items() if p.oauth is not None)
    assert oauth_ids
    for platform_id in oauth_ids:
        client_id = params[f"/listbackup/{stack}/oauth/{platform_id}/client-id"]
        secret = params[f"/listbackup/{stack}/oauth/{platform_id}/client-secret"]
        assert secret.inputs["type"] == "SecureString"
        assert unwrap(client_id.inputs["value"]) == "unconfigured"
    granted = {r.rsplit("parameter", 1)[-1] for st in statements(program, f"listbackup-integrations-{stack}-api")
               if "ssm:GetParameter" in st["Action"] for r in st["Resource"]}
    assert granted == {f"/listbackup/{stack}/oauth/{i}/{k}" for i in oauth_ids
                       for k in ("client-id", "client-secret")}


def test_configured_oauth_apps_reach_their_parameters():
    from handlers.shared.connectors.platforms import CATALOG

    platform_id = sorted(i for i, p in CATALOG.items() if p.oauth is not None)[0]
    clients = json.dumps({platform_id: {"clientId": "cid-123", "clientSecret": "shh-456"}})
    program = evaluate("dev", overrides={"listbackup:oauthClients": clients})
    params = {p.inputs["name"]: p for p in program.of_type("aws:ssm/parameter:Parameter")}
    assert unwrap(params[f"/listbackup/dev/oauth/{platform_id}/client-id"].inputs["value"]) == "cid-123"
    assert unwrap(params[f"/listbackup/dev/oauth/{platform_id}/client-secret"].inputs["value"]) == "shh-456"
