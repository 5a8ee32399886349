"""The data service as the program declares it: its routes on the API, the exporter on the
data queue, the exports table, and grants no wider than the functions need."""

from __future__ import annotations

from components.functions import CONSUMER_TIMEOUTS
from handlers.routes import all_routes
from tests.infra.test_functions import role_policy_of

FUNCTION = "aws:lambda/function:Function"
TABLE = "aws:dynamodb/table:Table"
SERVICE_TYPE = "listbackup:data:DataService"


def grants(program, function) -> set[tuple[str, str]]:
    return {(a, r) for s in role_policy_of(program, function)["Statement"]
            for a in s["Action"] for r in s["Resource"]}


def statements(program, function) -> list[dict]:
    return role_policy_of(program, function)["Statement"]


def test_the_exporter_consumes_the_data_queue_with_partial_failures(program, stack):
    exporter = program.one(FUNCTION, name=f"listbackup-data-{stack}-exporter")
    assert exporter.inputs["timeout"] == CONSUMER_TIMEOUTS["data"]
    [mapping] = [m for m in program.of_type("aws:lambda/eventSourceMapping:EventSourceMapping")
                 if m.inputs["functionName"] == exporter.state["arn"]]
    assert mapping.inputs["eventSourceArn"].endswith(f":listbackup-data-queue-{stack}")
    assert mapping.inputs["functionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping.inputs["batchSize"] == 1
    queue = program.one("aws:sqs/queue:Queue", name=f"listbackup-data-queue-{stack}")
    assert queue.inputs["visibilityTimeoutSeconds"] >= 6 * exporter.inputs["timeout"]
    env = exporter.inputs["environment"]["variables"]
    # the mailed link points at the API's base URL (the stack output), never at S3
    assert env["API_BASE_URL"] == program.outputs["apiUrl"]
    assert env["MAX_RECEIVES"] == "5" and env["S3_BUCKET"] == f"listbackup-data-{stack}"


def test_every_data_route_hangs_on_the_data_api_with_the_authorizer(program, stack):
    api = program.one(FUNCTION, name=f"listbackup-data-{stack}-api")
    integration = next(i for i in program.of_type("aws:apigatewayv2/integration:Integration")
                       if i.inputs["integrationUri"] == api.state["invokeArn"])
    routes = {r.inputs["routeKey"]: r for r in program.of_type("aws:apigatewayv2/route:Route")
              if r.inputs["target"] == f"integrations/{integration.id}"}
    assert set(routes) == {r.route_key for r in all_routes()["data"]}
    assert all(r.inputs["authorizationType"] == "CUSTOM" for r in routes.values())
    env = api.inputs["environment"]["variables"]
    assert env["CURSOR_SECRET_PARAM"] == f"/listbackup/{stack}/cursor-secret"
    queue = program.one("aws:sqs/queue:Queue", name=f"listbackup-data-queue-{stack}")
    assert env["DATA_QUEUE_URL"] == queue.state["url"]


def test_the_exports_table_belongs_to_the_data_service_and_expires_rows(program, stack):
    table = program.one(TABLE, name=f"listbackup-{stack}-exports")
    service = next(r for r in program.resources if r.type == SERVICE_TYPE)
    assert table.parent == service.urn
    assert table.inputs["ttl"] == {"attributeName": "purgeAt", "enabled": True}
    assert table.inputs["serverSideEncryption"] == {"enabled": True}
    assert table.protect is (stack == "main")
    assert f"listbackup-{stack}-exports" in program.outputs["tables"].values()


def test_the_exporter_reads_only_backups_and_writes_only_exports(program, stack):
    exporter = program.one(FUNCTION, name=f"listbackup-data-{stack}-exporter")
    bucket = f"arn:aws:s3:::listbackup-data-{stack}"
    s3 = {(a, r) for a, r in grants(program, exporter) if a.startswith("s3:")}
    assert s3 == {("s3:GetObject", f"{bucket}/data/*"), ("s3:PutObject", f"{bucket}/exports/*"),
                  ("s3:AbortMultipartUpload", f"{bucket}/exports/*")}
    tables = {(a, r.rsplit("/", 1)[-1]) for a, r in grants(program, exporter) if a.startswith("dynamodb:")}
    assert not [a for a, _ in tables if a in ("dynamodb:Scan", "dynamodb:DeleteItem")]
    assert {t for a, t in tables if a == "dynamodb:PutItem"} == {f"listbackup-{stack}-activity"}
    assert ("dynamodb:UpdateItem", f"listbackup-{stack}-files") not in tables, "the exporter never changes files"
    assert ("dynamodb:UpdateItem", f"listbackup-{stack}-exports") in tables


def test_the_api_changes_objects_only_under_data_and_lists_versions_only_there(program, stack):
    api = program.one(FUNCTION, name=f"listbackup-data-{stack}-api")
    bucket = f"arn:aws:s3:::listbackup-data-{stack}"
    allowed = grants(program, api)
    writes = {(a, r) for a, r in allowed
              if a in ("s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObject")}
    assert writes and all(r == f"{bucket}/data/*" for _, r in writes)
    assert ("s3:GetObject", f"{bucket}/exports/*") in allowed
    assert not [r for a, r in allowed if a.startswith("s3:") and r.endswith("/exports/*") and a != "s3:GetObject"]
    [versions] = [s for s in statements(program, api) if "s3:ListBucketVersions" in s["Action"]]
    assert versions["Condition"] == {"StringLike": {"s3:prefix": "data/*"}}
    assert ("s3:ListBucket", bucket) in allowed, "HEAD of a deleted key must answer 404, not 403"
    assert not [a for a, _ in allowed if a == "dynamodb:Scan"]
    # delete and restore move storage usage, as the indexer does: the accounts row only
    assert {a for a, r in allowed if r.endswith(f"table/listbackup-{stack}-accounts")} == {"dynamodb:UpdateItem"}
    assert ("sqs:SendMessage", next(q.state["arn"] for q in program.of_type("aws:sqs/queue:Queue")
                                    if q.inputs["name"] == f"listbackup-data-queue-{stack}")) in allowed
