"""Time as a dependency: everything that needs `now` takes a Clock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to (`serve --test-clock`, tests)."""

    def __init__(self, start: datetime) -> None:
        self._lock = threading.Lock()
        self._now = _require_aware(start)

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = _require_aware(when)

    def advance(self, by: timedelta) -> datetime:
        if by < timedelta(0):
            raise ValueError("a clock only moves forward")
        with self._lock:
            self._now += by
            return self._now


def _require_aware(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError("times must carry a timezone")
    return when.astimezone(UTC)
