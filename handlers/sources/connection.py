"""``POST /sources/{sourceId}/test``: prove the stored connection works.

The paging engine calls the platform's cheapest endpoint (the catalog's ``test_endpoint``,
one page) with the decrypted credentials; OAuth tokens it refreshes on the way are stored
again, encrypted. The outcome is recorded on the source as ``lastTest {ok, at, status,
message}``: credentials the platform rejects (ConnectorError kind ``auth``) mark the source
``error``; a success marks it ``active``. A paused source stays paused either way (pausing
is the user's choice; the test's outcome is in ``lastTest``). Other failures (the platform
is down, rate limits) leave the status alone.

A ciphertext that does not decrypt for this source (copied from another source or account,
or damaged) is a fault of the stored data: the test reports it as a failed test asking for
the credentials again, and never says more.
"""

from __future__ import annotations

import requests

from handlers.shared import activity
from handlers.shared import sources as store
from handlers.shared.connectors.engine import Connector, ConnectorError
from handlers.shared.connectors.platforms import get_platform
from handlers.shared.credentials import UnreadableCredentials
from handlers.shared.http import ApiError, Request
from handlers.shared.log import get_logger
from handlers.sources.crud import source_of

logger = get_logger("sources")

MAX_MESSAGE = 500
UNREADABLE_MESSAGE = "The stored credentials could not be read; enter them again (or reconnect)"


def check_source(request: Request) -> dict:
    row = source_of(request)
    ok, status, message, new_status, kind = check(row)
    updated = store.record_test(row, ok=ok, status=status, message=message, new_status=new_status)
    logger.info("source tested", extra={"sourceId": row["sourceId"], "type": row.get("type"),
                                        "ok": ok, "kind": kind, "httpStatus": status})
    details = {"type": row.get("type"), "ok": ok}
    if kind:
        details["kind"] = kind
    activity.record_request(request, "sources.test", "source", row["sourceId"],
                            outcome="success" if ok else "failure", details=details)
    return store.source_view(updated)


def check(row: dict) -> tuple[bool, int | None, str | None, str | None, str | None]:
    """``(ok, http status, message, new source status or None, failure kind)``."""
    paused = row.get("status") == "paused"
    platform = get_platform(row.get("type", ""))
    if platform is None:
        return False, None, "ListBackup no longer supports this platform", None, "config"
    try:
        credentials = store.load_credentials(row)
    except UnreadableCredentials:
        logger.warning("stored credentials unreadable", extra={"sourceId": row["sourceId"]})
        return False, None, UNREADABLE_MESSAGE, None if paused else "error", "unreadable"

    def refreshed(new_credentials: dict) -> None:
        try:
            store.store_credentials(row["accountId"], row["sourceId"], new_credentials)
        except ApiError:   # the source was deleted meanwhile: nothing to keep them for
            logger.info("refreshed tokens not stored: the source is gone",
                        extra={"sourceId": row["sourceId"]})

    try:
        with requests.Session() as session:
            Connector(platform, dict(row.get("settings") or {}), credentials, session=session,
                      on_credentials_refreshed=refreshed).test()
    except ConnectorError as error:
        message = str(error.message or "The connection test failed")[:MAX_MESSAGE]
        new_status = "error" if error.kind == "auth" and not paused else None
        return False, error.status, message, new_status, error.kind
    return True, 200, f"Connected to {platform.name}", None if paused else "active", None
