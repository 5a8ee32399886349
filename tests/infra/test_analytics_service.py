"""The analytics service: one API function that may only read the counters."""

from __future__ import annotations

from tests.infra.test_functions import role_policy_of

FUNCTION = "aws:lambda/function:Function"


def test_the_analytics_api_reads_counters_and_nothing_else(program, stack):
    api = program.one(FUNCTION, name=f"listbackup-analytics-{stack}-api")
    actions = {(action, resource) for st in role_policy_of(program, api)["Statement"]
               for action in st["Action"] for resource in st["Resource"]
               if action.startswith("dynamodb:")}
    table = f"arn:aws:dynamodb:us-east-1:123456789012:table/listbackup-{stack}-"
    assert actions == {("dynamodb:GetItem", f"{table}accounts"),
                       ("dynamodb:GetItem", f"{table}analytics"),
                       ("dynamodb:Query", f"{table}analytics")}
    routes = {r.inputs["routeKey"] for r in program.of_type("aws:apigatewayv2/route:Route")}
    assert {"GET /analytics/overview", "GET /analytics/timeseries"} <= routes


def test_every_function_that_ends_runs_may_count_them(program, stack):
    table = f"arn:aws:dynamodb:us-east-1:123456789012:table/listbackup-{stack}-analytics"
    for name in ("jobs-{s}-api", "jobs-{s}-worker", "jobs-{s}-scheduler", "sources-{s}-api"):
        function = program.one(FUNCTION, name="listbackup-" + name.format(s=stack))
        assert any("dynamodb:UpdateItem" in st["Action"] and table in st["Resource"]
                   for st in role_policy_of(program, function)["Statement"]), name
