"""Least privilege, proven at runtime (issue 11): offline mode's strict mode
(``--strict``, offline/strict.py) runs every function as its own moto IAM identity under
moto's IAM enforcement and checks every AWS call each function makes against its declared
policy, resources included.

The whole journey a customer takes (tests/e2e/journey.py) - identity (register, verify,
sessions, profile, API keys, passwords), connectors (a Stripe source on localstripe, its
connection test, a HubSpot source connected through OAuth), backups (a run to completed, a
run cancelled while it runs, sync now), getting data back (list, download, delete and
restore, export), billing (Checkout, a signed webhook moving the plan, portal, invoices,
cancellation), a team (invitations, members, sub-accounts, switching), analytics and
activity - takes every route of the API with a successful answer and passes in strict mode
with no call outside a policy and nothing refused. Then the same journey with one
permission taken away from one function (``--strict-revoke``, applied to the evaluated
policy before anything is provisioned) fails, and strict mode names the action.
"""

from __future__ import annotations

import json

import pytest

from offline.strict_hook import Need, check, decide, resource_matches
from tests.e2e.journey import (JourneyFailed, JourneyServer, RouteTable, journey, platforms,
                               strict_server)

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

@pytest.fixture(scope="module")
def outside():
    """localstripe, the Checkout/portal server, an OAuth platform and a Keap API that holds
    its answer (tests/e2e/journey.py's :func:`platforms`)."""
    with platforms() as started:
        yield started


def strict_report(server: JourneyServer) -> dict:
    reply = server.get("", base="/_offline/strict")
    assert reply.status == 200, reply
    return reply.json


def violations(server: JourneyServer) -> list[dict]:
    reply = server.get("", base="/_offline/violations")
    assert reply.status == 200, reply
    return reply.json


def test_the_whole_journey_runs_within_each_functions_declared_policy(outside):
    with strict_server(outside) as server:
        journey(server, outside)
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
    # every route of the API was taken with a successful answer, so strict mode saw each
    not_taken = RouteTable.of_the_api().not_taken(server.sent)
    assert not_taken == [], not_taken
    assert found == [], json.dumps(found, indent=1)
    assert report["totals"]["violations"] == 0 and report["totals"]["denied"] == 0
    # every function took part, so every policy was exercised
    idle = [name for name, figures in report["functions"].items() if not figures["calls"]]
    assert idle == [], idle
    assert "STRICT" not in log.replace("strict:", "")
    assert "AccessDenied" not in log and "not authorized to perform" not in log


def test_a_missing_permission_fails_the_journey_loudly_and_names_the_action(outside):
    """The backup worker without kms:Decrypt: moto refuses the call, the run fails (the
    worker takes the refusal for unreadable credentials), and strict mode names the action,
    the function and the key."""
    with strict_server(outside, "--strict-revoke", f"{WORKER}=kms:Decrypt") as server:
        with pytest.raises(JourneyFailed) as failed:
            journey(server, outside)
        found = violations(server)
        log = server.log_text()

    print(f"\nwithout kms:Decrypt on {WORKER}: {failed.value}\n  " +
          "\n  ".join(json.dumps(v)[:300] for v in found))
    assert failed.value.step == "backup", failed.value
    # what the customer sees blames the credentials; strict mode names the permission
    assert "the run ended failed: The source's stored credentials cannot be read" in failed.value.detail
    beyond = [v for v in found if v["kind"] == "outside-policy"]
    assert beyond and {(v["function"], v["action"]) for v in beyond} == {(WORKER, "kms:Decrypt")}, found
    assert beyond[0]["resource"].startswith("arn:aws:kms:us-east-1:123456789012:key/")
    denied = [v for v in found if v["kind"] == "denied"]
    assert denied and all(v["function"] == WORKER for v in denied), found
    assert "not authorized to perform: kms:Decrypt" in denied[0]["message"]
    assert f"[{WORKER}] STRICT VIOLATION: {WORKER} called kms:Decrypt on arn:aws:kms:" in log
    assert f"[{WORKER}] STRICT ACCESS DENIED: {WORKER} kms.Decrypt: AccessDenied" in log
