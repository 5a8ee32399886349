"""Stage settings are read once, typed and checked: a bad value stops the program with a
message naming the key, before any resource is declared."""

from __future__ import annotations

import pytest

from offline.evaluate import evaluate


@pytest.mark.parametrize("key, value, complaint", [
    ("listbackup:logRetentionDays", 8, "logRetentionDays"),
    ("listbackup:lambdaMemory", 64, "lambdaMemory"),
    ("listbackup:authorizerCacheTtl", 7200, "authorizerCacheTtl"),
    ("listbackup:sesFromEmail", "not-an-address", "sesFromEmail"),
    ("listbackup:corsOrigins", ["app.listbackup.ai"], "corsOrigins"),
    ("listbackup:forceDestroy", True, "forceDestroy"),   # main protects its data
])
def test_a_bad_setting_is_refused_by_name(key, value, complaint):
    # each evaluation imports the program afresh, so compare the class by name
    with pytest.raises(ValueError, match=complaint) as raised:
        evaluate("main", overrides={key: value})
    assert type(raised.value).__name__ == "SettingsError"


def test_stage_comes_from_the_stack_and_defaults_fill_unset_keys():
    program = evaluate("dev", overrides={"listbackup:noncurrentVersionDays": 3})
    assert program.outputs["stage"] == "dev"
    rules = {r["id"]: r for r in program.one(
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs["rules"]}
    assert rules["expire-noncurrent-versions"]["noncurrentVersionExpiration"]["noncurrentDays"] == 3
