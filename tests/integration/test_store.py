"""The store on SQLite and PostgreSQL: the same schema, the same answers."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from spendgate.adapters.store.engine import migrate
from spendgate.adapters.store.ledger_store import RecordOp, SqlLedgerStore
from spendgate.adapters.store.ledger_writer import LedgerWriter
from spendgate.adapters.store.sql_store import SqlStore
from spendgate.adapters.store.tables import metadata
from spendgate.domain.clock import ManualClock
from spendgate.domain.events import CallStatus, UsageEvent
from spendgate.domain.usage import TokenUsage
from spendgate.services.accounts import Accounts
from spendgate.services.ports import UsageFilter

T0 = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)


def _event(
    request_id: str,
    key_id: str,
    project_id: str,
    org_id: str,
    cost: int,
    model: str = "gpt-4o-mini",
    at: datetime = T0,
) -> UsageEvent:
    return UsageEvent(
        request_id=request_id,
        occurred_at=at,
        org_id=org_id,
        project_id=project_id,
        key_id=key_id,
        model=model,
        upstream="sim",
        endpoint="chat/completions",
        usage=TokenUsage(input_tokens=10, output_tokens=5, cached_input_tokens=2, reasoning_tokens=1),
        cost_nanos=cost,
        status=CallStatus.OK,
        latency_ms=3,
        streamed=False,
        estimated=False,
    )


def test_migrations_create_exactly_the_declared_schema(store: SqlStore) -> None:
    with store.engine.connect() as c:
        diff = compare_metadata(MigrationContext.configure(c), metadata)
    assert diff == []
    migrate(store.engine)  # running again is a no-op


def test_accounts_round_trip(store: SqlStore) -> None:
    accounts = Accounts(store, ManualClock(T0))
    org = accounts.create_org("Acme", "Asia/Shanghai")
    project = accounts.create_project(org.id, "search")
    key, secret = accounts.create_key(project.id, "ci", ["gpt-4o-mini", "gpt-4o-mini"])
    assert secret.startswith("sg-") and secret not in repr(key)
    assert store.get_org(org.id) == org
    assert store.list_projects(org.id) == [project]
    found = store.find_key_by_hash(key.secret_hash)
    assert found == key and found.models == ("gpt-4o-mini",)
    assert found.created_at == T0 and found.created_at.tzinfo is not None
    revoked = accounts.revoke_key(key.id)
    assert revoked.revoked_at == T0 and not revoked.active
    assert store.set_setting_once("s", "first") == "first"
    assert store.set_setting_once("s", "second") == "first"


def test_usage_events_are_idempotent_and_summed(store: SqlStore) -> None:
    accounts = Accounts(store, ManualClock(T0))
    org = accounts.create_org("Acme")
    p1, p2 = accounts.create_project(org.id, "a"), accounts.create_project(org.id, "b")
    k1, _ = accounts.create_key(p1.id)
    k2, _ = accounts.create_key(p2.id)
    events = [
        _event("r1", k1.id, p1.id, org.id, 100),
        _event("r2", k1.id, p1.id, org.id, 250, "gpt-4o"),
        _event("r3", k2.id, p2.id, org.id, 7),
        _event("old", k2.id, p2.id, org.id, 5, at=T0 - timedelta(days=40)),
    ]
    ledger = SqlLedgerStore(store.engine)
    ledger.apply([RecordOp(event, None) for event in events])
    ledger.apply(
        [RecordOp(dataclasses.replace(events[0], cost_nanos=999_999), None)]
    )  # a replay changes nothing
    ledger.close()
    month = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    totals = store.usage_totals(UsageFilter(org_id=org.id), *month)
    assert (totals.requests, totals.cost_nanos, totals.input_tokens, totals.cached_input_tokens) == (
        3,
        357,
        30,
        6,
    )
    assert store.usage_totals(UsageFilter(key_id=k1.id), *month).cost_nanos == 350
    by_model = store.usage_grouped(UsageFilter(org_id=org.id), *month, "model")
    assert {m: t.cost_nanos for m, t in by_model.items()} == {"gpt-4o": 250, "gpt-4o-mini": 107}
    assert store.get_usage_event("r1") == events[0]


async def test_group_commit_writes_every_event_in_few_transactions(store: SqlStore) -> None:
    accounts = Accounts(store, ManualClock(T0))
    org = accounts.create_org("Acme")
    project = accounts.create_project(org.id, "a")
    key, _ = accounts.create_key(project.id)
    ledger = SqlLedgerStore(store.engine)
    recorder = LedgerWriter(ledger, owner="gw_test")
    await recorder.start()
    await asyncio.gather(
        *(recorder.record(_event(f"g{i}", key.id, project.id, org.id, i)) for i in range(500))
    )
    await recorder.close()
    ledger.close()
    totals = store.usage_totals(UsageFilter(org_id=org.id), T0, T0 + timedelta(seconds=1))
    assert totals.requests == 500 and totals.cost_nanos == sum(range(500))
    assert recorder.batches_written < 50
