"""The product's backend in offline mode, started once for the session's end-to-end tests."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.harness import OfflineServer


@pytest.fixture(scope="session")
def offline():
    server = OfflineServer().start()
    yield server
    server.stop()


@pytest.fixture
def member(offline):
    """A user with a membership, created directly in the local tables, and a token minted
    with the stage's secret from the local SSM (until registration exists)."""
    from handlers.shared import tokens

    user_id, account_id = f"usr_{uuid.uuid4().hex[:12]}", f"acc_{uuid.uuid4().hex[:12]}"
    dynamodb = offline.aws("dynamodb")
    dynamodb.put_item(TableName="listbackup-dev-users", Item={
        "userId": {"S": user_id}, "email": {"S": f"{user_id}@example.com"},
        "status": {"S": "active"}, "tokenVersion": {"N": "0"}})
    dynamodb.put_item(TableName="listbackup-dev-users-accounts", Item={
        "userId": {"S": user_id}, "accountId": {"S": account_id}, "role": {"S": "manager"}})
    secret = offline.aws("ssm").get_parameter(Name="/listbackup/dev/jwt-secret",
                                              WithDecryption=True)["Parameter"]["Value"]
    token, _ = tokens.issue(secret, stage="dev", typ="access", user_id=user_id,
                            account_id=account_id, role="manager", version=0)
    return {"userId": user_id, "accountId": account_id, "token": token, "secret": secret}
