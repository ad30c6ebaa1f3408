"""Spend limits and reservations.

A limit caps what one scope (an org, a project or a key) may spend per period. Before a call is
forwarded, its worst-case cost is *reserved* on every limited scope that applies, all or nothing;
settling posts the actual cost and releases the rest. The rules here are the single source of
truth: the in-memory ledger below and the SQL store apply the same `decide`.

Periods reset by arithmetic on their boundaries (no sweeping job): the counter for a period is keyed
by the period's start, so a new period simply starts a new counter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from spendgate.domain.periods import day_bounds, month_bounds

EPOCH_START = datetime.fromisoformat("1970-01-01T00:00:00+00:00")
DEFAULT_ALERT_SHARES = (50, 80, 100)


class Period(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    TOTAL = "total"


class ScopeKind(StrEnum):
    ORG = "org"
    PROJECT = "project"
    KEY = "key"


@dataclass(frozen=True, slots=True, order=True)
class Scope:
    kind: ScopeKind
    id: str

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.id}"

    @staticmethod
    def parse(text: str) -> Scope:
        kind, sep, ident = text.partition(":")
        if not sep or not ident or kind not in ScopeKind._value2member_map_:
            raise ValueError(f"a scope is org:ID, project:ID or key:ID, not {text!r}")
        return Scope(ScopeKind(kind), ident)


@dataclass(frozen=True, slots=True)
class SpendLimit:
    scope: Scope
    period: Period
    soft_nanos: int | None = None
    hard_nanos: int | None = None
    alert_shares: tuple[int, ...] = DEFAULT_ALERT_SHARES  # percent of the hard limit that alert

    def __post_init__(self) -> None:
        if self.soft_nanos is None and self.hard_nanos is None:
            raise ValueError("a limit needs a soft limit, a hard limit, or both")
        for value in (self.soft_nanos, self.hard_nanos):
            if value is not None and value < 0:
                raise ValueError("limits cannot be negative")
        if any(not 0 < share <= 100 for share in self.alert_shares):
            raise ValueError("alert shares are percentages in (0, 100]")


def period_window(period: Period, when: datetime, timezone: str) -> tuple[datetime, datetime | None]:
    """The period containing `when`, as UTC [start, end); `total` never ends."""
    if period is Period.TOTAL:
        return EPOCH_START, None
    if period is Period.MONTH:
        return month_bounds(when, timezone)
    if period is Period.DAY:
        return day_bounds(when, timezone)
    local = when.astimezone(ZoneInfo(timezone))
    monday = (local - timedelta(days=local.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    start, _ = day_bounds(monday, timezone)
    # Seven local calendar days later (DST-safe: step day by day).
    end = start
    for _ in range(7):
        end = day_bounds(end, timezone)[1]
    return start, end


class Decision(StrEnum):
    ADMIT = "admit"  # fits beside what is spent and what others hold
    WAIT = "wait"  # fits the limit, but not beside others' pending reservations: wait for them
    REFUSE = "refuse"  # does not fit even if every pending reservation settled at $0


def decide(hard_nanos: int, spent_nanos: int, reserved_nanos: int, amount_nanos: int) -> Decision:
    if spent_nanos + reserved_nanos + amount_nanos <= hard_nanos:
        return Decision.ADMIT
    if spent_nanos + amount_nanos <= hard_nanos:
        return Decision.WAIT
    return Decision.REFUSE


def combine(decisions: list[Decision]) -> Decision:
    """All or nothing across scopes: any refusal refuses; else any wait waits."""
    if Decision.REFUSE in decisions:
        return Decision.REFUSE
    if Decision.WAIT in decisions:
        return Decision.WAIT
    return Decision.ADMIT


@dataclass(frozen=True, slots=True)
class CounterKey:
    """One scope's counter for one period of one limit."""

    scope: Scope
    period: Period
    period_start: datetime


@dataclass(frozen=True, slots=True)
class CounterState:
    key: CounterKey
    spent_nanos: int
    reserved_nanos: int


@dataclass(frozen=True, slots=True)
class ReserveOutcome:
    decision: Decision
    states: tuple[CounterState, ...]  # every counter of the hold, as the decision saw it


@dataclass(slots=True)
class Counter:
    spent_nanos: int = 0
    reserved_nanos: int = 0


@dataclass(frozen=True, slots=True)
class Hold:
    """A reservation: `amount_nanos` held on each counter until settled, released or expired."""

    request_id: str
    counters: tuple[tuple[CounterKey, int | None], ...]  # (counter, its hard limit; None: soft only)
    amount_nanos: int
    expires_at: datetime


@dataclass
class SpendLedger:
    """The reservation rules over in-memory counters (the model the property tests check; the SQL
    store applies the same rules inside transactions)."""

    counters: dict[CounterKey, Counter] = field(default_factory=dict)
    holds: dict[str, Hold] = field(default_factory=dict)
    expired: dict[str, Hold] = field(default_factory=dict)  # a late settlement still posts its cost

    def reserve(self, hold: Hold) -> Decision:
        if hold.request_id in self.holds:
            raise ValueError(f"{hold.request_id} already holds a reservation")
        decision = combine(
            [
                decide(
                    hard, self._counter(key).spent_nanos, self._counter(key).reserved_nanos, hold.amount_nanos
                )
                for key, hard in hold.counters
                if hard is not None
            ]
        )
        if decision is Decision.ADMIT:
            for key, _ in hold.counters:
                self._counter(key).reserved_nanos += hold.amount_nanos
            self.holds[hold.request_id] = hold
        return decision

    def settle(self, request_id: str, cost_nanos: int) -> None:
        """Post the actual cost and release the hold. Settling twice is a no-op; settling a hold that
        already expired posts the cost without releasing anything again."""
        hold = self.holds.pop(request_id, None)
        if hold is not None:
            for key, _ in hold.counters:
                counter = self._counter(key)
                counter.reserved_nanos -= hold.amount_nanos
                counter.spent_nanos += cost_nanos
            return
        late = self.expired.pop(request_id, None)
        if late is not None:
            for key, _ in late.counters:
                self._counter(key).spent_nanos += cost_nanos

    def release(self, request_id: str) -> None:
        self.settle(request_id, 0)

    def expire(self, now: datetime) -> list[str]:
        """Release holds whose request vanished (its process died, say), so nothing leaks."""
        expired = [rid for rid, hold in self.holds.items() if hold.expires_at <= now]
        for request_id in expired:
            hold = self.holds.pop(request_id)
            for key, _ in hold.counters:
                self._counter(key).reserved_nanos -= hold.amount_nanos
            self.expired[request_id] = hold
        return expired

    def _counter(self, key: CounterKey) -> Counter:
        return self.counters.setdefault(key, Counter())


@dataclass(frozen=True, slots=True)
class CounterSnapshot:
    """One limited scope's standing in one period, right after a settlement changed it: what alerts
    are evaluated on (off the hot path)."""

    org_id: str
    limit: SpendLimit
    period_start: datetime
    period_end: datetime | None  # None for `total`
    spent_nanos: int
    reserved_nanos: int
    at: datetime  # when the settlement was committed
    refused_nanos: int | None = None  # set when a call was refused: that call's worst-case cost
