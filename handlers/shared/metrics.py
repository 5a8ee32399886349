"""Business metrics in CloudWatch's embedded metric format (EMF): one JSON line on stdout,
which Lambda ships to the function's log group and CloudWatch turns into metrics.

One helper for the whole backend: :func:`run_finished`, called where a run ends
(``handlers.jobs.backup.finish_run``, ``handlers.jobs.scheduler.fail_if_stuck``). It counts
the run under its status (``RunsCompleted``, ``RunsPartial``, ``RunsFailed``,
``RunsCancelled``: the other three are emitted as 0, so every hour with a finished run has a
value for each and the failure-rate alarm's metric math never divides by a missing series)
and adds its ``RecordsBackedUp`` and ``BytesBackedUp``. Namespace ``ListBackup``, one
dimension ``Stage`` (the ``STAGE`` environment variable): the alarms and the dashboard of
``components/observability.py`` read exactly this dimension set, so they import the names
from here.

Why not Powertools' ``Metrics``: it keeps its metric set in class attributes shared by every
instance and adds a ``service`` dimension from ``POWERTOOLS_SERVICE_NAME``, so the
dimension set would depend on which function finished the run. A document of a dozen
fields needs no library.

Emitting is best effort: a fault here is logged and swallowed, never raised into the run.
Ids ride along as plain properties (searchable in Logs Insights), never as dimensions.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

NAMESPACE = "ListBackup"
DIMENSION = "Stage"
# run status -> the count metric of runs that ended with it
RUN_STATUS_METRICS = {
    "completed": "RunsCompleted",
    "partial": "RunsPartial",
    "failed": "RunsFailed",
    "cancelled": "RunsCancelled",
}
RECORDS = "RecordsBackedUp"
BYTES = "BytesBackedUp"
UNITS = {**{name: "Count" for name in RUN_STATUS_METRICS.values()}, RECORDS: "Count",
         BYTES: "Bytes"}


def stage() -> str:
    return os.environ.get("STAGE") or "unknown"


def run_finished_document(status: str, *, records: Any, bytes_: Any,
                          properties: dict[str, Any] | None = None,
                          timestamp_ms: int | None = None) -> dict[str, Any]:
    """The EMF document of one finished run (ValueError for a status that is not final)."""
    if status not in RUN_STATUS_METRICS:
        raise ValueError(f"not a finished run's status: {status!r}")
    values: dict[str, int] = {name: int(metric_status == status)
                              for metric_status, name in RUN_STATUS_METRICS.items()}
    values[RECORDS] = max(int(records or 0), 0)
    values[BYTES] = max(int(bytes_ or 0), 0)
    return {
        "_aws": {
            "Timestamp": timestamp_ms if timestamp_ms is not None else int(time.time() * 1000),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [[DIMENSION]],
                "Metrics": [{"Name": name, "Unit": UNITS[name]} for name in values],
            }],
        },
        **(properties or {}),
        DIMENSION: stage(),
        "status": status,
        **values,
    }


def _write(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def run_finished(status: str, *, records: Any = 0, bytes_: Any = 0,
                 account_id: str | None = None, run_id: str | None = None) -> None:
    """Emit the run's metrics. Never raises: the run has ended whatever happens here."""
    try:
        properties = {key: value for key, value in (("accountId", account_id), ("runId", run_id))
                      if value}
        document = run_finished_document(status, records=records, bytes_=bytes_,
                                         properties=properties)
        _write(json.dumps(document, separators=(",", ":"), default=str))
    except Exception:   # noqa: BLE001 - a metric must never fail a run
        try:
            from handlers.shared.log import get_logger

            get_logger("metrics").warning("emitting the run's metrics failed", exc_info=True,
                                          extra={"runId": run_id, "status": status})
        except Exception:   # noqa: BLE001 - not even the warning may escape
            pass
