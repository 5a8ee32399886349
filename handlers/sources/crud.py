"""List, create, read, update and delete sources.

Every read and write is keyed by the caller's account (another account's source id
answers 404). Input is checked completely (the platform's fields, patterns, required
ones) before anything is written; credentials are encrypted before they reach DynamoDB and
responses only say which credential fields are set.
"""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from handlers.shared import activity, clock, cursors
from handlers.shared import sources as store
from handlers.shared.clients import table
from handlers.shared.credentials import UnreadableCredentials
from handlers.shared.http import ApiError, Request
from handlers.shared.log import get_logger

logger = get_logger("sources")


def source_of(request: Request) -> dict:
    """The path's source, if it is the caller's account's; 404 otherwise."""
    row = store.get_source(request.account_id, request.path.get("sourceId"))
    if row is None:
        raise ApiError("not_found", "No such source")
    return row


def oauth_refusal(platform) -> ApiError:
    return ApiError("invalid_request",
                    f"{platform.name} connects through OAuth, not with credentials entered here: "
                    f"start with POST /integrations/{platform.id}/oauth/initiate")


def validated(platform, settings: Any, credentials: Any, *, partial_settings: bool = False,
              check_credentials: bool = True) -> tuple[dict, dict]:
    """Both groups checked before either error is reported, so one answer names every
    offending field."""
    problems: list[ApiError] = []
    clean_settings: dict = {}
    clean_credentials: dict = {}
    try:
        clean_settings = store.clean_settings(platform, settings, partial=partial_settings)
    except ApiError as error:
        problems.append(error)
    if check_credentials:
        try:
            clean_credentials = store.clean_credentials(platform, credentials)
        except ApiError as error:
            problems.append(error)
    if problems:
        raise ApiError("validation_failed", "; ".join(p.message for p in problems),
                       fields=[f for p in problems for f in p.fields])
    return clean_settings, clean_credentials


# --------------------------------------------------------------------------- operations

def list_sources(request: Request) -> dict:
    scope = f"{request.account_id}:sources"
    kwargs: dict[str, Any] = {"KeyConditionExpression": Key("accountId").eq(request.account_id),
                              "Limit": cursors.limit_of(request.query)}
    start = cursors.decode(request.query.get("cursor"), scope)
    if start:
        kwargs["ExclusiveStartKey"] = start
    reply = table("sources").query(**kwargs)
    return cursors.page([store.source_view(row) for row in reply.get("Items", [])],
                        reply.get("LastEvaluatedKey"), scope)


def _platform(platform_type: str):
    # the platform catalog loads on first use, not in every cold start (GET /sources needs none)
    from handlers.shared.connectors.platforms import get_platform

    return get_platform(platform_type)


def create_source(request: Request) -> dict:
    body = request.body
    platform = _platform(body["type"])
    if platform is None:
        raise ApiError("validation_failed", f"ListBackup has no platform {body['type'][:64]!r}; "
                                            "GET /integrations lists them", fields=["type"])
    if platform.auth != "api_key":
        raise oauth_refusal(platform)
    settings, credentials = validated(platform, body.get("settings"), body.get("credentials"))
    name = body["name"].strip()
    row = store.create_source(
        request.account_id, name=name, type=platform.id, settings=settings,
        credentials=credentials, status="active", actor=request.user_id,
        with_items=lambda new: activity.request_items(
            request, "sources.create", "source", new["sourceId"],
            details={"name": name, "type": platform.id}).items)
    return store.source_view(row)


def get_source(request: Request) -> dict:
    return store.source_view(source_of(request))


def update_source(request: Request) -> dict:
    row = source_of(request)
    body = request.body
    platform = _platform(row["type"])
    if platform is None and ("settings" in body or "credentials" in body):
        raise ApiError("conflict", "ListBackup no longer supports this source's platform; "
                                   "only its name and status can change")
    now = clock.iso()
    sets = ["updatedAt = :now"]
    removes: list[str] = []
    values: dict[str, Any] = {":now": now, ":seen": row.get("updatedAt", "")}
    names: dict[str, str] = {}
    status = body.get("status")

    if "name" in body:
        sets.append("#name = :name")
        names["#name"] = "name"
        values[":name"] = body["name"].strip()
    connection_changed = False
    if "settings" in body:
        settings, _ = validated(platform, body["settings"], None, check_credentials=False)
        sets.append("settings = :settings")
        values[":settings"] = settings
        connection_changed = True
    if "credentials" in body:
        if platform.auth != "api_key":
            raise ApiError("invalid_request",
                           f"{platform.name} credentials come from OAuth: reconnect with "
                           f"POST /integrations/{platform.id}/oauth/initiate and this sourceId")
        merged = _merged_credentials(platform, row, body["credentials"])
        sets += ["credentialsCiphertext = :c", "credentialFields = :f"]
        values[":c"] = store.encrypt_credentials(row["accountId"], row["sourceId"], merged)
        values[":f"] = store.field_names(merged)
        connection_changed = True
    if connection_changed:
        # the last test was about the old connection; a source in error gets another chance
        removes.append("lastTest")
        if status is None and row.get("status") == "error":
            status = "active"
    if status is not None:
        sets.append("#status = :status")
        names["#status"] = "status"
        values[":status"] = status

    expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
    kwargs: dict[str, Any] = {
        "Key": {"accountId": row["accountId"], "sourceId": row["sourceId"]},
        "UpdateExpression": expression, "ExpressionAttributeValues": values,
        # the credentials were merged with what was read: nothing may have changed since
        "ConditionExpression": "attribute_exists(sourceId) AND updatedAt = :seen",
        "ReturnValues": "ALL_NEW"}
    if names:
        kwargs["ExpressionAttributeNames"] = names
    try:
        updated = table("sources").update_item(**kwargs)["Attributes"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        if store.get_source(row["accountId"], row["sourceId"]) is None:
            raise ApiError("not_found", "No such source") from None
        raise ApiError("conflict", "The source changed meanwhile; try again") from None
    activity.record_request(request, "sources.update", "source", row["sourceId"],
                            details={"fields": sorted(body), "type": row["type"]})
    return store.source_view(updated)


def _merged_credentials(platform, row: dict, given: dict) -> dict:
    """The stored credentials with the given fields replaced (null or "" removes one), then
    checked as a whole. Unreadable stored credentials count as none: the given ones must
    then be complete."""
    changes = store.clean_credentials(platform, given, partial=True)
    removed = {name for name, value in given.items()
               if value is None or (isinstance(value, str) and not value.strip())}
    try:
        current = store.load_credentials(row) if row.get("credentialsCiphertext") else {}
    except UnreadableCredentials:
        logger.warning("stored credentials unreadable; replacing them",
                       extra={"sourceId": row["sourceId"]})
        current = {}
    known = {field.name for field in platform.credential_fields}
    merged = {k: v for k, v in current.items() if k in known and k not in removed}
    merged.update(changes)
    return store.clean_credentials(platform, merged)


def delete_source(request: Request) -> None:
    row = source_of(request)
    if store.active_run(row["accountId"], row["sourceId"]) is not None:
        raise ApiError("conflict", "A backup of this source is pending or running; cancel it or "
                                   "wait for it to finish, then delete the source")
    event = activity.request_items(request, "sources.delete", "source", row["sourceId"],
                                   details={"name": row.get("name", ""), "type": row.get("type")})
    if not store.delete_source(row["accountId"], row["sourceId"], event.items):
        raise ApiError("not_found", "No such source")
    return None
