"""``listbackup-system-{stage}-api`` as a caller sees it: GET /system/health.

Driven with the API Gateway HTTP API (payload 2.0) event the route would deliver.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from handlers.system import api
from tests.support import logging_to_stdout

REQUEST_ID = "apigw-health-req-1"
LAMBDA_REQUEST_ID = "lambda-health-req-1"


class Context:
    """The parts of a Lambda context Powertools' ``inject_lambda_context`` reads."""

    function_name = "listbackup-system-dev-api"
    memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:listbackup-system-dev-api"
    aws_request_id = LAMBDA_REQUEST_ID


def health_event(*, who: dict | None = None, request_id: str = REQUEST_ID) -> dict:
    """GET /system/health as API Gateway delivers it; no Authorization header by default."""
    context = {
        "accountId": "123456789012", "apiId": "api123", "domainName": "api.example.test",
        "http": {"method": "GET", "path": "/system/health", "protocol": "HTTP/1.1",
                 "sourceIp": "203.0.113.9", "userAgent": "curl/8"},
        "requestId": request_id, "routeKey": "GET /system/health", "stage": "$default",
        "time": "01/Jan/2025:00:00:00 +0000", "timeEpoch": 1735689600000,
    }
    headers = {"host": "api.example.test", "accept": "*/*"}
    if who is not None:
        context["authorizer"] = {"lambda": who}
        headers["authorization"] = "Bearer test-token"
    return {
        "version": "2.0", "routeKey": "GET /system/health", "rawPath": "/system/health",
        "rawQueryString": "", "headers": headers, "isBase64Encoded": False,
        "requestContext": context,
    }



@pytest.fixture(autouse=True)
def env(monkeypatch):
    monkeypatch.setenv("STAGE", "dev")
    monkeypatch.setenv("API_VERSION", "v2")


@pytest.fixture
def logs():
    with logging_to_stdout(api.logger, "INFO"):
        yield


def get_health(event: dict | None = None) -> tuple[int, dict]:
    result = api.handler(event or health_event(), Context())
    assert result["headers"]["content-type"] == "application/json"
    return result["statusCode"], json.loads(result["body"])


def test_health_without_a_credential_is_200_ok():
    status, body = get_health()
    assert status == 200
    assert body["success"] is True
    data = body["data"]
    assert set(data) == {"status", "stage", "version", "time"}
    assert data["status"] == "ok"
    assert data["stage"] == "dev"
    assert data["version"] == "v2"


def test_health_reports_the_stage_it_runs_in(monkeypatch):
    monkeypatch.setenv("STAGE", "main")
    assert get_health()[1]["data"]["stage"] == "main"


def test_health_version_defaults_to_v2(monkeypatch):
    monkeypatch.delenv("API_VERSION")
    assert get_health()[1]["data"]["version"] == "v2"


def test_health_time_is_iso8601_utc_and_now():
    before = datetime.now(timezone.utc)
    _, body = get_health()
    after = datetime.now(timezone.utc)
    text = body["data"]["time"]
    assert text.endswith("Z")
    when = datetime.fromisoformat(text)
    assert when.utcoffset() == timedelta(0)
    # the clock is reported to the second
    assert before - timedelta(seconds=2) <= when <= after + timedelta(seconds=2)


def test_health_with_a_credential_is_also_200():
    status, body = get_health(health_event(who={"userId": "u1", "accountId": "a1", "role": "viewer"}))
    assert status == 200 and body["data"]["status"] == "ok"


def test_health_logs_a_json_line_with_the_request_id(logs, capsys):
    get_health()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    mine = [line for line in lines if line.get("request_id") == REQUEST_ID]
    assert mine, lines
    line = mine[0]
    assert line["service"] == "system"
    assert line["route"] == "GET /system/health"
    assert line["status"] == 200
    assert line["function_request_id"] == LAMBDA_REQUEST_ID
    assert line["function_name"] == "listbackup-system-dev-api"


def test_request_id_does_not_carry_over_to_the_next_request(logs, capsys):
    get_health(health_event(request_id="first"))
    get_health(health_event(request_id="second"))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert [line["request_id"] for line in lines] == ["first", "second"]
