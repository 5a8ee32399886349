"""Queue and schedule triggers: what Lambda's SQS event source mappings and EventBridge do.

``QueuePoller`` plays one SQS event source mapping against moto: it long-polls the queue,
hands the function a batch in the event shape Lambda uses, deletes what succeeded and leaves
the rest to come back after the queue's visibility timeout. Redrive to the dead-letter queue
is moto's: the queue's RedrivePolicy (set by provisioning) moves a message once it has been
received ``maxReceiveCount`` times.

``Scheduler`` plays EventBridge scheduled rules (``rate(...)``, AWS 6-field ``cron(...)``,
and EventBridge Scheduler's one-time ``at(...)``), optionally on a virtual clock that runs
``speed`` times faster than the wall clock. ``next_fire`` is the pure schedule arithmetic.

Neither imports the function runtime: ``invoke(function_name, event)`` is any blocking,
thread-safe callable returning an object with ``ok``, ``result``, ``error``, ``message`` and
``duration_ms``.
"""

from __future__ import annotations

import base64
import calendar
import copy
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Protocol

from offline.model import Queue, QueueMapping, Schedule

__all__ = ["QueuePoller", "Scheduler", "next_fire", "parse_expression", "scheduled_event"]

_logger = logging.getLogger("offline.triggers")
ACCOUNT = "123456789012"


class Invocation(Protocol):
    ok: bool
    result: Any
    error: str | None
    message: str
    duration_ms: float


Invoke = Callable[[str, dict], Invocation]
Log = Callable[[str], Any]


def _default_log(line: str) -> None:
    _logger.info(line)


def _safe_invoke(invoke: Invoke, function: str, event: dict) -> tuple[bool, Any, str, float]:
    """(ok, result, "error: message", duration_ms); an invoke that raises counts as a failure."""
    started = time.monotonic()
    try:
        inv = invoke(function, event)
    except Exception as exc:  # the runtime should not raise, but a trigger must survive it
        return False, None, f"invoke failed: {type(exc).__name__}: {exc}", (time.monotonic() - started) * 1000
    ok = bool(getattr(inv, "ok", False))
    duration = getattr(inv, "duration_ms", None)
    if duration is None:
        duration = (time.monotonic() - started) * 1000
    if ok:
        return True, getattr(inv, "result", None), "", float(duration)
    error = getattr(inv, "error", None) or "error"
    message = str(getattr(inv, "message", "") or "")
    if len(message) > 200:
        message = message[:200] + "..."
    return False, None, f"{error}: {message}" if message else str(error), float(duration)


# --------------------------------------------------------------------------- SQS


# The message system attributes Lambda copies into a record's "attributes".
_RECORD_ATTRIBUTES = (
    "ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp",
    "SequenceNumber", "MessageGroupId", "MessageDeduplicationId", "AWSTraceHeader",
    "DeadLetterQueueSourceArn",
)


def _b64(value: Any) -> str:
    if isinstance(value, str):
        value = value.encode()
    return base64.b64encode(value).decode("ascii")


def _message_attribute(attribute: dict) -> dict:
    out: dict[str, Any] = {}
    if "StringValue" in attribute:
        out["stringValue"] = attribute["StringValue"]
    if "BinaryValue" in attribute:
        out["binaryValue"] = _b64(attribute["BinaryValue"])
    out["stringListValues"] = list(attribute.get("StringListValues") or [])
    out["binaryListValues"] = [_b64(v) for v in attribute.get("BinaryListValues") or []]
    out["dataType"] = attribute.get("DataType", "String")
    return out


def sqs_record(message: dict, *, queue_arn: str, region: str) -> dict:
    """One record of a Lambda SQS event, from a ReceiveMessage result entry."""
    attributes = message.get("Attributes") or {}
    record = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": {k: str(attributes[k]) for k in _RECORD_ATTRIBUTES if k in attributes},
        "messageAttributes": {name: _message_attribute(a)
                              for name, a in (message.get("MessageAttributes") or {}).items()},
        "md5OfBody": message.get("MD5OfBody", ""),
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    record.update({"eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": region})
    return record


def batch_failures(result: Any, ids: list[str]) -> tuple[set[str], str | None]:
    """Which message ids of a batch failed, by Lambda's ReportBatchItemFailures rules.

    Returns ``(failed_ids, problem)``. A missing, null or empty ``batchItemFailures`` (or a
    response that is not a dict) is complete success. A malformed list, an entry without an
    ``itemIdentifier``, an empty or non-string one, or one that names a message not in the
    batch makes the whole batch fail, with ``problem`` saying why.
    """
    if not isinstance(result, dict) or result.get("batchItemFailures") is None:
        return set(), None
    items = result["batchItemFailures"]
    everything = set(ids)
    if not isinstance(items, list):
        return everything, f"batchItemFailures is a {type(items).__name__}, not a list"
    failed: set[str] = set()
    for item in items:
        if not isinstance(item, dict) or "itemIdentifier" not in item:
            return everything, "a batchItemFailures entry has no itemIdentifier"
        ident = item["itemIdentifier"]
        if not isinstance(ident, str) or not ident:
            return everything, "a batchItemFailures entry has an empty itemIdentifier"
        if ident not in everything:
            return everything, "an itemIdentifier names a message not in the batch"
        failed.add(ident)
    return failed, None


class QueuePoller:
    """One SQS event source mapping: poll ``queue_url``, invoke ``mapping.function``.

    Concurrency: ``mapping.max_concurrency`` (the mapping's ScalingConfig) is the number of
    polling threads, each receiving and handing over one batch at a time; when it is unset a
    single thread runs, i.e. one batch at a time per mapping. (AWS would scale up to five
    concurrent batches and beyond; one is enough locally and keeps ordering easy to follow.)

    Batching: one receive of up to ``min(batch_size, 10)`` messages with a 1 s long poll.
    When ``batching_window`` is set, further receives fill the batch until it holds
    ``batch_size`` messages or the window (counted from the first message) has passed; with
    no window but ``batch_size`` over 10, further receives go on while messages are waiting.
    """

    def __init__(self, mapping: QueueMapping, queue: Queue, queue_url: str, sqs_client: Any,
                 invoke: Invoke, *, log: Log = _default_log, region: str = "us-east-1"):
        if int(mapping.batch_size) < 1:
            raise ValueError(f"mapping {mapping.queue} -> {mapping.function}: batch size must be at least 1")
        self.mapping = mapping
        self.queue = queue
        self.queue_url = queue_url
        self.sqs = sqs_client
        self.invoke = invoke
        self.log = log
        self.region = region
        self.workers = max(1, int(mapping.max_concurrency or 1))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._label = f"{mapping.function} <- {queue.name}"

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def start(self) -> None:
        if not self.mapping.enabled:
            self.log(f"sqs {self._label}: mapping disabled, not polling")
            return
        if self.running:
            return
        self._stop.clear()
        self._threads = [threading.Thread(target=self._run, name=f"sqs-{self.queue.name}-{i}", daemon=True)
                         for i in range(self.workers)]
        for thread in self._threads:
            thread.start()

    def request_stop(self) -> None:
        """Ask the threads to stop without waiting: call it on every poller, then ``stop()``
        each, and they all wind down in parallel."""
        self._stop.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling and join the threads: an idle poller stops within about 1-2 s (the long
        poll). A batch still inside its function is waited for up to ``timeout`` seconds and
        then left to finish on its daemon thread."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self.running:
            self.log(f"sqs {self._label}: stopped polling; a batch is still running")
        else:
            self._threads = []

    # -- the loop

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                messages = self._gather()
            except Exception as exc:
                if self._stop.is_set():
                    return
                self.log(f"sqs {self._label}: receive failed ({type(exc).__name__}: {exc}); retrying in 1 s")
                self._stop.wait(1.0)
                continue
            if messages:
                self._handle(messages)

    def _receive(self, count: int, wait: int) -> list[dict]:
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=count, WaitTimeSeconds=wait,
            AttributeNames=["All"], MessageAttributeNames=["All"])
        return list(response.get("Messages") or [])

    def _gather(self) -> list[dict]:
        size = int(self.mapping.batch_size)
        window = float(self.mapping.batching_window or 0)
        batch = self._receive(min(size, 10), 1)
        if not batch:
            return []
        deadline = time.monotonic() + window
        while len(batch) < size and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if window > 0 and remaining <= 0:
                break
            if window <= 0 and size <= 10:
                break
            # Long-poll while a whole second of the window is left, else look without waiting.
            wait = 1 if remaining >= 1 else 0
            try:
                more = self._receive(min(size - len(batch), 10), wait)
            except Exception as exc:
                self.log(f"sqs {self._label}: receive failed ({type(exc).__name__}: {exc}); "
                         f"handing over {len(batch)} message(s)")
                break
            batch.extend(more)
            if not more and wait == 0:
                if window <= 0:
                    break
                self._stop.wait(min(0.1, max(0.0, remaining)))
        # A message whose visibility ran out while the batch filled comes back with a new
        # receipt handle: keep the latest.
        unique: dict[str, dict] = {}
        for message in batch:
            unique[message["MessageId"]] = message
        return list(unique.values())

    def _handle(self, messages: list[dict]) -> None:
        event = {"Records": [sqs_record(m, queue_arn=self.queue.arn, region=self.region) for m in messages]}
        count = len(messages)
        ok, result, error, duration = _safe_invoke(self.invoke, self.mapping.function, event)
        if not ok:
            self.log(f"sqs {self._label}: {count} message(s): function failed ({error}) in {duration:.0f} ms; "
                     f"none deleted, they return after the visibility timeout")
            return
        ids = [m["MessageId"] for m in messages]
        failed: set[str] = set()
        problem = None
        if self.mapping.report_failures:
            failed, problem = batch_failures(result, ids)
        done = [m for m in messages if m["MessageId"] not in failed]
        deleted = self._delete(done)
        if problem:
            outcome = f"whole batch failed: {problem}"
        elif failed:
            outcome = f"partial: {len(failed)} failed"
        else:
            outcome = "ok"
        self.log(f"sqs {self._label}: {count} message(s): {outcome}, {deleted} deleted, "
                 f"{duration:.0f} ms")

    def _delete(self, messages: list[dict]) -> int:
        deleted = 0
        for start in range(0, len(messages), 10):
            chunk = messages[start:start + 10]
            try:
                response = self.sqs.delete_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)])
            except Exception as exc:
                self.log(f"sqs {self._label}: delete failed ({type(exc).__name__}: {exc})")
                continue
            failures = response.get("Failed") or []
            deleted += len(chunk) - len(failures)
            for failure in failures:
                self.log(f"sqs {self._label}: delete failed ({failure.get('Code')}: {failure.get('Message')})")
        return deleted


# --------------------------------------------------------------------------- schedules


_MONTHS = {name: i for i, name in enumerate(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1)}
_WEEKDAYS = {name: i for i, name in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], start=1)}


def _aws_weekday(day: date) -> int:
    """AWS numbering: 1 = Sunday ... 7 = Saturday."""
    return (day.weekday() + 1) % 7 + 1


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None
    cyclic: bool = True


_MINUTE = _Field("minutes", 0, 59)
_HOUR = _Field("hours", 0, 23)
_DOM = _Field("day-of-month", 1, 31)
_MONTH = _Field("month", 1, 12, _MONTHS)
_DOW = _Field("day-of-week", 1, 7, _WEEKDAYS)
_YEAR = _Field("year", 1970, 2199, cyclic=False)


class _CronError(ValueError):
    pass


def _value(token: str, field: _Field) -> int:
    key = token.upper()
    if field.names and key in field.names:
        return field.names[key]
    if not token.isdigit():
        raise _CronError(f"{field.name}: {token!r} is not a number"
                         + (f" or a name ({'/'.join(field.names)})" if field.names else ""))
    value = int(token)
    if not field.low <= value <= field.high:
        raise _CronError(f"{field.name}: {value} is outside {field.low}-{field.high}")
    return value


def _term(term: str, field: _Field) -> set[int]:
    """``*``, ``n``, ``a-b``, each optionally ``/step``."""
    base, slash, step_text = term.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) < 1:
            raise _CronError(f"{field.name}: step {step_text!r} in {term!r} must be a positive number")
        step = int(step_text)
    if base == "*":
        first, last = field.low, field.high
    elif "-" in base:
        a, _, b = base.partition("-")
        first, last = _value(a, field), _value(b, field)
    elif base:
        first = _value(base, field)
        last = field.high if slash else first
    else:
        raise _CronError(f"{field.name}: empty value in {term!r}")
    if first <= last:
        span = list(range(first, last + 1))
    elif field.cyclic:   # a range that wraps, e.g. hours 22-2 or FRI-MON
        span = list(range(first, field.high + 1)) + list(range(field.low, last + 1))
    else:
        raise _CronError(f"{field.name}: range {base!r} runs backwards")
    return set(span[::step])


def _numbers(text: str, field: _Field) -> set[int]:
    if not text:
        raise _CronError(f"{field.name}: empty field")
    values: set[int] = set()
    for term in text.split(","):
        values |= _term(term, field)
    return values


def _last_day(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def _nearest_weekday(year: int, month: int, day: int) -> int | None:
    """``nW``: the weekday (Mon-Fri) nearest day n, without leaving the month."""
    last = _last_day(year, month)
    if day > last:
        return None
    weekday = date(year, month, day).weekday()   # Mon=0 ... Sun=6
    if weekday == 5:     # Saturday: Friday before, or Monday after on the 1st
        return day - 1 if day > 1 else day + 2
    if weekday == 6:     # Sunday: Monday after, or Friday before on the last day
        return day + 1 if day < last else day - 2
    return day


class _DayOfMonth:
    def __init__(self, text: str):
        self.fixed: set[int] = set()
        self.last = False
        self.last_weekday = False
        self.nearest: set[int] = set()
        for term in text.split(","):
            upper = term.upper()
            if upper == "L":
                self.last = True
            elif upper == "LW":
                self.last_weekday = True
            elif upper.endswith("W"):
                self.nearest.add(_value(term[:-1], _DOM))
            else:
                self.fixed |= _term(term, _DOM)

    def days(self, year: int, month: int) -> set[int]:
        last = _last_day(year, month)
        days = {d for d in self.fixed if d <= last}
        if self.last:
            days.add(last)
        if self.last_weekday:
            nearest = _nearest_weekday(year, month, last)
            if nearest:
                days.add(nearest)
        for n in self.nearest:
            nearest = _nearest_weekday(year, month, n)
            if nearest:
                days.add(nearest)
        return days


class _DayOfWeek:
    def __init__(self, text: str):
        self.weekdays: set[int] = set()
        self.last_of: set[int] = set()            # "6L": the last Friday of the month
        self.nth: set[tuple[int, int]] = set()    # "3#2": the second Tuesday
        for term in text.split(","):
            upper = term.upper()
            if upper == "L":
                self.weekdays.add(7)
            elif upper.endswith("L"):
                self.last_of.add(_value(term[:-1], _DOW))
            elif "#" in term:
                day, _, nth = term.partition("#")
                if not nth.isdigit() or not 1 <= int(nth) <= 5:
                    raise _CronError(f"day-of-week: {term!r}: the number after # must be 1-5")
                self.nth.add((_value(day, _DOW), int(nth)))
            else:
                self.weekdays |= _term(term, _DOW)

    def days(self, year: int, month: int) -> set[int]:
        last = _last_day(year, month)
        days = set()
        for d in range(1, last + 1):
            weekday = _aws_weekday(date(year, month, d))
            if (weekday in self.weekdays or (weekday in self.last_of and d + 7 > last)
                    or (weekday, (d - 1) // 7 + 1) in self.nth):
                days.add(d)
        return days


_RATE = re.compile(r"^rate\(\s*(\d+)\s+([a-z]+)\s*\)$")
_RATE_UNITS = {"minute": 60, "hour": 3600, "day": 86400}


class _Rate:
    def __init__(self, value: int, unit: str):
        self.period = timedelta(seconds=value * _RATE_UNITS[unit])

    def next_after(self, after: datetime) -> datetime | None:
        return after + self.period


class _At:
    def __init__(self, when: datetime):
        self.when = when

    def next_after(self, after: datetime) -> datetime | None:
        return self.when if self.when > after else None


class _Cron:
    def __init__(self, fields: list[str]):
        minutes, hours, dom, month, dow, year = fields
        if (dom == "?") == (dow == "?"):
            raise _CronError("exactly one of day-of-month and day-of-week must be '?' "
                             f"(got {dom!r} and {dow!r})")
        for name, text in (("minutes", minutes), ("hours", hours), ("month", month), ("year", year)):
            if "?" in text:
                raise _CronError(f"{name}: '?' is only allowed in day-of-month or day-of-week")
        for name, text in (("day-of-month", dom), ("day-of-week", dow)):
            if text != "?" and "?" in text:
                raise _CronError(f"{name}: '?' must stand alone in its field")
        self.minutes = sorted(_numbers(minutes, _MINUTE))
        self.hours = sorted(_numbers(hours, _HOUR))
        self.months = sorted(_numbers(month, _MONTH))
        self.years = sorted(_numbers(year, _YEAR))
        self.days = _DayOfWeek(dow) if dom == "?" else _DayOfMonth(dom)

    def next_after(self, after: datetime) -> datetime | None:
        start = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
        for year in self.years:
            if year < start.year:
                continue
            for month in self.months:
                if (year, month) < (start.year, start.month):
                    continue
                for day in sorted(self.days.days(year, month)):
                    today = date(year, month, day)
                    if today < start.date():
                        continue
                    for hour in self.hours:
                        if today == start.date() and hour < start.hour:
                            continue
                        for minute in self.minutes:
                            candidate = datetime(year, month, day, hour, minute)
                            if candidate >= start:
                                return candidate
        return None


def parse_expression(expression: str) -> _Rate | _Cron | _At:
    """Parse a schedule expression; raises ValueError saying what is wrong."""
    if not isinstance(expression, str):
        raise ValueError(f"schedule expression must be a string, got {expression!r}")
    text = expression.strip()
    if text.startswith("rate("):
        match = _RATE.match(text)
        if not match:
            raise ValueError(f"invalid schedule expression {expression!r}: "
                             "expected rate(<value> <unit>), e.g. rate(5 minutes)")
        value, unit = int(match.group(1)), match.group(2)
        singular = unit[:-1] if unit.endswith("s") else unit
        if singular not in _RATE_UNITS:
            raise ValueError(f"invalid schedule expression {expression!r}: unit must be minute(s), hour(s) or day(s)")
        if value < 1:
            raise ValueError(f"invalid schedule expression {expression!r}: the value must be a positive number")
        if value == 1 and unit != singular:
            raise ValueError(f"invalid schedule expression {expression!r}: use the singular for 1: rate(1 {singular})")
        if value > 1 and unit == singular:
            raise ValueError(f"invalid schedule expression {expression!r}: use the plural for {value}: "
                             f"rate({value} {singular}s)")
        return _Rate(value, singular)
    if text.startswith("cron(") and text.endswith(")"):
        fields = text[5:-1].split()
        if len(fields) != 6:
            raise ValueError(f"invalid schedule expression {expression!r}: cron needs 6 fields "
                             f"(minutes hours day-of-month month day-of-week year), got {len(fields)}")
        try:
            return _Cron(fields)
        except _CronError as exc:
            raise ValueError(f"invalid schedule expression {expression!r}: {exc}") from None
    if text.startswith("at(") and text.endswith(")"):
        try:
            when = datetime.strptime(text[3:-1].strip(), "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            raise ValueError(f"invalid schedule expression {expression!r}: "
                             "expected at(yyyy-mm-ddThh:mm:ss)") from None
        return _At(when)
    raise ValueError(f"invalid schedule expression {expression!r}: expected rate(...), cron(...) or at(...)")


def _to_naive_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def next_fire(expression: str | _Rate | _Cron | _At, after: datetime) -> datetime | None:
    """The first firing strictly after ``after`` (UTC).

    A rate fires one period after ``after`` (so its first firing is one period after start);
    a cron fires on the first matching whole minute after ``after``; ``at(...)`` fires once.
    A naive ``after`` is read as UTC and gives a naive result; an aware one gives an aware UTC
    result. Returns None when the expression never fires again (a cron whose year list is
    past, an ``at`` in the past). Raises ValueError for an invalid expression.
    """
    parsed = parse_expression(expression) if isinstance(expression, str) else expression
    result = parsed.next_after(_to_naive_utc(after))
    if result is None or after.tzinfo is None:
        return result
    return result.replace(tzinfo=timezone.utc)


def scheduled_event(rule: str, when: datetime, *, region: str = "us-east-1", account: str = ACCOUNT) -> dict:
    """The event EventBridge sends a scheduled rule's Lambda target."""
    when = _to_naive_utc(when)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{account}:rule/{rule}"],
        "detail": {},
    }


class _Entry:
    def __init__(self, schedule: Schedule):
        self.schedule = schedule
        self.parsed = parse_expression(schedule.expression)
        self.next: datetime | None = None


class Scheduler:
    """Fires the enabled schedules' functions, each firing on its own thread.

    Time runs on a virtual clock: it equals ``now()`` at ``start()`` and then advances
    ``speed`` times faster than ``now()``. So with ``speed=60`` a ``rate(1 minute)`` schedule
    fires every real second and ``cron(0 * * * ? *)`` every real minute. A rate's first
    firing is one period after start; the ``time`` of the event is the scheduled (virtual)
    time. Firings missed because the loop fell behind are skipped, not replayed. The target
    is invoked once per firing (Lambda's asynchronous retries are not played).
    """

    def __init__(self, schedules: Iterable[Schedule], invoke: Invoke, *, speed: float = 1.0,
                 log: Log = _default_log, now: Callable[[], float] = time.time,
                 region: str = "us-east-1", account: str = ACCOUNT):
        if not speed or speed <= 0:
            raise ValueError(f"speed must be positive, got {speed!r}")
        entries = []
        for schedule in schedules:
            try:
                entries.append(_Entry(schedule))
            except ValueError as exc:
                raise ValueError(f"schedule {schedule.name}: {exc}") from None
        self.entries = entries
        self.invoke = invoke
        self.speed = float(speed)
        self.log = log
        self.now = now
        self.region = region
        self.account = account
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._firings: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._origin = 0.0

    def virtual_now(self) -> datetime:
        real = self.now()
        return datetime.fromtimestamp(self._origin + (real - self._origin) * self.speed, timezone.utc)

    def start(self) -> None:
        if self._thread and self._thread.is_alive():
            return
        self._stop.clear()
        self._origin = self.now()
        start = self.virtual_now()
        for entry in self.entries:
            schedule = entry.schedule
            if not schedule.enabled:
                self.log(f"schedule {schedule.name} ({schedule.expression}) -> {schedule.function}: disabled")
                entry.next = None
                continue
            entry.next = next_fire(entry.parsed, start)
            if entry.next is None:
                self.log(f"schedule {schedule.name} ({schedule.expression}): never fires again")
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop firing; wait up to ``timeout`` s for the loop and for firings still running."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        if self._thread:
            self._thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            firings = list(self._firings)
        for thread in firings:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in firings):
            self.log("scheduler: stopped; some scheduled invocations are still running")

    def _run(self) -> None:
        while not self._stop.is_set():
            now = self.virtual_now()
            wait = 0.5
            for entry in self.entries:
                if entry.next is None:
                    continue
                if entry.next <= now:
                    self._fire(entry, entry.next)
                    following = next_fire(entry.parsed, entry.next)
                    skipped = 0
                    while following is not None and following <= now and skipped < 100_000:
                        following = next_fire(entry.parsed, following)
                        skipped += 1
                    if following is not None and following <= now:
                        following = next_fire(entry.parsed, now)
                    if skipped:
                        self.log(f"schedule {entry.schedule.name}: skipped {skipped} missed firing(s)")
                    entry.next = following
                if entry.next is not None:
                    wait = min(wait, (entry.next - now).total_seconds() / self.speed)
            self._stop.wait(max(wait, 0.001))

    def _fire(self, entry: _Entry, when: datetime) -> None:
        schedule = entry.schedule
        if schedule.input is not None:
            event = copy.deepcopy(schedule.input)
        else:
            event = scheduled_event(schedule.name, when, region=self.region, account=self.account)
        thread = threading.Thread(target=self._invoke, args=(schedule, event, when),
                                  name=f"schedule-{schedule.name}", daemon=True)
        with self._lock:
            self._firings = {t for t in self._firings if t.is_alive()}
            self._firings.add(thread)
        thread.start()

    def _invoke(self, schedule: Schedule, event: Any, when: datetime) -> None:
        ok, _, error, duration = _safe_invoke(self.invoke, schedule.function, event)
        stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        outcome = "ok" if ok else f"failed ({error})"
        self.log(f"schedule {schedule.name} ({schedule.expression}) -> {schedule.function} "
                 f"at {stamp}: {outcome}, {duration:.0f} ms")
