"""Fixture: triggers and failures for offline mode's tests, with plain pulumi_aws resources.

- a queue consumer that always fails (1 s timeout, 2 s visibility, 2 receives, then the DLQ)
- an HTTP route whose function sleeps past its 1 s timeout, and one that answers
- a rate schedule whose function records each firing in a bucket
"""

import json
from pathlib import Path

import pulumi
import pulumi_aws as aws

CODE = pulumi.FileArchive(str(Path(__file__).resolve().parent / "code"))
config = pulumi.Config()
assume = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
role = aws.iam.Role("role", assume_role_policy=assume)


def function(name, handler, timeout, env=None):
    return aws.lambda_.Function(name, name=f"fixture-{name}", role=role.arn, runtime="python3.12",
                                handler=handler, code=CODE, timeout=timeout,
                                environment={"variables": env or {}})


dlq = aws.sqs.Queue("failing-dlq", name="fixture-failing-dlq")
queue = aws.sqs.Queue("failing", name="fixture-failing", visibility_timeout_seconds=2,
                      redrive_policy=dlq.arn.apply(lambda arn: json.dumps(
                          {"deadLetterTargetArn": arn, "maxReceiveCount": 2})))
consumer = function("consumer", "fixture.always_fails", 1)
aws.lambda_.EventSourceMapping("consumer-events", event_source_arn=queue.arn,
                               function_name=consumer.arn, batch_size=1)

api = aws.apigatewayv2.Api("api", name="fixture-api", protocol_type="HTTP")
for name, handler in (("slow", "fixture.sleeps"), ("fast", "fixture.answers")):
    fn = function(name, handler, 1)
    integration = aws.apigatewayv2.Integration(
        f"{name}-integration", api_id=api.id, integration_type="AWS_PROXY",
        integration_uri=fn.invoke_arn, payload_format_version="2.0")
    aws.apigatewayv2.Route(f"{name}-route", api_id=api.id, route_key=f"GET /{name}",
                           target=integration.id.apply(lambda i: f"integrations/{i}"))

bucket = aws.s3.Bucket("firings", bucket="fixture-firings")
ticker = function("ticker", "fixture.records_firing", 5, {"BUCKET": "fixture-firings"})
rule = aws.cloudwatch.EventRule("tick", name="fixture-tick",
                                schedule_expression=config.get("scheduleExpression") or "rate(1 minute)")
aws.cloudwatch.EventTarget("tick-target", rule=rule.name, arn=ticker.arn)

pulumi.export("queue", queue.url)
