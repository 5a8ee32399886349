"""Request cost (issue 12, figure 6): every mutating route makes at most four DynamoDB
calls in its own function (a transaction or a batch is one call; the authorizer's reads
are not the route's), counted in-process by wrapping botocore's ``_make_api_call`` - and
each still does what it did: the audit event and its day's counter commit with the change,
the lockout still trips, plan limits and conditions still hold.

Counting calls is not timing: nothing here measures time.
"""

from __future__ import annotations

import hashlib
import json
import re
import time

import boto3
import pytest
from boto3.dynamodb.conditions import Key

from handlers.shared import activity, clock, passwords
from handlers.shared import sources as source_store
from handlers.shared.clients import table
from handlers.shared.ids import new_id
from tests.handlers.conftest import sent_emails
from tests.handlers.test_account_support import seed_account
from tests.handlers.test_billing_support import billing, stripe_server  # noqa: F401  (fixtures)
from tests.handlers.test_data_support import world  # noqa: F401  (fixture)
from tests.handlers.test_sources_support import platform, stage  # noqa: F401  (fixtures)
from tests.support import BUCKET, api_event, call

BUDGET = 4
PASSWORD = "Quiet-Lantern-Harbor-42"
NEW_PASSWORD = "Amber-Orchard-Violin-77"


# --------------------------------------------------------------------------- counting

class Calls:
    """The DynamoDB operations botocore sends, in order."""

    def __init__(self, seen: list[str]) -> None:
        self.seen = seen

    def of(self, fn, *args, **kwargs):
        """``fn(...)``'s answer and the DynamoDB operations it made."""
        start = len(self.seen)
        answer = fn(*args, **kwargs)
        return answer, self.seen[start:]


@pytest.fixture
def calls(dynamodb_calls) -> Calls:
    return Calls(dynamodb_calls)


def within_budget(ops: list[str]) -> None:
    assert len(ops) <= BUDGET and "Scan" not in ops, ops


def events(account_id: str, action: str | None = None) -> list[dict]:
    rows = table("activity").query(KeyConditionExpression=Key("accountId").eq(account_id),
                                   ConsistentRead=True)["Items"]
    return [r for r in rows if action is None or r["type"] == action]


def counter(account_id: str, action: str) -> int:
    """Today's count of ``action`` in the account (the stats' counter)."""
    day = clock.now().strftime("%Y-%m-%d")
    return activity.day_count(account_id, day, action)


def recorded(account_id: str, action: str, count: int = 1) -> list[dict]:
    """The account's events of ``action``: exactly ``count``, and the counter agrees."""
    found = events(account_id, action)
    assert len(found) == count and counter(account_id, action) == count, (found, action)
    return found


def row_of(short: str, **key) -> dict | None:
    return table(short).get_item(Key=key, ConsistentRead=True).get("Item")


# --------------------------------------------------------------------------- tenants

def seed_user(*, email: str | None = None, password_hash: str = "scrypt$not-a-real-hash",
              last: dict | None = None) -> dict:
    user_id = new_id("usr")
    user = {"userId": user_id, "email": email or f"{user_id}@example.com", "name": "Test User",
            "passwordHash": password_hash, "emailVerified": True, "status": "active",
            "tokenVersion": 0, "createdAt": clock.iso(), "updatedAt": clock.iso(), "preferences": {}}
    if last is not None:
        user["lastAccountId"] = last["accountId"]
    table("users").put_item(Item=user)
    return user


def member(user: dict, account: dict, role: str) -> dict:
    table("users-accounts").put_item(Item={"userId": user["userId"], "accountId": account["accountId"],
                                           "role": role, "createdAt": clock.iso()})
    return {"userId": user["userId"], "accountId": account["accountId"], "role": role}


def nested(depth: int = 2, *, plan: str = "pro") -> list[dict]:
    """A root account on ``plan`` and a chain of sub-accounts below it inheriting it."""
    chain = [seed_account(plan=plan)]
    for _ in range(depth):
        chain.append(seed_account(parent=chain[-1]))
    return chain


# --------------------------------------------------------------------------- auth

def auth(route_key: str, body=None, identity: dict | None = None, path: dict | None = None):
    from handlers.auth import api

    return call(api.handler, api_event(route_key, body=body, identity=identity, path=path))


def registered(calls: Calls, email: str = "ada@example.test") -> dict:
    (status, body), ops = calls.of(auth, "POST /auth/register",
                                   {"email": email, "password": PASSWORD, "name": "Ada Lovelace"})
    assert status == 201, body
    within_budget(ops)
    return body["data"]


def login(calls: Calls, email: str = "ada@example.test", password: str = PASSWORD):
    (status, body), ops = calls.of(auth, "POST /auth/login", {"email": email, "password": password})
    within_budget(ops)
    return status, body


def mailed_token(path: str) -> str:
    return re.search(rf"{re.escape(path)}\?token=([A-Za-z0-9_-]+)", sent_emails()[-1]["text"]).group(1)


def test_register_creates_everything_in_one_transaction_with_its_event(backend, calls):
    (status, body), ops = calls.of(auth, "POST /auth/register", {
        "email": "ada@example.test", "password": PASSWORD, "name": "Ada Lovelace"})
    assert status == 201 and ops == ["Query", "TransactWriteItems"]
    pair = body["data"]
    user_id, account_id = pair["user"]["userId"], pair["account"]["accountId"]
    assert row_of("users", userId=user_id)["email"] == "ada@example.test"
    assert row_of("users-accounts", userId=user_id, accountId=account_id)["role"] == "owner"
    refresh = json.loads(_b64(pair["refreshToken"].split(".")[1]))
    assert row_of("auth-tokens", tokenId=f"refresh#{refresh['jti']}")["userId"] == user_id
    assert mailed_token("/verify")
    recorded(account_id, "auth.register")
    # the address is taken now: the second registration is a conflict and creates nothing
    (status, body), ops = calls.of(auth, "POST /auth/register", {
        "email": "ada@example.test", "password": PASSWORD, "name": "Ada"})
    assert status == 409 and len(ops) <= BUDGET


def _b64(part: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_a_login_costs_three_calls_and_commits_its_bookkeeping_together(backend, calls):
    pair = registered(calls)
    account_id = pair["account"]["accountId"]
    (status, body), ops = calls.of(auth, "POST /auth/login",
                                   {"email": "ada@example.test", "password": PASSWORD})
    assert status == 200 and ops == ["Query", "BatchGetItem", "TransactWriteItems"], ops
    assert body["data"]["account"] == {"accountId": account_id, "name": "Ada Lovelace",
                                       "plan": "free", "role": "owner"}
    user = row_of("users", userId=pair["user"]["userId"])
    assert "lastLoginAt" in user and user["lastAccountId"] == account_id
    [event] = recorded(account_id, "auth.login")
    assert event["outcome"] == "success" and event["actor"] == pair["user"]["userId"]


def test_a_login_into_a_sub_account_that_inherits_its_plan_stays_within_budget(backend, calls):
    root, middle, leaf = nested(2, plan="pro")
    user = seed_user(email="sub@example.test", password_hash=passwords.hash_password(PASSWORD), last=leaf)
    member(user, leaf, "manager")
    status, body = login(calls, "sub@example.test")
    assert status == 200 and body["data"]["account"] == {
        "accountId": leaf["accountId"], "name": "Acme", "plan": "pro", "role": "manager"}
    recorded(leaf["accountId"], "auth.login")


def test_a_login_whose_last_account_is_gone_falls_back_to_a_membership(backend, calls):
    home = seed_account()
    user = seed_user(email="moved@example.test", password_hash=passwords.hash_password(PASSWORD),
                     last=seed_account())          # a member there no more
    member(user, home, "viewer")
    (status, body), ops = calls.of(auth, "POST /auth/login",
                                   {"email": "moved@example.test", "password": PASSWORD})
    assert status == 200 and body["data"]["account"]["accountId"] == home["accountId"]
    assert len(ops) <= BUDGET + 1, ops        # one more read, only for this rare case
    assert row_of("users", userId=user["userId"])["lastAccountId"] == home["accountId"]


def test_failed_logins_cost_three_calls_and_still_lock_the_address(backend, calls):
    pair = registered(calls)
    account_id = pair["account"]["accountId"]
    for attempt in range(5):
        status, body = login(calls, password="Not-The-Password-1")
        assert (status, body["code"]) == (401, "invalid_credentials")
    attempts = row_of("login-attempts", email="ada@example.test")
    assert int(attempts["failures"]) == 5
    failures = recorded(account_id, "auth.login", 5)
    assert {e["details"]["reason"] for e in failures} == {"wrong_password"}

    # locked now, even with the right password; the lock is recorded too
    status, body = login(calls)
    assert (status, body["code"]) == (429, "rate_limited")
    assert recorded(account_id, "auth.login", 6)
    assert "accessToken" not in json.dumps(body)

    # an unknown address costs the same and counts its failures as well
    status, body = login(calls, email="nobody@example.test")
    assert status == 401
    assert int(row_of("login-attempts", email="nobody@example.test")["failures"]) == 1

    # once the window is over the right password works and clears the count
    table("login-attempts").update_item(
        Key={"email": "ada@example.test"}, UpdateExpression="SET windowStart = :old",
        ExpressionAttributeValues={":old": int(time.time()) - 15 * 60 - 1})
    status, _ = login(calls)
    assert status == 200 and row_of("login-attempts", email="ada@example.test") is None


def test_a_failure_counted_meanwhile_by_another_request_is_not_lost(backend, calls, monkeypatch):
    """The failure's transaction is conditional on the attempts row it read; when another
    request counted a failure in between, this one is still counted."""
    pair = registered(calls)
    from handlers.auth import lockout

    real = lockout.failure_item

    def raced(email, row):
        item = real(email, row)
        lockout.note_failure(email)          # another failed login lands first
        return item

    monkeypatch.setattr(lockout, "failure_item", raced)
    # (over budget on this path only: the race costs the fallback's plain writes)
    status, _ = auth("POST /auth/login", {"email": "ada@example.test", "password": "Not-The-Password-1"})
    assert status == 401
    assert int(row_of("login-attempts", email="ada@example.test")["failures"]) == 2
    [failure] = recorded(pair["account"]["accountId"], "auth.login")
    assert failure["details"] == {"reason": "wrong_password"}


def test_refresh_and_logout_within_budget(backend, calls):
    pair = registered(calls)
    (status, body), ops = calls.of(auth, "POST /auth/refresh", {"refreshToken": pair["refreshToken"]})
    assert status == 200 and ops == ["BatchGetItem", "TransactWriteItems"], ops
    # the old token was rotated: using it again ends every session
    (status, body), ops = calls.of(auth, "POST /auth/refresh", {"refreshToken": pair["refreshToken"]})
    assert status == 401 and len(ops) <= BUDGET
    account_id, user_id = pair["account"]["accountId"], pair["user"]["userId"]
    recorded(account_id, "auth.refresh.reuse")
    assert int(row_of("users", userId=user_id)["tokenVersion"]) == 1

    me = {"userId": user_id, "accountId": account_id, "role": "owner"}
    (status, _), ops = calls.of(auth, "POST /auth/logout", None, me)
    assert status == 200 and ops == ["TransactWriteItems"]
    assert int(row_of("users", userId=user_id)["tokenVersion"]) == 2
    recorded(account_id, "auth.logout")


def test_verify_forgot_and_reset_within_budget(backend, calls):
    pair = registered(calls)
    account_id, user_id = pair["account"]["accountId"], pair["user"]["userId"]
    (status, _), ops = calls.of(auth, "POST /auth/verify", {"token": mailed_token("/verify")})
    assert status == 200 and ops == ["GetItem", "BatchGetItem", "TransactWriteItems"], ops
    assert row_of("users", userId=user_id)["emailVerified"] is True
    recorded(account_id, "auth.verify")

    for _ in range(5):                       # lock the address first
        login(calls, password="Not-The-Password-1")
    (status, _), ops = calls.of(auth, "POST /auth/forgot-password", {"email": "ada@example.test"})
    assert status == 200 and ops == ["Query", "BatchGetItem", "TransactWriteItems"], ops
    recorded(account_id, "auth.password.forgot")
    (status, _), ops = calls.of(auth, "POST /auth/reset-password",
                                {"token": mailed_token("/reset-password"), "password": NEW_PASSWORD})
    assert status == 200 and ops == ["GetItem", "BatchGetItem", "TransactWriteItems"], ops
    recorded(account_id, "auth.password.reset")
    assert row_of("login-attempts", email="ada@example.test") is None     # the lock is lifted
    assert login(calls, password=NEW_PASSWORD)[0] == 200


def test_a_password_change_within_budget_wrong_or_right(backend, calls):
    pair = registered(calls)
    account_id, user_id = pair["account"]["accountId"], pair["user"]["userId"]
    me = {"userId": user_id, "accountId": account_id, "role": "owner"}
    (status, body), ops = calls.of(auth, "PUT /account/password",
                                   {"currentPassword": "Wrong-Password-11", "newPassword": NEW_PASSWORD}, me)
    assert status == 401 and len(ops) <= BUDGET, ops
    assert int(row_of("login-attempts", email="ada@example.test")["failures"]) == 1
    (status, body), ops = calls.of(auth, "PUT /account/password",
                                   {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}, me)
    assert status == 200 and ops == ["GetItem", "BatchGetItem", "TransactWriteItems"], ops
    assert int(row_of("users", userId=user_id)["tokenVersion"]) == 1
    assert json.loads(_b64(body["data"]["accessToken"].split(".")[1]))["ver"] == 1
    assert {e["outcome"] for e in recorded(account_id, "auth.password.change", 2)} == {
        "success", "failure"}


def test_profile_and_api_keys_within_budget(backend, calls):
    pair = registered(calls)
    account_id, user_id = pair["account"]["accountId"], pair["user"]["userId"]
    me = {"userId": user_id, "accountId": account_id, "role": "owner"}
    (status, body), ops = calls.of(auth, "PUT /auth/profile", {"name": "Ada King"}, me)
    assert status == 200 and body["data"]["name"] == "Ada King" and len(ops) <= 2, ops
    recorded(account_id, "auth.profile.update")
    (status, body), ops = calls.of(auth, "POST /api-keys", {"name": "CI"}, me)
    assert status == 201 and ops == ["TransactWriteItems"]
    key_id = body["data"]["keyId"]
    recorded(account_id, "auth.apikey.create")
    (status, _), ops = calls.of(auth, "DELETE /api-keys/{keyId}", None, me, {"keyId": key_id})
    assert status == 200 and ops == ["Query", "TransactWriteItems"]
    recorded(account_id, "auth.apikey.revoke")


# --------------------------------------------------------------------------- account

def account_call(route_key: str, identity: dict | None, *, body=None, path: dict | None = None,
                 query: dict | None = None):
    from handlers.account import api

    return call(api.handler, api_event(route_key, identity=identity, body=body, path=path, query=query))


def owner_of(account: dict) -> dict:
    user = seed_user()
    return member(user, account, "owner")


def test_an_invitation_costs_three_calls_and_refuses_a_member(backend, calls):
    account = seed_account()
    me = owner_of(account)
    path = {"accountId": account["accountId"]}
    (status, body), ops = calls.of(account_call, "POST /accounts/{accountId}/invitations", me,
                                   path=path, body={"email": "guest@example.com", "role": "viewer"})
    assert status == 201 and ops == ["BatchGetItem", "Query", "TransactWriteItems"], ops
    recorded(account["accountId"], "account.invitation.create")
    assert "guest@example.com" in sent_emails()[-1]["to"]

    existing = seed_user(email="member@example.com")
    member(existing, account, "viewer")
    (status, body), ops = calls.of(account_call, "POST /accounts/{accountId}/invitations", me,
                                   path=path, body={"email": "member@example.com", "role": "viewer"})
    assert (status, body["code"]) == (409, "conflict") and len(ops) <= BUDGET
    assert len(sent_emails()) == 1
    rows = table("invitations").query(KeyConditionExpression=Key("accountId").eq(account["accountId"]))
    assert [r["email"] for r in rows["Items"]] == ["guest@example.com"]


def test_an_invitation_whose_mail_fails_is_withdrawn_and_says_why(backend, calls, monkeypatch):
    account = seed_account()
    me = owner_of(account)
    from handlers.shared import mail

    def down(*args, **kwargs):
        raise RuntimeError("SES is down")

    monkeypatch.setattr(mail, "send", down)
    status, _ = account_call("POST /accounts/{accountId}/invitations", me,
                             path={"accountId": account["accountId"]},
                             body={"email": "guest@example.com", "role": "viewer"})
    assert status == 500
    rows = table("invitations").query(KeyConditionExpression=Key("accountId").eq(account["accountId"]))
    assert rows["Items"] == []
    [withdrawn] = recorded(account["accountId"], "account.invitation.revoke")
    assert withdrawn["outcome"] == "failure" and withdrawn["details"] == {"reason": "mail_not_sent"}


def test_accepting_and_revoking_invitations_within_budget(backend, calls):
    root, sub = nested(1)
    me = owner_of(sub)
    path = {"accountId": sub["accountId"]}
    _, invite = account_call("POST /accounts/{accountId}/invitations", me, path=path,
                             body={"email": "guest@example.com", "role": "manager"})
    code = re.search(r"enter this code: (\S+)", sent_emails()[-1]["text"]).group(1)
    guest = seed_user(email="guest@example.com")
    guest_id = {"userId": guest["userId"], "accountId": seed_account()["accountId"], "role": "owner"}
    (status, body), ops = calls.of(account_call, "POST /invitations/accept", guest_id,
                                   body={"inviteCode": code})
    assert status == 200 and body["data"]["plan"] == "pro" and len(ops) <= BUDGET, ops
    assert row_of("users-accounts", userId=guest["userId"], accountId=sub["accountId"])["role"] == "manager"
    recorded(sub["accountId"], "account.invitation.accept")

    _, second = account_call("POST /accounts/{accountId}/invitations", me, path=path,
                             body={"email": "other@example.com", "role": "viewer"})
    invite_id = second["data"]["inviteId"]
    (status, _), ops = calls.of(account_call, "DELETE /accounts/{accountId}/invitations/{inviteId}",
                                me, path={**path, "inviteId": invite_id})
    assert status == 200 and ops == ["BatchGetItem", "TransactWriteItems"], ops
    assert row_of("invitations", accountId=sub["accountId"], inviteId=invite_id)["status"] == "revoked"
    recorded(sub["accountId"], "account.invitation.revoke")


def test_member_changes_within_budget_and_the_last_owner_stays(backend, calls):
    account = seed_account()
    me = owner_of(account)
    other = owner_of(account)
    path = {"accountId": account["accountId"], "userId": other["userId"]}
    (status, body), ops = calls.of(account_call, "PUT /accounts/{accountId}/members/{userId}", me,
                                   path=path, body={"role": "viewer"})
    assert status == 200 and body["data"]["role"] == "viewer" and len(ops) <= BUDGET, ops
    recorded(account["accountId"], "account.member.update")
    # the caller is now the only owner: demoting themselves is refused
    (status, body), ops = calls.of(account_call, "PUT /accounts/{accountId}/members/{userId}", me,
                                   path={**path, "userId": me["userId"]}, body={"role": "viewer"})
    assert status == 409 and len(ops) <= BUDGET
    (status, _), ops = calls.of(account_call, "DELETE /accounts/{accountId}/members/{userId}", me,
                                path=path)
    assert status == 200 and ops == ["BatchGetItem", "TransactWriteItems"], ops
    assert row_of("users-accounts", userId=other["userId"], accountId=account["accountId"]) is None
    recorded(account["accountId"], "account.member.remove")


def test_switching_into_a_sub_account_within_budget(backend, calls):
    root, middle, leaf = nested(2)
    user = seed_user(last=root)
    me = member(user, root, "owner")
    member(user, leaf, "manager")
    (status, body), ops = calls.of(account_call, "POST /accounts/switch", me,
                                   body={"accountId": leaf["accountId"]})
    assert status == 200 and len(ops) <= BUDGET, ops
    assert body["data"]["account"] == {"accountId": leaf["accountId"], "name": "Acme",
                                       "plan": "pro", "role": "manager"}
    assert row_of("users", userId=user["userId"])["lastAccountId"] == leaf["accountId"]
    recorded(leaf["accountId"], "account.switch")


def test_sub_accounts_and_account_lists_within_budget(backend, calls):
    root, middle = nested(1, plan="pro")
    me = owner_of(middle)
    (status, body), ops = calls.of(account_call, "POST /accounts/{accountId}/sub-accounts", me,
                                   path={"accountId": middle["accountId"]}, body={"name": "Leaf"})
    assert status == 201 and body["data"]["plan"] == "pro" and len(ops) <= BUDGET, ops
    assert int(row_of("accounts", accountId=middle["accountId"])["subAccountCount"]) == 1
    recorded(middle["accountId"], "account.subaccount.create")

    # a user in many sub-accounts of several trees: their plans cost one read together
    user = seed_user()
    mine = {"userId": user["userId"], "accountId": middle["accountId"], "role": "viewer"}
    for _ in range(6):
        leaf = nested(2)[-1]
        member(user, leaf, "viewer")
    member(user, middle, "viewer")
    (status, body), ops = calls.of(account_call, "GET /accounts", mine)
    assert status == 200 and len(body["data"]["items"]) == 7 and len(ops) <= BUDGET, ops
    assert {a["plan"] for a in body["data"]["items"]} == {"pro"}
    (status, body), ops = calls.of(account_call, "GET /accounts/{accountId}/hierarchy", me,
                                   path={"accountId": middle["accountId"]})
    assert status == 200 and len(ops) <= BUDGET, ops
    (status, body), ops = calls.of(account_call, "GET /account/usage", me)
    assert status == 200 and body["data"]["plan"] == "pro" and len(ops) <= BUDGET, ops


# --------------------------------------------------------------------------- sources and jobs

@pytest.fixture
def queue(stage, monkeypatch):
    url = boto3.client("sqs").create_queue(QueueName="listbackup-test-jobs")["QueueUrl"]
    monkeypatch.setenv("JOB_QUEUE_URL", url)
    return url


def sources_call(route_key: str, identity: dict | None, *, body=None, path: dict | None = None):
    from handlers.sources import api

    return call(api.handler, api_event(route_key, identity=identity, body=body, path=path))


def jobs_call(route_key: str, identity: dict | None, *, body=None, path: dict | None = None):
    from handlers.jobs import api

    return call(api.handler, api_event(route_key, identity=identity, body=body, path=path))


def connected(account: dict, name: str = "Stripe live") -> dict:
    from tests.handlers.test_sources_support import STRIPE_KEY

    return source_store.create_source(account["accountId"], name=name, type="stripe", settings={},
                                      credentials={"api_key": STRIPE_KEY})


def manager_of(account: dict) -> dict:
    return member(seed_user(), account, "manager")


def test_sources_are_created_and_deleted_within_budget(queue, calls):
    from tests.handlers.test_sources_support import STRIPE_KEY

    root, sub = nested(1)
    me = manager_of(sub)
    (status, body), ops = calls.of(sources_call, "POST /sources", me, body={
        "name": "Stripe", "type": "stripe", "credentials": {"api_key": STRIPE_KEY}})
    assert status == 201 and len(ops) <= BUDGET, ops
    source_id = body["data"]["sourceId"]
    assert int(row_of("accounts", accountId=sub["accountId"])["sourceCount"]) == 1
    recorded(sub["accountId"], "sources.create")
    (status, _), ops = calls.of(sources_call, "DELETE /sources/{sourceId}", me,
                                path={"sourceId": source_id})
    assert status == 200 and ops == ["GetItem", "Query", "TransactWriteItems"], ops
    assert int(row_of("accounts", accountId=sub["accountId"])["sourceCount"]) == 0
    recorded(sub["accountId"], "sources.delete")


def test_the_first_sync_creates_the_default_job_and_its_run_in_one_transaction(queue, calls):
    root, sub = nested(1, plan="pro")
    me = manager_of(sub)
    source = connected(sub)
    path = {"sourceId": source["sourceId"]}
    (status, body), ops = calls.of(sources_call, "POST /sources/{sourceId}/sync", me, path=path)
    assert status == 202 and len(ops) <= BUDGET and ops[-1] == "TransactWriteItems", ops
    run = body["data"]
    job = row_of("jobs", accountId=sub["accountId"], jobId=run["jobId"])
    assert job["isDefault"] is True and job["activeRunId"] == run["runId"]
    assert int(row_of("accounts", accountId=sub["accountId"])["jobCount"]) == 1
    assert row_of("runs", accountId=sub["accountId"], runId=run["runId"])["status"] == "pending"
    recorded(sub["accountId"], "jobs.create")
    recorded(sub["accountId"], "jobs.run.start")
    message = boto3.client("sqs").receive_message(QueueUrl=queue)["Messages"][0]
    assert json.loads(message["Body"])["runId"] == run["runId"]

    # while that run is pending another sync is refused; cancelled, the next one reuses the job
    (status, _), ops = calls.of(sources_call, "POST /sources/{sourceId}/sync", me, path=path)
    assert status == 409 and len(ops) <= BUDGET
    (status, _), ops = calls.of(jobs_call, "POST /jobs/{jobId}/runs/{runId}/cancel", me,
                                path={"jobId": run["jobId"], "runId": run["runId"]})
    assert status == 200 and ops == ["BatchGetItem", "TransactWriteItems"], ops
    job = row_of("jobs", accountId=sub["accountId"], jobId=run["jobId"])
    assert "activeRunId" not in job and int(job["stats"]["cancelled"]) == 1
    recorded(sub["accountId"], "jobs.run.cancel")
    (status, body), ops = calls.of(sources_call, "POST /sources/{sourceId}/sync", me, path=path)
    assert status == 202 and body["data"]["jobId"] == run["jobId"]
    assert ops == ["BatchGetItem", "TransactWriteItems"], ops
    recorded(sub["accountId"], "jobs.run.start", 2)


def test_a_default_job_made_before_fixed_ids_is_found_and_reused(queue, calls):
    account = seed_account(plan="pro")
    me = manager_of(account)
    source = connected(account)
    from handlers.jobs import store

    legacy = store.create_job(account["accountId"], source_id=source["sourceId"], name="Old default",
                              schedule={"frequency": "manual"}, endpoints=None, is_default=True)
    (status, body), ops = calls.of(sources_call, "POST /sources/{sourceId}/sync", me,
                                   path={"sourceId": source["sourceId"]})
    assert status == 202 and body["data"]["jobId"] == legacy["jobId"] and len(ops) <= BUDGET, ops
    assert int(row_of("accounts", accountId=account["accountId"])["jobCount"]) == 1


def test_the_default_job_still_counts_against_the_plan(queue, calls):
    account = seed_account(plan="free", jobCount=5)
    me = manager_of(account)
    source = connected(account)
    (status, body), ops = calls.of(sources_call, "POST /sources/{sourceId}/sync", me,
                                   path={"sourceId": source["sourceId"]})
    assert (status, body["code"]) == (402, "plan_limit") and len(ops) <= BUDGET
    assert events(account["accountId"]) == []


def test_jobs_are_created_run_and_deleted_within_budget(queue, calls):
    root, sub = nested(1, plan="pro")
    me = manager_of(sub)
    source = connected(sub)
    (status, body), ops = calls.of(jobs_call, "POST /jobs", me, body={
        "sourceId": source["sourceId"], "name": "Nightly", "schedule": {"frequency": "hourly"}})
    assert status == 201 and len(ops) <= BUDGET, ops     # hourly: the inherited pro plan allows it
    job_id = body["data"]["jobId"]
    recorded(sub["accountId"], "jobs.create")
    (status, body), ops = calls.of(jobs_call, "POST /jobs/{jobId}/run", me, path={"jobId": job_id})
    assert status == 202 and ops == ["GetItem", "GetItem", "TransactWriteItems"], ops
    recorded(sub["accountId"], "jobs.run.start")
    (status, _), ops = calls.of(jobs_call, "DELETE /jobs/{jobId}", me, path={"jobId": job_id})
    assert status == 409 and len(ops) <= BUDGET          # its run is pending
    calls.of(jobs_call, "POST /jobs/{jobId}/runs/{runId}/cancel", me,
             path={"jobId": job_id, "runId": body["data"]["runId"]})
    (status, _), ops = calls.of(jobs_call, "DELETE /jobs/{jobId}", me, path={"jobId": job_id})
    assert status == 200 and ops == ["GetItem", "TransactWriteItems"], ops
    assert int(row_of("accounts", accountId=sub["accountId"])["jobCount"]) == 0
    recorded(sub["accountId"], "jobs.delete")


def test_a_job_update_touching_endpoints_and_schedule_stays_within_budget(queue, calls):
    root, middle, leaf = nested(2, plan="pro")
    me = manager_of(leaf)
    source = connected(leaf)
    _, created = jobs_call("POST /jobs", me, body={
        "sourceId": source["sourceId"], "name": "Nightly", "schedule": {"frequency": "daily", "time": "02:00"}})
    job_id = created["data"]["jobId"]
    (status, body), ops = calls.of(jobs_call, "PUT /jobs/{jobId}", me, path={"jobId": job_id}, body={
        "endpoints": ["customers"], "schedule": {"frequency": "hourly"}, "name": "Hourly"})
    assert status == 200 and len(ops) <= BUDGET, ops       # hourly: the inherited pro plan
    assert body["data"]["endpoints"] == ["customers"] and body["data"]["schedule"]["frequency"] == "hourly"
    recorded(leaf["accountId"], "jobs.update")
    free = seed_account(plan="free")
    mine = manager_of(free)
    _, other = jobs_call("POST /jobs", mine, body={
        "sourceId": connected(free)["sourceId"], "name": "Daily", "schedule": {"frequency": "daily", "time": "02:00"}})
    (status, body), ops = calls.of(jobs_call, "PUT /jobs/{jobId}", mine, path={"jobId": other["data"]["jobId"]},
                                   body={"schedule": {"frequency": "hourly"}})
    assert (status, body["code"]) == (402, "plan_limit") and len(ops) <= BUDGET   # free: daily at most


# --------------------------------------------------------------------------- data

@pytest.fixture
def stored(world):
    t = world.tenant(used=1000)
    source = world.source(t)
    run = world.run(t, source)
    file_id = world.backup_file(t, source, run, "customers.jsonl.gz",
                                [{"id": f"cus_{i}"} for i in range(50)])
    return t, file_id, run


def test_delete_and_restore_cost_two_calls_and_keep_usage_right(world, stored, calls):
    t, file_id, _ = stored
    size = len(t.files[file_id]["body"])
    (status, _), ops = calls.of(world.call, "DELETE /data/files/{fileId}", t, path={"fileId": file_id})
    assert status == 200 and ops == ["GetItem", "TransactWriteItems"], ops
    assert world.storage(t) == 1000 and world.row(t, file_id)["deleted"] is True
    recorded(t.account_id, "data.file.delete")

    (status, body), ops = calls.of(world.call, "POST /data/files/{fileId}/restore", t,
                                   path={"fileId": file_id})
    assert status == 200 and ops == ["GetItem", "TransactWriteItems"], ops
    assert body["data"]["deleted"] is False and world.storage(t) == 1000 + size
    assert world.row(t, file_id)["deleted"] is False
    [event] = recorded(t.account_id, "data.file.restore")
    assert event["details"]["how"] == "undelete"


def test_a_restore_over_a_newer_version_drops_the_old_checksum_in_the_same_write(world, stored, calls):
    t, file_id, _ = stored
    key = t.files[file_id]["key"]
    world.s3.put_object(Bucket=BUCKET, Key=key, Body=b"a newer, different body")
    from handlers.shared.file_index import converge
    from handlers.shared.files import parse_data_key

    converge(BUCKET, parse_data_key(key))
    assert world.row(t, file_id)["sha256"]                # the worker's, for the old body
    (status, body), ops = calls.of(world.call, "POST /data/files/{fileId}/restore", t,
                                   path={"fileId": file_id})
    assert status == 200 and ops == ["GetItem", "TransactWriteItems"], ops
    row = world.row(t, file_id)
    assert "sha256" not in row and "records" not in row and row["size"] == len(t.files[file_id]["body"])
    assert body["data"]["sha256"] is None and body["data"]["size"] == row["size"]
    [event] = recorded(t.account_id, "data.file.restore")
    assert event["details"]["how"] == "copy"


def test_an_export_request_within_budget(world, stored, calls):
    t, _, run = stored
    (status, body), ops = calls.of(world.call, "POST /data/export", t, body={"runId": run})
    assert status == 202 and ops == ["GetItem", "Query", "TransactWriteItems"], ops
    export_id = body["data"]["exportId"]
    assert world.table("exports").get_item(
        Key={"accountId": t.account_id, "exportId": export_id})["Item"]["status"] == "pending"
    recorded(t.account_id, "data.export.request")
    assert json.loads(world.messages()[0]["Body"])["exportId"] == export_id


def test_bounded_reads_take_at_most_four_calls(world, calls, monkeypatch):
    """The top of the tree reads every source's totals at once; a filtered feed that finds
    nothing stops after four Query calls with a cursor to continue."""
    t = world.tenant()
    for n in range(12):
        world.source(t, f"Source {n}", runs=n, records=10 * n)
    (status, body), ops = calls.of(world.call, "GET /data/tree", t, role="viewer")
    assert status == 200 and len(body["data"]["items"]) == 12 and len(ops) <= BUDGET, ops
    assert {f["name"]: f["runs"] for f in body["data"]["items"]} == {f"Source {n}": n for n in range(12)}

    from handlers.activity import api as activity_api

    monkeypatch.setattr(activity_api, "QUERY_BATCH", 3)
    for n in range(20):
        table("activity").put_item(Item={
            "accountId": t.account_id, "eventId": f"evt_20260101T0000{n:02}000000Z_00", "type": "x"})
    me = t.identity("viewer")
    (status, body), ops = calls.of(call, activity_api.handler, api_event(
        "GET /activity", identity=me, query={"type": "nothing.matches"}))
    assert status == 200 and body["data"]["items"] == [] and body["data"]["nextCursor"]
    assert ops == ["Query"] * 4, ops


# --------------------------------------------------------------------------- billing

@pytest.fixture
def paying(billing):
    from tests.handlers.test_billing_support import subscribe

    account = seed_account()
    me = owner_of(account)
    session, sub = subscribe(billing, me, "pro")
    return me, account, session, sub


def test_checkout_within_budget_links_the_customer_in_one_transaction(billing, calls):
    from tests.handlers.test_billing_support import checkout

    account = seed_account()
    me = owner_of(account)
    (status, body), ops = calls.of(checkout, me, "pro")
    assert status == 200 and ops == ["BatchGetItem", "TransactWriteItems", "TransactWriteItems"], ops
    customer = row_of("accounts", accountId=account["accountId"])["stripeCustomerId"]
    assert row_of("billing-customers", customerId=customer)["accountId"] == account["accountId"]
    recorded(account["accountId"], "billing.checkout")


def test_webhook_events_record_themselves_with_their_change(paying, calls):
    from tests.connectors.stripe_checkout_server import event
    from tests.handlers.test_billing_support import deliver

    me, account, session, sub = paying
    completed = event("checkout.session.completed", session)
    (status, body), ops = calls.of(deliver, completed)
    assert status == 200 and body["data"]["applied"] is True and len(ops) <= BUDGET, ops
    assert row_of("accounts", accountId=account["accountId"])["plan"] == "pro"
    assert row_of("billing-events", eventId=completed["id"])["outcome"] == "applied"
    recorded(account["accountId"], "billing.plan.change")

    (status, body), ops = calls.of(deliver, completed)                  # Stripe's retry
    assert body["data"]["reason"] == "duplicate" and len(ops) <= BUDGET
    recorded(account["accountId"], "billing.plan.change")

    failed = event("invoice.payment_failed", {"id": "in_1", "object": "invoice",
                                              "customer": sub["customer"], "subscription": sub["id"]})
    (status, body), ops = calls.of(deliver, failed)
    assert body["data"]["applied"] is True and len(ops) <= BUDGET, ops
    assert row_of("accounts", accountId=account["accountId"])["subscriptionStatus"] == "past_due"
    recorded(account["accountId"], "billing.payment.failed")

    stale = event("customer.subscription.updated", sub, created=int(time.time()) - 3600)
    (status, body), ops = calls.of(deliver, stale)
    assert body["data"]["reason"] == "stale" and len(ops) <= BUDGET, ops
    assert row_of("billing-events", eventId=stale["id"])["outcome"] == "stale"
    assert events(account["accountId"], "billing.subscription.update") == []


def test_a_sub_accounts_subscription_and_cancel_within_budget(paying, calls):
    from tests.connectors.stripe_checkout_server import event
    from tests.handlers.test_billing_support import billing_call, deliver

    me, account, session, sub = paying
    deliver(event("checkout.session.completed", session))
    middle = seed_account(parent=account)
    leaf = seed_account(parent=middle)
    viewer = {**member(seed_user(), leaf, "manager")}
    (status, body), ops = calls.of(billing_call, "GET /billing/subscription", viewer)
    assert status == 200 and body["data"]["plan"] == "pro" and len(ops) <= BUDGET, ops
    assert body["data"]["inheritedFrom"] == account["accountId"]
    (status, body), ops = calls.of(billing_call, "POST /billing/cancel", me)
    assert status == 200 and body["data"]["cancelAtPeriodEnd"] is True and len(ops) <= BUDGET, ops
    recorded(account["accountId"], "billing.cancel")


# --------------------------------------------------------------------------- integrations

RETURN_URL = "https://app.test.listbackup.ai/sources/connected"
CODE = "auth-code-0123456789-secret"


@pytest.fixture
def hubspot(stage, platform):
    from tests.handlers.test_sources_support import ACCESS_TOKEN, REFRESH_TOKEN

    fake = platform.serve("hubspot")
    tokens = {"access_token": ACCESS_TOKEN, "refresh_token": REFRESH_TOKEN, "expires_in": 1800,
              "token_type": "bearer"}
    fake.on("POST /oauth/v1/token", lambda seen: (200, tokens, {}))
    return fake


def integrations(route_key: str, identity: dict | None, *, body=None, path=None, query=None):
    from tests.handlers.test_sources_support import integrations_raw

    return integrations_raw(route_key, identity, body=body, path=path, query=query)


def test_oauth_initiate_and_callback_within_budget(hubspot, calls):
    root, sub = nested(1, plan="pro")
    me = manager_of(sub)
    result, ops = calls.of(integrations, "POST /integrations/{type}/oauth/initiate", me,
                           path={"type": "hubspot"}, body={"returnUrl": RETURN_URL})
    assert result["statusCode"] == 200 and len(ops) <= BUDGET, ops
    state = json.loads(result["body"])["data"]["state"]
    recorded(sub["accountId"], "integrations.oauth.initiate")
    result, ops = calls.of(integrations, "GET /integrations/{type}/oauth/callback", None,
                           path={"type": "hubspot"}, query={"state": state, "code": CODE})
    assert result["statusCode"] == 302 and "status=connected" in result["headers"]["location"]
    assert len(ops) <= BUDGET, ops
    [created] = recorded(sub["accountId"], "sources.create")
    source_id = created["resourceId"]
    assert int(row_of("accounts", accountId=sub["accountId"])["sourceCount"]) == 1

    # reconnecting the same source
    result, _ = calls.of(integrations, "POST /integrations/{type}/oauth/initiate", me,
                         path={"type": "hubspot"}, body={"returnUrl": RETURN_URL, "sourceId": source_id})
    state = json.loads(result["body"])["data"]["state"]
    result, ops = calls.of(integrations, "GET /integrations/{type}/oauth/callback", None,
                           path={"type": "hubspot"}, query={"state": state, "code": CODE})
    assert "status=connected" in result["headers"]["location"] and len(ops) <= BUDGET, ops
    recorded(sub["accountId"], "sources.update")
    assert row_of("oauth-states", state=hashlib.sha256(state.encode()).hexdigest()) is None
