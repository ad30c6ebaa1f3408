"""Use cases for spend limits: set, list, remove, and each scope's standing in its period."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from spendgate.domain.alerts import ForecastStatus, burn_rate_per_hour, forecast_hard_limit
from spendgate.domain.clock import Clock
from spendgate.domain.spend_limits import (
    DEFAULT_ALERT_SHARES,
    Counter,
    CounterKey,
    Period,
    Scope,
    SpendLimit,
    period_window,
)
from spendgate.services.errors import Invalid, NotFound
from spendgate.services.ports import AccountStore
from spendgate.services.scopes import resolve_scope, scope_timezone


class LimitStore(Protocol):
    def put_limit(self, limit: SpendLimit, at: datetime) -> None: ...
    def delete_limit(self, scope: Scope, period: Period) -> bool: ...
    def list_limits(self) -> list[SpendLimit]: ...
    def counters(self, keys: list[CounterKey]) -> dict[CounterKey, Counter]: ...


@dataclass(frozen=True, slots=True)
class LimitStanding:
    limit: SpendLimit
    timezone: str
    period_start: datetime
    period_end: datetime | None
    spent_nanos: int
    reserved_nanos: int
    burn_rate_nanos_per_hour: int  # spent in this period ÷ hours elapsed in it
    forecast_hard_limit_at: datetime | None  # at this rate; None: no hard limit, no spend, or not this period

    @property
    def remaining_nanos(self) -> int | None:
        if self.limit.hard_nanos is None:
            return None
        return max(0, self.limit.hard_nanos - self.spent_nanos - self.reserved_nanos)


def burn_and_forecast(
    limit: SpendLimit, spent_nanos: int, start: datetime, end: datetime | None, now: datetime
) -> tuple[int, datetime | None]:
    """Nano-USD per hour spent so far in the period, and when the hard limit is reached at that rate
    (the same figures the alerts state). A `total` period has no start to measure from: no rate."""
    if end is None:
        return 0, None
    rate = burn_rate_per_hour(spent_nanos, start, now) or 0
    forecast = forecast_hard_limit(spent_nanos, limit.hard_nanos, start, now, end)
    return rate, forecast.at if forecast.status is ForecastStatus.AT else None


class Limits:
    def __init__(
        self,
        limits: LimitStore,
        accounts: AccountStore,
        clock: Clock,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._limits = limits
        self._accounts = accounts
        self._clock = clock
        self._on_change = on_change

    def set(
        self,
        scope_text: str,
        period: str = "month",
        soft_nanos: int | None = None,
        hard_nanos: int | None = None,
        alert_shares: tuple[int, ...] = DEFAULT_ALERT_SHARES,
    ) -> SpendLimit:
        scope = self._scope(scope_text)
        try:
            limit = SpendLimit(
                scope, Period(period), soft_nanos, hard_nanos, tuple(sorted(set(alert_shares)))
            )
        except ValueError as exc:
            raise Invalid(str(exc)) from exc
        self._limits.put_limit(limit, self._clock.now())
        self._changed()
        return limit

    def remove(self, scope_text: str, period: str) -> None:
        scope = self._scope(scope_text)
        if not self._limits.delete_limit(scope, Period(period)):
            raise NotFound(f"no {period} limit on {scope}")
        self._changed()

    def standings(self, scope_text: str | None = None) -> list[LimitStanding]:
        """Every limit (of one scope, or all) with what is spent and held in its current period."""
        wanted = self._scope(scope_text) if scope_text else None
        limits = [limit for limit in self._limits.list_limits() if wanted is None or limit.scope == wanted]
        now = self._clock.now()
        windows = []
        for limit in limits:
            timezone = self._timezone(limit.scope)
            start, end = period_window(limit.period, now, timezone)
            windows.append((limit, timezone, start, end, CounterKey(limit.scope, limit.period, start)))
        counters = self._limits.counters([w[4] for w in windows])
        standings = []
        for limit, timezone, start, end, key in windows:
            counter = counters.get(key, Counter())
            rate, forecast = burn_and_forecast(limit, counter.spent_nanos, start, end, now)
            standings.append(
                LimitStanding(
                    limit, timezone, start, end, counter.spent_nanos, counter.reserved_nanos, rate, forecast
                )
            )
        return standings

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def _scope(self, text: str) -> Scope:
        return resolve_scope(self._accounts, text)[0]

    def _timezone(self, scope: Scope) -> str:
        return scope_timezone(self._accounts, scope)
