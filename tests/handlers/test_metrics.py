"""Business metrics: a run that ends prints exactly one CloudWatch embedded-metric-format
line (namespace ListBackup, dimension Stage) with its status count, records and bytes -
from the worker (completed, partial), the scheduler (stuck runs failed) and the API
(a pending run cancelled) - and a metric that cannot be emitted never fails the run."""

from __future__ import annotations

import importlib
import json

import pytest

from handlers.shared import clock, metrics, runs
from tests.handlers.test_scheduler import NOW, make_running, seed_job
from tests.handlers.test_worker import (OK, Tenant, deliver, make_records, queue,  # noqa: F401
                                        stage, stripe)
from tests.support import STAGE

COUNTS = ("RunsCompleted", "RunsPartial", "RunsFailed", "RunsCancelled")


def emf_lines(text: str) -> list[dict]:
    """The EMF documents among the captured stdout lines (log lines are JSON too)."""
    out = []
    for line in text.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and "_aws" in document:
            out.append(document)
    return out


def assert_emf(document: dict, *, counted: str, records: int, bytes_: int) -> None:
    [directive] = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "ListBackup"
    assert directive["Dimensions"] == [["Stage"]]
    units = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert units == {**{name: "Count" for name in COUNTS}, "RecordsBackedUp": "Count",
                     "BytesBackedUp": "Bytes"}
    assert isinstance(document["_aws"]["Timestamp"], int)
    assert document["Stage"] == STAGE
    assert {name: document[name] for name in COUNTS} == {name: int(name == counted) for name in COUNTS}
    assert document["RecordsBackedUp"] == records and document["BytesBackedUp"] == bytes_


# --------------------------------------------------------------------------- from the worker

def test_a_completed_run_prints_one_emf_line_with_its_records_and_bytes(stripe, queue, capsys):
    stripe.data = {"customers": make_records("cus", 25), "charges": make_records("ch", 5)}
    t = Tenant()
    run_id = t.new_run()
    capsys.readouterr()
    assert deliver(t.message(run_id)) == OK
    run = t.run(run_id)
    assert run["status"] == "completed"

    [document] = emf_lines(capsys.readouterr().out)
    assert_emf(document, counted="RunsCompleted", records=30, bytes_=int(run["bytes"]))
    assert run["bytes"] > 0
    assert document["runId"] == run_id and document["accountId"] == t.account_id
    assert document["status"] == "completed"

    # a duplicate delivery finds the run finished: nothing is counted twice
    assert deliver(t.message(run_id)) == OK
    assert emf_lines(capsys.readouterr().out) == []


def test_a_partial_run_counts_as_partial(stripe, queue, capsys):
    stripe.data = {"customers": make_records("cus", 4), "charges": make_records("ch", 2)}
    stripe.broken = {"charges"}
    t = Tenant()
    run_id = t.new_run()
    capsys.readouterr()
    assert deliver(t.message(run_id)) == OK
    run = t.run(run_id)
    assert run["status"] == "partial"
    [document] = emf_lines(capsys.readouterr().out)
    assert_emf(document, counted="RunsPartial", records=4, bytes_=int(run["bytes"]))


# --------------------------------------------------------------------------- from the scheduler

def test_a_stuck_run_failed_by_the_scheduler_counts_as_failed(queue, capsys):
    from handlers.jobs import scheduler

    job = seed_job(schedule={"frequency": "manual", "time": None, "dayOfWeek": None,
                             "dayOfMonth": None})
    run = runs.start_run(job["accountId"], job, trigger="manual", actor="usr_someone")
    make_running(run, clock.epoch(NOW) - 60)       # 120 records, 4096 bytes so far
    capsys.readouterr()

    assert scheduler.fail_if_stuck(run["accountId"], run["runId"], NOW) is True
    [document] = emf_lines(capsys.readouterr().out)
    assert_emf(document, counted="RunsFailed", records=120, bytes_=4096)
    assert document["runId"] == run["runId"]

    # the next look finds it failed already: no second count
    assert scheduler.fail_if_stuck(run["accountId"], run["runId"], NOW) is False
    assert emf_lines(capsys.readouterr().out) == []


# --------------------------------------------------------------------------- from the API

def test_cancelling_a_pending_run_counts_as_cancelled(queue, capsys):
    job = seed_job(schedule={"frequency": "manual", "time": None, "dayOfWeek": None,
                             "dayOfMonth": None})
    run = runs.start_run(job["accountId"], job, trigger="manual", actor="usr_someone")
    capsys.readouterr()
    assert runs.cancel_run(run["accountId"], run, actor="usr_someone")["status"] == "cancelled"
    [document] = emf_lines(capsys.readouterr().out)
    assert_emf(document, counted="RunsCancelled", records=0, bytes_=0)


# --------------------------------------------------------------------------- never fails a run

@pytest.mark.parametrize("breaks", ["_write", "run_finished_document"])
def test_a_failing_emitter_does_not_fail_the_run(stripe, queue, capsys, monkeypatch, breaks):
    def broken(*args, **kwargs):
        raise OSError("stdout is gone")

    # the module the worker's code holds now (an earlier program evaluation in this session
    # may have re-imported the handlers)
    monkeypatch.setattr(importlib.import_module("handlers.jobs.backup").metrics, breaks, broken)
    stripe.data = {"customers": make_records("cus", 3)}
    t = Tenant(endpoints=("customers",))
    run_id = t.new_run()
    assert deliver(t.message(run_id)) == OK
    run = t.run(run_id)
    assert run["status"] == "completed" and run["records"] == 3
    job = t.job()
    assert "activeRunId" not in job and job["stats"]["completed"] == 1, \
        "everything after the metric still happened"
    assert emf_lines(capsys.readouterr().out) == []


def test_a_failing_emitter_does_not_fail_the_schedulers_stuck_run(queue, monkeypatch, capsys):
    from handlers.jobs import scheduler

    monkeypatch.setattr(scheduler.metrics, "_write", lambda line: 1 / 0)
    job = seed_job(schedule={"frequency": "manual", "time": None, "dayOfWeek": None,
                             "dayOfMonth": None})
    run = runs.start_run(job["accountId"], job, trigger="manual", actor="usr_someone")
    make_running(run, clock.epoch(NOW) - 60)
    assert scheduler.fail_if_stuck(run["accountId"], run["runId"], NOW) is True
    assert runs.get_run(run["accountId"], run["runId"])["status"] == "failed"
    assert emf_lines(capsys.readouterr().out) == [], "the emitter really was broken"


# --------------------------------------------------------------------------- the helper

def test_the_document_counts_each_final_status_and_clamps_odd_numbers(monkeypatch):
    monkeypatch.setenv("STAGE", "main")
    for status, name in metrics.RUN_STATUS_METRICS.items():
        document = metrics.run_finished_document(status, records=None, bytes_=-5, timestamp_ms=7)
        assert document[name] == 1 and sum(document[n] for n in COUNTS) == 1
        assert document["RecordsBackedUp"] == 0 and document["BytesBackedUp"] == 0
        assert document["Stage"] == "main" and document["_aws"]["Timestamp"] == 7
    with pytest.raises(ValueError):
        metrics.run_finished_document("running", records=1, bytes_=1)


def test_an_unfinished_status_prints_nothing_and_raises_nothing(capsys):
    metrics.run_finished("running", records=1, bytes_=1, run_id="run_x")
    assert emf_lines(capsys.readouterr().out) == []
