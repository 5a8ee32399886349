"""Observability per stage, under mocks: every alarm e-mails the stage's topic; a DLQ alarm
per dead-letter queue, Errors and Throttles per function, the API's 5xx rate, the
authorizer's errors and the backup failure rate (read from the very metrics the handlers
emit); a dashboard naming the stage's own resources; all of it inside the system service."""

from __future__ import annotations

import json
import re

import pytest

from components.observability import (API_5XX_PERCENT, AUTHORIZER_PERIOD, FAILURE_RATE_PERCENT,
                                      FAILURE_RATE_PERIOD)
from handlers.shared import metrics
from offline.evaluate import evaluate
from tests.infra.test_project_config import stack_config

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC = "aws:sns/topic:Topic"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"
FUNCTION = "aws:lambda/function:Function"
QUEUE = "aws:sqs/queue:Queue"


def topic_of(program, stack):
    return program.one(TOPIC, name=f"listbackup-{stack}-alarms")


def alarms_on(program, namespace: str, metric: str, **dimensions) -> list:
    return [a for a in program.of_type(ALARM)
            if a.inputs.get("namespace") == namespace and a.inputs.get("metricName") == metric
            and a.inputs.get("dimensions") == dimensions]


def queries(alarm) -> dict:
    return {q["id"]: q for q in alarm.inputs["metricQueries"]}


def dead_letter_queues(program) -> list[str]:
    return [q.inputs["name"] for q in program.of_type(QUEUE) if q.inputs["name"].endswith("-dlq")]


# ---------------------------------------------------------------- topic

def test_alarms_go_to_the_stage_topic_which_mails_the_configured_address(program, stack):
    topic = topic_of(program, stack)
    email = stack_config(stack)["listbackup:alarmEmail"]
    subscriptions = program.of_type(SUBSCRIPTION)
    if email:
        [subscription] = subscriptions
        assert subscription.inputs["protocol"] == "email"
        assert subscription.inputs["endpoint"] == email
        assert subscription.inputs["topic"] == topic.state["arn"]
    else:
        assert subscriptions == [], "no subscriber when alarmEmail is empty"
    alarms = program.of_type(ALARM)
    assert alarms
    for alarm in alarms:
        assert alarm.inputs["alarmActions"] == [topic.state["arn"]], alarm.inputs["name"]
        assert alarm.inputs["okActions"] == [topic.state["arn"]], "recovery is news too"
        assert alarm.inputs["treatMissingData"] == "notBreaching", alarm.inputs["name"]
        assert alarm.inputs["alarmDescription"]
    names = [a.inputs["name"] for a in alarms]
    assert len(names) == len(set(names))
    assert all(f"-{stack}-" in name for name in names), "alarm names carry the stage"


def test_main_and_staging_mail_someone_and_dev_may_opt_in():
    assert stack_config("main")["listbackup:alarmEmail"]
    assert stack_config("staging")["listbackup:alarmEmail"]
    program = evaluate("dev", overrides={"listbackup:alarmEmail": "oncall@example.com"})
    [subscription] = program.of_type(SUBSCRIPTION)
    assert subscription.inputs["endpoint"] == "oncall@example.com"
    assert subscription.inputs["topic"] == topic_of(program, "dev").state["arn"]


def test_observability_belongs_to_the_system_service(program):
    [system] = [r for r in program.resources if r.type == "listbackup:system:SystemService"]
    for type_ in (ALARM, TOPIC, SUBSCRIPTION, DASHBOARD):
        for resource in program.of_type(type_):
            assert resource.parent == system.urn, resource.urn


# ---------------------------------------------------------------- alarms

def test_every_dead_letter_queue_alarms_on_its_first_message(program, stack):
    dlqs = dead_letter_queues(program)
    assert sorted(dlqs) == sorted(f"listbackup-{kind}-queue-{stack}-dlq"
                                  for kind in ("job", "data", "index"))
    for dlq in dlqs:
        [alarm] = alarms_on(program, "AWS/SQS", "ApproximateNumberOfMessagesVisible", QueueName=dlq)
        assert alarm.inputs["statistic"] == "Maximum"
        assert alarm.inputs["threshold"] == 0
        assert alarm.inputs["comparisonOperator"] == "GreaterThanThreshold"
        assert alarm.inputs["evaluationPeriods"] == 1
    # the work queues themselves hold messages normally: no depth alarm on them
    for queue in program.of_type(QUEUE):
        if not queue.inputs["name"].endswith("-dlq"):
            assert not alarms_on(program, "AWS/SQS", "ApproximateNumberOfMessagesVisible",
                                 QueueName=queue.inputs["name"])


def test_every_function_alarms_on_errors_and_throttles(program, stack):
    functions = [f.inputs["name"] for f in program.of_type(FUNCTION)]
    assert f"listbackup-system-{stack}-api" in functions, "the system service watches itself"
    assert f"listbackup-integrations-{stack}-api" in functions
    for name in functions:
        [throttles] = alarms_on(program, "AWS/Lambda", "Throttles", FunctionName=name)
        [errors] = alarms_on(program, "AWS/Lambda", "Errors", FunctionName=name)
        for alarm in (throttles, errors):
            assert alarm.inputs["statistic"] == "Sum"
            assert alarm.inputs["threshold"] == 0
            assert alarm.inputs["comparisonOperator"] == "GreaterThanThreshold"
        assert errors.inputs["name"] == f"{name}-errors"
        assert throttles.inputs["name"] == f"{name}-throttles"


def test_the_authorizer_has_its_own_quick_errors_alarm(program, stack):
    authorizer = f"listbackup-api-{stack}-authorizer"
    [alarm] = alarms_on(program, "AWS/Lambda", "Errors", FunctionName=authorizer)
    assert alarm.urn.endswith("::alarm-authorizer-errors")
    assert alarm.inputs["period"] == AUTHORIZER_PERIOD <= 60
    assert "authorizer" in alarm.inputs["alarmDescription"]
    # the other functions' errors alarms look at 5-minute sums
    other = alarms_on(program, "AWS/Lambda", "Errors", FunctionName=f"listbackup-jobs-{stack}-worker")
    assert other[0].inputs["period"] == 300


def test_the_api_5xx_rate_alarm_divides_5xx_by_requests_on_the_stage(program, stack):
    api = program.one("aws:apigatewayv2/api:Api", name=f"listbackup-{stack}-api")
    stage = program.one("aws:apigatewayv2/stage:Stage")
    [alarm] = [a for a in program.of_type(ALARM) if a.inputs["name"] == f"listbackup-{stack}-api-5xx-rate"]
    by_id = queries(alarm)
    dimensions = {"ApiId": api.id, "Stage": stage.inputs["name"]}
    assert by_id["requests"]["metric"] == {"namespace": "AWS/ApiGateway", "metricName": "Count",
                                           "dimensions": dimensions, "stat": "Sum", "period": 300}
    assert by_id["errors"]["metric"]["metricName"] == "5xx"
    assert by_id["errors"]["metric"]["dimensions"] == dimensions
    [result] = [q for q in by_id.values() if q.get("returnData")]
    assert re.search(r"100 \* FILL\(errors, 0\) / requests", result["expression"])
    assert alarm.inputs["threshold"] == API_5XX_PERCENT
    assert alarm.inputs["comparisonOperator"] == "GreaterThanThreshold"
    assert "metricName" not in alarm.inputs, "metric math, not a single metric"


def test_the_backup_failure_rate_alarm_reads_the_metrics_the_handlers_emit(program, stack):
    [alarm] = [a for a in program.of_type(ALARM)
               if a.inputs["name"] == f"listbackup-{stack}-backup-failure-rate"]
    by_id = queries(alarm)
    # what a finished run prints, with the stage the program gives its functions
    document = metrics.run_finished_document("failed", records=1, bytes_=1)
    [directive] = document["_aws"]["CloudWatchMetrics"]
    emitted = {m["Name"] for m in directive["Metrics"]}
    for query_id, metric_name in (("completed", "RunsCompleted"), ("partial", "RunsPartial"),
                                  ("failed", "RunsFailed")):
        metric = by_id[query_id]["metric"]
        assert metric["metricName"] == metric_name and metric_name in emitted
        assert metric["namespace"] == directive["Namespace"] == "ListBackup"
        assert directive["Dimensions"] == [list(metric["dimensions"])]
        assert metric["dimensions"] == {"Stage": stack}
        assert metric["stat"] == "Sum" and metric["period"] == FAILURE_RATE_PERIOD == 3600
    [result] = [q for q in by_id.values() if q.get("returnData")]
    assert "100 * FILL(failed, 0) / (FILL(completed, 0) + FILL(partial, 0) + FILL(failed, 0))" \
        in result["expression"]
    assert alarm.inputs["threshold"] == FAILURE_RATE_PERCENT
    worker = program.one(FUNCTION, name=f"listbackup-jobs-{stack}-worker")
    assert worker.inputs["environment"]["variables"]["STAGE"] == stack, \
        "the emitted Stage dimension is the one the alarm reads"


# ---------------------------------------------------------------- dashboard

def test_the_dashboard_is_valid_json_naming_the_stage_resources(program, stack):
    dashboard = program.one(DASHBOARD, dashboardName=f"listbackup-{stack}")
    body = json.loads(dashboard.inputs["dashboardBody"])
    widgets = body["widgets"]
    for widget in widgets:
        assert widget["type"] in ("metric", "alarm")
        assert widget["x"] + widget["width"] <= 24 and widget["height"] > 0
        if widget["type"] == "metric":
            assert widget["properties"]["region"] == "us-east-1"
            assert widget["properties"]["metrics"]
    rows = [row for w in widgets if w["type"] == "metric" for row in w["properties"]["metrics"]]
    named = {value for row in rows for value in row if isinstance(value, str)}

    api = program.one("aws:apigatewayv2/api:Api", name=f"listbackup-{stack}-api")
    assert api.id in named
    assert {"Count", "5xx", "Latency"} <= named
    functions = {f.inputs["name"] for f in program.of_type(FUNCTION)}
    assert functions <= named
    assert {"Errors", "Duration"} <= named
    queues = {q.inputs["name"] for q in program.of_type(QUEUE)}
    assert queues <= named and set(dead_letter_queues(program)) <= named
    assert set(metrics.RUN_STATUS_METRICS.values()) | {metrics.RECORDS, metrics.BYTES} <= named
    business = [row for row in rows if row[0] == "ListBackup"]
    assert business and all(row[2:4] == ["Stage", stack] for row in business)
    assert not [v for v in named if re.search(r"-(dev|staging|main)(-|$)", v)
                and f"-{stack}" not in v], "only this stage's resources"

    [alarms] = [w for w in widgets if w["type"] == "alarm"]
    assert sorted(alarms["properties"]["alarms"]) == sorted(a.state["arn"] for a in program.of_type(ALARM))


def test_the_dashboard_ids_referenced_by_expressions_exist(program):
    body = json.loads(program.one(DASHBOARD).inputs["dashboardBody"])
    for widget in body["widgets"]:
        rows = widget["properties"].get("metrics", [])
        ids = {row[-1]["id"] for row in rows if isinstance(row[-1], dict) and "id" in row[-1]}
        for row in rows:
            options = row[-1] if isinstance(row[-1], dict) else {}
            if "expression" in options:
                for name in re.findall(r"\b([a-z][A-Za-z0-9_]*)\b", options["expression"]):
                    assert name in ids, (name, widget)


@pytest.mark.parametrize("email", ["ops", "@listbackup.ai", "ops@listbackup", "a@b.c d@e.f"])
def test_a_bad_alarm_email_is_refused_by_name(email):
    with pytest.raises(Exception, match="alarmEmail") as raised:
        evaluate("dev", overrides={"listbackup:alarmEmail": email})
    # each evaluation imports the program afresh, so compare the class by name; the
    # evaluator may wrap the program's error
    error = getattr(raised.value, "error", raised.value)
    assert type(error).__name__ == "SettingsError"
