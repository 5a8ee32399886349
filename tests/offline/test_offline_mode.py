"""Offline mode itself: the command, triggers, timeouts and shutdown, driven through its
real entry point against a small fixture program (tests/offline/programs/triggers)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.harness import ROOT, OfflineServer, alive, descendants, free_port

FIXTURE = Path(__file__).resolve().parent / "programs" / "triggers"


@pytest.fixture(scope="module")
def fixture_server():
    server = OfflineServer("--schedule-speed", "60", "--platform-url", "keap=http://127.0.0.1:9",
                           "--stripe-api-base", "http://127.0.0.1:12111/", program=FIXTURE).start()
    yield server
    server.stop()


def test_a_failing_consumer_message_ends_in_the_dead_letter_queue(fixture_server):
    sqs = fixture_server.aws("sqs")
    queue = sqs.get_queue_url(QueueName="fixture-failing")["QueueUrl"]
    dlq = sqs.get_queue_url(QueueName="fixture-failing-dlq")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"n": 1}))

    def dead_lettered():
        got = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1, MaxNumberOfMessages=1)
        return got.get("Messages")

    [message] = fixture_server.eventually(dead_lettered, timeout=30)
    assert json.loads(message["Body"]) == {"n": 1}


def test_a_function_over_its_timeout_is_stopped_and_reported(fixture_server):
    started = time.monotonic()
    reply = fixture_server.get("/slow")
    assert reply.status == 500 and reply.json == {"message": "Internal Server Error"}
    assert time.monotonic() - started < 4, "stopped at its 1 s timeout, not after its 5 s sleep"
    fixture_server.wait_for_log(r"\[fixture-slow\] .*Task timed out after")
    assert "Traceback" not in reply.raw.decode()


def test_a_function_gets_its_context_and_only_offline_sets_platform_urls(fixture_server):
    reply = fixture_server.get("/fast")
    assert reply.status == 200
    body = reply.json
    assert body["functionName"] == "fixture-fast"
    assert 0 < body["remainingMs"] <= 1000
    assert json.loads(body["platformUrls"]) == {"keap": "http://127.0.0.1:9"}
    assert body["stripeApiBase"] == "http://127.0.0.1:12111"
    # warm: the second call reuses the same environment
    assert fixture_server.get("/fast").json["pid"] == body["pid"]


def test_a_rate_schedule_fires(fixture_server):
    s3 = fixture_server.aws("s3")

    def firings():
        listed = s3.list_objects_v2(Bucket="fixture-firings", Prefix="firings/").get("Contents", [])
        return listed if len(listed) >= 2 else None

    listed = fixture_server.eventually(firings, timeout=20)
    event = json.loads(s3.get_object(Bucket="fixture-firings", Key=listed[0]["Key"])["Body"].read())
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"


def test_sigint_stops_everything_it_started():
    server = OfflineServer(program=FIXTURE).start()
    assert server.get("/fast").status == 200      # a worker process now exists
    children = descendants(server.process.pid)
    assert children, "a function worker should be running"
    assert server.stop() == 0
    time.sleep(0.5)
    assert not [pid for pid in children if alive(pid)]
    assert "offline: stopping" in server.log_text()


def run_offline(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "offline", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=timeout)


def test_a_busy_port_is_one_clear_line():
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_offline("--port", str(port), "--program", str(FIXTURE))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and f"port {port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_program_that_is_not_there_is_one_clear_line(tmp_path):
    result = run_offline("--port", str(free_port()), "--program", str(tmp_path))
    assert result.returncode == 1
    assert "not a Pulumi program" in result.stderr and "Traceback" not in result.stderr


def test_a_bad_platform_url_is_refused():
    result = run_offline("--platform-url", "myspace=http://127.0.0.1:1")
    assert result.returncode == 2 and "ID=URL" in result.stderr


def test_preview_prints_what_main_would_create():
    result = run_offline("preview", "--stack", "main")
    assert result.returncode == 0, result.stderr
    assert "core (listbackup:core:CoreService)" in result.stdout
    assert "listbackup-main-files" in result.stdout
