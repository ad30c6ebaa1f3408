"""The interfaces the use cases need from the outside world; adapters implement them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol

from spendgate.domain.accounts import ApiKey, Org, Project
from spendgate.domain.events import UsageEvent
from spendgate.domain.spend_limits import CounterSnapshot
from spendgate.domain.usage import TokenUsage

UsageGrouping = Literal["model", "key", "project"]


@dataclass(frozen=True, slots=True)
class UsageFilter:
    org_id: str | None = None
    project_id: str | None = None
    key_id: str | None = None


@dataclass(frozen=True, slots=True)
class UsageTotals:
    requests: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    reasoning_tokens: int
    cost_nanos: int

    @staticmethod
    def zero() -> UsageTotals:
        return UsageTotals(0, 0, 0, 0, 0, 0)


class AccountStore(Protocol):
    def add_org(self, org: Org) -> None: ...
    def get_org(self, org_id: str) -> Org | None: ...
    def list_orgs(self) -> list[Org]: ...
    def add_project(self, project: Project) -> None: ...
    def get_project(self, project_id: str) -> Project | None: ...
    def list_projects(self, org_id: str | None = None) -> list[Project]: ...
    def add_key(self, key: ApiKey) -> None: ...
    def get_key(self, key_id: str) -> ApiKey | None: ...
    def find_key_by_hash(self, secret_hash: str) -> ApiKey | None: ...
    def list_keys(self, project_id: str | None = None) -> list[ApiKey]: ...
    def revoke_key(self, key_id: str, at: datetime) -> ApiKey | None: ...
    def get_setting(self, name: str) -> str | None: ...
    def set_setting_once(self, name: str, value: str) -> str:
        """Store `value` unless the setting exists; return what is stored."""
        ...


class UsageStore(Protocol):
    """Reads; usage events are written by the ledger writer (adapters/store/ledger_writer.py)."""

    def get_usage_event(self, request_id: str) -> UsageEvent | None: ...
    def usage_totals(self, scope: UsageFilter, start: datetime, end: datetime) -> UsageTotals: ...
    def usage_grouped(
        self, scope: UsageFilter, start: datetime, end: datetime, by: UsageGrouping
    ) -> dict[str, UsageTotals]: ...


class Store(AccountStore, UsageStore, Protocol):
    pass


class PriceBook(Protocol):
    def has_price(self, model: str, at: datetime) -> bool: ...
    def cost_usd(self, model: str, usage: TokenUsage, at: datetime) -> Decimal:
        """The exact cost; raises LookupError for a model without a price."""
        ...


class AlertSink(Protocol):
    def has_due(self, snapshots: Sequence[CounterSnapshot]) -> bool:
        """Cheap, synchronous: whether `counters_changed` has anything to do for these snapshots."""
        ...

    async def counters_changed(self, snapshots: Sequence[CounterSnapshot]) -> None:
        """Called after settlements commit, off the hot path; fires the alerts now due."""
        ...
