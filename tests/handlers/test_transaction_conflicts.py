"""Transactions that meet another one writing the same rows (DynamoDB cancels them with
``TransactionConflict``) against moto: a passing conflict is retried and commits; one that
outlasts the retries answers 503 and writes nothing, never 500.

The conflict is DynamoDB's own answer, made by a botocore ``before-call`` hook on the
handlers' client, so everything after it (the client's error parsing, the retry, the
route's mapping) is the real code."""

from __future__ import annotations

import json

import boto3
import pytest

from handlers.auth import api
from handlers.shared import clients, dynamo
from tests.support import PREFIX, api_event, call

PASSWORD = "Quiet-Lantern-Harbor-42"


class _Http:
    status_code = 400
    headers: dict = {}


@pytest.fixture
def conflicts(backend, monkeypatch):
    """``conflicts(n)``: the next n TransactWriteItems are cancelled by a conflict; the list
    it returns counts every attempt."""
    monkeypatch.setattr("time.sleep", lambda _: None)     # the backoff, not under test
    attempts: list[int] = []
    remaining = {"n": 0}

    def hook(params, **_):
        items = json.loads(params["body"])["TransactItems"]     # the request as it would be sent
        attempts.append(len(items))
        if remaining["n"] == 0:
            return None
        remaining["n"] -= 1
        reasons = [{"Code": "None"}] * len(items)
        reasons[-1] = {"Code": "TransactionConflict",
                       "Message": "Transaction is ongoing for the item"}
        return _Http(), {"Error": {"Code": "TransactionCanceledException",
                                   "Message": "Transaction cancelled"},
                         "CancellationReasons": reasons}

    clients.dynamodb().meta.events.register("before-call.dynamodb.TransactWriteItems", hook)

    def arm(n: int) -> list[int]:
        remaining["n"] = n
        return attempts
    return arm


def register(email: str):
    return call(api.handler, api_event("POST /auth/register",
                                       body={"email": email, "password": PASSWORD, "name": "Ada"}))


def users_with(email: str) -> list[dict]:
    items = boto3.resource("dynamodb").Table(PREFIX + "users").scan()["Items"]
    return [u for u in items if u.get("email") == email]


def test_a_conflict_that_passes_is_retried_and_the_registration_commits(conflicts):
    attempts = conflicts(dynamo.CONFLICT_ATTEMPTS - 1)
    status, body = register("ada@example.test")
    assert status == 201, body
    assert len(attempts) == dynamo.CONFLICT_ATTEMPTS
    assert len(users_with("ada@example.test")) == 1


def test_conflicts_that_outlast_the_retries_answer_503_and_write_nothing(conflicts):
    attempts = conflicts(dynamo.CONFLICT_ATTEMPTS)
    status, body = register("ada@example.test")
    assert status == 503, body
    assert body["code"] == "unavailable" and "try again" in body["error"]
    assert len(attempts) == dynamo.CONFLICT_ATTEMPTS
    assert users_with("ada@example.test") == []

    # the moment passes: the same request now succeeds
    status, body = register("ada@example.test")
    assert status == 201, body
    assert len(users_with("ada@example.test")) == 1


def test_a_failed_condition_is_not_retried(conflicts):
    attempts = conflicts(0)
    assert register("ada@example.test")[0] == 201
    before = len(attempts)
    status, body = register("ada@example.test")
    assert status == 409 and body["code"] == "conflict"
    # at most one transaction attempt for the second registration (the address check may
    # refuse it before any write)
    assert len(attempts) - before <= 1


@pytest.mark.parametrize("reasons, busy", [
    (None, False),
    (["None", "TransactionConflict"], True),
    (["TransactionConflict", "TransactionConflict"], True),
    (["ConditionalCheckFailed", "TransactionConflict"], False),   # a condition: the caller's
    (["ThrottlingError", "TransactionConflict"], False),          # a fault
    (["None", "None"], False),
])
def test_only_a_conflict_and_nothing_else_counts_as_busy(reasons, busy):
    assert dynamo.busy(reasons) is busy
