"""Calendar periods in an org's time zone, half-open [start, end), returned in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo


def month_bounds(when: datetime, timezone: str) -> tuple[datetime, datetime]:
    local = when.astimezone(ZoneInfo(timezone))
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start.astimezone(UTC), end.astimezone(UTC)


def day_bounds(when: datetime, timezone: str) -> tuple[datetime, datetime]:
    local = when.astimezone(ZoneInfo(timezone))
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    # Add a calendar day in local time, then re-resolve the offset (DST days are 23 or 25 hours).
    end = (start.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=ZoneInfo(timezone))
    return start.astimezone(UTC), end.astimezone(UTC)


def local_days(start: datetime, end: datetime, timezone: str) -> list[tuple[datetime, datetime]]:
    """The local calendar days that overlap [start, end), each clipped to it."""
    days = []
    cursor = start
    while cursor < end:
        day_start, day_end = day_bounds(cursor, timezone)
        days.append((max(day_start, start), min(day_end, end)))
        cursor = day_end
    return days
