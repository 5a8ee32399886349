"""Deep status: is every dependency of the stage reachable, and is anything piling up?

Checks run in parallel, each timed. A dependency that cannot be reached is ``down`` and
makes the answer 503; messages waiting in a dead-letter queue make the stage ``degraded``
(still 200): something failed repeatedly and an operator should look.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from handlers.shared.clients import client

DEAD_LETTER_SUFFIX = "-dlq"


def _names(variable: str) -> list[str]:
    return [v for v in os.environ.get(variable, "").split(",") if v]


def _timed(kind: str, name: str, probe: Callable[[], dict]) -> dict:
    started = time.perf_counter()
    try:
        facts = probe()
        state = "ok"
    except Exception as exc:  # any failure to reach it is what this endpoint reports
        facts, state = {"error": type(exc).__name__}, "down"
    return {"kind": kind, "name": name, "state": state,
            "latencyMs": round((time.perf_counter() - started) * 1000, 1), **facts}


def _table(name: str) -> dict:
    status = client("dynamodb").describe_table(TableName=name)["Table"]["TableStatus"]
    if status not in ("ACTIVE", "UPDATING"):
        raise RuntimeError(status)
    return {}


def _bucket(name: str) -> dict:
    client("s3").head_bucket(Bucket=name)
    return {}


def _queue(url: str) -> dict:
    attributes = client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    return {"depth": int(attributes.get("ApproximateNumberOfMessages", 0))}


def check_all() -> dict:
    jobs = [("table", n, lambda n=n: _table(n)) for n in _names("STATUS_TABLES")]
    jobs += [("bucket", n, lambda n=n: _bucket(n)) for n in _names("S3_BUCKET")]
    for url in _names("STATUS_QUEUES"):
        name = url.rstrip("/").rsplit("/", 1)[-1]
        kind = "deadLetterQueue" if name.endswith(DEAD_LETTER_SUFFIX) else "queue"
        jobs.append((kind, name, lambda u=url: _queue(u)))
    with ThreadPoolExecutor(max_workers=8) as pool:
        checks = list(pool.map(lambda job: _timed(*job), jobs))
    if any(c["state"] == "down" for c in checks):
        overall = "down"
    elif any(c["kind"] == "deadLetterQueue" and c.get("depth") for c in checks):
        overall = "degraded"
    else:
        overall = "ok"
    return {"status": overall, "checks": checks}
