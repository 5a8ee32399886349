"""OAuth 2 connections: ``POST /integrations/{type}/oauth/initiate`` and
``GET /integrations/{type}/oauth/callback``.

Initiate (a manager) checks the platform, the return URL (its origin must be one of the
stage's web app origins, ``ALLOWED_RETURN_ORIGINS``: no open redirect), the source being
reconnected if any, and the settings; then stores a state in the oauth-states table and
answers the platform's authorize URL. The state is 32 random bytes (URL-safe text); the
table keeps only its sha256 (the key ``state``) with the user, account, platform, source,
name, settings and return URL, and expires after ten minutes (TTL attribute ``expiresAt``;
the callback also refuses an expired row that TTL has not removed yet).

The callback (public: the platform's redirect carries no credential of ours) consumes the
state with one conditional delete, so a state works once. An unknown, used or expired
state has no return URL we could trust: it answers 400 ``invalid_request``. From then on
every outcome is a redirect to the stored return URL: ``?status=connected&sourceId=...``,
or ``?status=error&error=<code>`` (``access_denied``, ``exchange_failed``, ``plan_limit``,
...), never a stack trace. The code is exchanged at the platform's token URL, and the
tokens are stored encrypted on a new source (within the plan's source limit) or on the
source being reconnected, which becomes active again.

Nothing here logs a state, a code, a token or a client secret.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from typing import Any, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from botocore.exceptions import ClientError

from handlers.shared import activity, clock, origins
from handlers.shared import sources as store
from handlers.shared.accounts import effective_plan, get_account, valid_id
from handlers.shared.clients import table
from handlers.shared.dynamo import busy, get_many, transact
from handlers.shared.connectors import oauth_client, templates, urls
from handlers.shared.connectors.errors import ConnectorError
from handlers.shared.connectors.platforms import get_platform
from handlers.shared.http import ApiError, Request, redirect
from handlers.shared.log import get_logger
from handlers.shared.plans import limit_of

logger = get_logger("integrations")

STATE_BYTES = 32
STATE_TTL_SECONDS = 600
MAX_STATE_LENGTH = 512
MAX_CODE_LENGTH = 4096
CONNECT_ROLES = ("manager", "owner")
# RFC 6749 4.1.2.1 error codes a platform may send back; anything else is reported as
# "authorization_failed" (the platform's text is never reflected).
PLATFORM_ERRORS = ("access_denied", "invalid_request", "unauthorized_client", "invalid_scope",
                   "unsupported_response_type", "server_error", "temporarily_unavailable")
RESULT_PARAMS = ("status", "error", "sourceId")
_CONTROL = re.compile(r"[\u0000-\u001f\u007f]")


# --------------------------------------------------------------------------- helpers

def redirect_uri(platform_id: str) -> str:
    base = os.environ.get("API_BASE_URL", "").strip().rstrip("/")
    if not base:
        raise ApiError("unavailable", "OAuth is not configured on this stage")
    return f"{base}/integrations/{platform_id}/oauth/callback"


def state_key(state: str) -> str:
    return hashlib.sha256(state.encode("utf-8")).hexdigest()


def with_result(url: str, **params: str) -> str:
    """``url`` with the outcome's query parameters (replacing any of the same name)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k not in RESULT_PARAMS]
    query += [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _platform(request: Request):
    platform = get_platform(request.path.get("type") or "")
    if platform is None:
        raise ApiError("not_found", "No such platform")
    if platform.auth != "oauth2" or platform.oauth is None:
        raise ApiError("invalid_request", f"{platform.name} connects with an API key, not OAuth: "
                                          "create the source with POST /sources")
    return platform


def _authorize_url(platform, settings: Mapping[str, str]) -> str:
    url = platform.oauth.authorize_url
    if templates.names(url):   # e.g. a per-shop host: filled from the source's settings
        try:
            url = templates.fill(url, settings, platform.name, encode=True)
        except ConnectorError:
            raise ApiError("validation_failed", f"{platform.name} needs its settings to connect",
                           fields=[f"settings.{n}" for n in templates.names(url)]) from None
    return urls.rewrite(platform.id, url)


# --------------------------------------------------------------------------- initiate

def initiate(request: Request) -> dict:
    platform = _platform(request)
    body = request.body
    return_url = body["returnUrl"].strip()
    if not origins.return_url_allowed(return_url):
        raise ApiError("validation_failed", "returnUrl must be a page of this stage's web app",
                       fields=["returnUrl"])
    source = None
    if body.get("sourceId"):
        source = store.get_source(request.account_id, body["sourceId"])
        if source is None or source.get("type") != platform.id:
            raise ApiError("not_found", "No such source")
    if source is not None and "settings" not in body:
        settings = dict(source.get("settings") or {})
        new_settings = None
    else:
        settings = new_settings = store.clean_settings(platform, body.get("settings"))
    name = (body.get("name") or "").strip()
    if name and _CONTROL.search(name):
        raise ApiError("validation_failed", "name must not hold control characters", fields=["name"])
    if not name:
        name = source["name"] if source is not None else platform.name
    if source is None:
        _check_plan_limit(request.account_id)

    callback_url = redirect_uri(platform.id)
    authorize = _authorize_url(platform, settings)
    try:
        client_id, _ = oauth_client.client_credentials(platform.id)
    except ConnectorError:
        raise ApiError("unavailable", f"Connecting {platform.name} is not configured on this stage") from None

    state = secrets.token_urlsafe(STATE_BYTES)
    item: dict[str, Any] = {
        "state": state_key(state), "userId": request.user_id, "accountId": request.account_id,
        "platform": platform.id, "name": name, "returnUrl": return_url,
        "createdAt": clock.iso(), "expiresAt": clock.epoch() + STATE_TTL_SECONDS,
    }
    if source is not None:
        item["sourceId"] = source["sourceId"]
    if new_settings is not None:
        item["settings"] = new_settings
    details = {"platform": platform.id}
    if source is not None:
        details["sourceId"] = source["sourceId"]
    # the state and the audit event, in one transaction
    reasons = transact([
        {"Put": {"TableName": table("oauth-states").name, "Item": item,
                 "ConditionExpression": "attribute_not_exists(#s)",
                 "ExpressionAttributeNames": {"#s": "state"}}},
        *activity.request_items(request, "integrations.oauth.initiate", "platform", platform.id,
                                details=details).items])
    if busy(reasons):
        raise ApiError("unavailable", "The service is busy; try again in a moment")
    if reasons is not None:
        raise RuntimeError(f"the OAuth state was not stored: {reasons}")

    params = {**dict(platform.oauth.authorize_params), "client_id": client_id,
              "redirect_uri": callback_url, "response_type": "code", "state": state}
    if platform.oauth.scopes:
        params["scope"] = platform.oauth.scope_separator.join(platform.oauth.scopes)
    auth_url = authorize + ("&" if urlsplit(authorize).query else "?") + urlencode(params)
    return {"authUrl": auth_url, "state": state}


def _check_plan_limit(account_id: str) -> None:
    """Refuse early what the callback's transaction would refuse anyway: no point in
    sending the user to the platform for a source the plan cannot hold."""
    account = get_account(account_id)
    if account is None:
        raise ApiError("not_found", "No such account")
    plan = effective_plan(account)
    limit = limit_of(plan, "sources")
    try:
        count = int(account.get("sourceCount") or 0)
    except (TypeError, ValueError):
        count = 0
    if limit is not None and count >= limit:
        raise store.plan_limit_error(plan, limit)


# --------------------------------------------------------------------------- callback

def callback(request: Request):
    query = request.query
    state = query.get("state")
    if not state or len(state) > MAX_STATE_LENGTH:
        raise _bad_state()
    row = _consume(state)
    if row is None or not origins.return_url_allowed(row.get("returnUrl", "")):
        raise _bad_state()
    try:
        return _complete(request, row)
    except Exception as exc:   # never a stack trace: the user goes back to the app
        logger.error("oauth callback failed", extra={"error_type": type(exc).__name__,
                                                     "platform": row.get("platform")})
        return _fail(request, row, "internal")


def _bad_state() -> ApiError:
    return ApiError("invalid_request", "This connection attempt is unknown, already used or "
                                       "expired; start connecting again from ListBackup")


def _consume(state: str) -> dict | None:
    """Delete the state's row if it exists and has not expired; its old contents, or None.
    One conditional delete: two callbacks with the same state cannot both succeed."""
    try:
        reply = table("oauth-states").delete_item(
            Key={"state": state_key(state)},
            ConditionExpression="attribute_exists(#s) AND expiresAt > :now",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={":now": clock.epoch()},
            ReturnValues="ALL_OLD")
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return None
        raise
    return reply.get("Attributes")


def _complete(request: Request, row: dict):
    account_id, user_id = row["accountId"], row.get("userId")
    if row.get("platform") != request.path.get("type"):
        return _fail(request, row, "platform_mismatch")
    platform = get_platform(row["platform"])
    if platform is None or platform.oauth is None:
        return _fail(request, row, "unknown_platform")
    platform_error = request.query.get("error")
    if platform_error:
        return _fail(request, row, platform_error if platform_error in PLATFORM_ERRORS
                     else "authorization_failed")
    code = request.query.get("code")
    if not code or len(code) > MAX_CODE_LENGTH:
        return _fail(request, row, "missing_code")
    # the membership, and the source being reconnected or the account a new one counts on
    if not valid_id(user_id) or not valid_id(account_id) or \
            (row.get("sourceId") is not None and not valid_id(row.get("sourceId"))):
        return _fail(request, row, "forbidden")
    member, source_or_account = get_many(
        ("users-accounts", {"userId": user_id, "accountId": account_id}),
        ("sources", {"accountId": account_id, "sourceId": row["sourceId"]}) if row.get("sourceId")
        else ("accounts", {"accountId": account_id}), consistent=False)
    if member is None or member.get("role") not in CONNECT_ROLES:
        return _fail(request, row, "forbidden")
    source = account = None
    if row.get("sourceId"):
        source = source_or_account
        if source is None or source.get("type") != platform.id:
            return _fail(request, row, "source_not_found")
    else:
        account = source_or_account

    try:
        client_id, client_secret = oauth_client.client_credentials(platform.id)
    except ConnectorError:
        return _fail(request, row, "not_configured")
    try:
        credentials = oauth_client.exchange_code(platform, code, redirect_uri(platform.id),
                                                 client_id, client_secret)
    except ConnectorError as error:
        logger.info("oauth code exchange failed", extra={"platform": platform.id,
                                                         "kind": error.kind, "httpStatus": error.status})
        return _fail(request, row, "exchange_failed")

    settings = row.get("settings")
    try:
        if source is not None:
            updated = store.store_credentials(account_id, source["sourceId"], credentials,
                                              status="active", settings=settings, clear_test=True)
            try:
                activity.record_request(request, "sources.update", "source", updated["sourceId"],
                                        account_id=account_id, actor=user_id,
                                        details={"type": platform.id, "via": "oauth",
                                                 "fields": ["credentials"]})
            except Exception as exc:   # the source is connected: the redirect must say so
                logger.error("activity not recorded", extra={"error_type": type(exc).__name__})
        else:
            name = row.get("name") or platform.name
            # the new source and its audit event commit together
            updated = store.create_source(
                account_id, name=name, type=platform.id, settings=settings or {},
                credentials=credentials, status="active", actor=user_id, account=account,
                with_items=lambda new: activity.request_items(
                    request, "sources.create", "source", new["sourceId"], account_id=account_id,
                    actor=user_id, details={"type": platform.id, "via": "oauth",
                                            "name": name}).items)
    except ApiError as error:
        return _fail(request, row, {"not_found": "source_not_found",
                                    "validation_failed": "invalid_tokens"}.get(error.code, error.code))
    logger.info("oauth source connected", extra={"platform": platform.id,
                                                 "sourceId": updated["sourceId"]})
    return redirect(with_result(row["returnUrl"], status="connected", sourceId=updated["sourceId"]))


def _fail(request: Request, row: dict, code: str):
    try:
        activity.record_request(request, "integrations.oauth.callback", "platform",
                                row.get("platform"), outcome="failure",
                                account_id=row["accountId"], actor=row.get("userId"),
                                details={"error": code, **({"sourceId": row["sourceId"]}
                                                           if row.get("sourceId") else {})})
    except Exception as exc:   # the redirect matters more than the audit line
        logger.error("activity not recorded", extra={"error_type": type(exc).__name__})
    return redirect(with_result(row["returnUrl"], status="error", error=code))
