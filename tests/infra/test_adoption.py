"""Adopting an existing deployment: the tables, bucket, queues, SSM parameters and
/aws/lambda log groups named in `adopt` are declared with Pulumi's import_ option (their
physical ids), everything else is created as usual; nothing is imported by default."""

from __future__ import annotations

import json

import pytest

from offline.evaluate import evaluate

ACCOUNT = "210987654321"
KINDS = {"aws:dynamodb/table:Table": "tables", "aws:s3/bucket:Bucket": "bucket",
         "aws:sqs/queue:Queue": "queues", "aws:ssm/parameter:Parameter": "parameters"}


def test_nothing_is_imported_by_default(program):
    assert [r.urn for r in program.resources if r.import_id] == []


@pytest.fixture(scope="module")
def adopting_all():
    return evaluate("staging", overrides={"adopt": json.dumps({
        "tables": True, "bucket": True, "queues": True, "parameters": True, "logGroups": True,
        "accountId": ACCOUNT})})


def test_adopting_everything_imports_each_kind_by_its_physical_id(adopting_all):
    program = adopting_all
    for type_ in KINDS:
        resources = program.of_type(type_)
        assert resources and all(r.import_id for r in resources), type_
    for table in program.of_type("aws:dynamodb/table:Table"):
        assert table.import_id == table.inputs["name"]
    assert program.one("aws:s3/bucket:Bucket").import_id == "listbackup-data-staging"
    for queue in program.of_type("aws:sqs/queue:Queue"):
        assert queue.import_id == f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/{queue.inputs['name']}"
    for parameter in program.of_type("aws:ssm/parameter:Parameter"):
        assert parameter.import_id == parameter.inputs["name"]
    lambda_logs = [g for g in program.of_type("aws:cloudwatch/logGroup:LogGroup")
                   if g.inputs["name"].startswith("/aws/lambda/")]
    assert lambda_logs and all(g.import_id == g.inputs["name"] for g in lambda_logs)
    # code, roles and everything else are the program's own
    adoptable = set(KINDS) | {"aws:cloudwatch/logGroup:LogGroup"}
    assert not [r.urn for r in program.resources if r.import_id and r.type not in adoptable]
    assert not [r for r in program.of_type("aws:lambda/function:Function") if r.import_id]


def test_adopting_named_resources_imports_only_those():
    program = evaluate("dev", overrides={"adopt": json.dumps({
        "tables": ["listbackup-dev-users", "listbackup-dev-runs"],
        "logGroups": ["/aws/lambda/listbackup-jobs-dev-worker"]})})
    assert sorted(r.import_id for r in program.resources if r.import_id) == [
        "/aws/lambda/listbackup-jobs-dev-worker", "listbackup-dev-runs", "listbackup-dev-users"]


@pytest.mark.parametrize("adopt, message", [
    ({"queues": True}, "accountId"),
    ({"functions": True}, "not one of"),
    ({"tables": "yes"}, "true"),
    ({"accountId": "12", "tables": True}, "12-digit"),
    (["tables"], "must be an object"),
])
def test_bad_adoption_config_is_refused_by_name(adopt, message):
    with pytest.raises(Exception, match=message):
        evaluate("dev", overrides={"adopt": json.dumps(adopt)})
