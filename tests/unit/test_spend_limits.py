"""The reservation rules: for any interleaving of reserve, settle, release and expiry, posted spend
never passes a hard limit, and reservations return to zero once every call has ended."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spendgate.domain.spend_limits import (
    CounterKey,
    Decision,
    Hold,
    Period,
    Scope,
    ScopeKind,
    SpendLedger,
    SpendLimit,
    decide,
    period_window,
)

T0 = datetime(2026, 11, 15, tzinfo=UTC)
KEY = CounterKey(Scope(ScopeKind.KEY, "k"), Period.MONTH, T0)
PROJECT = CounterKey(Scope(ScopeKind.PROJECT, "p"), Period.MONTH, T0)
ORG = CounterKey(Scope(ScopeKind.ORG, "o"), Period.DAY, T0)


def test_decide() -> None:
    assert decide(100, 50, 20, 30) is Decision.ADMIT
    assert decide(100, 50, 21, 30) is Decision.WAIT  # fits once the 21 held settles
    assert decide(100, 71, 0, 30) is Decision.REFUSE


operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("reserve"), st.integers(1, 400), st.sets(st.sampled_from([KEY, PROJECT, ORG]), min_size=1)
        ),
        st.tuples(st.just("settle"), st.integers(0, 10_000), st.floats(0, 1)),
        st.tuples(st.just("release"), st.integers(0, 10_000)),
        st.tuples(st.just("expire"), st.integers(0, 10_000)),
    ),
    max_size=120,
)


@settings(max_examples=400, deadline=None)
@given(ops=operations, hards=st.tuples(st.integers(0, 2_000), st.integers(0, 2_000), st.integers(0, 2_000)))
def test_spend_never_passes_a_hard_limit_and_holds_drain(
    ops: list[tuple[object, ...]], hards: tuple[int, int, int]
) -> None:
    hard = dict(zip((KEY, PROJECT, ORG), hards, strict=True))
    ledger = SpendLedger()
    live: list[str] = []
    vanished: set[str] = set()  # requests whose process died: they never settle
    for number, op in enumerate(ops):
        if op[0] == "reserve":
            _, amount, keys = op
            assert isinstance(amount, int) and isinstance(keys, set)
            request_id = f"r{number}"
            hold = Hold(
                request_id,
                tuple((k, hard[k]) for k in sorted(keys, key=str)),
                amount,
                expires_at=T0 + timedelta(seconds=number),
            )
            if ledger.reserve(hold) is Decision.ADMIT:
                live.append(request_id)
        elif live and op[0] == "settle":
            _, pick, share = op
            assert isinstance(pick, int) and isinstance(share, float)
            request_id = live.pop(pick % len(live))
            amount = ledger.holds[request_id].amount_nanos
            ledger.settle(request_id, int(amount * share))  # the actual cost never exceeds the worst case
        elif live and op[0] == "release":
            _, pick = op
            assert isinstance(pick, int)
            ledger.release(live.pop(pick % len(live)))
        elif live and op[0] == "expire":
            _, pick = op
            assert isinstance(pick, int)
            request_id = live.pop(pick % len(live))
            vanished.add(request_id)
            ledger.expire(ledger.holds[request_id].expires_at)
            live = [r for r in live if r in ledger.holds]
        for key, counter in ledger.counters.items():
            assert counter.spent_nanos + counter.reserved_nanos <= hard[key]
            assert counter.reserved_nanos >= 0
    for request_id in list(live):
        ledger.settle(request_id, 0)
    assert all(counter.reserved_nanos == 0 for counter in ledger.counters.values())
    assert not ledger.holds


def test_a_late_settlement_after_expiry_still_posts_its_cost() -> None:
    ledger = SpendLedger()
    hold = Hold("r", ((KEY, 100),), 60, expires_at=T0)
    assert ledger.reserve(hold) is Decision.ADMIT
    ledger.expire(T0)
    assert ledger.counters[KEY].reserved_nanos == 0
    ledger.settle("r", 40)
    assert ledger.counters[KEY].spent_nanos == 40
    ledger.settle("r", 40)  # a replay is a no-op
    assert ledger.counters[KEY].spent_nanos == 40


def test_all_or_nothing_across_scopes() -> None:
    ledger = SpendLedger()
    assert ledger.reserve(Hold("a", ((KEY, 100), (ORG, 50)), 60, T0)) is Decision.REFUSE
    assert ledger.counters[KEY].reserved_nanos == 0


@pytest.mark.parametrize(
    ("period", "start", "end"),
    [
        (Period.DAY, "2026-11-27T16:00:00+00:00", "2026-11-28T16:00:00+00:00"),
        (Period.WEEK, "2026-11-22T16:00:00+00:00", "2026-11-29T16:00:00+00:00"),
        (Period.MONTH, "2026-11-30T16:00:00+00:00", "2026-12-31T16:00:00+00:00"),
    ],
)
def test_periods_in_the_orgs_time_zone(period: Period, start: str, end: str) -> None:
    # Saturday 2026-11-28 03:00 in Shanghai (UTC+8) is Friday 19:00 UTC; Dec 1 starts 16:00 UTC Nov 30.
    when = (
        datetime(2026, 11, 27, 19, tzinfo=UTC)
        if period is not Period.MONTH
        else datetime(2026, 11, 30, 17, tzinfo=UTC)
    )
    assert period_window(period, when, "Asia/Shanghai") == (
        datetime.fromisoformat(start),
        datetime.fromisoformat(end),
    )


def test_limits_validate() -> None:
    with pytest.raises(ValueError):
        SpendLimit(Scope(ScopeKind.KEY, "k"), Period.DAY)
    with pytest.raises(ValueError):
        SpendLimit(Scope(ScopeKind.KEY, "k"), Period.DAY, hard_nanos=-1)
    assert Scope.parse("org:o_1") == Scope(ScopeKind.ORG, "o_1")
    with pytest.raises(ValueError):
        Scope.parse("team:x")
