"""E-mail to an account's owners when its backups need them (a run failed, a source's
credentials stopped working), at most once a UTC day per source.

Used by the backup worker and by the scheduler (a run whose worker vanished). IAM:
``dynamodb:UpdateItem``/``GetItem`` on sources, ``dynamodb:Query`` on users-accounts'
account-index, ``dynamodb:GetItem`` on users, ``ses:SendEmail``; env SES_FROM_EMAIL, APP_URL.
"""

from __future__ import annotations

import os

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from handlers.shared import clock, mail
from handlers.shared import sources as source_store
from handlers.shared.clients import table
from handlers.shared.log import get_logger

logger = get_logger("alerts")


def owner_emails(account_id: str) -> list[str]:
    memberships = table("users-accounts").query(
        IndexName="account-index", KeyConditionExpression=Key("accountId").eq(account_id))["Items"]
    emails = []
    for member in memberships:
        if member.get("role") != "owner":
            continue
        user = table("users").get_item(Key={"userId": member["userId"]}).get("Item")
        if user and user.get("email") and user.get("status", "active") == "active":
            emails.append(user["email"])
    return emails


def alert_owners(account_id: str, source_id: str, reason: str, *, run_id: str | None = None) -> bool:
    """E-mail the account's owners, at most once a UTC day per source (a conditional write
    on the source's ``lastAlertDay``). Answers whether mail went out."""
    day = clock.now().strftime("%Y-%m-%d")
    try:
        table("sources").update_item(
            Key={"accountId": account_id, "sourceId": source_id},
            UpdateExpression="SET lastAlertDay = :d",
            ConditionExpression="attribute_exists(sourceId) AND "
                                "(attribute_not_exists(lastAlertDay) OR lastAlertDay <> :d)",
            ExpressionAttributeValues={":d": day})
    except ClientError as err:
        if err.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    source = source_store.get_source(account_id, source_id) or {}
    name = source.get("name") or source_id
    link = f"{os.environ.get('APP_URL', '').rstrip('/')}/sources/{source_id}"
    text = (f"Hello,\n\nA backup of your source \"{name}\" did not complete.\n\n{reason}\n\n"
            f"Open the source to check its credentials and runs: {link}\n\n"
            f"You receive at most one such message per source per day.\n\nListBackup")
    for to in owner_emails(account_id):
        try:
            mail.send(to, f"ListBackup: backup of {name} failed", text)
        except Exception:   # noqa: BLE001 - a mail fault must not fail the run's bookkeeping
            logger.exception("alert mail failed", extra={"accountId": account_id, "sourceId": source_id})
    logger.info("owners alerted", extra={"accountId": account_id, "sourceId": source_id, "runId": run_id})
    return True
