"""DynamoDB helpers the account service shares: pages, batch reads, transactions, and
account views whose effective plans are resolved from rows already read."""

from __future__ import annotations

import time
from typing import Any, Iterable, Mapping


from handlers.shared import cursors
from handlers.shared.accounts import (account_view, ancestor_ids, get_account, in_scope, plan_holder,
                                      plan_in_force, scoped_account, valid_id)
from handlers.shared.clients import dynamodb, table
from handlers.shared.dynamo import as_int, get_many, transact  # noqa: F401  (as_int, transact: re-exported)
from handlers.shared.http import ApiError
from handlers.shared.plans import Plan

_BATCH = 100          # BatchGetItem's limit per call
_BATCH_TRIES = 5


def path_account(request) -> dict:
    """The account the path's ``{accountId}`` names, within the caller's scope (404 if not)."""
    account_id = request.path.get("accountId")
    if not account_id:
        raise ApiError("not_found", "No such account")
    return scoped_account(request, account_id)


def path_account_with(request, *more: tuple[str, dict]) -> tuple[dict, list[dict | None], dict | None]:
    """``path_account`` and, in the same BatchGetItem, the rows ``more`` names (``(short
    table name, key)``; None when missing): ``(account, rows, the caller's account row if
    it was read)``. 404 before anything else when the account is not in scope."""
    account_id = request.path.get("accountId")
    if not valid_id(account_id):
        raise ApiError("not_found", "No such account")
    keys: list[tuple[str, dict]] = [("accounts", {"accountId": account_id})]
    below = account_id != request.account_id and valid_id(request.account_id)
    if below:
        keys.append(("accounts", {"accountId": request.account_id}))
    rows = get_many(*keys, *more, consistent=False)
    home = rows[1] if below else None
    return in_scope(request, rows[0], home), rows[len(keys):], home


def query_page(table_name: str, request, scope: str, **kwargs: Any) -> tuple[list[dict], dict | None]:
    """One page of a Query, honouring the request's ``limit`` and signed ``cursor``."""
    limit = cursors.limit_of(request.query)
    start = cursors.decode(request.query.get("cursor"), scope)
    kwargs["Limit"] = limit
    if start:
        kwargs["ExclusiveStartKey"] = start
    reply = table(table_name).query(**kwargs)
    return reply.get("Items", []), reply.get("LastEvaluatedKey")


def batch_get(table_name: str, keys: Iterable[Mapping[str, Any]], key_name: str, *,
              projection: str | None = None, names: Mapping[str, str] | None = None) -> dict[str, dict]:
    """Rows by key (one attribute), as ``{key value: row}``; missing rows are absent."""
    wanted = list(dict.fromkeys(k[key_name] for k in keys))
    physical = table(table_name).name
    found: dict[str, dict] = {}
    for start in range(0, len(wanted), _BATCH):
        request: dict[str, Any] = {"Keys": [{key_name: v} for v in wanted[start:start + _BATCH]]}
        if projection:
            request["ProjectionExpression"] = projection
        if names:
            request["ExpressionAttributeNames"] = dict(names)
        pending = {physical: request}
        for attempt in range(_BATCH_TRIES):
            reply = dynamodb().batch_get_item(RequestItems=pending)
            for row in reply.get("Responses", {}).get(physical, []):
                found[row[key_name]] = row
            pending = reply.get("UnprocessedKeys") or {}
            if not pending:
                break
            time.sleep(0.05 * 2 ** attempt)
        else:
            raise ApiError("unavailable", "The database is busy; try again")
    return found


def table_name(short_name: str) -> str:
    return table(short_name).name




class AccountCache:
    """Account rows read at most once per request, so the effective plans of many
    accounts (a hierarchy, the caller's accounts) cost at most one BatchGetItem per
    account whose ancestors are not read yet, instead of a walk per account."""

    def __init__(self, rows: Iterable[dict] = ()) -> None:
        self._rows: dict[str, dict | None] = {r["accountId"]: r for r in rows}

    def add(self, rows: Iterable[dict]) -> None:
        for row in rows:
            self._rows[row["accountId"]] = row

    def get(self, account_id: str) -> dict | None:
        if account_id not in self._rows:
            self._rows[account_id] = get_account(account_id)
        return self._rows[account_id]

    def prefetch(self, accounts: Iterable[dict]) -> None:
        """Read, in one BatchGetItem, every ancestor the plans of ``accounts`` may need that
        is not read yet (a list of accounts then costs one read for all their plans)."""
        wanted = list(dict.fromkeys(i for account in accounts for i in ancestor_ids(account)
                                    if i not in self._rows))
        for start in range(0, len(wanted), _BATCH):
            chunk = wanted[start:start + _BATCH]
            self._rows.update(zip(chunk, get_many(*(("accounts", {"accountId": i}) for i in chunk),
                                                  consistent=False)))

    def plan(self, account: dict) -> Plan:
        """As ``accounts.effective_plan``: a sub-account uses its parent's plan unless it
        has its own subscription (ancestors not read yet: one BatchGetItem)."""
        return plan_in_force(plan_holder(account, self._rows))

    def view(self, account: dict, role: str | None = None) -> dict:
        # account_view resolves the plan itself; handing it the resolved plan as the row's
        # own subscription makes that resolution free (the view does not show either field).
        resolved = {**account, "plan": self.plan(account).plan_id, "ownSubscription": True}
        return account_view(resolved, role)
