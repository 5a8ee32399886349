"""Backup schedules: validation against the plan and the next slot after a moment.

A schedule is ``{frequency, time, dayOfWeek, dayOfMonth}``:

- ``manual``: never due by itself (runs only on request); the other fields are null.
- ``hourly``: every hour at the minute of ``time`` ("HH:MM", UTC; the hour part is
  ignored; default "00:00", i.e. on the hour).
- ``daily``: every day at ``time`` (UTC; default "00:00").
- ``weekly``: every week on ``dayOfWeek`` (0 = Monday ... 6 = Sunday; required) at ``time``.
- ``monthly``: every month on ``dayOfMonth`` (1-28, so every month has it; required) at
  ``time``.

A field that does not apply to the frequency must be absent or null. The plan says how
often a job may run (``Plan.most_frequent_schedule``): a free account may not schedule
hourly (402 ``plan_limit``).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Mapping

from handlers.shared.http import ApiError

FREQUENCIES = ("manual", "hourly", "daily", "weekly", "monthly")
# how often each scheduled frequency runs: a smaller rank is more frequent
_RANK = {"hourly": 0, "daily": 1, "weekly": 2, "monthly": 3}
TIME_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
DEFAULT_TIME = "00:00"
FIELDS = ("frequency", "time", "dayOfWeek", "dayOfMonth")
_APPLIES = {"manual": (), "hourly": ("time",), "daily": ("time",),
            "weekly": ("time", "dayOfWeek"), "monthly": ("time", "dayOfMonth")}
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Decimal) and value == value.to_integral_value():  # read back from DynamoDB
        return int(value)
    return None


def validate(schedule: Any, plan) -> dict:
    """The normalised schedule (all four fields present, defaults filled in), or
    ``validation_failed`` naming every bad ``schedule.<field>``; ``plan_limit`` (402)
    when the frequency is more frequent than ``plan`` allows."""
    if not isinstance(schedule, Mapping):
        raise ApiError("validation_failed", "schedule must be an object", fields=["schedule"])
    bad: list[str] = []
    notes: list[str] = []
    unknown = sorted(str(k) for k in schedule if k not in FIELDS)
    for key in unknown:
        bad.append(f"schedule.{key[:64]}")
        notes.append(f"a schedule has no field {key[:64]!r}")
    frequency = schedule.get("frequency")
    if frequency not in FREQUENCIES:
        raise ApiError("validation_failed",
                       f"schedule.frequency must be one of {', '.join(FREQUENCIES)}",
                       fields=["schedule.frequency", *bad])
    applies = _APPLIES[frequency]
    out: dict[str, Any] = {"frequency": frequency, "time": None, "dayOfWeek": None, "dayOfMonth": None}

    for key in ("time", "dayOfWeek", "dayOfMonth"):
        if key not in applies and schedule.get(key) is not None:
            bad.append(f"schedule.{key}")
            notes.append(f"schedule.{key} does not apply to a {frequency} schedule")

    if "time" in applies:
        time = schedule.get("time")
        if time is None:
            out["time"] = DEFAULT_TIME
        elif isinstance(time, str) and re.fullmatch(TIME_PATTERN, time):
            out["time"] = time
        else:
            bad.append("schedule.time")
            notes.append("schedule.time must be \"HH:MM\" (24-hour, UTC)")
    if "dayOfWeek" in applies:
        day = _int(schedule.get("dayOfWeek"))
        if schedule.get("dayOfWeek") is None:
            bad.append("schedule.dayOfWeek")
            notes.append("a weekly schedule needs dayOfWeek (0 = Monday ... 6 = Sunday)")
        elif day is None or not 0 <= day <= 6:
            bad.append("schedule.dayOfWeek")
            notes.append("schedule.dayOfWeek must be 0 (Monday) to 6 (Sunday)")
        else:
            out["dayOfWeek"] = day
    if "dayOfMonth" in applies:
        day = _int(schedule.get("dayOfMonth"))
        if schedule.get("dayOfMonth") is None:
            bad.append("schedule.dayOfMonth")
            notes.append("a monthly schedule needs dayOfMonth (1-28)")
        elif day is None or not 1 <= day <= 28:
            bad.append("schedule.dayOfMonth")
            notes.append("schedule.dayOfMonth must be 1 to 28")
        else:
            out["dayOfMonth"] = day
    if bad:
        raise ApiError("validation_failed", "; ".join(notes), fields=bad)

    if plan is not None and frequency in _RANK:
        most = plan.most_frequent_schedule
        if _RANK[frequency] < _RANK.get(most, 0):
            raise ApiError("plan_limit", f"The {plan.name} plan runs jobs {most} at most; "
                                         f"upgrade to schedule {frequency} backups")
    return out


def view(schedule: Mapping[str, Any] | None) -> dict:
    """A stored schedule in the API's shape (numbers as ints)."""
    schedule = schedule or {}
    return {"frequency": schedule.get("frequency", "manual"), "time": schedule.get("time"),
            "dayOfWeek": _int(schedule.get("dayOfWeek")),
            "dayOfMonth": _int(schedule.get("dayOfMonth"))}


def next_run_at(schedule: Mapping[str, Any], after: datetime) -> datetime | None:
    """The first slot of a (normalised) schedule strictly after ``after`` (UTC, whole
    minutes); None for a manual schedule."""
    frequency = schedule.get("frequency")
    if frequency not in _RANK:
        return None
    after = after.astimezone(timezone.utc) if after.tzinfo else after.replace(tzinfo=timezone.utc)
    hour, minute = (int(part) for part in (schedule.get("time") or DEFAULT_TIME).split(":"))
    base = after.replace(second=0, microsecond=0)
    if frequency == "hourly":
        slot = base.replace(minute=minute)
        while slot <= after:
            slot += timedelta(hours=1)
        return slot
    if frequency == "daily":
        slot = base.replace(hour=hour, minute=minute)
        while slot <= after:
            slot += timedelta(days=1)
        return slot
    if frequency == "weekly":
        weekday = _int(schedule.get("dayOfWeek")) or 0
        slot = base.replace(hour=hour, minute=minute) + timedelta(days=(weekday - base.weekday()) % 7)
        while slot <= after:
            slot += timedelta(days=7)
        return slot
    day = _int(schedule.get("dayOfMonth")) or 1
    year, month = after.year, after.month
    while True:
        slot = after.replace(year=year, month=month, day=day, hour=hour, minute=minute,
                             second=0, microsecond=0)
        if slot > after:
            return slot
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def describe(schedule: Mapping[str, Any]) -> str:
    """A short human description ("weekly on Monday at 02:00 UTC")."""
    s = view(schedule)
    if s["frequency"] == "manual":
        return "manual"
    if s["frequency"] == "hourly":
        return f"hourly at minute {s['time'][3:]}"
    if s["frequency"] == "daily":
        return f"daily at {s['time']} UTC"
    if s["frequency"] == "weekly":
        return f"weekly on {WEEKDAYS[s['dayOfWeek']]} at {s['time']} UTC"
    return f"monthly on day {s['dayOfMonth']} at {s['time']} UTC"
