"""The jobs service: API, worker on the job queue, scheduler on a rule."""

from __future__ import annotations

from components.functions import CONSUMER_TIMEOUTS
from tests.infra.test_functions import role_policy_of

FUNCTION = "aws:lambda/function:Function"


def test_worker_consumes_the_job_queue_with_partial_failures(program, stack):
    worker = program.one(FUNCTION, name=f"listbackup-jobs-{stack}-worker")
    assert worker.inputs["timeout"] == CONSUMER_TIMEOUTS["job"]
    mapping = next(m for m in program.of_type("aws:lambda/eventSourceMapping:EventSourceMapping")
                   if m.inputs["functionName"] == worker.state["arn"])
    assert mapping.inputs["eventSourceArn"].endswith(f":listbackup-job-queue-{stack}")
    assert mapping.inputs["functionResponseTypes"] == ["ReportBatchItemFailures"]
    queue = program.one("aws:sqs/queue:Queue", name=f"listbackup-job-queue-{stack}")
    assert queue.inputs["visibilityTimeoutSeconds"] >= 6 * worker.inputs["timeout"]


def test_worker_writes_only_under_data_and_decrypts_only_with_context(program, stack):
    worker = program.one(FUNCTION, name=f"listbackup-jobs-{stack}-worker")
    for st in role_policy_of(program, worker)["Statement"]:
        if any(a.startswith("s3:") for a in st["Action"]):
            assert st["Resource"] == [f"arn:aws:s3:::listbackup-data-{stack}/data/*"]
        if "kms:Decrypt" in st["Action"]:
            assert "kms:EncryptionContext:accountId" in st["Condition"]["Null"]


def test_scheduler_runs_on_a_rule_and_may_invoke_only_from_it(program, stack):
    scheduler = program.one(FUNCTION, name=f"listbackup-jobs-{stack}-scheduler")
    rule = program.one("aws:cloudwatch/eventRule:EventRule", name=f"listbackup-{stack}-scheduler")
    assert rule.inputs["scheduleExpression"].startswith("rate(")
    target = program.one("aws:cloudwatch/eventTarget:EventTarget")
    assert target.inputs["arn"] == scheduler.state["arn"]
    permission = next(p for p in program.of_type("aws:lambda/permission:Permission")
                      if p.inputs["principal"] == "events.amazonaws.com")
    assert permission.inputs["sourceArn"] == rule.state["arn"]
