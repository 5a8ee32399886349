"""The sources table's store, shared by the sources service, the OAuth callback and the
backup worker.

A source row: ``accountId, sourceId, name, type`` (a platform id of the catalog),
``status`` (``active | error | paused | pending``), ``settings`` (map of the platform's
non-secret fields), ``credentialsCiphertext`` (base64 KMS ciphertext of the secret fields,
see ``handlers.shared.credentials``), ``credentialFields`` (the names of the stored secret
fields, so views can say which are set without decrypting), ``lastTest``
(``{ok, at, status, message}`` or absent), ``lastRunAt``, ``createdBy``, ``createdAt``,
``updatedAt``.

The account row's ``sourceCount`` counts its sources: creating a source increments it in
the same transaction as the put, under the condition that it is below the effective plan's
limit, so two concurrent creates cannot both take the last slot.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Callable, Mapping

from botocore.exceptions import ClientError

from handlers.shared import clock
from handlers.shared import credentials as vault
from handlers.shared.accounts import effective_plan, get_account
from handlers.shared.dynamo import counted_delete, counted_put
from handlers.shared.clients import table
from handlers.shared.http import ApiError
from handlers.shared.ids import new_id
from handlers.shared.plans import Plan, limit_of

STATUSES = ("active", "error", "paused", "pending")
USER_STATUSES = ("active", "paused")      # what PUT /sources/{id} may set
MAX_FIELD_NAME = 64


# --------------------------------------------------------------------------- reads

def get_source(account_id: str | None, source_id: str | None) -> dict | None:
    """The account's source, or None (another account's source is None too)."""
    if not account_id or not source_id or not isinstance(source_id, str) or len(source_id) > 128:
        return None
    return table("sources").get_item(Key={"accountId": account_id, "sourceId": source_id}).get("Item")


def load_credentials(row: Mapping[str, Any]) -> dict[str, str]:
    """The decrypted credentials of a source row (``credentials.UnreadableCredentials``
    when its ciphertext does not decrypt for this source)."""
    return vault.decrypt(row["accountId"], row["sourceId"], row.get("credentialsCiphertext", ""))


def source_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """The API's source shape; credential values never appear, only which fields are set."""
    return {
        "sourceId": row["sourceId"], "name": row.get("name", ""), "type": row.get("type"),
        "status": row.get("status", "active"),
        "settings": {k: _plain(v) for k, v in (row.get("settings") or {}).items()},
        "credentials": vault.redacted(row.get("credentialFields") or []),
        "lastTest": _test_view(row.get("lastTest")),
        "lastRunAt": row.get("lastRunAt"),
        "createdAt": row.get("createdAt"), "updatedAt": row.get("updatedAt"),
    }


def _test_view(test: Mapping[str, Any] | None) -> dict | None:
    if not test:
        return None
    return {"ok": bool(test.get("ok")), "at": test.get("at"), "status": _plain(test.get("status")),
            "message": test.get("message")}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


# --------------------------------------------------------------------------- validation

def clean_settings(platform, settings: Mapping[str, Any] | None, *, partial: bool = False) -> dict[str, str]:
    """The platform's non-secret fields from ``settings``, trimmed and checked (unknown
    fields, missing required ones, patterns); ``validation_failed`` naming
    ``settings.<field>`` otherwise. ``partial`` skips the required check."""
    return _clean(platform, settings, secret=False, where="settings", partial=partial)


def clean_credentials(platform, values: Mapping[str, Any] | None, *, partial: bool = False) -> dict[str, str]:
    """As ``clean_settings`` for the platform's secret fields (``credentials.<field>``).
    Error messages name fields, never values."""
    return _clean(platform, values, secret=True, where="credentials", partial=partial)


def _clean(platform, values, *, secret: bool, where: str, partial: bool) -> dict[str, str]:
    fields = {f.name: f for f in (platform.credential_fields if secret else platform.setting_fields)}
    values = values or {}
    if not isinstance(values, Mapping):
        raise ApiError("validation_failed", f"{where} must be an object", fields=[where])
    bad: list[str] = []
    notes: list[str] = []
    out: dict[str, str] = {}
    for name, value in values.items():
        field = fields.get(name)
        if field is None:
            bad.append(f"{where}.{str(name)[:MAX_FIELD_NAME]}")
            notes.append(f"{platform.name} has no {where[:-1] if where.endswith('s') else where} "
                         f"named {str(name)[:MAX_FIELD_NAME]!r}")
            continue
        if value is None:
            continue
        if not isinstance(value, str):
            bad.append(f"{where}.{name}")
            notes.append(f"{field.label} must be text")
            continue
        value = value.strip()
        if value == "":
            continue
        if field.pattern and not re.fullmatch(field.pattern, value):
            bad.append(f"{where}.{name}")
            notes.append(f"{field.label} is not in the expected format")
            continue
        out[name] = value
    if not partial:
        for name, field in fields.items():
            if field.required and name not in out and f"{where}.{name}" not in bad:
                bad.append(f"{where}.{name}")
                notes.append(f"{field.label} is required")
    if bad:
        raise ApiError("validation_failed", "; ".join(notes), fields=bad)
    return out


# --------------------------------------------------------------------------- writes

def plan_limit_error(plan: Plan, limit: int) -> ApiError:
    noun = "source" if limit == 1 else "sources"
    return ApiError("plan_limit", f"The {plan.name} plan allows {limit} {noun} per account; "
                                  "upgrade or remove a source to add another")


def create_source(account_id: str, *, name: str, type: str, settings: Mapping[str, str],
                  credentials: Mapping[str, str], status: str = "active",
                  actor: str | None = None, account: dict | None = None,
                  with_items: Callable[[dict], list[dict]] | None = None) -> dict:
    """Store a new source with its credentials encrypted; the account's ``sourceCount`` is
    incremented in the same transaction, within the effective plan's source limit
    (``plan_limit`` 402 beyond it). Values must already be validated. ``account``: its
    row when the caller has read it; ``with_items(row)``: more transaction entries to
    commit with the new row (its audit event)."""
    if status not in STATUSES:
        raise ValueError(f"unknown source status {status!r}")
    if account is None:
        account = get_account(account_id)
    if account is None:
        raise ApiError("not_found", "No such account")
    plan = effective_plan(account)
    limit = limit_of(plan, "sources")
    if limit is not None and _as_int(account.get("sourceCount")) >= limit:
        raise plan_limit_error(plan, limit)

    source_id = new_id("src")
    ciphertext = encrypt_credentials(account_id, source_id, credentials)
    now = clock.iso()
    row = {
        "accountId": account_id, "sourceId": source_id, "name": name, "type": type,
        "status": status, "settings": dict(settings or {}),
        "credentialsCiphertext": ciphertext, "credentialFields": field_names(credentials),
        "createdBy": actor or "", "createdAt": now, "updatedAt": now,
    }
    reasons = counted_put(account_id, "sourceCount", limit, table("sources").name, row, "sourceId",
                          with_items(row) if with_items else ())
    if reasons is not None:
        if reasons[0] == "ConditionalCheckFailed" and limit is not None:
            raise plan_limit_error(plan, limit)
        raise ApiError("conflict", "The account changed meanwhile; try again")
    return row


def store_credentials(account_id: str, source_id: str, credentials: Mapping[str, str], *,
                      status: str | None = None, settings: Mapping[str, str] | None = None,
                      clear_test: bool = False) -> dict:
    """Replace a source's stored credentials (encrypted), optionally its status and
    settings and forgetting its last test; answers the updated row (``not_found`` if the
    source is gone). Used for user updates, OAuth reconnects and refreshed tokens."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown source status {status!r}")
    ciphertext = encrypt_credentials(account_id, source_id, credentials)
    sets = ["credentialsCiphertext = :c", "credentialFields = :f", "updatedAt = :now"]
    values: dict[str, Any] = {":c": ciphertext, ":f": field_names(credentials), ":now": clock.iso()}
    names: dict[str, str] = {}
    if status is not None:
        sets.append("#status = :s")
        names["#status"] = "status"
        values[":s"] = status
    if settings is not None:
        sets.append("settings = :settings")
        values[":settings"] = dict(settings)
    expression = "SET " + ", ".join(sets)
    if clear_test:
        expression += " REMOVE lastTest"
    kwargs: dict[str, Any] = {
        "Key": {"accountId": account_id, "sourceId": source_id},
        "UpdateExpression": expression, "ExpressionAttributeValues": values,
        "ConditionExpression": "attribute_exists(sourceId)", "ReturnValues": "ALL_NEW"}
    if names:
        kwargs["ExpressionAttributeNames"] = names
    try:
        return table("sources").update_item(**kwargs)["Attributes"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            raise ApiError("not_found", "No such source") from None
        raise


ACTIVE_RUN_STATUSES = ("pending", "running")
RUNS_CHECKED = 25


def active_run(account_id: str, source_id: str) -> dict | None:
    """A pending or running run of the source among its newest runs, if any (runs
    table, ``source-index``: sourceId + createdAt)."""
    from boto3.dynamodb.conditions import Key

    reply = table("runs").query(IndexName="source-index",
                                KeyConditionExpression=Key("sourceId").eq(source_id),
                                ScanIndexForward=False, Limit=RUNS_CHECKED)
    for run in reply.get("Items", []):
        if run.get("accountId") == account_id and run.get("status") in ACTIVE_RUN_STATUSES:
            return run
    return None


def delete_source(account_id: str, source_id: str, extra: list[dict] | tuple = ()) -> bool:
    """Delete the source row (its ciphertext goes with it) and decrement the account's
    ``sourceCount`` in one transaction, with ``extra`` entries (its audit event); False
    when the source was already gone. A counter that had drifted to zero (or a missing
    account) is left alone: the row goes, with the entries, in a second transaction."""
    delete = {"Delete": {
        "TableName": table("sources").name, "Key": {"accountId": account_id, "sourceId": source_id},
        "ConditionExpression": "attribute_exists(sourceId)"}}
    reasons = counted_delete(account_id, "sourceCount", delete, extra)
    if reasons is None:
        return True
    if reasons[0] == "ConditionalCheckFailed":
        return False
    raise ApiError("conflict", "The source changed meanwhile; try again")


def record_test(row: Mapping[str, Any], *, ok: bool, status: int | None, message: str | None,
                new_status: str | None = None) -> dict:
    """Store a connection test's outcome (``lastTest``) and, when given, the source's new
    status; answers the updated row (``not_found`` if the source is gone)."""
    test = {"ok": ok, "at": clock.iso(), "status": status, "message": message}
    expression = "SET lastTest = :t"
    values: dict[str, Any] = {":t": test}
    kwargs: dict[str, Any] = {}
    if new_status is not None and new_status != row.get("status"):
        expression += ", #status = :s, updatedAt = :now"
        values.update({":s": new_status, ":now": test["at"]})
        kwargs["ExpressionAttributeNames"] = {"#status": "status"}
    try:
        return table("sources").update_item(
            Key={"accountId": row["accountId"], "sourceId": row["sourceId"]},
            UpdateExpression=expression, ExpressionAttributeValues=values,
            ConditionExpression="attribute_exists(sourceId)", ReturnValues="ALL_NEW", **kwargs)["Attributes"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            raise ApiError("not_found", "No such source") from None
        raise


def field_names(values: Mapping[str, Any]) -> list[str]:
    """The names of the fields that hold a value (what a view shows as "set")."""
    return sorted(vault.redacted(values))


def encrypt_credentials(account_id: str, source_id: str, values: Mapping[str, str]) -> str:
    try:
        return vault.encrypt(account_id, source_id, values)
    except vault.CredentialsTooLarge:
        raise ApiError("validation_failed", "The credentials are too long to store",
                       fields=[f"credentials.{name}" for name in sorted(values)]) from None


def _as_int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0
