"""The SQL ledger applies the domain's reservation rules exactly, on SQLite and PostgreSQL, and keeps
a hard limit under concurrent writers that share one database (as gateway replicas do)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spendgate.adapters.store.ledger_store import RecordOp, ReleaseOp, ReserveOp, SqlLedgerStore
from spendgate.adapters.store.sql_store import SqlStore
from spendgate.domain.events import CallStatus, UsageEvent
from spendgate.domain.spend_limits import (
    CounterKey,
    Decision,
    Hold,
    Period,
    ReserveOutcome,
    Scope,
    ScopeKind,
    SpendLedger,
    SpendLimit,
)
from spendgate.domain.usage import TokenUsage

T0 = datetime(2026, 11, 15, tzinfo=UTC)
KEY = CounterKey(Scope(ScopeKind.KEY, "k"), Period.MONTH, datetime(2026, 11, 1, tzinfo=UTC))
ORG = CounterKey(Scope(ScopeKind.ORG, "o"), Period.DAY, datetime(2026, 11, 15, tzinfo=UTC))


def event(request_id: str, cost: int) -> UsageEvent:
    return UsageEvent(
        request_id,
        T0,
        "o",
        "p",
        "k",
        "gpt-4o-mini",
        "sim",
        "chat/completions",
        TokenUsage(1, 1),
        cost,
        CallStatus.OK,
        1,
        False,
        False,
    )


def test_limits_round_trip(store: SqlStore) -> None:
    ledger = SqlLedgerStore(store.engine)
    limit = SpendLimit(Scope(ScopeKind.KEY, "k"), Period.MONTH, soft_nanos=5, hard_nanos=10)
    ledger.put_limit(limit, T0)
    ledger.put_limit(
        SpendLimit(Scope(ScopeKind.KEY, "k"), Period.MONTH, hard_nanos=20, alert_shares=(90,)), T0
    )
    assert ledger.list_limits() == [SpendLimit(Scope(ScopeKind.KEY, "k"), Period.MONTH, None, 20, (90,))]
    assert ledger.delete_limit(Scope(ScopeKind.KEY, "k"), Period.MONTH)
    assert not ledger.delete_limit(Scope(ScopeKind.KEY, "k"), Period.MONTH)


def test_reserve_settle_release_and_expiry(store: SqlStore) -> None:
    ledger = SqlLedgerStore(store.engine)
    hold = Hold("r1", ((KEY, 100), (ORG, None)), 60, T0 + timedelta(minutes=2))
    [outcome] = ledger.apply([ReserveOp(hold, "gw_a", T0)])
    assert isinstance(outcome, ReserveOutcome) and outcome.decision is Decision.ADMIT
    [blocked] = ledger.apply([ReserveOp(Hold("r2", ((KEY, 100),), 50, T0), "gw_a", T0)])
    assert isinstance(blocked, ReserveOutcome) and blocked.decision is Decision.WAIT
    [states] = ledger.apply([RecordOp(event("r1", 25), "r1")])
    assert {s.key: (s.spent_nanos, s.reserved_nanos) for s in states} == {KEY: (25, 0), ORG: (25, 0)}  # type: ignore[union-attr]
    ledger.apply([RecordOp(event("r1", 25), "r1")])  # a replayed event posts nothing
    assert ledger.counters([KEY])[KEY].spent_nanos == 25
    [refused] = ledger.apply([ReserveOp(Hold("r3", ((KEY, 100),), 80, T0), "gw_a", T0)])
    assert isinstance(refused, ReserveOutcome) and refused.decision is Decision.REFUSE
    ledger.apply([ReserveOp(Hold("r4", ((KEY, 100),), 70, T0 + timedelta(seconds=1)), "gw_dead", T0)])
    assert ledger.refresh_holds("gw_a", ["r4"], T0 + timedelta(hours=1)) == 0  # not gw_a's hold
    assert ledger.expire_holds(T0 + timedelta(seconds=2)) == 1
    assert ledger.counters([KEY])[KEY].reserved_nanos == 0
    ledger.apply([RecordOp(event("r4", 30), "r4")])  # late: the cost is posted, nothing released twice
    assert (ledger.counters([KEY])[KEY].spent_nanos, ledger.counters([KEY])[KEY].reserved_nanos) == (55, 0)
    ledger.apply([ReleaseOp("nobody")])
    ledger.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["reserve", "settle", "release"]), st.integers(1, 60), st.booleans()),
        max_size=40,
    )
)
def test_the_sql_ledger_agrees_with_the_domain_model(
    store: SqlStore, steps: list[tuple[str, int, bool]]
) -> None:
    ledger = SqlLedgerStore(store.engine)
    run = f"{len(ledger.holds())}-{id(steps)}-"  # hypothesis reuses the database: fresh counters per run
    key = CounterKey(Scope(ScopeKind.KEY, run), Period.TOTAL, datetime(1970, 1, 1, tzinfo=UTC))
    org = CounterKey(Scope(ScopeKind.ORG, run), Period.TOTAL, datetime(1970, 1, 1, tzinfo=UTC))
    model = SpendLedger()
    live: list[str] = []
    for number, (kind, amount, both) in enumerate(steps):
        if kind == "reserve":
            hold = Hold(f"{run}{number}", ((key, 150),) + (((org, 100),) if both else ()), amount, T0)
            [outcome] = ledger.apply([ReserveOp(hold, "gw", T0)])
            assert isinstance(outcome, ReserveOutcome)
            assert outcome.decision is model.reserve(hold)
            if outcome.decision is Decision.ADMIT:
                live.append(hold.request_id)
        elif live:
            request_id = live.pop(amount % len(live))
            cost = model.holds[request_id].amount_nanos // 2 if kind == "settle" else 0
            ledger.apply(
                [RecordOp(event(request_id, cost), request_id)]
                if kind == "settle"
                else [ReleaseOp(request_id)]
            )
            model.settle(request_id, cost)
        stored = ledger.counters([key, org])
        for counter_key in (key, org):
            expected = model.counters.get(counter_key)
            if expected is not None:
                assert (stored[counter_key].spent_nanos, stored[counter_key].reserved_nanos) == (
                    expected.spent_nanos,
                    expected.reserved_nanos,
                )
    ledger.close()


def test_concurrent_writers_never_pass_the_hard_limit(pg_url: str) -> None:
    """Eight writers, each with its own engine and connection (like separate gateway replicas),
    reserve and settle against one PostgreSQL counter at once."""
    from spendgate.adapters.store.engine import create_store_engine, migrate

    migrate_engine = create_store_engine(pg_url)
    migrate(migrate_engine)
    migrate_engine.dispose()
    hard = 10_000
    admitted: list[int] = []
    lock = threading.Lock()

    def writer(number: int) -> None:
        engine = create_store_engine(pg_url)
        ledger = SqlLedgerStore(engine)
        for i in range(60):
            request_id = f"w{number}-{i}"
            [outcome] = ledger.apply(
                [ReserveOp(Hold(request_id, ((KEY, hard),), 100, T0), f"gw{number}", T0)]
            )
            assert isinstance(outcome, ReserveOutcome)
            if outcome.decision is Decision.ADMIT:
                with lock:
                    admitted.append(100)
                ledger.apply([RecordOp(event(request_id, 100), request_id)])
        ledger.close()
        engine.dispose()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine = create_store_engine(pg_url)
    counter = SqlLedgerStore(engine).counters([KEY])[KEY]
    engine.dispose()
    assert counter.spent_nanos == sum(admitted) == hard  # the budget is used exactly, never passed
    assert counter.reserved_nanos == 0


def test_reservations_commit_without_fsync_and_events_with_it(tmp_path: Path) -> None:
    """A batch of holds only is committed with synchronous=NORMAL (visible at once, not power-cut-safe);
    the writer goes back to FULL, so usage events stay fsynced."""
    from spendgate.adapters.store.engine import create_store_engine, migrate

    engine = create_store_engine(f"sqlite:///{tmp_path / 'sync.db'}", "full")
    migrate(engine)
    ledger = SqlLedgerStore(engine)
    levels: list[int] = []

    def trace(statement: str) -> None:
        if statement.startswith("PRAGMA synchronous="):
            levels.append(int(statement.rsplit("=", 1)[1]) if statement[-1].isdigit() else 1)

    ledger.apply([ReserveOp(Hold("h1", ((KEY, 1000),), 10, T0), "gw", T0)])  # opens the writer connection
    writer: Any = ledger._writer
    writer.connection.driver_connection.set_trace_callback(trace)
    ledger.apply([ReserveOp(Hold("h2", ((KEY, 1000),), 10, T0), "gw", T0)])
    ledger.apply([RecordOp(event("h2", 5), "h2")])
    assert levels == [1, 2]  # relaxed for the hold, back to FULL after it; the event's batch is untouched
    assert writer.connection.driver_connection.execute("PRAGMA synchronous").fetchone()[0] == 2
    ledger.close()
    engine.dispose()
