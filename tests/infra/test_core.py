"""The core service, as the program declares it for each stack under Pulumi's mocks."""

from __future__ import annotations

import pytest

from components.functions import CONSUMER_TIMEOUTS
from components.tables import CORE_TABLES
from handlers.shared.plans import PLANS
from tests.conftest import evaluated, policy, unwrap
from tests.infra.test_project_config import stack_config

TABLE = "aws:dynamodb/table:Table"
QUEUE = "aws:sqs/queue:Queue"


def setting(stack, key):
    return stack_config(stack)[f"listbackup:{key}"]


def test_eight_tables_with_seed_names_and_on_demand_billing(program, stack):
    tables = {r.inputs["name"]: r for r in program.of_type(TABLE)}
    for name in ("users", "accounts", "users-accounts", "sources", "jobs", "runs", "files",
                 "activity"):
        table = tables[f"listbackup-{stack}-{name}"]
        assert table.inputs["billingMode"] == "PAY_PER_REQUEST"
        assert table.inputs["serverSideEncryption"] == {"enabled": True}


def test_table_keys_and_indexes_match_the_shared_specs(program, stack):
    tables = {r.inputs["name"]: r for r in program.of_type(TABLE)}
    for spec in CORE_TABLES:
        inputs = tables[f"listbackup-{stack}-{spec.name}"].inputs
        assert inputs["hashKey"] == spec.hash_key
        assert inputs.get("rangeKey") == spec.range_key
        declared = {i["name"]: [(k["attributeName"], k["keyType"]) for k in i["keySchemas"]]
                    for i in inputs.get("globalSecondaryIndexes") or []}
        expected = {i.name: [(i.hash_key, "HASH")] + ([(i.range_key, "RANGE")] if i.range_key else [])
                    for i in spec.indexes}
        assert declared == expected


def test_every_tenant_table_is_keyed_by_account_so_lists_are_queries():
    by_name = {s.name: s for s in CORE_TABLES}
    for name in ("sources", "jobs", "runs", "files", "activity"):
        assert by_name[name].hash_key == "accountId"


def test_activity_expires_after_ttl(program, stack):
    activity = program.one(TABLE, name=f"listbackup-{stack}-activity")
    assert activity.inputs["ttl"] == {"attributeName": "expiresAt", "enabled": True}


def test_recovery_and_protection_follow_the_stage(program, stack):
    protected = setting(stack, "dataProtection")
    for table in program.of_type(TABLE):
        assert table.inputs["pointInTimeRecovery"] == {"enabled": setting(stack, "pointInTimeRecovery")}
        assert table.inputs["deletionProtectionEnabled"] is protected
        assert table.protect is protected and table.retain_on_delete is protected
    bucket = program.one("aws:s3/bucket:Bucket")
    assert bucket.protect is protected and bucket.retain_on_delete is protected
    key = program.one("aws:kms/key:Key")
    assert key.protect is protected, "losing the key would lose every stored credential"


def test_main_protects_data_and_dev_is_disposable():
    main, dev = evaluated("main"), evaluated("dev")
    assert all(t.protect for t in main.of_type(TABLE))
    assert main.one("aws:s3/bucket:Bucket").inputs["forceDestroy"] is False
    assert not any(t.protect for t in dev.of_type(TABLE))
    assert dev.one("aws:s3/bucket:Bucket").inputs["forceDestroy"] is True
    assert evaluated("staging").one("aws:s3/bucket:Bucket").inputs["forceDestroy"] is False


def test_data_bucket_is_versioned_encrypted_private_and_tls_only(program, stack):
    name = f"listbackup-data-{stack}"
    program.one("aws:s3/bucket:Bucket", bucket=name)
    versioning = program.one("aws:s3/bucketVersioning:BucketVersioning")
    assert versioning.inputs == {"bucket": name, "versioningConfiguration": {"status": "Enabled"}}
    encryption = program.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    assert encryption.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] in ("AES256", "aws:kms")
    block = program.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert all(block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy",
                                          "ignorePublicAcls", "restrictPublicBuckets"))
    doc = policy(program.one("aws:s3/bucketPolicy:BucketPolicy"))
    deny = [s for s in doc["Statement"] if s["Effect"] == "Deny"]
    assert deny and deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert set(deny[0]["Resource"]) == {f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"}


def test_lifecycle_archives_expires_and_cleans_up(program, stack):
    rules = {r["id"]: r for r in program.one(
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs["rules"]}
    assert all(r["status"] == "Enabled" for r in rules.values())
    archive = rules["archive-backups"]
    assert archive["filter"] == {"prefix": "data/"}
    assert archive["transitions"] == [{"days": setting(stack, "archiveAfterDays"),
                                       "storageClass": "GLACIER_IR"}]
    assert rules["expire-noncurrent-versions"]["noncurrentVersionExpiration"] == {
        "noncurrentDays": setting(stack, "noncurrentVersionDays")}
    assert rules["abort-stale-uploads"]["abortIncompleteMultipartUpload"]["daysAfterInitiation"] > 0
    assert rules["expire-exports"]["filter"] == {"prefix": "exports/"}
    assert rules["expire-exports"]["expiration"] == {"days": 7}
    by_tag = {r["filter"]["tag"]["value"]: r["expiration"]["days"]
              for r in rules.values() if "tag" in r.get("filter", {})}
    assert by_tag == {"30d": 30, "90d": 90, "365d": 365, "2555d": 2555}
    assert sorted(by_tag.values()) == sorted({p.retention_days for p in PLANS})


def test_three_queues_each_with_a_dead_letter_queue(program, stack):
    queues = {r.inputs["name"]: r for r in program.of_type(QUEUE)}
    for kind in ("job", "data", "index"):
        queue = queues[f"listbackup-{kind}-queue-{stack}"]
        dlq = queues[f"listbackup-{kind}-queue-{stack}-dlq"]
        assert queue.inputs["sqsManagedSseEnabled"] is True and dlq.inputs["sqsManagedSseEnabled"] is True
        import json
        redrive = json.loads(queue.inputs["redrivePolicy"])
        assert redrive["deadLetterTargetArn"] == dlq.state["arn"]
        assert 1 < redrive["maxReceiveCount"] <= 10
        assert queue.inputs["visibilityTimeoutSeconds"] >= 6 * CONSUMER_TIMEOUTS[kind]
        assert dlq.inputs["messageRetentionSeconds"] == 14 * 24 * 3600


def test_index_queue_admits_s3_for_this_bucket_only(program, stack):
    queue_policy = program.one("aws:sqs/queuePolicy:QueuePolicy")
    assert queue_policy.inputs["queueUrl"].endswith(f"/listbackup-index-queue-{stack}")
    [statement] = policy(queue_policy)["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"].endswith(f":listbackup-index-queue-{stack}")
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": f"arn:aws:s3:::listbackup-data-{stack}"}}


def test_bucket_events_under_data_go_to_the_index_queue_after_its_policy(program, stack):
    notification = program.one("aws:s3/bucketNotification:BucketNotification")
    [target] = notification.inputs["queues"]
    assert target["queueArn"].endswith(f":listbackup-index-queue-{stack}")
    assert target["filterPrefix"] == "data/"
    assert set(target["events"]) == {"s3:ObjectCreated:*", "s3:ObjectRemoved:*",
                                     "s3:LifecycleExpiration:*"}
    queue_policy = program.one("aws:sqs/queuePolicy:QueuePolicy")
    assert queue_policy.urn in notification.dependencies


def test_credentials_key_rotates_and_is_aliased_per_stage(program, stack):
    key = program.one("aws:kms/key:Key")
    assert key.inputs["enableKeyRotation"] is True
    alias = program.one("aws:kms/alias:Alias")
    assert alias.inputs["name"] == f"alias/listbackup-{stack}-credentials"
    assert alias.inputs["targetKeyId"] == key.state["keyId"]


def test_stage_parameters_with_secrets_as_secure_strings(program, stack):
    params = {r.inputs["name"]: r for r in program.of_type("aws:ssm/parameter:Parameter")}
    prefix = f"/listbackup/{stack}/"
    assert params[prefix + "jwt-secret"].inputs["type"] == "SecureString"
    assert params[prefix + "jwt-refresh-secret"].inputs["type"] == "SecureString"
    secret = unwrap(params[prefix + "jwt-secret"].inputs["value"])
    refresh = unwrap(params[prefix + "jwt-refresh-secret"].inputs["value"])
    assert len(secret) >= 32 and len(refresh) >= 32 and secret != refresh, "generated when unset"
    assert unwrap(params[prefix + "cors-origin"].inputs["value"]) == ",".join(setting(stack, "corsOrigins"))
    assert unwrap(params[prefix + "ses-from-email"].inputs["value"]) == setting(stack, "sesFromEmail")


def test_a_configured_secret_is_used_instead_of_a_generated_one():
    from offline.evaluate import evaluate

    configured = evaluate("dev", overrides={"listbackup:jwtSecret": {"secure": "v1:abc"}})
    param = configured.one("aws:ssm/parameter:Parameter", name="/listbackup/dev/jwt-secret")
    from offline.evaluate import load_config
    config, secret_keys = load_config("dev", overrides={"listbackup:jwtSecret": {"secure": "v1:abc"}})
    assert "listbackup:jwtSecret" in secret_keys
    assert unwrap(param.inputs["value"]) == config["listbackup:jwtSecret"]


def test_the_stage_sender_address_is_an_ses_identity(program, stack):
    identity = program.one("aws:sesv2/emailIdentity:EmailIdentity")
    assert identity.inputs["emailIdentity"] == setting(stack, "sesFromEmail")
