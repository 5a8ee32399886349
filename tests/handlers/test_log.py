"""The structured logger every function uses (handlers/shared/log.py): one JSON object per
line, Powertools' field names, the invocation's context, no state carried between
invocations."""

from __future__ import annotations

import json

import pytest

from handlers.shared.log import Logger, get_logger
from tests.support import LambdaContext, logging_to_stdout


@pytest.fixture
def logger():
    with logging_to_stdout(Logger("log-test"), "INFO") as log:
        yield log


def lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_a_line_carries_level_location_message_time_service_and_extra(logger, capsys):
    logger.info("file indexed", extra={"fileId": "fil_1", "bytes": 12})
    [line] = lines(capsys.readouterr().out)
    assert line["level"] == "INFO" and line["message"] == "file indexed"
    assert line["service"] == "log-test"
    assert line["location"].startswith("test_a_line_carries_level_location_message_time_service_and_extra:")
    assert line["timestamp"].endswith("Z") and line["timestamp"][10] == "T"
    assert (line["fileId"], line["bytes"]) == ("fil_1", 12)


def test_levels_below_the_logger_level_are_dropped(logger, capsys):
    logger.setLevel("WARNING")
    logger.info("quiet")
    logger.debug("quieter")
    logger.warning("loud")
    assert [line["message"] for line in lines(capsys.readouterr().out)] == ["loud"]


def test_an_exception_is_logged_with_its_type_and_traceback(logger, capsys):
    try:
        raise KeyError("missing")
    except KeyError:
        logger.exception("lookup failed")
    [line] = lines(capsys.readouterr().out)
    assert line["level"] == "ERROR" and line["exception_name"] == "KeyError"
    assert "Traceback" in line["exception"]


def test_the_lambda_context_is_on_every_line_and_cold_start_only_on_the_first(logger, capsys, monkeypatch):
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-abc-def;Parent=1;Sampled=0")

    @logger.inject_lambda_context(clear_state=True)
    def handler(event, context):
        logger.append_keys(request_id=event["id"])
        logger.info("handled")
        return event["id"]

    assert handler({"id": "a"}, LambdaContext()) == "a"
    handler({"id": "b"}, LambdaContext())
    first, second = lines(capsys.readouterr().out)
    assert first["cold_start"] is True and second["cold_start"] is False
    assert first["function_name"] == LambdaContext().function_name
    assert first["function_request_id"] == LambdaContext().aws_request_id
    assert first["xray_trace_id"] == "1-abc-def"
    assert (first["request_id"], second["request_id"]) == ("a", "b")


def test_keys_are_removed_and_cleared_between_invocations(logger, capsys):
    logger.append_keys(route="GET /x")
    logger.remove_keys(["route"])
    logger.info("after remove")
    logger.append_keys(stale="yes")
    logger.inject_lambda_context(clear_state=True)(lambda e, c: logger.info("next"))({}, LambdaContext())
    after, nxt = lines(capsys.readouterr().out)
    assert "route" not in after and "stale" not in nxt


def test_every_module_of_a_service_logs_with_the_context_its_entry_point_injected(capsys):
    entry = get_logger("log-test-service")
    with logging_to_stdout(entry, "INFO"):

        @entry.inject_lambda_context(clear_state=True)
        def handler(event, context):
            helper = get_logger("log-test-service")     # a module of the service, loaded late
            helper.info("from the helper module")

        handler({}, LambdaContext())
        [line] = lines(capsys.readouterr().out)
    assert get_logger("log-test-service") is entry
    assert line["message"] == "from the helper module"
    assert line["function_request_id"] == LambdaContext().aws_request_id
