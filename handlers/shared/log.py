"""Structured JSON logging with the Lambda request id: one JSON object per line on stdout,
which CloudWatch Logs stores as is and Logs Insights queries by field.

Each line carries ``level``, ``location``, ``message``, ``timestamp``, ``service``, the
invocation's ``cold_start``, ``function_name``, ``function_memory_size``, ``function_arn``,
``function_request_id`` and ``xray_trace_id`` once ``inject_lambda_context`` wraps the
handler, the keys appended with ``append_keys``, and the ``extra`` of the call. The field
names are the ones Powertools' Logger writes, so queries and dashboards do not depend on
which of the two wrote a line.

It is our own, not Powertools' Logger, for the cold start: importing Powertools' package
loads its Logger, Metrics and Tracer and typing_extensions, compiled from source in a
Lambda's read-only code folders - about 70 ms of every function's first request, a third
of the ``import boto3`` + client baseline of issue 12 (benchmarks/cold_start.py). The
stdlib's ``logging`` is already loaded by boto3.

Log facts and ids, never secrets, tokens or credentials: nothing here redacts for you.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time
from typing import Any, Callable, Iterable

# what a LogRecord carries of its own: everything else in its __dict__ came in ``extra``
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class _JsonFormatter(logging.Formatter):
    def __init__(self, logger: "Logger") -> None:
        super().__init__()
        self._owner = logger

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "level": record.levelname,
            "location": f"{record.funcName}:{record.lineno}",
            "message": record.getMessage(),
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                         + f".{int(record.msecs):03d}Z",
            "service": self._owner.service,
        }
        entry.update(self._owner._keys)
        trace = os.environ.get("_X_AMZN_TRACE_ID")
        if trace:
            entry["xray_trace_id"] = trace.split(";", 1)[0].removeprefix("Root=")
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception_name"] = record.exc_info[0].__name__
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


class Logger:
    """The part of Powertools' Logger interface the services use."""

    def __init__(self, service: str, level: str | int = "INFO") -> None:
        self.service = service
        self._keys: dict[str, Any] = {}
        self._cold = True
        self._logger = logging.getLogger(f"listbackup.{service}")
        self._logger.propagate = False
        self._logger.handlers.clear()
        self.registered_handler = logging.StreamHandler(sys.stdout)
        self.registered_handler.setFormatter(_JsonFormatter(self))
        self._logger.addHandler(self.registered_handler)
        self.setLevel(level)

    # ------------------------------------------------------------------ level
    def setLevel(self, level: str | int) -> None:  # noqa: N802 (logging's name)
        self._logger.setLevel(level.upper() if isinstance(level, str) else level)

    @property
    def log_level(self) -> int:
        return self._logger.level

    # ------------------------------------------------------------------ keys
    def append_keys(self, **keys: Any) -> None:
        self._keys.update(keys)

    def remove_keys(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._keys.pop(key, None)

    # ------------------------------------------------------------------ writing
    def debug(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self._log(logging.DEBUG, msg, args, kwargs)

    def info(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self._log(logging.INFO, msg, args, kwargs)

    def warning(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self._log(logging.WARNING, msg, args, kwargs)

    def error(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self._log(logging.ERROR, msg, args, kwargs)

    def exception(self, msg: Any, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        self._log(logging.ERROR, msg, args, {**kwargs, "exc_info": exc_info})

    def _log(self, level: int, msg: Any, args: tuple, kwargs: dict) -> None:
        if self._logger.isEnabledFor(level):
            # stacklevel 3: the line that called info()/warning()..., not this module
            self._logger.log(level, msg, *args, stacklevel=3, **kwargs)

    # ------------------------------------------------------------------ the handler
    def inject_lambda_context(self, lambda_handler: Callable | None = None, *,
                              clear_state: bool = False) -> Callable:
        """Wrap a Lambda handler: every line it logs carries the invocation's context.
        Usable bare (``inject_lambda_context(handler)``) or with options."""
        if lambda_handler is None:
            return functools.partial(self.inject_lambda_context, clear_state=clear_state)

        @functools.wraps(lambda_handler)
        def wrapper(event: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
            if clear_state:
                self._keys.clear()
            self._keys.update(
                cold_start=self._cold,
                function_name=getattr(context, "function_name", None),
                function_memory_size=getattr(context, "memory_limit_in_mb", None),
                function_arn=getattr(context, "invoked_function_arn", None),
                function_request_id=getattr(context, "aws_request_id", None))
            self._cold = False
            return lambda_handler(event, context, *args, **kwargs)

        return wrapper


_loggers: dict[str, Logger] = {}


def get_logger(service: str) -> Logger:
    """The service's logger, one per service in a process: every module of a service (its
    API entry point, and ``sources.connection`` loaded on first use...) writes through the
    same handler with the same invocation context. A second ``Logger`` of one name would
    take the handler over, and lines would lose the context the entry point injected."""
    logger = _loggers.get(service)
    if logger is None:
        logger = _loggers[service] = Logger(service=service, level=os.environ.get("LOG_LEVEL", "INFO"))
    return logger
