"""Spend alerts: which thresholds of a limit a scope has crossed, how fast it is spending, when it
will reach its hard limit at that rate, and the alert every channel receives.

A limit's thresholds are its soft limit and each configured share of its hard limit (50/80/100 % by
default). Each fires at most once per scope, period and threshold (the services enforce that with the
store); this module only says what is crossed and what the alert says. Pure: the time is always an
argument.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from fractions import Fraction
from typing import Any

from spendgate.domain.money import format_usd
from spendgate.domain.spend_limits import CounterSnapshot, Period, Scope, SpendLimit

ALERT_TYPE = "spend_alert"
_MICROS_PER_HOUR = 3_600 * 1_000_000
# A forecast further out than this (for `total` limits, which never reset) is not worth stating.
FORECAST_HORIZON = timedelta(days=3_650)

_ADJECTIVE = {Period.DAY: "daily", Period.WEEK: "weekly", Period.MONTH: "monthly", Period.TOTAL: "all-time"}


class ThresholdKind(StrEnum):
    SOFT = "soft"
    HARD_SHARE = "hard_share"
    REFUSED = "refused"  # the hard limit refused a call: the moment service actually stops


@dataclass(frozen=True, slots=True)
class Threshold:
    """One point on a limit at which an alert fires: the soft limit, or `share` % of the hard one."""

    kind: ThresholdKind
    amount_nanos: int
    share: int | None = None  # percent of the hard limit, for HARD_SHARE

    @property
    def key(self) -> str:
        """What identifies it within a scope and period: "soft" or "hard:80"."""
        if self.kind is ThresholdKind.HARD_SHARE:
            return f"hard:{self.share}"
        return self.kind.value

    def crossed_by(self, spent_nanos: int) -> bool:
        """Reached or passed. Nothing spent crosses nothing (a $0 soft limit fires on the first spend)."""
        return spent_nanos > 0 and spent_nanos >= self.amount_nanos


@functools.lru_cache(maxsize=4096)
def thresholds(limit: SpendLimit) -> tuple[Threshold, ...]:
    """The soft limit (if any), then each distinct share of the hard limit (if any), ascending.

    A share's amount is rounded up to the nano, so `spent >= amount` is exactly
    `spent * 100 >= hard * share`: 80 % of a limit is never reported as reached below 80 %.
    """
    found: list[Threshold] = []
    if limit.soft_nanos is not None:
        found.append(Threshold(ThresholdKind.SOFT, limit.soft_nanos))
    if limit.hard_nanos is not None:
        for share in sorted(set(limit.alert_shares)):
            amount = -((-limit.hard_nanos * share) // 100)  # ceiling division
            found.append(Threshold(ThresholdKind.HARD_SHARE, amount, share))
    return tuple(found)


def crossed_thresholds(
    limit: SpendLimit, spent_nanos: int, refused_nanos: int | None = None
) -> tuple[Threshold, ...]:
    """The thresholds reached; a refused call (its worst case `refused_nanos`) adds the `refused` one.

    Spend never passes a hard limit, and calls are refused on their worst case, so the 100% share is
    seldom reached exactly: the first refusal in a period is what tells that calls are being turned
    away."""
    crossed = tuple(t for t in thresholds(limit) if t.crossed_by(spent_nanos))
    if refused_nanos is None or limit.hard_nanos is None:
        return crossed
    return (*crossed, Threshold(ThresholdKind.REFUSED, refused_nanos))


def burn_rate_per_hour(spent_nanos: int, since: datetime, at: datetime) -> int | None:
    """What was spent since `since` per hour, in nano-USD (rounded half-even); None when no time has
    passed. `since` is the period's start, or for a `total` limit the moment its counter started."""
    elapsed = _micros(at - since)
    if elapsed <= 0:
        return None
    return round(Fraction(spent_nanos * _MICROS_PER_HOUR, elapsed))


class ForecastStatus(StrEnum):
    AT = "at"  # the hard limit will be reached at `Forecast.at`
    REACHED = "reached"  # already reached
    NO_HARD_LIMIT = "no_hard_limit"
    ZERO_RATE = "zero_rate"  # nothing spent yet, so no rate to project
    UNKNOWN_RATE = "unknown_rate"  # no time has passed to measure a rate over
    AFTER_PERIOD_END = "after_period_end"  # at this rate, not before the period resets
    BEYOND_HORIZON = "beyond_horizon"  # never-ending (total) period, and more than ten years away


@dataclass(frozen=True, slots=True)
class Forecast:
    status: ForecastStatus
    at: datetime | None = None  # set only for ForecastStatus.AT


def forecast_hard_limit(
    spent_nanos: int,
    hard_nanos: int | None,
    since: datetime,
    at: datetime,
    period_end: datetime | None,
) -> Forecast:
    """When, spending on at the average rate since `since`, spent reaches `hard_nanos`.

    Computed from the exact rate (not the rounded per-hour figure), rounded up to the microsecond.
    """
    if hard_nanos is None:
        return Forecast(ForecastStatus.NO_HARD_LIMIT)
    if spent_nanos >= hard_nanos:
        return Forecast(ForecastStatus.REACHED)
    if spent_nanos <= 0:
        return Forecast(ForecastStatus.ZERO_RATE)
    elapsed = _micros(at - since)
    if elapsed <= 0:
        return Forecast(ForecastStatus.UNKNOWN_RATE)
    remaining_micros = -((-(hard_nanos - spent_nanos) * elapsed) // spent_nanos)  # ceiling
    horizon = _micros(period_end - at) if period_end is not None else _micros(FORECAST_HORIZON)
    if remaining_micros >= horizon:
        return Forecast(
            ForecastStatus.AFTER_PERIOD_END if period_end is not None else ForecastStatus.BEYOND_HORIZON
        )
    return Forecast(ForecastStatus.AT, at + timedelta(microseconds=remaining_micros))


def _micros(delta: timedelta) -> int:
    return delta // timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class SpendAlert:
    """One fired alert: a snapshot of a limited scope and the threshold it crossed."""

    id: str
    snapshot: CounterSnapshot
    threshold: Threshold
    rate_since: datetime | None  # period start; for `total`, when the counter started (None: unknown)
    created_at: datetime

    @property
    def scope(self) -> Scope:
        return self.snapshot.limit.scope

    @property
    def burn_rate_per_hour(self) -> int | None:
        if self.rate_since is None:
            return None
        return burn_rate_per_hour(self.snapshot.spent_nanos, self.rate_since, self.snapshot.at)

    @property
    def forecast(self) -> Forecast:
        s = self.snapshot
        if self.rate_since is None:
            if s.limit.hard_nanos is None:
                return Forecast(ForecastStatus.NO_HARD_LIMIT)
            if s.spent_nanos >= s.limit.hard_nanos:
                return Forecast(ForecastStatus.REACHED)
            return Forecast(ForecastStatus.UNKNOWN_RATE)
        return forecast_hard_limit(s.spent_nanos, s.limit.hard_nanos, self.rate_since, s.at, s.period_end)

    @property
    def title(self) -> str:
        """One line, e.g. for an e-mail subject: "key:key_x reached 80% of its monthly hard limit"."""
        adjective = _ADJECTIVE[self.snapshot.limit.period]
        if self.threshold.kind is ThresholdKind.SOFT:
            return f"{self.scope} passed its {adjective} soft limit"
        if self.threshold.kind is ThresholdKind.REFUSED:
            return f"{self.scope} is refusing calls at its {adjective} hard limit"
        return f"{self.scope} reached {self.threshold.share}% of its {adjective} hard limit"

    @property
    def message(self) -> str:
        return alert_message(self)

    def payload(self) -> dict[str, Any]:
        """The JSON object every channel receives (amounts in nano-USD and as USD decimal strings)."""
        s = self.snapshot
        limit = s.limit
        rate = self.burn_rate_per_hour
        forecast = self.forecast
        return {
            "id": self.id,
            "type": ALERT_TYPE,
            "title": self.title,
            "org_id": s.org_id,
            "scope": str(self.scope),
            "period": limit.period.value,
            "period_start": s.period_start.isoformat(),
            "period_end": s.period_end.isoformat() if s.period_end is not None else None,
            "threshold": {
                "key": self.threshold.key,
                "kind": self.threshold.kind.value,
                "share": self.threshold.share,
                "amount_nanos": self.threshold.amount_nanos,
                "amount_usd": format_usd(self.threshold.amount_nanos),
            },
            "spent_nanos": s.spent_nanos,
            "spent_usd": format_usd(s.spent_nanos),
            "reserved_nanos": s.reserved_nanos,
            "reserved_usd": format_usd(s.reserved_nanos),
            "soft_limit_nanos": limit.soft_nanos,
            "soft_limit_usd": _usd_or_none(limit.soft_nanos),
            "hard_limit_nanos": limit.hard_nanos,
            "hard_limit_usd": _usd_or_none(limit.hard_nanos),
            "burn_rate_per_hour_nanos": rate,
            "burn_rate_per_hour_usd": _usd_or_none(rate),
            "burn_rate_since": self.rate_since.isoformat() if self.rate_since is not None else None,
            "forecast_hard_limit_at": forecast.at.isoformat() if forecast.at is not None else None,
            "forecast_status": forecast.status.value,
            "measured_at": s.at.isoformat(),
            "created_at": self.created_at.isoformat(),
            "message": self.message,
        }


def alert_message(alert: SpendAlert) -> str:
    """What happened, what happens next at this rate, and what to do, in plain English."""
    s = alert.snapshot
    limit = s.limit
    scope = str(alert.scope)
    adjective = _ADJECTIVE[limit.period]
    spent = _dollars(s.spent_nanos)
    threshold = alert.threshold
    resets = f"the period resets at {_when(s.period_end)}" if s.period_end is not None else None
    refused_until = f"until {resets}" if resets else "until the limit is raised (it never resets)"
    parts: list[str] = []

    if threshold.kind is ThresholdKind.SOFT:
        parts.append(
            f"{scope} has spent {spent} in its {adjective} period, passing its soft limit of "
            f"{_dollars(threshold.amount_nanos)}."
        )
        if limit.hard_nanos is None:
            parts.append("It has no hard limit, so its requests go on being served.")
        else:
            parts.append(f"Its hard limit is {_dollars(limit.hard_nanos)}.")
            parts.append(_forecast_sentence(alert))
            parts.append(f"At the hard limit, requests are refused (HTTP 429) {refused_until}.")
        parts.append(
            f"If this spending is expected, raise the limits with `spendgate limits set {scope} "
            f"--soft USD --hard USD`; if not, see what drives it with `spendgate usage {scope} --by model`."
        )
    elif threshold.kind is ThresholdKind.REFUSED:
        assert limit.hard_nanos is not None
        left = max(limit.hard_nanos - s.spent_nanos - s.reserved_nanos, 0)
        parts.append(
            f"{scope} refused a call (HTTP 429, spend_limit_exceeded): its {adjective} hard limit of "
            f"{_dollars(limit.hard_nanos)} has {_dollars(left)} left ({spent} spent) and the call could cost "
            f"up to {_dollars(threshold.amount_nanos)}. Calls that do not fit are refused {refused_until}."
        )
        parts.append(
            f"To resume now, raise the hard limit with `spendgate limits set {scope} --hard USD`; "
            "smaller max_tokens make calls fit in what is left."
        )
    elif threshold.share is not None and threshold.share >= 100:
        assert limit.hard_nanos is not None
        parts.append(
            f"{scope} has reached its {adjective} hard limit of {_dollars(limit.hard_nanos)} "
            f"({spent} spent). New requests are refused (HTTP 429, spend_limit_exceeded) {refused_until}."
        )
        parts.append(f"To resume now, raise the hard limit with `spendgate limits set {scope} --hard USD`.")
    else:
        assert limit.hard_nanos is not None
        parts.append(
            f"{scope} has spent {spent}, {threshold.share}% or more of its {adjective} hard limit of "
            f"{_dollars(limit.hard_nanos)}."
        )
        parts.append(_forecast_sentence(alert))
        parts.append(f"At the hard limit, requests are refused (HTTP 429) {refused_until}.")
        parts.append(
            f"To avoid an interruption, raise the hard limit with `spendgate limits set {scope} "
            f"--hard USD`, or reduce usage (`spendgate usage {scope} --by model` shows what drives it)."
        )
    return " ".join(parts)


def _forecast_sentence(alert: SpendAlert) -> str:
    rate = alert.burn_rate_per_hour
    forecast = alert.forecast
    pace = f"At the current rate of {_dollars(rate)} per hour" if rate is not None else "At the current rate"
    match forecast.status:
        case ForecastStatus.AT:
            assert forecast.at is not None
            return f"{pace}, it will reach the hard limit around {_when(forecast.at)}."
        case ForecastStatus.AFTER_PERIOD_END:
            return f"{pace}, it will not reach the hard limit before the period resets."
        case ForecastStatus.BEYOND_HORIZON:
            return f"{pace}, it will not reach the hard limit within ten years."
        case ForecastStatus.REACHED:
            return "It has already reached the hard limit."
        case _:
            return "Its spending rate cannot be measured yet, so there is no forecast."


def _dollars(nanos: int | None) -> str:
    return "$" + format_usd(nanos or 0)


def _usd_or_none(nanos: int | None) -> str | None:
    return None if nanos is None else format_usd(nanos)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
