"""Data protection and clean teardown, per stack: main keeps its data through a
`pulumi destroy` (protected in Pulumi, retained in AWS, deletion protection and
point-in-time recovery on every table); dev leaves nothing behind (nothing protected or
retained, the bucket force-destroyable, every function's log group owned by the program)."""

from __future__ import annotations

from tests.conftest import evaluated

TABLE = "aws:dynamodb/table:Table"
DATA_BEARING = (TABLE, "aws:s3/bucket:Bucket", "aws:kms/key:Key")


def test_main_protects_and_retains_every_data_bearing_resource():
    main = evaluated("main")
    for type_ in DATA_BEARING:
        resources = main.of_type(type_)
        assert resources, type_
        for resource in resources:
            assert resource.protect and resource.retain_on_delete, resource.urn
    for table in main.of_type(TABLE):
        assert table.inputs["deletionProtectionEnabled"] is True, table.name
        assert table.inputs["pointInTimeRecovery"] == {"enabled": True}, table.name
    assert main.one("aws:s3/bucket:Bucket").inputs["forceDestroy"] is False
    # only data is protected: code, roles and queues can still be replaced or destroyed
    protected = {r.type for r in main.resources if r.protect}
    assert protected <= set(DATA_BEARING)


def test_dev_protects_nothing_and_its_bucket_empties_on_destroy():
    dev = evaluated("dev")
    assert [r.urn for r in dev.resources if r.protect or r.retain_on_delete] == []
    assert all(t.inputs["deletionProtectionEnabled"] is False for t in dev.of_type(TABLE))
    assert dev.one("aws:s3/bucket:Bucket").inputs["forceDestroy"] is True


def test_every_function_log_group_is_owned_by_the_program_in_every_stack(program):
    """Lambda would create /aws/lambda/<name> itself (without retention, outside the stack)
    if the program did not: each one is declared, so destroy removes it."""
    groups = {g.inputs["name"] for g in program.of_type("aws:cloudwatch/logGroup:LogGroup")}
    for function in program.of_type("aws:lambda/function:Function"):
        assert f"/aws/lambda/{function.inputs['name']}" in groups, function.inputs["name"]
