"""Queue and schedule triggers against a real moto server, with fake functions."""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

import boto3
import pytest
from moto.server import ThreadedMotoServer

from offline.model import Queue, QueueMapping, Schedule
from offline.triggers import QueuePoller, Scheduler, batch_failures, next_fire

REGION = "us-east-1"


# --------------------------------------------------------------------------- helpers


@dataclass
class Invocation:
    ok: bool
    result: Any = None
    error: str | None = None
    message: str = ""
    duration_ms: float = 1.0
    cold_start: bool = False


class FakeFunction:
    """An ``invoke`` that records every event and answers with ``behaviour(event, call_no)``."""

    def __init__(self, behaviour: Callable[[dict, int], Invocation] | None = None):
        self.behaviour = behaviour or (lambda event, n: Invocation(ok=True))
        self.calls: list[tuple[str, dict]] = []
        self.lock = threading.Lock()

    def __call__(self, function: str, event: dict) -> Invocation:
        with self.lock:
            self.calls.append((function, event))
            n = len(self.calls)
        return self.behaviour(event, n)

    @property
    def records(self) -> list[dict]:
        with self.lock:
            return [r for _, event in self.calls for r in event["Records"]]

    def bodies(self) -> list[str]:
        return [r["body"] for r in self.records]


class Lines:
    def __init__(self):
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    return condition()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sqs():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    client = boto3.client("sqs", region_name=REGION, endpoint_url=f"http://127.0.0.1:{port}",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    yield client
    server.stop()


@dataclass
class QueuePair:
    queue: Queue
    url: str
    dlq_url: str


@pytest.fixture
def queues(sqs) -> QueuePair:
    """A source queue (visibility 1 s) whose messages go to a DLQ after 2 receives."""
    name = f"q-{uuid.uuid4().hex[:8]}"
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName=name, Attributes={
        "VisibilityTimeout": "1",
        "RedrivePolicy": f'{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"2"}}',
    })["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return QueuePair(Queue(name=name, arn=arn, url=url, visibility_timeout=1,
                           dead_letter=f"{name}-dlq", max_receives=2), url, dlq_url)


def queue_depth(sqs, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
    return sum(int(v) for v in attributes["Attributes"].values())


@pytest.fixture
def pollers():
    started: list[QueuePoller] = []
    yield started
    for poller in started:
        poller.request_stop()
    for poller in started:
        poller.stop()


def poll(pollers, sqs, pair: QueuePair, fn, log=None, **mapping) -> QueuePoller:
    poller = QueuePoller(QueueMapping(queue=pair.queue.name, function="consumer", **mapping),
                         pair.queue, pair.url, sqs, fn, log=log or Lines(), region=REGION)
    pollers.append(poller)
    poller.start()
    return poller


# --------------------------------------------------------------------------- QueuePoller


def test_successful_batch_is_deleted_and_event_has_lambda_shape(sqs, queues, pollers):
    sqs.send_message(QueueUrl=queues.url, MessageBody="secret-body-1", MessageAttributes={
        "kind": {"DataType": "String", "StringValue": "object-created"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
    })
    sqs.send_message(QueueUrl=queues.url, MessageBody="secret-body-2")
    fn, log = FakeFunction(), Lines()
    poll(pollers, sqs, queues, fn, log)

    assert wait_for(lambda: len(fn.records) == 2)
    assert wait_for(lambda: queue_depth(sqs, queues.url) == 0)
    function, event = fn.calls[0]
    assert function == "consumer"
    records = {r["body"]: r for r in fn.records}
    first = records["secret-body-1"]
    assert list(first) == ["messageId", "receiptHandle", "body", "attributes", "messageAttributes",
                           "md5OfBody", "md5OfMessageAttributes", "eventSource", "eventSourceARN", "awsRegion"]
    assert first["eventSource"] == "aws:sqs"
    assert first["eventSourceARN"] == queues.queue.arn
    assert first["awsRegion"] == REGION
    assert first["md5OfBody"] == hashlib.md5(b"secret-body-1").hexdigest()
    assert first["attributes"]["ApproximateReceiveCount"] == "1"
    assert set(first["attributes"]) >= {"ApproximateReceiveCount", "SentTimestamp", "SenderId",
                                        "ApproximateFirstReceiveTimestamp"}
    assert all(isinstance(v, str) for v in first["attributes"].values())
    assert first["messageAttributes"]["kind"] == {
        "stringValue": "object-created", "stringListValues": [], "binaryListValues": [], "dataType": "String"}
    assert first["messageAttributes"]["blob"]["binaryValue"] == base64.b64encode(b"\x00\x01").decode()
    assert first["messageAttributes"]["blob"]["dataType"] == "Binary"
    assert records["secret-body-2"]["messageAttributes"] == {}
    assert "md5OfMessageAttributes" not in records["secret-body-2"]
    # one line per batch, naming the function and the outcome, never a body
    assert wait_for(lambda: log.lines)
    assert any("consumer" in line and "ok" in line for line in log.lines)
    assert not any("secret-body" in line for line in log.lines)


def test_partial_batch_failure_keeps_only_the_failed_message(sqs, queues, pollers):
    for body in ("a", "b", "c"):
        sqs.send_message(QueueUrl=queues.url, MessageBody=body)

    def behaviour(event, n):
        failed = [{"itemIdentifier": r["messageId"]} for r in event["Records"]
                  if r["body"] == "b" and r["attributes"]["ApproximateReceiveCount"] == "1"]
        return Invocation(ok=True, result={"batchItemFailures": failed})

    fn = FakeFunction(behaviour)
    poll(pollers, sqs, queues, fn, report_failures=True)

    assert wait_for(lambda: sorted(fn.bodies()) == ["a", "b", "b", "c"])
    assert wait_for(lambda: queue_depth(sqs, queues.url) == 0)
    retried = [r for r in fn.records if r["attributes"]["ApproximateReceiveCount"] == "2"]
    assert [r["body"] for r in retried] == ["b"]
    time.sleep(1.3)   # nothing else comes back after another visibility timeout
    assert sorted(fn.bodies()) == ["a", "b", "b", "c"]


@pytest.mark.parametrize("error", ["Runtime.HandlerError", "timeout"])
def test_failing_function_sends_message_to_the_dead_letter_queue(sqs, queues, pollers, error):
    sqs.send_message(QueueUrl=queues.url, MessageBody="poison")
    fn, log = FakeFunction(lambda e, n: Invocation(ok=False, error=error, message="boom")), Lines()
    poll(pollers, sqs, queues, fn, log, report_failures=True)

    def in_dlq():
        got = sqs.receive_message(QueueUrl=queues.dlq_url, WaitTimeSeconds=0).get("Messages", [])
        return got
    landed = wait_for(in_dlq, timeout=10.0, interval=0.25)
    assert landed and landed[0]["Body"] == "poison"
    assert queue_depth(sqs, queues.url) == 0
    assert fn.bodies() == ["poison", "poison"]          # maxReceiveCount receives, then the DLQ
    assert any(error in line and "none deleted" in line for line in log.lines)


@pytest.mark.parametrize("response", [
    {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]},
    {"batchItemFailures": [{"itemIdentifier": ""}]},
    {"batchItemFailures": [{"itemIdentifier": None}]},
    {"batchItemFailures": [{"id": "wrong-key"}]},
    {"batchItemFailures": "everything"},
], ids=["unknown-id", "empty-id", "null-id", "bad-key", "not-a-list"])
def test_malformed_batch_item_failures_retry_the_whole_batch(sqs, queues, pollers, response):
    for body in ("x", "y"):
        sqs.send_message(QueueUrl=queues.url, MessageBody=body)

    def behaviour(event, n):
        first = event["Records"][0]["attributes"]["ApproximateReceiveCount"] == "1"
        return Invocation(ok=True, result=response if first else {"batchItemFailures": []})

    fn, log = FakeFunction(behaviour), Lines()
    poll(pollers, sqs, queues, fn, log, report_failures=True)

    assert wait_for(lambda: sorted(fn.bodies()) == ["x", "x", "y", "y"])
    assert wait_for(lambda: queue_depth(sqs, queues.url) == 0)
    assert any("whole batch failed" in line for line in log.lines)


def test_batch_item_failures_rules():
    ids = ["m1", "m2"]
    assert batch_failures(None, ids) == (set(), None)
    assert batch_failures({}, ids) == (set(), None)
    assert batch_failures({"batchItemFailures": None}, ids) == (set(), None)
    assert batch_failures({"batchItemFailures": []}, ids) == (set(), None)
    assert batch_failures("done", ids) == (set(), None)
    assert batch_failures({"batchItemFailures": [{"itemIdentifier": "m2"}]}, ids) == ({"m2"}, None)
    failed, problem = batch_failures({"batchItemFailures": [{"itemIdentifier": "m9"}]}, ids)
    assert failed == {"m1", "m2"} and problem


def test_failures_are_ignored_without_report_batch_item_failures(sqs, queues, pollers):
    sqs.send_message(QueueUrl=queues.url, MessageBody="only")
    fn = FakeFunction(lambda e, n: Invocation(
        ok=True, result={"batchItemFailures": [{"itemIdentifier": e["Records"][0]["messageId"]}]}))
    poll(pollers, sqs, queues, fn, report_failures=False)
    assert wait_for(lambda: fn.bodies() == ["only"])
    assert wait_for(lambda: queue_depth(sqs, queues.url) == 0)
    time.sleep(1.3)
    assert fn.bodies() == ["only"]


def plain_queue(sqs, visibility: int = 30) -> QueuePair:
    name = f"q-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": str(visibility)})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return QueuePair(Queue(name=name, arn=arn, url=url, visibility_timeout=visibility), url, "")


def test_batching_window_waits_for_more_messages(sqs, pollers):
    queues = plain_queue(sqs)
    sqs.send_message(QueueUrl=queues.url, MessageBody="early")
    fn = FakeFunction()
    poll(pollers, sqs, queues, fn, batch_size=5, batching_window=2)
    time.sleep(0.5)
    sqs.send_message(QueueUrl=queues.url, MessageBody="late")
    assert wait_for(lambda: len(fn.records) == 2, timeout=5)
    assert len(fn.calls) == 1 and sorted(fn.bodies()) == ["early", "late"]


def test_large_batch_is_gathered_within_the_batching_window(sqs, pollers):
    queues = plain_queue(sqs)
    sqs.send_message_batch(QueueUrl=queues.url, Entries=[
        {"Id": str(i), "MessageBody": f"m{i}"} for i in range(10)])
    sqs.send_message_batch(QueueUrl=queues.url, Entries=[
        {"Id": str(i), "MessageBody": f"m{i}"} for i in range(10, 15)])
    fn = FakeFunction()
    poll(pollers, sqs, queues, fn, batch_size=15, batching_window=1)
    assert wait_for(lambda: len(fn.records) == 15)
    assert len(fn.calls) == 1
    assert sorted(fn.bodies()) == sorted(f"m{i}" for i in range(15))
    assert wait_for(lambda: queue_depth(sqs, queues.url) == 0)


def test_batch_size_limits_each_invocation(sqs, queues, pollers):
    sqs.send_message_batch(QueueUrl=queues.url, Entries=[
        {"Id": str(i), "MessageBody": f"m{i}"} for i in range(5)])
    fn = FakeFunction()
    poll(pollers, sqs, queues, fn, batch_size=2)
    assert wait_for(lambda: len(fn.records) == 5)
    assert all(len(event["Records"]) <= 2 for _, event in fn.calls)


def test_max_concurrency_runs_batches_in_parallel(sqs, queues, pollers):
    sqs.send_message_batch(QueueUrl=queues.url, Entries=[
        {"Id": str(i), "MessageBody": f"m{i}"} for i in range(2)])
    running, peak, lock = [0], [0], threading.Lock()

    def behaviour(event, n):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.6)
        with lock:
            running[0] -= 1
        return Invocation(ok=True)

    fn = FakeFunction(behaviour)
    poll(pollers, sqs, queues, fn, batch_size=1, max_concurrency=2)
    assert wait_for(lambda: len(fn.records) == 2)
    assert peak[0] == 2


def test_poller_survives_sqs_errors(sqs, queues, pollers):
    sqs.send_message(QueueUrl=queues.url, MessageBody="after-error")

    class Flaky:
        failures = 1

        def __getattr__(self, name):
            return getattr(sqs, name)

        def receive_message(self, **kwargs):
            if Flaky.failures:
                Flaky.failures -= 1
                raise ConnectionError("sqs is down")
            return sqs.receive_message(**kwargs)

    fn, log = FakeFunction(), Lines()
    poller = QueuePoller(QueueMapping(queue=queues.queue.name, function="consumer"), queues.queue,
                         queues.url, Flaky(), fn, log=log)
    pollers.append(poller)
    poller.start()
    assert wait_for(lambda: fn.bodies() == ["after-error"], timeout=5)
    assert any("receive failed" in line and "sqs is down" in line for line in log.lines)
    assert wait_for(lambda: queue_depth(sqs, queues.url) == 0)


def test_stop_returns_promptly(sqs, queues):
    poller = QueuePoller(QueueMapping(queue=queues.queue.name, function="consumer"), queues.queue,
                         queues.url, sqs, FakeFunction(), log=Lines())
    poller.start()
    time.sleep(0.3)
    assert poller.running
    started = time.monotonic()
    poller.stop()
    assert time.monotonic() - started < 2.5
    assert not poller.running


def test_disabled_mapping_does_not_poll(sqs, queues):
    sqs.send_message(QueueUrl=queues.url, MessageBody="stays")
    fn, log = FakeFunction(), Lines()
    poller = QueuePoller(QueueMapping(queue=queues.queue.name, function="consumer", enabled=False),
                         queues.queue, queues.url, sqs, fn, log=log)
    poller.start()
    time.sleep(0.5)
    poller.stop()
    assert fn.calls == [] and any("disabled" in line for line in log.lines)
    assert queue_depth(sqs, queues.url) == 1


# --------------------------------------------------------------------------- next_fire


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


# 2024-02-10 is a Saturday; 2024 is a leap year.
AFTER = utc(2024, 2, 10, 12, 30, 15)


@pytest.mark.parametrize("expression, after, expected", [
    # rates: one period after `after`
    ("rate(1 minute)", AFTER, utc(2024, 2, 10, 12, 31, 15)),
    ("rate(5 minutes)", AFTER, utc(2024, 2, 10, 12, 35, 15)),
    ("rate(1 hour)", AFTER, utc(2024, 2, 10, 13, 30, 15)),
    ("rate(2 hours)", AFTER, utc(2024, 2, 10, 14, 30, 15)),
    ("rate(1 day)", AFTER, utc(2024, 2, 11, 12, 30, 15)),
    ("rate(7 days)", AFTER, utc(2024, 2, 17, 12, 30, 15)),
    (" rate(10 minutes) ", AFTER, utc(2024, 2, 10, 12, 40, 15)),
    # every minute, strictly after
    ("cron(* * * * ? *)", AFTER, utc(2024, 2, 10, 12, 31)),
    ("cron(* * * * ? *)", utc(2024, 2, 10, 12, 31), utc(2024, 2, 10, 12, 32)),
    ("cron(* * ? * * *)", AFTER, utc(2024, 2, 10, 12, 31)),
    # fixed times, rolling over day, month, year
    ("cron(0 12 * * ? *)", AFTER, utc(2024, 2, 11, 12, 0)),
    ("cron(45 12 * * ? *)", AFTER, utc(2024, 2, 10, 12, 45)),
    ("cron(0 0 1 * ? *)", AFTER, utc(2024, 3, 1)),
    ("cron(30 6 31 12 ? *)", AFTER, utc(2024, 12, 31, 6, 30)),
    # steps and ranges
    ("cron(0/15 * * * ? *)", AFTER, utc(2024, 2, 10, 12, 45)),
    ("cron(*/20 * * * ? *)", AFTER, utc(2024, 2, 10, 12, 40)),
    ("cron(5/20 * * * ? *)", AFTER, utc(2024, 2, 10, 12, 45)),
    ("cron(10-12 13 * * ? *)", AFTER, utc(2024, 2, 10, 13, 10)),
    ("cron(0 8-17/3 * * ? *)", AFTER, utc(2024, 2, 10, 14, 0)),
    ("cron(0 22-2 * * ? *)", AFTER, utc(2024, 2, 10, 22, 0)),
    ("cron(0 1,13 * * ? *)", AFTER, utc(2024, 2, 10, 13, 0)),
    ("cron(0,30 * * * ? *)", AFTER, utc(2024, 2, 10, 13, 0)),
    # days of month: 31 skips short months, 29 Feb in a leap year
    ("cron(0 0 31 * ? *)", AFTER, utc(2024, 3, 31)),
    ("cron(0 0 29 2 ? *)", utc(2024, 3, 1), utc(2028, 2, 29)),
    ("cron(0 0 10-12 * ? *)", AFTER, utc(2024, 2, 11)),
    # L: the last day of the month
    ("cron(0 12 L * ? *)", AFTER, utc(2024, 2, 29, 12, 0)),
    ("cron(0 12 L * ? *)", utc(2023, 2, 10), utc(2023, 2, 28, 12, 0)),
    ("cron(0 0 L * ? *)", utc(2024, 4, 30, 0, 0), utc(2024, 5, 31)),
    ("cron(0 0 LW * ? *)", utc(2024, 3, 1), utc(2024, 3, 29)),        # 31 Mar 2024 is a Sunday
    ("cron(0 0 16W * ? *)", utc(2024, 3, 1), utc(2024, 3, 15)),       # 16 Mar is a Saturday
    # months by number and name
    ("cron(0 0 1 JUN ? *)", AFTER, utc(2024, 6, 1)),
    ("cron(0 0 1 jan,jul ? *)", AFTER, utc(2024, 7, 1)),
    ("cron(0 0 1 MAR-MAY ? *)", AFTER, utc(2024, 3, 1)),
    ("cron(0 0 1 */4 ? *)", AFTER, utc(2024, 5, 1)),
    ("cron(0 0 1 11/2 ? *)", AFTER, utc(2024, 11, 1)),
    # days of week, AWS numbering 1=SUN ... 7=SAT
    ("cron(0 9 ? * MON-FRI *)", AFTER, utc(2024, 2, 12, 9, 0)),
    ("cron(0 9 ? * 2-6 *)", AFTER, utc(2024, 2, 12, 9, 0)),
    ("cron(0 9 ? * 1 *)", AFTER, utc(2024, 2, 11, 9, 0)),
    ("cron(0 9 ? * SUN *)", AFTER, utc(2024, 2, 11, 9, 0)),
    ("cron(0 13 ? * 7 *)", AFTER, utc(2024, 2, 10, 13, 0)),
    ("cron(0 13 ? * SAT *)", AFTER, utc(2024, 2, 10, 13, 0)),
    ("cron(0 9 ? * TUE,THU *)", AFTER, utc(2024, 2, 13, 9, 0)),
    ("cron(0 9 ? * FRI-MON *)", AFTER, utc(2024, 2, 11, 9, 0)),
    ("cron(0 10 ? * 6L *)", AFTER, utc(2024, 2, 23, 10, 0)),          # last Friday
    ("cron(0 10 ? * 3#2 *)", AFTER, utc(2024, 2, 13, 10, 0)),         # second Tuesday
    ("cron(0 10 ? * MON#1 *)", AFTER, utc(2024, 3, 4, 10, 0)),
    # the year field
    ("cron(0 0 1 1 ? 2030)", AFTER, utc(2030, 1, 1)),
    ("cron(0 8 ? * MON 2025-2026)", AFTER, utc(2025, 1, 6, 8, 0)),
    ("cron(0 0 1 1 ? 2024,2027)", AFTER, utc(2027, 1, 1)),
    ("cron(0 0 1 1 ? 2024/5)", AFTER, utc(2029, 1, 1)),
    ("cron(15 10 ? * 6L 2024-2026)", utc(2024, 12, 28), utc(2025, 1, 31, 10, 15)),
    # past years: it never fires again
    ("cron(0 0 1 1 ? 2020)", AFTER, None),
    ("cron(0 0 1 1 ? 2024)", AFTER, None),
])
def test_next_fire(expression, after, expected):
    assert next_fire(expression, after) == expected


def test_next_fire_naive_datetimes_are_utc():
    assert next_fire("cron(0 12 * * ? *)", datetime(2024, 2, 10, 13)) == datetime(2024, 2, 11, 12)
    assert next_fire("rate(1 hour)", datetime(2024, 2, 10, 13)) == datetime(2024, 2, 10, 14)


def test_next_fire_at_expression():
    assert next_fire("at(2030-05-01T10:00:00)", AFTER) == utc(2030, 5, 1, 10)
    assert next_fire("at(2020-05-01T10:00:00)", AFTER) is None


@pytest.mark.parametrize("expression", [
    "", "every 5 minutes", "rate(1 minutes)", "rate(2 minute)", "rate(0 minutes)", "rate(5 seconds)",
    "rate(5)", "rate(-1 minutes)", "rate(5 Minutes)", "rate(1.5 hours)",
    "cron(0 12 * * *)", "cron(0 12 * * ? * *)", "cron(0 12 * * * *)", "cron(0 12 ? * ? *)",
    "cron(60 * * * ? *)", "cron(0 24 * * ? *)", "cron(0 0 32 * ? *)", "cron(0 0 0 * ? *)",
    "cron(0 0 1 13 ? *)", "cron(0 0 ? * 8 *)", "cron(0 0 ? * 0 *)", "cron(0 0 1 FOO ? *)",
    "cron(0 0 ? * MOO *)", "cron(*/0 * * * ? *)", "cron(0 ? * * ? *)", "cron(0 0 1 * ? 1969)",
    "cron(0 0 1 * ? 2200)", "cron(0 0 1 * ? 2030-2025)", "cron(0 0 1,? * ? *)", "cron(a b c d e f)",
    "cron(0 0 ? * 3#6 *)", "cron(5- * * * ? *)", "at(tomorrow)",
])
def test_invalid_expressions_raise(expression):
    with pytest.raises(ValueError, match="invalid schedule expression"):
        next_fire(expression, AFTER)


def test_invalid_expression_fails_scheduler_construction():
    with pytest.raises(ValueError, match="nightly.*rate\\(2 minute\\)"):
        Scheduler([Schedule(name="nightly", expression="rate(2 minute)", function="f")], FakeFunction())
    with pytest.raises(ValueError):
        Scheduler([], FakeFunction(), speed=0)


# --------------------------------------------------------------------------- Scheduler


class Recorder:
    def __init__(self, delay: float = 0.0):
        self.calls: list[tuple[str, Any, float]] = []
        self.lock = threading.Lock()
        self.delay = delay

    def __call__(self, function: str, event: Any) -> Invocation:
        with self.lock:
            self.calls.append((function, event, time.monotonic()))
        if self.delay:
            time.sleep(self.delay)
        return Invocation(ok=True)

    def of(self, function: str) -> list[tuple[Any, float]]:
        with self.lock:
            return [(e, t) for f, e, t in self.calls if f == function]


def test_scheduler_fires_rate_with_speed_and_event_shape():
    slow_release = threading.Event()

    def invoke(function, event):
        if function == "slow":        # a slow function must not delay the others
            slow_release.wait(5)
        return recorder(function, event)

    recorder = Recorder()
    log = Lines()
    scheduler = Scheduler([
        Schedule(name="tick", expression="rate(1 minute)", function="ticker"),
        Schedule(name="with-input", expression="rate(1 minute)", function="worker", input={"job": "sweep"}),
        Schedule(name="slow", expression="rate(1 minute)", function="slow"),
        Schedule(name="off", expression="rate(1 minute)", function="disabled", enabled=False),
    ], invoke, speed=60, log=log)
    started = time.monotonic()
    scheduler.start()
    try:
        time.sleep(3.5)
    finally:
        slow_release.set()
        scheduler.stop()

    ticks = recorder.of("ticker")
    assert 2 <= len(ticks) <= 4
    assert 0.7 < ticks[0][1] - started < 2.0            # one period (60 s / 60) after start
    assert 0.6 < ticks[1][1] - ticks[0][1] < 1.5
    event = ticks[0][0]
    assert set(event) == {"version", "id", "detail-type", "source", "account", "time", "region",
                          "resources", "detail"}
    assert event["version"] == "0"
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["account"] == "123456789012"
    assert event["region"] == "us-east-1"
    assert event["resources"] == ["arn:aws:events:us-east-1:123456789012:rule/tick"]
    assert event["detail"] == {}
    uuid.UUID(event["id"])
    assert ticks[1][0]["id"] != event["id"]
    fired = datetime.strptime(event["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert abs((fired - datetime.now(timezone.utc)).total_seconds()) < 600   # virtual time, near now

    inputs = recorder.of("worker")
    assert len(inputs) >= 2 and all(e == {"job": "sweep"} for e, _ in inputs)
    assert recorder.of("disabled") == []
    assert any("off" in line and "disabled" in line for line in log.lines)
    assert any("tick" in line and "ok" in line for line in log.lines)


def test_disabled_schedule_never_fires_even_at_high_speed():
    recorder = Recorder()
    scheduler = Scheduler([
        Schedule(name="on", expression="rate(1 minute)", function="on"),
        Schedule(name="off", expression="rate(1 minute)", function="off", enabled=False),
        Schedule(name="off-cron", expression="cron(* * * * ? *)", function="off", enabled=False),
    ], recorder, speed=3600, log=Lines())
    scheduler.start()
    time.sleep(0.6)
    scheduler.stop()
    assert len(recorder.of("on")) >= 10
    assert recorder.of("off") == []


def test_cron_schedule_runs_on_the_virtual_clock():
    recorder = Recorder()
    scheduler = Scheduler([Schedule(name="minutely", expression="cron(* * * * ? *)", function="f")],
                          recorder, speed=120, log=Lines())
    scheduler.start()
    time.sleep(1.6)             # 192 virtual seconds: at least 2 minute boundaries
    scheduler.stop()
    events = [e for e, _ in recorder.of("f")]
    assert len(events) >= 2
    assert all(e["time"].endswith(":00Z") for e in events)
    times = [datetime.strptime(e["time"], "%Y-%m-%dT%H:%M:%SZ") for e in events]
    assert all((b - a).total_seconds() == 60 for a, b in zip(times, times[1:]))


def test_scheduler_uses_the_injected_clock_and_year_field():
    origin = datetime(2029, 12, 31, 23, 59, 59, 500000, tzinfo=timezone.utc).timestamp()
    t0 = time.time()
    recorder = Recorder()
    scheduler = Scheduler([Schedule(name="new-year", expression="cron(0 0 1 1 ? 2030)", function="f")],
                          recorder, log=Lines(), now=lambda: origin + (time.time() - t0))
    scheduler.start()
    assert wait_for(lambda: recorder.of("f"), timeout=2.0)
    scheduler.stop()
    [(event, _)] = recorder.of("f")
    assert event["time"] == "2030-01-01T00:00:00Z"
    assert event["resources"] == ["arn:aws:events:us-east-1:123456789012:rule/new-year"]


def test_scheduler_stop_returns_promptly():
    scheduler = Scheduler([Schedule(name="hourly", expression="rate(1 hour)", function="f")],
                          Recorder(), log=Lines())
    scheduler.start()
    time.sleep(0.2)
    started = time.monotonic()
    scheduler.stop()
    assert time.monotonic() - started < 1.0
