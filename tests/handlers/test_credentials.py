"""Credentials at rest: KMS encryption bound to one account and source, nothing in clear in
DynamoDB, in an API response or in a log line."""

from __future__ import annotations

import base64
import json

import boto3
import pytest

from handlers.shared import credentials
from handlers.shared import sources as store
from tests.handlers.test_sources_support import (  # noqa: F401  (fixtures)
    OTHER_STRIPE_KEY, REJECTED_KEY, STRIPE_KEY, create_stripe, get_row, logs, platform, raw_item,
    seed_tenant, sources_call, stage, stripe_customers)

pytestmark = pytest.mark.usefixtures("stage")

VALUES = {"api_key": STRIPE_KEY, "note": "second field"}


def test_a_roundtrip_needs_the_same_account_and_source():
    ciphertext = credentials.encrypt("acc_1", "src_1", VALUES)
    assert STRIPE_KEY not in ciphertext
    assert STRIPE_KEY.encode() not in base64.b64decode(ciphertext)
    assert credentials.decrypt("acc_1", "src_1", ciphertext) == VALUES
    for account_id, source_id in (("acc_2", "src_1"), ("acc_1", "src_2"), ("acc_2", "src_2")):
        with pytest.raises(credentials.UnreadableCredentials) as caught:
            credentials.decrypt(account_id, source_id, ciphertext)
        assert STRIPE_KEY not in str(caught.value)


def test_moto_kms_enforces_the_encryption_context(stage):
    """The property the design relies on, checked on the KMS API itself."""
    kms = boto3.client("kms")
    blob = kms.encrypt(KeyId=stage, Plaintext=b"x",
                       EncryptionContext={"accountId": "acc_1", "sourceId": "src_1"})["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob, KeyId=stage,
                       EncryptionContext={"accountId": "acc_1", "sourceId": "src_1"})["Plaintext"] == b"x"
    for context in ({"accountId": "acc_2", "sourceId": "src_1"}, {}):
        with pytest.raises(kms.exceptions.InvalidCiphertextException):
            kms.decrypt(CiphertextBlob=blob, KeyId=stage, EncryptionContext=context)


def test_damaged_or_missing_ciphertexts_are_unreadable():
    ciphertext = credentials.encrypt("acc_1", "src_1", VALUES)
    raw = bytearray(base64.b64decode(ciphertext))
    raw[-1] ^= 0xFF
    for bad in ("", "not base64 !", base64.b64encode(bytes(raw)).decode()):
        with pytest.raises(credentials.UnreadableCredentials):
            credentials.decrypt("acc_1", "src_1", bad)


def test_long_oauth_tokens_are_compressed_to_fit_kms_and_huge_ones_refused():
    long_values = {"access_token": "a" * 3000 + "tail", "refresh_token": "r" * 3000, "expires_at": 12}
    ciphertext = credentials.encrypt("acc_1", "src_1", long_values)
    assert credentials.decrypt("acc_1", "src_1", ciphertext) == long_values
    import os

    random_text = base64.b64encode(os.urandom(6000)).decode()
    with pytest.raises(credentials.CredentialsTooLarge):
        credentials.encrypt("acc_1", "src_1", {"token": random_text})


def test_redacted_names_the_fields_that_are_set():
    assert credentials.redacted({"api_key": "x", "empty": "", "none": None}) == {"api_key": "set"}
    assert credentials.redacted(["b", "a"]) == {"a": "set", "b": "set"}
    assert credentials.redacted(None) == {}


# --------------------------------------------------------------------------- at rest

def test_the_raw_dynamodb_row_holds_no_plaintext():
    _, account, me = seed_tenant()
    source = create_stripe(me)
    item = raw_item("sources", accountId=account["accountId"], sourceId=source["sourceId"])
    dumped = json.dumps(item)
    assert STRIPE_KEY not in dumped and STRIPE_KEY[8:30] not in dumped
    ciphertext = item["credentialsCiphertext"]["S"]
    assert STRIPE_KEY.encode() not in base64.b64decode(ciphertext)
    assert item["credentialFields"] == {"L": [{"S": "api_key"}]}
    # and it is the key, under this source's context
    assert credentials.decrypt(account["accountId"], source["sourceId"], ciphertext) == {"api_key": STRIPE_KEY}


def test_a_ciphertext_copied_onto_another_accounts_source_does_not_decrypt(platform, logs):
    platform.serve("stripe").on("GET /v1/customers", stripe_customers)
    _, victim, victim_me = seed_tenant()
    _, thief, thief_me = seed_tenant()
    victim_source = create_stripe(victim_me, key=STRIPE_KEY)
    thief_source = create_stripe(thief_me, key=OTHER_STRIPE_KEY)
    stolen = get_row("sources", accountId=victim["accountId"], sourceId=victim_source["sourceId"])
    from handlers.shared.clients import table

    table("sources").update_item(
        Key={"accountId": thief["accountId"], "sourceId": thief_source["sourceId"]},
        UpdateExpression="SET credentialsCiphertext = :c",
        ExpressionAttributeValues={":c": stolen["credentialsCiphertext"]})
    row = get_row("sources", accountId=thief["accountId"], sourceId=thief_source["sourceId"])
    with pytest.raises(credentials.UnreadableCredentials):
        store.load_credentials(row)

    status, body = sources_call("POST /sources/{sourceId}/test", thief_me,
                                path={"sourceId": thief_source["sourceId"]})
    assert status == 200, body
    test = body["data"]["lastTest"]
    assert test["ok"] is False and "could not be read" in test["message"]
    assert body["data"]["status"] == "error"
    # the platform never saw the victim's key (nor any request at all)
    assert platform.seen == []
    output = logs.read()
    assert STRIPE_KEY not in json.dumps(body) and STRIPE_KEY not in output
    assert "stored credentials unreadable" in output


def test_a_copied_ciphertext_on_the_same_account_is_refused_too(platform):
    platform.serve("stripe").on("GET /v1/customers", stripe_customers)
    _, account, me = seed_tenant()
    first, second = create_stripe(me), create_stripe(me, key=OTHER_STRIPE_KEY)
    row = get_row("sources", accountId=account["accountId"], sourceId=first["sourceId"])
    moved = {**get_row("sources", accountId=account["accountId"], sourceId=second["sourceId"]),
             "credentialsCiphertext": row["credentialsCiphertext"]}
    with pytest.raises(credentials.UnreadableCredentials):
        store.load_credentials(moved)


# --------------------------------------------------------------------------- never shown

def test_no_response_or_log_line_carries_a_credential(platform, logs):
    platform.serve("stripe").on("GET /v1/customers", stripe_customers)
    _, account, me = seed_tenant()
    bodies = []

    def record(status_body):
        bodies.append(json.dumps(status_body[1]))
        return status_body

    status, body = record(sources_call("POST /sources", me, body={
        "name": "Stripe", "type": "stripe", "credentials": {"api_key": STRIPE_KEY}}))
    assert status == 201
    source_id = body["data"]["sourceId"]
    assert body["data"]["credentials"] == {"api_key": "set"}
    path = {"sourceId": source_id}
    record(sources_call("GET /sources", me))
    record(sources_call("GET /sources/{sourceId}", me, path=path))
    assert record(sources_call("POST /sources/{sourceId}/test", me, path=path))[1]["data"]["lastTest"]["ok"]
    # a bad value in an update is named by field, never echoed
    status, body = record(sources_call("PUT /sources/{sourceId}", me, path=path,
                                       body={"credentials": {"api_key": "pk_" + STRIPE_KEY}}))
    assert status == 400 and body["fields"] == ["credentials.api_key"]
    assert record(sources_call("PUT /sources/{sourceId}", me, path=path,
                               body={"credentials": {"api_key": REJECTED_KEY}}))[0] == 200
    tested = record(sources_call("POST /sources/{sourceId}/test", me, path=path))[1]["data"]
    assert tested["lastTest"]["ok"] is False and tested["status"] == "error"
    assert record(sources_call("DELETE /sources/{sourceId}", me, path=path))[0] == 200
    output = logs.read()
    assert output  # the services did log
    for secret in (STRIPE_KEY, REJECTED_KEY, STRIPE_KEY[8:], REJECTED_KEY[8:]):
        assert all(secret not in b for b in bodies)
        assert secret not in output
    # nor does the activity feed
    from tests.handlers.test_sources_support import events

    assert all(STRIPE_KEY not in json.dumps(e, default=str) and REJECTED_KEY not in json.dumps(e, default=str)
               for e in events(account["accountId"]))
