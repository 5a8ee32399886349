"""Schedules: validation (formats, ranges, fields that do not apply, the plan's most
frequent schedule) and the next slot after a moment."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from handlers.shared import schedules
from handlers.shared.http import ApiError
from handlers.shared.plans import PLANS_BY_ID

FREE, STARTER = PLANS_BY_ID["free"], PLANS_BY_ID["starter"]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


@pytest.mark.parametrize("given, expected", [
    ({"frequency": "manual"}, {"frequency": "manual", "time": None, "dayOfWeek": None, "dayOfMonth": None}),
    ({"frequency": "daily"}, {"frequency": "daily", "time": "00:00", "dayOfWeek": None, "dayOfMonth": None}),
    ({"frequency": "daily", "time": "23:59"},
     {"frequency": "daily", "time": "23:59", "dayOfWeek": None, "dayOfMonth": None}),
    ({"frequency": "weekly", "time": "02:30", "dayOfWeek": 6, "dayOfMonth": None},
     {"frequency": "weekly", "time": "02:30", "dayOfWeek": 6, "dayOfMonth": None}),
    ({"frequency": "monthly", "dayOfMonth": 28},
     {"frequency": "monthly", "time": "00:00", "dayOfWeek": None, "dayOfMonth": 28}),
])
def test_valid_schedules_are_normalised(given, expected):
    assert schedules.validate(given, FREE) == expected


@pytest.mark.parametrize("given, fields", [
    ({"frequency": "daily", "time": "24:00"}, ["schedule.time"]),
    ({"frequency": "daily", "time": "9:00"}, ["schedule.time"]),
    ({"frequency": "daily", "time": "09:60"}, ["schedule.time"]),
    ({"frequency": "daily", "time": 900}, ["schedule.time"]),
    ({"frequency": "weekly", "dayOfWeek": 7}, ["schedule.dayOfWeek"]),
    ({"frequency": "weekly", "dayOfWeek": -1}, ["schedule.dayOfWeek"]),
    ({"frequency": "weekly", "dayOfWeek": True}, ["schedule.dayOfWeek"]),
    ({"frequency": "weekly"}, ["schedule.dayOfWeek"]),
    ({"frequency": "monthly", "dayOfMonth": 29}, ["schedule.dayOfMonth"]),
    ({"frequency": "monthly", "dayOfMonth": 0}, ["schedule.dayOfMonth"]),
    ({"frequency": "monthly"}, ["schedule.dayOfMonth"]),
    ({"frequency": "daily", "dayOfWeek": 1}, ["schedule.dayOfWeek"]),
    ({"frequency": "manual", "time": "10:00"}, ["schedule.time"]),
    ({"frequency": "yearly"}, ["schedule.frequency"]),
    ({"frequency": "daily", "tz": "CET"}, ["schedule.tz"]),
    ("daily", ["schedule"]),
])
def test_invalid_schedules_name_the_field(given, fields):
    with pytest.raises(ApiError) as caught:
        schedules.validate(given, STARTER)
    assert caught.value.code == "validation_failed" and caught.value.status == 400
    assert caught.value.fields == fields


def test_hourly_is_beyond_the_free_plan_but_within_starter():
    with pytest.raises(ApiError) as caught:
        schedules.validate({"frequency": "hourly"}, FREE)
    assert caught.value.code == "plan_limit" and caught.value.status == 402
    assert "daily" in caught.value.message
    assert schedules.validate({"frequency": "hourly", "time": "00:15"}, STARTER)["time"] == "00:15"


def test_bad_input_is_reported_before_the_plan_limit():
    with pytest.raises(ApiError) as caught:
        schedules.validate({"frequency": "hourly", "time": "99:99"}, FREE)
    assert caught.value.code == "validation_failed"


@pytest.mark.parametrize("schedule, after, expected", [
    ({"frequency": "manual"}, "2026-11-26T10:00:00", None),
    ({"frequency": "hourly", "time": "00:15"}, "2026-11-26T10:00:00", "2026-11-26T10:15:00"),
    ({"frequency": "hourly", "time": "07:15"}, "2026-11-26T10:15:00", "2026-11-26T11:15:00"),
    ({"frequency": "hourly", "time": "00:00"}, "2026-12-31T23:30:00", "2027-01-01T00:00:00"),
    ({"frequency": "daily", "time": "02:00"}, "2026-11-26T01:59:59", "2026-11-26T02:00:00"),
    ({"frequency": "daily", "time": "02:00"}, "2026-11-26T02:00:00", "2026-11-27T02:00:00"),
    # 2026-11-26 is a Thursday (3)
    ({"frequency": "weekly", "time": "02:00", "dayOfWeek": 0}, "2026-11-26T10:00:00", "2026-11-30T02:00:00"),
    ({"frequency": "weekly", "time": "12:00", "dayOfWeek": 3}, "2026-11-26T10:00:00", "2026-11-26T12:00:00"),
    ({"frequency": "weekly", "time": "09:00", "dayOfWeek": 3}, "2026-11-26T10:00:00", "2026-12-03T09:00:00"),
    ({"frequency": "monthly", "time": "00:00", "dayOfMonth": 1}, "2026-12-15T00:00:00", "2027-01-01T00:00:00"),
    ({"frequency": "monthly", "time": "06:00", "dayOfMonth": 28}, "2027-02-10T00:00:00", "2027-02-28T06:00:00"),
    ({"frequency": "monthly", "time": "06:00", "dayOfMonth": 26}, "2026-11-26T06:00:00", "2026-12-26T06:00:00"),
])
def test_next_run_at(schedule, after, expected):
    full = schedules.validate(schedule, STARTER)
    result = schedules.next_run_at(full, at(after))
    assert result == (at(expected) if expected else None)
    if result is not None:
        assert result > at(after) and result.tzinfo is not None


def test_next_run_at_from_a_stored_schedule_with_decimals():
    from decimal import Decimal

    stored = {"frequency": "weekly", "time": "02:00", "dayOfWeek": Decimal(0), "dayOfMonth": None}
    assert schedules.next_run_at(stored, at("2026-11-26T10:00:00")) == at("2026-11-30T02:00:00")
    assert schedules.view(stored)["dayOfWeek"] == 0
    assert schedules.describe(stored) == "weekly on Monday at 02:00 UTC"
