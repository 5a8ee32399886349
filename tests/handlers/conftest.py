"""A whole stage in moto for handler tests: every table from the program's specs, the
stage's secrets in SSM, the sender identity in SES, the data bucket."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from components import tables
from handlers.shared import clients
from tests.support import BUCKET, STAGE, counted_dynamodb_calls, create_tables, moto_env

SECRETS = {
    f"/listbackup/{STAGE}/jwt-secret": "a" * 24 + "-test-access-secret-0123456789",
    f"/listbackup/{STAGE}/jwt-refresh-secret": "b" * 24 + "-test-refresh-secret-0123456789",
    f"/listbackup/{STAGE}/cursor-secret": "c" * 24 + "-test-cursor-secret-0123456789",
}
SENDER = "noreply@test.listbackup.ai"
ALL_TABLES = tables.CORE_TABLES + tables.API_TABLES + tables.AUTH_TABLES + tables.ACCOUNT_TABLES


def _reset_caches() -> None:
    clients.reset()
    try:
        from handlers.shared import params
        params.clear_cache()
    except ImportError:
        pass


@pytest.fixture
def backend(monkeypatch):
    """moto with the stage's tables, secrets, sender and bucket; env as the program sets it."""
    moto_env(monkeypatch)
    monkeypatch.setenv("JWT_SECRET_PARAM", f"/listbackup/{STAGE}/jwt-secret")
    monkeypatch.setenv("JWT_REFRESH_SECRET_PARAM", f"/listbackup/{STAGE}/jwt-refresh-secret")
    monkeypatch.setenv("CURSOR_SECRET_PARAM", f"/listbackup/{STAGE}/cursor-secret")
    monkeypatch.setenv("SES_FROM_EMAIL", SENDER)
    monkeypatch.setenv("APP_URL", "https://app.test.listbackup.ai")
    with mock_aws():
        _reset_caches()
        create_tables(ALL_TABLES)
        ssm = boto3.client("ssm")
        for name, value in SECRETS.items():
            ssm.put_parameter(Name=name, Value=value, Type="SecureString")
        boto3.client("ses").verify_email_identity(EmailAddress=SENDER)
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield
        _reset_caches()


def sent_emails() -> list[dict]:
    """What the handlers sent through SES: recipient, subject, text part."""
    from email import message_from_string
    from email.policy import default

    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    out = []
    for message in ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages:
        raw = getattr(message, "raw_data", None)
        if raw is None:
            out.append({"to": message.destinations, "subject": message.subject, "text": message.body})
            continue
        parsed = message_from_string(raw, policy=default)
        text = parsed.get_body(preferencelist=("plain",))
        out.append({"to": parsed["To"], "subject": parsed["Subject"],
                    "text": text.get_content() if text else ""})
    return out


@pytest.fixture
def dynamodb_calls():
    """The name of every DynamoDB API call made while the test runs (a transaction or a
    batch is one), counted where botocore sends them."""
    with counted_dynamodb_calls() as calls:
        yield calls
