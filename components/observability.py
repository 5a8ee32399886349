"""The stage's alarms and dashboard: what an operator is told, and where they look first.

One SNS topic per stage, ``listbackup-{stage}-alarms``, e-mailing the stage's
``alarmEmail`` (the recipient confirms SNS's subscription mail once; "" leaves the topic
without a subscriber). Every alarm notifies it when it fires and when it recovers:

- each dead-letter queue holding a message (a message failed every delivery: look, fix,
  redrive);
- each function's Errors (unhandled exceptions, timeouts) and Throttles;
- the HTTP API's 5xx rate (5xx / Count by metric math, on the API id and its stage);
- the authorizer's Errors: a failing authorizer turns every authenticated request into a
  500, so it gets its own, quicker alarm instead of the generic one;
- the backup failure rate over an hour, from the business metrics the handlers emit
  (``handlers/shared/metrics.py``): failed / (completed + partial + failed).

Missing data is not breaching: a quiet stage (no requests, no runs, an empty queue that
CloudWatch stops reporting) is a healthy one.

Functions are named from the same helper the function builder uses (``Names.function``),
not from the functions' outputs: an alarm or the dashboard changes with its config alone,
and does not wait on a function's code (which the promotion gate may hold back).

A dashboard ``listbackup-{stage}`` shows the alarms' states, the API (requests, 4xx/5xx,
latency), the functions (errors, duration, throttles), the queues and dead-letter queues,
and the runs by status with the records and bytes they backed up.

The resources are children of the service that builds them (the system service): every
resource belongs to a service component.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

import pulumi
import pulumi_aws as aws

from components.functions import BuiltFunction
from components.naming import APP, Names
from handlers.shared.metrics import BYTES, DIMENSION, NAMESPACE, RECORDS, RUN_STATUS_METRICS

PERIOD = 300                    # seconds per datapoint of the operational alarms
AUTHORIZER_PERIOD = 60          # a failing authorizer fails every authenticated request
API_5XX_PERCENT = 5.0           # alarm when more than this share of requests answer 5xx...
API_5XX_MIN_REQUESTS = 10       # ...among at least this many requests in the period
API_5XX_PERIODS = (3, 2)        # 2 breaching periods out of 3: one burst is not an outage
FAILURE_RATE_PERIOD = 3600      # runs finish minutes apart: judge them by the hour
FAILURE_RATE_PERCENT = 20.0     # alarm when more than this share of finished runs failed
MISSING_DATA = "notBreaching"

LAMBDA = "AWS/Lambda"
SQS = "AWS/SQS"
API_GATEWAY = "AWS/ApiGateway"


@dataclass(frozen=True)
class ApiStage:
    """The HTTP API stage whose requests are watched (API Gateway v2 metrics dimensions)."""
    api_id: pulumi.Input[str]
    stage: pulumi.Input[str]


@dataclass(frozen=True)
class ObservabilityArgs:
    names: Names
    region: str
    alarm_email: str = ""
    # "{service}/{function}" -> the built function; the keys name the alarms.
    functions: Mapping[str, BuiltFunction] = field(default_factory=dict)
    authorizer: BuiltFunction | None = None       # one of ``functions``
    queues: Mapping[str, aws.sqs.Queue] = field(default_factory=dict)              # kind ->
    dead_letter_queues: Mapping[str, aws.sqs.Queue] = field(default_factory=dict)  # kind ->
    api: ApiStage | None = None


class Observability:
    """Builds the topic, the alarms and the dashboard as children of ``parent``."""

    def __init__(self, parent: pulumi.Resource, args: ObservabilityArgs):
        self._parent = parent
        self._args = args
        names = args.names
        child = pulumi.ResourceOptions(parent=parent)

        self.topic = aws.sns.Topic("alarms-topic", name=self._name("alarms"),
                                   display_name=f"ListBackup {names.stage} alarms", opts=child)
        self.subscription = None
        if args.alarm_email:
            # E-mail subscriptions wait for the recipient to confirm SNS's mail.
            self.subscription = aws.sns.TopicSubscription(
                "alarms-email", topic=self.topic.arn, protocol="email",
                endpoint=args.alarm_email, opts=child)

        self.alarms: dict[str, aws.cloudwatch.MetricAlarm] = {}
        for kind, dead_letter in sorted(args.dead_letter_queues.items()):
            self._dead_letter_alarm(kind, dead_letter)
        authorizer_key = self._authorizer_key()
        for key in args.functions:
            self._function_alarms(key, errors=key != authorizer_key)
        if authorizer_key is not None:
            self._authorizer_alarm(authorizer_key)
        if args.api is not None:
            self._api_5xx_alarm(args.api)
        self._failure_rate_alarm()

        self.dashboard = aws.cloudwatch.Dashboard(
            "dashboard", dashboard_name=self._name(), dashboard_body=self._dashboard_body(),
            opts=child)

    # ------------------------------------------------------------------ helpers

    def _name(self, what: str = "") -> str:
        base = f"{APP}-{self._args.names.stage}"
        return f"{base}-{what}" if what else base

    def _authorizer_key(self) -> str | None:
        authorizer = self._args.authorizer
        if authorizer is None:
            return None
        for key, built in self._args.functions.items():
            if built is authorizer:
                return key
        raise ValueError("observability: the authorizer must be one of the watched functions")

    def _alarm(self, key: str, **kwargs: Any) -> aws.cloudwatch.MetricAlarm:
        actions = [self.topic.arn]
        alarm = aws.cloudwatch.MetricAlarm(
            f"alarm-{key}", alarm_actions=actions, ok_actions=actions,
            treat_missing_data=MISSING_DATA, opts=pulumi.ResourceOptions(parent=self._parent),
            **kwargs)
        self.alarms[key] = alarm
        return alarm

    # ------------------------------------------------------------------ alarms

    def _dead_letter_alarm(self, kind: str, dead_letter: aws.sqs.Queue) -> None:
        physical = self._args.names.dead_letter_queue(kind)
        self._alarm(
            f"{kind}-dlq-not-empty", name=f"{physical}-not-empty",
            alarm_description=(f"The {kind} queue's dead-letter queue holds a message that failed "
                               "every delivery: read it, fix the cause, then redrive it "
                               "(docs/runbook.md: a dead-letter queue is not empty)."),
            namespace=SQS, metric_name="ApproximateNumberOfMessagesVisible",
            dimensions={"QueueName": dead_letter.name}, statistic="Maximum", period=PERIOD,
            evaluation_periods=1, threshold=0, comparison_operator="GreaterThanThreshold")

    def _function_alarms(self, key: str, *, errors: bool) -> None:
        service, function = key.split("/", 1)
        physical = self._args.names.function(service, function)
        label = f"{service}-{function}"
        dimensions = {"FunctionName": physical}
        if errors:
            self._alarm(
                f"{label}-errors", name=f"{physical}-errors",
                alarm_description=f"{physical} failed (an unhandled error or a timeout).",
                namespace=LAMBDA, metric_name="Errors", dimensions=dimensions, statistic="Sum",
                period=PERIOD, evaluation_periods=1, threshold=0,
                comparison_operator="GreaterThanThreshold")
        self._alarm(
            f"{label}-throttles", name=f"{physical}-throttles",
            alarm_description=(f"{physical} was throttled: the account's concurrency (or the "
                               "function's reserved concurrency) ran out."),
            namespace=LAMBDA, metric_name="Throttles", dimensions=dimensions, statistic="Sum",
            period=PERIOD, evaluation_periods=1, threshold=0,
            comparison_operator="GreaterThanThreshold")

    def _authorizer_alarm(self, key: str) -> None:
        service, function = key.split("/", 1)
        physical = self._args.names.function(service, function)
        self._alarm(
            "authorizer-errors", name=f"{physical}-errors",
            alarm_description=(f"The authorizer {physical} failed: API Gateway answers 500 to "
                               "authenticated requests while it does."),
            namespace=LAMBDA, metric_name="Errors",
            dimensions={"FunctionName": physical}, statistic="Sum",
            period=AUTHORIZER_PERIOD, evaluation_periods=1, threshold=0,
            comparison_operator="GreaterThanThreshold")

    def _api_5xx_alarm(self, api: ApiStage) -> None:
        dimensions = {"ApiId": api.api_id, "Stage": api.stage}
        evaluation_periods, datapoints = API_5XX_PERIODS

        def metric(query_id: str, name: str) -> dict:
            return {"id": query_id, "return_data": False,
                    "metric": {"namespace": API_GATEWAY, "metric_name": name,
                               "dimensions": dimensions, "stat": "Sum", "period": PERIOD}}

        self._alarm(
            "api-5xx-rate", name=self._name("api-5xx-rate"),
            alarm_description=(f"More than {API_5XX_PERCENT:g}% of the HTTP API's requests "
                               f"answered 5xx (at least {API_5XX_MIN_REQUESTS} requests per "
                               f"{PERIOD // 60} minutes, {datapoints} periods out of "
                               f"{evaluation_periods})."),
            metric_queries=[
                metric("requests", "Count"),
                metric("errors", "5xx"),
                {"id": "rate", "return_data": True, "label": "5xx %",
                 "expression": (f"IF(requests >= {API_5XX_MIN_REQUESTS}, "
                                "100 * FILL(errors, 0) / requests, 0)")},
            ],
            evaluation_periods=evaluation_periods, datapoints_to_alarm=datapoints,
            threshold=API_5XX_PERCENT, comparison_operator="GreaterThanThreshold")

    def _failure_rate_alarm(self) -> None:
        stage = {DIMENSION: self._args.names.stage}

        def runs(query_id: str, status: str) -> dict:
            return {"id": query_id, "return_data": False,
                    "metric": {"namespace": NAMESPACE, "metric_name": RUN_STATUS_METRICS[status],
                               "dimensions": stage, "stat": "Sum",
                               "period": FAILURE_RATE_PERIOD}}

        self._alarm(
            "backup-failure-rate", name=self._name("backup-failure-rate"),
            alarm_description=(f"More than {FAILURE_RATE_PERCENT:g}% of the backups that "
                               "finished in the last hour failed (failed / completed + partial "
                               "+ failed)."),
            metric_queries=[
                runs("completed", "completed"),
                runs("partial", "partial"),
                runs("failed", "failed"),
                {"id": "rate", "return_data": True, "label": "failed %",
                 "expression": ("IF(FILL(completed, 0) + FILL(partial, 0) + FILL(failed, 0) > 0, "
                                "100 * FILL(failed, 0) / (FILL(completed, 0) + FILL(partial, 0) "
                                "+ FILL(failed, 0)), 0)")},
            ],
            evaluation_periods=1, threshold=FAILURE_RATE_PERCENT,
            comparison_operator="GreaterThanThreshold")

    # ------------------------------------------------------------------ dashboard

    def _dashboard_body(self) -> pulumi.Output[str]:
        args = self._args
        functions = [args.names.function(*key.split("/", 1)) for key in args.functions]
        # one flat Output.all of what is not known yet (each input costs it an apply)
        queues = [queue.name for _, queue in sorted(args.queues.items())]
        dead_letters = [queue.name for _, queue in sorted(args.dead_letter_queues.items())]
        api = [args.api.api_id, args.api.stage] if args.api is not None else []
        alarms = [alarm.arn for alarm in self.alarms.values()]

        def render(values: list) -> str:
            resolved = iter(values)
            taken = [[next(resolved) for _ in part] for part in (queues, dead_letters, api, alarms)]
            return json.dumps(dashboard(
                region=args.region, stage=args.names.stage, functions=functions,
                queues=taken[0], dead_letters=taken[1],
                api={"apiId": taken[2][0], "stage": taken[2][1]} if taken[2] else None,
                alarms=taken[3]), sort_keys=True)

        return pulumi.Output.all(*queues, *dead_letters, *api, *alarms).apply(render)


def dashboard(*, region: str, stage: str, functions: list[str], queues: list[str],
              dead_letters: list[str], api: dict | None, alarms: list[str]) -> dict:
    """The dashboard body (CloudWatch's dashboard body structure), from resolved names."""
    widgets: list[dict] = []
    y = 0

    def row(height: int, *items: tuple[int, dict]) -> None:
        nonlocal y
        x = 0
        for width, widget in items:
            if widget["properties"].get("metrics") == []:
                continue    # nothing of that kind on this stage
            widgets.append({**widget, "x": x, "y": y, "width": width, "height": height})
            x += width
        y += height

    def graph(title: str, metrics: list, *, stat: str = "Sum", period: int = PERIOD,
              **more: Any) -> dict:
        return {"type": "metric", "properties": {
            "title": title, "region": region, "view": "timeSeries", "stacked": False,
            "stat": stat, "period": period, "metrics": metrics, **more}}

    if alarms:
        row(4, (24, {"type": "alarm", "properties": {
            "title": f"Alarms ({stage})", "alarms": sorted(alarms),
            "sortBy": "stateUpdatedTimestamp"}}))

    if api is not None:
        dims = ["ApiId", api["apiId"], "Stage", api["stage"]]
        row(6,
            (8, graph("API requests and errors", [
                [API_GATEWAY, "Count", *dims, {"label": "requests", "id": "requests"}],
                [API_GATEWAY, "4xx", *dims, {"label": "4xx", "id": "client"}],
                [API_GATEWAY, "5xx", *dims, {"label": "5xx", "id": "errors"}],
            ])),
            (8, graph("API 5xx rate (%)", [
                [API_GATEWAY, "Count", *dims, {"id": "requests", "visible": False}],
                [API_GATEWAY, "5xx", *dims, {"id": "errors", "visible": False}],
                [{"expression": "100 * FILL(errors, 0) / requests", "label": "5xx %",
                  "id": "rate"}],
            ], annotations={"horizontal": [{"label": "alarm", "value": API_5XX_PERCENT}]})),
            (8, graph("API latency (ms)", [
                [API_GATEWAY, "Latency", *dims, {"stat": "p50", "label": "p50"}],
                [API_GATEWAY, "Latency", *dims, {"stat": "p99", "label": "p99"}],
                [API_GATEWAY, "IntegrationLatency", *dims, {"stat": "p99",
                                                            "label": "integration p99"}],
            ], stat="p99")))

    if functions:
        def per_function(metric: str, **options: Any) -> list:
            return [[LAMBDA, metric, "FunctionName", name, {"label": name, **options}]
                    for name in functions]

        row(6,
            (8, graph("Function errors", per_function("Errors"))),
            (8, graph("Function duration p99 (ms)", per_function("Duration"), stat="p99")),
            (8, graph("Function throttles", per_function("Throttles"))))

    if queues or dead_letters:
        row(6,
            (8, graph("Queue depth (visible messages)", [
                [SQS, "ApproximateNumberOfMessagesVisible", "QueueName", name, {"label": name}]
                for name in queues], stat="Maximum")),
            (8, graph("Oldest queued message (s)", [
                [SQS, "ApproximateAgeOfOldestMessage", "QueueName", name, {"label": name}]
                for name in queues], stat="Maximum")),
            (8, graph("Dead-letter queues (visible messages)", [
                [SQS, "ApproximateNumberOfMessagesVisible", "QueueName", name, {"label": name}]
                for name in dead_letters], stat="Maximum")))

    stage_dims = [DIMENSION, stage]
    row(6,
        (12, graph("Backup runs by status (per hour)", [
            [NAMESPACE, metric, *stage_dims, {"label": status}]
            for status, metric in RUN_STATUS_METRICS.items()], period=FAILURE_RATE_PERIOD)),
        (12, graph("Records and bytes backed up (per hour)", [
            [NAMESPACE, RECORDS, *stage_dims, {"label": "records"}],
            [NAMESPACE, BYTES, *stage_dims, {"label": "bytes", "yAxis": "right"}],
        ], period=FAILURE_RATE_PERIOD)))

    return {"start": "-PT6H", "periodOverride": "inherit", "widgets": widgets}
