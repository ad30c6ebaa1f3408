"""Spend alerts in the domain: thresholds, burn rate, forecast and the payload."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spendgate.domain.alerts import (
    Forecast,
    ForecastStatus,
    SpendAlert,
    Threshold,
    ThresholdKind,
    burn_rate_per_hour,
    crossed_thresholds,
    forecast_hard_limit,
    thresholds,
)
from spendgate.domain.money import NANOS_PER_USD
from spendgate.domain.spend_limits import (
    EPOCH_START,
    CounterSnapshot,
    Period,
    Scope,
    ScopeKind,
    SpendLimit,
    period_window,
)

USD = NANOS_PER_USD
KEY = Scope(ScopeKind.KEY, "key_x")
NOV_START = datetime(2026, 11, 1, tzinfo=UTC)
DEC_START = datetime(2026, 12, 1, tzinfo=UTC)


def _limit(
    soft: int | None = None, hard: int | None = 100 * USD, shares: tuple[int, ...] = (50, 80, 100)
) -> SpendLimit:
    return SpendLimit(KEY, Period.MONTH, soft_nanos=soft, hard_nanos=hard, alert_shares=shares)


def _snapshot(
    limit: SpendLimit, spent: int, at: datetime, reserved: int = 0, start: datetime = NOV_START
) -> CounterSnapshot:
    end = DEC_START if limit.period is not Period.TOTAL else None
    if limit.period is Period.TOTAL:
        start = EPOCH_START
    return CounterSnapshot(
        org_id="org_1",
        limit=limit,
        period_start=start,
        period_end=end,
        spent_nanos=spent,
        reserved_nanos=reserved,
        at=at,
    )


# thresholds


def test_thresholds_are_the_soft_limit_then_each_share_of_the_hard_limit() -> None:
    found = thresholds(_limit(soft=30 * USD))
    assert [(t.key, t.amount_nanos) for t in found] == [
        ("soft", 30 * USD),
        ("hard:50", 50 * USD),
        ("hard:80", 80 * USD),
        ("hard:100", 100 * USD),
    ]
    assert found[0].kind is ThresholdKind.SOFT and found[0].share is None
    assert found[2].kind is ThresholdKind.HARD_SHARE and found[2].share == 80


def test_a_limit_without_a_hard_part_has_only_the_soft_threshold() -> None:
    assert [t.key for t in thresholds(_limit(soft=5 * USD, hard=None))] == ["soft"]
    assert [t.key for t in thresholds(_limit(hard=10 * USD, shares=(80, 80, 25)))] == ["hard:25", "hard:80"]


def test_a_share_is_reached_only_at_or_above_its_exact_fraction() -> None:
    limit = _limit(hard=7, shares=(50,))  # 50 % of 7 nanos is 3.5: 3 is below, 4 reaches it
    (half,) = thresholds(limit)
    assert half.amount_nanos == 4
    assert crossed_thresholds(limit, 3) == ()
    assert crossed_thresholds(limit, 4) == (half,)


def test_crossed_thresholds_at_a_spent_amount() -> None:
    limit = _limit(soft=60 * USD)
    assert [t.key for t in crossed_thresholds(limit, 49 * USD)] == []
    assert [t.key for t in crossed_thresholds(limit, 50 * USD)] == ["hard:50"]
    assert [t.key for t in crossed_thresholds(limit, 79 * USD)] == ["soft", "hard:50"]
    assert [t.key for t in crossed_thresholds(limit, 100 * USD)] == ["soft", "hard:50", "hard:80", "hard:100"]


def test_nothing_spent_crosses_nothing_even_a_zero_soft_limit() -> None:
    limit = _limit(soft=0, hard=None)
    assert crossed_thresholds(limit, 0) == ()
    assert [t.key for t in crossed_thresholds(limit, 1)] == ["soft"]


@given(
    hard=st.integers(0, 10**15),
    share=st.integers(1, 100),
    spent=st.integers(1, 2 * 10**15),
)
def test_a_share_is_crossed_exactly_when_spent_reaches_that_percentage(
    hard: int, share: int, spent: int
) -> None:
    limit = _limit(hard=hard, shares=(share,))
    crossed = bool(crossed_thresholds(limit, spent))
    assert crossed == (spent * 100 >= hard * share)


@given(
    soft=st.none() | st.integers(0, 10**12),
    hard=st.integers(0, 10**12),
    shares=st.lists(st.integers(1, 100), min_size=1, max_size=5),
    a=st.integers(0, 2 * 10**12),
    b=st.integers(0, 2 * 10**12),
)
def test_spending_more_never_uncrosses_a_threshold(
    soft: int | None, hard: int, shares: list[int], a: int, b: int
) -> None:
    limit = _limit(soft=soft, hard=hard, shares=tuple(shares))
    low, high = sorted((a, b))
    assert set(crossed_thresholds(limit, low)) <= set(crossed_thresholds(limit, high))


# burn rate and forecast


def test_burn_rate_is_spent_per_hour_since_the_period_start() -> None:
    at = NOV_START + timedelta(days=10)
    assert burn_rate_per_hour(24 * USD, NOV_START, at) == USD // 10
    assert burn_rate_per_hour(0, NOV_START, at) == 0
    assert burn_rate_per_hour(5, NOV_START, NOV_START) is None  # no time has passed


def test_burn_rate_rounds_half_even_to_the_nano() -> None:
    # 1 nano over 2 hours is half a nano per hour: rounds to 0; 3 nanos over 2 hours, 1.5 -> 2.
    assert burn_rate_per_hour(1, NOV_START, NOV_START + timedelta(hours=2)) == 0
    assert burn_rate_per_hour(3, NOV_START, NOV_START + timedelta(hours=2)) == 2


def test_forecast_projects_the_average_rate_to_the_hard_limit() -> None:
    at = NOV_START + timedelta(days=10)
    forecast = forecast_hard_limit(50 * USD, 100 * USD, NOV_START, at, DEC_START)
    assert forecast == Forecast(ForecastStatus.AT, NOV_START + timedelta(days=20))


def test_forecast_says_why_there_is_none() -> None:
    at = NOV_START + timedelta(days=10)
    assert forecast_hard_limit(5, None, NOV_START, at, DEC_START).status is ForecastStatus.NO_HARD_LIMIT
    assert forecast_hard_limit(0, 100, NOV_START, at, DEC_START).status is ForecastStatus.ZERO_RATE
    assert forecast_hard_limit(100, 100, NOV_START, at, DEC_START).status is ForecastStatus.REACHED
    assert forecast_hard_limit(5, 100, NOV_START, NOV_START, DEC_START).status is ForecastStatus.UNKNOWN_RATE
    # 30 % in 10 days: 100 % would take 33.3 days, after the month (30 days) ends.
    late = forecast_hard_limit(30 * USD, 100 * USD, NOV_START, at, DEC_START)
    assert late == Forecast(ForecastStatus.AFTER_PERIOD_END)
    # Never-ending periods forecast up to ten years out.
    far = forecast_hard_limit(1, 10**12, NOV_START, at, None)
    assert far.status is ForecastStatus.BEYOND_HORIZON
    assert forecast_hard_limit(50, 100, NOV_START, at, None).status is ForecastStatus.AT


def test_a_forecast_exactly_at_the_period_end_is_after_it() -> None:
    # Half spent at mid-period: the limit would be reached exactly at the reset, so not within it.
    mid = NOV_START + timedelta(days=15)
    assert forecast_hard_limit(50, 100, NOV_START, mid, DEC_START).status is ForecastStatus.AFTER_PERIOD_END


@given(
    spent=st.integers(1, 10**13),
    extra=st.integers(1, 10**13),
    elapsed_s=st.integers(1, 40 * 86_400),
    more=st.integers(0, 10**13),
)
def test_forecast_is_consistent_with_the_rate_and_monotone(
    spent: int, extra: int, elapsed_s: int, more: int
) -> None:
    hard = spent + extra
    at = NOV_START + timedelta(seconds=elapsed_s)
    forecast = forecast_hard_limit(spent, hard, NOV_START, at, None)
    if forecast.status is ForecastStatus.AT:
        assert forecast.at is not None and forecast.at > at
        # At the exact average rate, spending on from `at` until the forecast reaches the hard limit,
        # and a microsecond earlier it does not yet.
        rate = Fraction(spent, (at - NOV_START) // timedelta(microseconds=1))
        remaining = (forecast.at - at) // timedelta(microseconds=1)
        assert spent + rate * remaining >= hard
        assert spent + rate * (remaining - 1) < hard
        # Having spent more by the same moment can only bring the limit closer.
        sooner = forecast_hard_limit(min(spent + more, hard - 1), hard, NOV_START, at, None)
        assert sooner.at is not None and sooner.at <= forecast.at
    else:
        assert forecast.status is ForecastStatus.BEYOND_HORIZON


@given(
    spent=st.integers(1, 10**12),
    hard=st.integers(1, 10**12),
    elapsed_s=st.integers(1, 29 * 86_400),
)
def test_a_forecast_always_falls_inside_the_period(spent: int, hard: int, elapsed_s: int) -> None:
    at = NOV_START + timedelta(seconds=elapsed_s)
    forecast = forecast_hard_limit(spent, hard, NOV_START, at, DEC_START)
    if forecast.status is ForecastStatus.AT:
        assert forecast.at is not None and at < forecast.at < DEC_START
    else:
        assert forecast.status in (ForecastStatus.REACHED, ForecastStatus.AFTER_PERIOD_END)
        assert (forecast.status is ForecastStatus.REACHED) == (spent >= hard)


# the alert


def _alert(limit: SpendLimit, spent: int, at: datetime, threshold_key: str, reserved: int = 0) -> SpendAlert:
    snapshot = _snapshot(limit, spent, at, reserved)
    threshold = next(t for t in thresholds(limit) if t.key == threshold_key)
    start, _ = period_window(limit.period, at, "UTC")
    return SpendAlert(
        id="alert_1",
        snapshot=snapshot,
        threshold=threshold,
        rate_since=start,
        created_at=at + timedelta(seconds=1),
    )


def test_the_payload_carries_amounts_as_nanos_and_usd_strings() -> None:
    at = NOV_START + timedelta(days=10)
    alert = _alert(_limit(soft=40 * USD), 82_100_000_000, at, "hard:80", reserved=400_000_000)
    p = alert.payload()
    assert json.loads(json.dumps(p)) == p  # plain JSON, no floats anywhere
    assert not any(isinstance(v, float) for v in _leaves(p))
    assert p["id"] == "alert_1" and p["type"] == "spend_alert"
    assert p["scope"] == "key:key_x" and p["org_id"] == "org_1" and p["period"] == "month"
    assert p["period_start"] == "2026-11-01T00:00:00+00:00"
    assert p["period_end"] == "2026-12-01T00:00:00+00:00"
    assert p["threshold"] == {
        "key": "hard:80",
        "kind": "hard_share",
        "share": 80,
        "amount_nanos": 80 * USD,
        "amount_usd": "80.00",
    }
    assert (p["spent_nanos"], p["spent_usd"]) == (82_100_000_000, "82.10")
    assert (p["reserved_nanos"], p["reserved_usd"]) == (400_000_000, "0.40")
    assert (p["soft_limit_nanos"], p["soft_limit_usd"]) == (40 * USD, "40.00")
    assert (p["hard_limit_nanos"], p["hard_limit_usd"]) == (100 * USD, "100.00")
    # $82.10 over 240 hours: $0.342083… per hour.
    assert p["burn_rate_per_hour_nanos"] == 342_083_333
    assert p["burn_rate_per_hour_usd"] == "0.342083333"
    forecast_at = datetime.fromisoformat(p["forecast_hard_limit_at"])
    assert p["forecast_status"] == "at"
    assert NOV_START + timedelta(days=12) < forecast_at < NOV_START + timedelta(days=13)
    assert p["created_at"] == "2026-11-11T00:00:01+00:00"
    assert p["title"] == "key:key_x reached 80% of its monthly hard limit"


def test_the_message_says_what_happened_and_what_to_do() -> None:
    at = NOV_START + timedelta(days=10)
    message = _alert(_limit(), 82_100_000_000, at, "hard:80").message
    assert "key:key_x has spent $82.10" in message
    assert "80% or more of its monthly hard limit of $100.00" in message
    assert "$0.342083333 per hour" in message
    assert "reach the hard limit around 2026-11-13 04:" in message
    assert "the period resets at 2026-12-01 00:00 UTC" in message
    assert "spendgate limits set key:key_x --hard USD" in message


def test_the_message_at_the_hard_limit_says_requests_are_refused() -> None:
    at = NOV_START + timedelta(days=10)
    alert = _alert(_limit(), 100 * USD, at, "hard:100")
    assert alert.title == "key:key_x reached 100% of its monthly hard limit"
    assert "New requests are refused (HTTP 429, spend_limit_exceeded)" in alert.message
    assert alert.payload()["forecast_hard_limit_at"] is None
    assert alert.payload()["forecast_status"] == "reached"


def test_the_soft_limit_message_without_a_hard_limit() -> None:
    at = NOV_START + timedelta(days=3)
    alert = _alert(_limit(soft=10 * USD, hard=None), 12 * USD, at, "soft")
    assert alert.title == "key:key_x passed its monthly soft limit"
    assert "passing its soft limit of $10.00" in alert.message
    assert "no hard limit" in alert.message
    p = alert.payload()
    assert p["hard_limit_nanos"] is None and p["hard_limit_usd"] is None
    assert p["forecast_status"] == "no_hard_limit" and p["threshold"]["share"] is None


def test_a_slow_spender_is_told_the_limit_holds_until_the_reset() -> None:
    at = NOV_START + timedelta(days=10)
    message = _alert(_limit(soft=20 * USD), 25 * USD, at, "soft").message
    assert "will not reach the hard limit before the period resets" in message


def test_an_all_time_limit_measures_its_rate_from_when_its_counter_started() -> None:
    limit = SpendLimit(KEY, Period.TOTAL, hard_nanos=100 * USD)
    started = datetime(2026, 11, 1, tzinfo=UTC)
    at = started + timedelta(hours=50)
    snapshot = _snapshot(limit, 50 * USD, at)
    (half,) = [t for t in thresholds(limit) if t.key == "hard:50"]
    alert = SpendAlert("alert_2", snapshot, half, rate_since=started, created_at=at)
    p = alert.payload()
    assert p["burn_rate_per_hour_nanos"] == USD
    assert p["forecast_hard_limit_at"] == (at + timedelta(hours=50)).isoformat()
    assert p["period_end"] is None
    assert "all-time hard limit" in p["title"]
    assert "until the limit is raised (it never resets)" in p["message"]
    unknown = SpendAlert("alert_3", snapshot, half, rate_since=None, created_at=at)
    assert unknown.payload()["burn_rate_per_hour_nanos"] is None
    assert unknown.payload()["forecast_status"] == "unknown_rate"
    assert "no forecast" in unknown.message


@pytest.mark.parametrize("period", list(Period))
def test_every_period_names_itself_in_the_title(period: Period) -> None:
    limit = SpendLimit(KEY, period, hard_nanos=10 * USD)
    at = datetime(2026, 11, 11, 9, tzinfo=UTC)
    start, end = period_window(period, at, "UTC")
    snapshot = CounterSnapshot("org_1", limit, start, end, 10 * USD, 0, at)
    title = SpendAlert("a", snapshot, Threshold(ThresholdKind.HARD_SHARE, 5 * USD, 50), start, at).title
    word = {"day": "daily", "week": "weekly", "month": "monthly", "total": "all-time"}[period.value]
    assert title == f"key:key_x reached 50% of its {word} hard limit"


def _leaves(value: object) -> list[object]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    return [value]


def test_a_refused_call_adds_the_refused_threshold() -> None:
    from spendgate.domain.alerts import ThresholdKind
    from spendgate.domain.spend_limits import Period, Scope, ScopeKind, SpendLimit

    limit = SpendLimit(Scope(ScopeKind.KEY, "k"), Period.DAY, soft_nanos=10, hard_nanos=100)
    plain = crossed_thresholds(limit, 60)
    refused = crossed_thresholds(limit, 60, refused_nanos=45)
    assert [t.key for t in plain] == ["soft", "hard:50"]
    assert [t.key for t in refused] == ["soft", "hard:50", "refused"]
    assert refused[-1].kind is ThresholdKind.REFUSED and refused[-1].amount_nanos == 45
    soft_only = SpendLimit(Scope(ScopeKind.KEY, "k"), Period.DAY, soft_nanos=10)
    assert [t.key for t in crossed_thresholds(soft_only, 60, refused_nanos=45)] == ["soft"]
