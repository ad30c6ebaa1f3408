"""Usage totals per scope and period, split by day, model, key or project."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from spendgate.domain.clock import Clock
from spendgate.domain.periods import local_days, month_bounds
from spendgate.domain.spend_limits import ScopeKind
from spendgate.services.errors import Invalid
from spendgate.services.ports import Store, UsageFilter, UsageTotals
from spendgate.services.scopes import resolve_scope

Breakdown = Literal["day", "model", "key", "project"]


@dataclass(frozen=True, slots=True)
class UsageReport:
    scope: str
    timezone: str
    start: datetime
    end: datetime
    totals: UsageTotals
    by: Breakdown | None
    rows: dict[str, UsageTotals]


class Reporting:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def usage(
        self,
        scope: str | None,
        since: datetime | None = None,
        until: datetime | None = None,
        by: Breakdown | None = None,
    ) -> UsageReport:
        """Without since/until: the current calendar month in the org's time zone (UTC for all orgs)."""
        usage_filter, timezone = self._resolve(scope)
        month_start, month_end = month_bounds(self._clock.now(), timezone)
        start = since or month_start
        end = until or (month_end if since is None else self._clock.now())
        if start.tzinfo is None or end.tzinfo is None:
            raise Invalid("since and until need a time zone offset, e.g. 2026-11-01T00:00:00+08:00")
        if end <= start:
            raise Invalid("until must be after since")
        totals = self._store.usage_totals(usage_filter, start, end)
        rows: dict[str, UsageTotals] = {}
        if by == "day":
            for day_start, day_end in local_days(start, end, timezone):
                day = day_start.astimezone(ZoneInfo(timezone)).date().isoformat()
                rows[day] = self._store.usage_totals(usage_filter, day_start, day_end)
        elif by is not None:
            rows = self._store.usage_grouped(usage_filter, start, end, by)
        return UsageReport(
            scope=scope or "all", timezone=timezone, start=start, end=end, totals=totals, by=by, rows=rows
        )

    def _resolve(self, scope: str | None) -> tuple[UsageFilter, str]:
        if scope is None or scope == "all":
            return UsageFilter(), "UTC"
        resolved, timezone = resolve_scope(self._store, scope)
        field = {ScopeKind.ORG: "org_id", ScopeKind.PROJECT: "project_id", ScopeKind.KEY: "key_id"}[
            resolved.kind
        ]
        return UsageFilter(**{field: resolved.id}), timezone
