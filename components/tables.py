"""DynamoDB table definitions as data.

The Pulumi program builds tables from these specs and the tests build their moto tables
from the same specs (``create_table_kwargs``), so the two cannot drift apart. Every list
the API serves is a Query on a table key or one of these indexes, never a Scan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the specs are plain data; only build_table needs Pulumi
    import pulumi
    import pulumi_aws as aws

    from components.naming import Names
    from components.settings import Settings


@dataclass(frozen=True)
class Index:
    name: str
    hash_key: str
    range_key: str | None = None


@dataclass(frozen=True)
class TableSpec:
    name: str                      # short name; physical name is listbackup-{stage}-{name}
    hash_key: str
    range_key: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)  # key attributes: S | N
    indexes: tuple[Index, ...] = ()
    ttl_attribute: str | None = None

    def __post_init__(self) -> None:
        keys = {self.hash_key, self.range_key} | {
            k for i in self.indexes for k in (i.hash_key, i.range_key)}
        keys.discard(None)
        missing = keys - set(self.attributes)
        if missing:
            raise ValueError(f"table {self.name}: no type for key attribute(s) {sorted(missing)}")
        extra = set(self.attributes) - keys
        if extra:  # DynamoDB rejects attribute definitions that no key uses
            raise ValueError(f"table {self.name}: attribute(s) {sorted(extra)} are not keys")


def create_table_kwargs(spec: TableSpec, physical_name: str) -> dict:
    """boto3 ``create_table`` arguments for a spec (tests and offline mode)."""
    def schema(hash_key: str, range_key: str | None) -> list[dict]:
        out = [{"AttributeName": hash_key, "KeyType": "HASH"}]
        if range_key:
            out.append({"AttributeName": range_key, "KeyType": "RANGE"})
        return out

    kwargs: dict = {
        "TableName": physical_name,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": schema(spec.hash_key, spec.range_key),
        "AttributeDefinitions": [
            {"AttributeName": n, "AttributeType": t} for n, t in sorted(spec.attributes.items())],
    }
    if spec.indexes:
        kwargs["GlobalSecondaryIndexes"] = [
            {"IndexName": i.name, "KeySchema": schema(i.hash_key, i.range_key),
             "Projection": {"ProjectionType": "ALL"}} for i in spec.indexes]
    return kwargs


def build_table(spec: TableSpec, names: "Names", settings: "Settings",
                opts: "pulumi.ResourceOptions") -> "aws.dynamodb.Table":
    """The DynamoDB table for a spec: on demand, encrypted, recovery and deletion
    protection as the stage says. ``opts`` carries the parent and data protection."""
    import pulumi_aws as aws

    from components.adoption import adopted

    def key_schema(hash_key: str, range_key: str | None) -> list[dict]:
        keys = [{"attribute_name": hash_key, "key_type": "HASH"}]
        if range_key:
            keys.append({"attribute_name": range_key, "key_type": "RANGE"})
        return keys

    return aws.dynamodb.Table(
        f"table-{spec.name}",
        name=names.table(spec.name),
        billing_mode="PAY_PER_REQUEST",
        hash_key=spec.hash_key,
        range_key=spec.range_key,
        attributes=[{"name": n, "type": t} for n, t in sorted(spec.attributes.items())],
        global_secondary_indexes=[
            {"name": i.name, "key_schemas": key_schema(i.hash_key, i.range_key),
             "projection_type": "ALL"} for i in spec.indexes] or None,
        ttl={"attribute_name": spec.ttl_attribute, "enabled": True} if spec.ttl_attribute else None,
        point_in_time_recovery={"enabled": settings.point_in_time_recovery},
        deletion_protection_enabled=settings.data_protection,
        server_side_encryption={"enabled": True},
        opts=adopted(settings, "tables", names.table(spec.name), opts),
    )


S, N = "S", "N"

CORE_TABLES: tuple[TableSpec, ...] = (
    # A user by id; login finds a user by e-mail.
    TableSpec("users", "userId", attributes={"userId": S, "email": S},
              indexes=(Index("email-index", "email"),)),
    # An account by id; an account's children; the whole tree below an account in one
    # Query: every account stores its root and its path, so a prefix of the path is a
    # begins_with on this index's range key.
    TableSpec("accounts", "accountId",
              attributes={"accountId": S, "parentAccountId": S, "rootAccountId": S, "path": S},
              indexes=(Index("parent-index", "parentAccountId", "accountId"),
                       Index("root-path-index", "rootAccountId", "path"))),
    # Memberships: a user's accounts (table key) and an account's members (index).
    TableSpec("users-accounts", "userId", "accountId",
              attributes={"userId": S, "accountId": S},
              indexes=(Index("account-index", "accountId", "userId"),)),
    # Every tenant-owned table is keyed by accountId first, so each read is scoped to the
    # caller's account by its key, not by a filter.
    TableSpec("sources", "accountId", "sourceId", attributes={"accountId": S, "sourceId": S}),
    # Jobs of a source (sync finds its default job); the scheduler reads due jobs from a
    # sparse index that only active, scheduled jobs carry (scheduleState = "scheduled").
    TableSpec("jobs", "accountId", "jobId",
              attributes={"accountId": S, "jobId": S, "sourceId": S,
                          "scheduleState": S, "nextRunAt": S},
              indexes=(Index("source-index", "sourceId", "jobId"),
                       Index("schedule-index", "scheduleState", "nextRunAt"))),
    # Runs of a job newest first; an account's runs over time (analytics).
    # A source's runs (is one active? deleting a source refuses while one is).
    # Runs still in flight by deadline: a sparse index that only pending/running runs
    # carry (activeState = "active", deadline in epoch seconds; whoever ends a run REMOVEs
    # activeState), so the scheduler finds runs stuck past their deadline without a Scan.
    TableSpec("runs", "accountId", "runId",
              attributes={"accountId": S, "runId": S, "jobId": S, "sourceId": S, "createdAt": S,
                          "activeState": S, "deadline": N},
              indexes=(Index("job-index", "jobId", "createdAt"),
                       Index("source-index", "sourceId", "createdAt"),
                       Index("account-created-index", "accountId", "createdAt"),
                       Index("active-index", "activeState", "deadline"))),
    # Files: newest first per account, per source and per run; by path for tree and prefix
    # browsing and search.
    TableSpec("files", "accountId", "fileId",
              attributes={"accountId": S, "fileId": S, "sourceId": S, "runId": S,
                          "createdAt": S, "path": S},
              indexes=(Index("account-created-index", "accountId", "createdAt"),
                       Index("source-index", "sourceId", "createdAt"),
                       Index("run-index", "runId", "path"),
                       Index("path-index", "accountId", "path"))),
    # Audit feed: event ids sort by time, so the table key serves newest first. Expires
    # after 90 days through TTL on expiresAt (epoch seconds).
    TableSpec("activity", "accountId", "eventId", attributes={"accountId": S, "eventId": S},
              ttl_attribute="expiresAt"),
    # Events per account, day and type, split over a few rows ("2026-11-26#auth.login#3"),
    # kept by the activity writer, so stats read at most a month of counters instead of
    # the events.
    TableSpec("activity-counters", "accountId", "dayType",
              attributes={"accountId": S, "dayType": S}, ttl_attribute="expiresAt"),
    # Backup analytics per account, kept incrementally by whoever finishes a run (in the
    # same transaction as the run's end) and by the file indexer (storage per source):
    # "total", "day#2026-11-26" (expire after 400 days) and "source#<sourceId>", so a read
    # costs the same whatever the length of the history.
    TableSpec("analytics", "accountId", "counter",
              attributes={"accountId": S, "counter": S}, ttl_attribute="expiresAt"),
)

ACTIVITY_RETENTION_DAYS = 90

# Owned by the api service.
API_TABLES: tuple[TableSpec, ...] = (
    # OAuth flows in progress: the state value is the key; rows expire on their own.
    TableSpec("oauth-states", "state", attributes={"state": S}, ttl_attribute="expiresAt"),
    # API keys are stored only as the sha256 of the key, which is the table key, so the
    # authorizer finds a key with one GetItem; an account lists its keys by index.
    TableSpec("api-keys", "keyHash", attributes={"keyHash": S, "accountId": S, "keyId": S},
              indexes=(Index("account-index", "accountId", "keyId"),)),
)

# Owned by the auth service.
AUTH_TABLES: tuple[TableSpec, ...] = (
    # Single-use tokens by the sha256 of their value ("verify#...", "reset#...") and
    # refresh-token ids ("refresh#<jti>", rotated once; a replay revokes the user's tokens).
    TableSpec("auth-tokens", "tokenId", attributes={"tokenId": S}, ttl_attribute="expiresAt"),
    # Failed logins per e-mail in the current 15-minute window.
    TableSpec("login-attempts", "email", attributes={"email": S}, ttl_attribute="expiresAt"),
)

# Owned by the account service.
ACCOUNT_TABLES: tuple[TableSpec, ...] = (
    # Invitations of an account; accepting finds one by the sha256 of its code.
    TableSpec("invitations", "accountId", "inviteId",
              attributes={"accountId": S, "inviteId": S, "codeHash": S},
              indexes=(Index("code-index", "codeHash"),), ttl_attribute="expiresAt"),
)

# Owned by the data service.
DATA_TABLES: tuple[TableSpec, ...] = (
    # Export requests of an account: status, the zip's key, size and expiry. The zip itself
    # leaves exports/ after 7 days (bucket lifecycle); the row is purged later by TTL on
    # purgeAt (epoch seconds), so an expired export still answers "expired" for a while.
    TableSpec("exports", "accountId", "exportId", attributes={"accountId": S, "exportId": S},
              ttl_attribute="purgeAt"),
)

# Owned by the billing service.
BILLING_TABLES: tuple[TableSpec, ...] = (
    # Stripe events already processed, by event id (conditional put: each applies once);
    # kept 30 days, as long as Stripe may resend one.
    TableSpec("billing-events", "eventId", attributes={"eventId": S}, ttl_attribute="expiresAt"),
    # A Stripe customer's account (written when checkout creates the customer), so an
    # invoice or subscription event finds its account with one GetItem.
    TableSpec("billing-customers", "customerId", attributes={"customerId": S}),
)
