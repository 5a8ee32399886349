"""Time as the API shows it: ISO-8601 UTC strings with a Z; epoch seconds for TTLs."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone


def now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime | None = None) -> str:
    moment = moment or now()
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_iso(text: str) -> datetime:
    """An ISO-8601 time (Z or offset); naive times are taken as UTC. ValueError otherwise."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def epoch(moment: datetime | None = None) -> int:
    return int((moment or now()).timestamp())


def ttl_after(days: float = 0, seconds: float = 0) -> int:
    """Epoch seconds ``days``/``seconds`` from now: a DynamoDB TTL value."""
    return int(time.time() + days * 86400 + seconds)


def in_future(**delta: float) -> datetime:
    return now() + timedelta(**delta)
