"""Reservations against spend limits, with waiting instead of refusing while room may come back.

`reserve` holds a call's worst-case cost on every limited scope that applies (key, project, org),
all or nothing, through the ledger (an atomic conditional update in the database). If the call fits
its limits but not beside other calls' pending holds, it waits, in arrival order, for them to
settle; it is refused only when what is already spent leaves no room for it, or when the bounded
wait runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from spendgate.domain.accounts import ApiKey, Org
from spendgate.domain.clock import Clock
from spendgate.domain.money import format_usd
from spendgate.domain.refusals import RefusalCode, Refused
from spendgate.domain.spend_limits import (
    CounterKey,
    CounterState,
    Decision,
    Hold,
    Period,
    ReserveOutcome,
    Scope,
    ScopeKind,
    SpendLimit,
    decide,
    period_window,
)


class Ledger(Protocol):
    async def reserve(self, hold: Hold, at: datetime) -> ReserveOutcome: ...
    async def release(self, request_id: str) -> tuple[CounterState, ...]: ...


class LimitSource(Protocol):
    def list_limits(self) -> list[SpendLimit]: ...
    def list_orgs(self) -> list[Org]: ...


@dataclass(frozen=True, slots=True)
class AppliedLimit:
    limit: SpendLimit
    org_id: str
    timezone: str


class LimitsDirectory:
    """Every limit, indexed by scope, held in memory and reloaded every `ttl_seconds` (other
    replicas' changes) or at once after a change through this process's admin API."""

    def __init__(
        self, source: LimitSource, ttl_seconds: float = 2.0, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._source = source
        self._ttl = ttl_seconds
        self._monotonic = monotonic
        self._by_scope: dict[Scope, list[SpendLimit]] = {}
        self._orgs: dict[str, Org] = {}
        self._loaded_at: float | None = None
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._loaded_at = None

    async def applicable(self, key: ApiKey) -> list[AppliedLimit]:
        if self._loaded_at is None or self._monotonic() - self._loaded_at > self._ttl:
            async with self._lock:
                if self._loaded_at is None or self._monotonic() - self._loaded_at > self._ttl:
                    await asyncio.to_thread(self._load)
        org = self._orgs.get(key.org_id)
        timezone = org.timezone if org else "UTC"
        scopes = (
            Scope(ScopeKind.KEY, key.id),
            Scope(ScopeKind.PROJECT, key.project_id),
            Scope(ScopeKind.ORG, key.org_id),
        )
        return [
            AppliedLimit(limit, key.org_id, timezone)
            for scope in scopes
            for limit in self._by_scope.get(scope, ())
        ]

    def _load(self) -> None:
        by_scope: dict[Scope, list[SpendLimit]] = {}
        for limit in self._source.list_limits():
            by_scope.setdefault(limit.scope, []).append(limit)
        self._by_scope = by_scope
        self._orgs = {org.id: org for org in self._source.list_orgs()}
        self._loaded_at = self._monotonic()


class LimitRefused(Refused):
    """A call refused by a hard limit: which counter refused it, how it stood, and the call's worst case."""

    def __init__(self, message: str, key: CounterKey, state: CounterState, amount_nanos: int) -> None:
        super().__init__(RefusalCode.SPEND_LIMIT_EXCEEDED, message)
        self.key = key
        self.state = state
        self.amount_nanos = amount_nanos


@dataclass
class _Waiter:
    hold: Hold
    wake: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True, slots=True)
class Reservation:
    hold: Hold
    limits: dict[CounterKey, AppliedLimit]
    windows: dict[CounterKey, tuple[datetime, datetime | None]]


class SpendGuard:
    def __init__(
        self,
        ledger: Ledger,
        clock: Clock,
        wall_clock: Clock,
        max_wait_seconds: float = 30.0,
        poll_seconds: float = 0.1,
        hold_ttl_seconds: float = 120.0,
    ) -> None:
        self._ledger = ledger
        self._clock = clock  # business time: which period a call belongs to
        self._wall = wall_clock  # real time: when a vanished process's holds expire
        self._max_wait = max_wait_seconds
        self._poll = poll_seconds
        self._hold_ttl = timedelta(seconds=hold_ttl_seconds)
        self._queues: dict[CounterKey, deque[_Waiter]] = {}
        self._windows: dict[tuple[Period, str], tuple[datetime, datetime | None]] = {}
        self.live: set[str] = set()  # holds of calls in flight here; only these are kept from expiring

    def plan(self, request_id: str, applied: Sequence[AppliedLimit], amount_nanos: int) -> Reservation:
        now = self._clock.now()
        counters: list[tuple[CounterKey, int | None]] = []
        limits: dict[CounterKey, AppliedLimit] = {}
        windows: dict[CounterKey, tuple[datetime, datetime | None]] = {}
        for item in applied:
            start, end = self._window(item.limit.period, item.timezone, now)
            key = CounterKey(item.limit.scope, item.limit.period, start)
            counters.append((key, item.limit.hard_nanos))
            limits[key], windows[key] = item, (start, end)
        hold = Hold(
            request_id=request_id,
            counters=tuple(counters),
            amount_nanos=amount_nanos,
            expires_at=self._wall.now() + self._hold_ttl,
        )
        return Reservation(hold, limits, windows)

    def _window(self, period: Period, timezone: str, now: datetime) -> tuple[datetime, datetime | None]:
        """`period_window`, remembered until the period ends (it is the same for every call till then)."""
        known = self._windows.get((period, timezone))
        if known is not None and known[0] <= now and (known[1] is None or now < known[1]):
            return known
        window = period_window(period, now, timezone)
        self._windows[(period, timezone)] = window
        return window

    async def try_reserve(self, reservation: Reservation) -> ReserveOutcome:
        """One attempt, no waiting (used to decide whether a tighter bound is worth computing)."""
        if self._queued_ahead(reservation.hold):
            return ReserveOutcome(Decision.WAIT, ())
        return await self._ledger.reserve(reservation.hold, self._wall.now())

    async def reserve(self, reservation: Reservation, first: ReserveOutcome | None = None) -> None:
        """Hold the reservation, waiting (FIFO, bounded) while others' holds block it; raise Refused."""
        outcome = first or await self.try_reserve(reservation)
        if outcome.decision is Decision.REFUSE:
            raise self._refusal(reservation, outcome.states, waited=None)
        if outcome.decision is Decision.WAIT:
            await self._wait_in_line(reservation)
        self.live.add(reservation.hold.request_id)

    async def release(self, request_id: str) -> None:
        await self._ledger.release(request_id)
        self.settled(request_id)

    def settled(self, request_id: str | None) -> None:
        """A hold was settled or released, so room may have come back: the first waiter of every
        queue tries again."""
        if request_id is not None:
            self.live.discard(request_id)
        for queue in self._queues.values():
            if queue:
                queue[0].wake.set()

    async def _wait_in_line(self, reservation: Reservation) -> None:
        hold = reservation.hold
        waiter = _Waiter(hold)
        keys = [key for key, _ in hold.counters]
        for key in keys:
            self._queues.setdefault(key, deque()).append(waiter)
        started = time.monotonic()
        deadline = started + self._max_wait
        outcome = ReserveOutcome(Decision.WAIT, ())
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._refusal(reservation, outcome.states, waited=time.monotonic() - started)
                with contextlib.suppress(TimeoutError):  # the poll: another replica may have settled
                    await asyncio.wait_for(waiter.wake.wait(), timeout=min(self._poll, remaining))
                waiter.wake.clear()
                if not all(self._queues[key][0] is waiter for key in keys):
                    continue  # not our turn yet
                outcome = await self._ledger.reserve(hold, self._wall.now())
                if outcome.decision is Decision.ADMIT:
                    return
                if outcome.decision is Decision.REFUSE:
                    raise self._refusal(reservation, outcome.states, waited=time.monotonic() - started)
        finally:
            for key in keys:
                queue = self._queues[key]
                queue.remove(waiter)
                if queue:
                    queue[0].wake.set()  # the next in line tries now
                else:
                    del self._queues[key]

    def _queued_ahead(self, hold: Hold) -> bool:
        return any(self._queues.get(key) for key, _ in hold.counters)

    def _refusal(
        self, reservation: Reservation, states: Sequence[CounterState], waited: float | None
    ) -> Refused:
        hold = reservation.hold
        by_key = {state.key: state for state in states}

        # Name the tightest scope: the one with the least room left.
        def room(key: CounterKey) -> int:
            hard = reservation.limits[key].limit.hard_nanos
            state = by_key.get(key)
            if hard is None:
                return 1 << 62
            return hard - (state.spent_nanos + state.reserved_nanos if state else 0)

        limited = [key for key, hard in hold.counters if hard is not None]
        key = min(limited, key=room)
        limit = reservation.limits[key].limit
        assert limit.hard_nanos is not None
        state = by_key.get(key, CounterState(key, 0, 0))
        _, end = reservation.windows[key]
        resets = f"resets at {end.isoformat()}" if end else "never resets (a total limit)"
        blocked_by_others = (
            decide(limit.hard_nanos, state.spent_nanos, 0, hold.amount_nanos) is not Decision.REFUSE
        )
        if waited is not None and blocked_by_others:
            why = (
                f"Waited {waited:.1f} s for other requests on {key.scope} to settle, but their pending "
                "reservations still leave no room for this one."
            )
        else:
            why = f"Spend limit reached for {key.scope}."
        message = (
            f"{why} Hard limit ${format_usd(limit.hard_nanos)} per {limit.period.value}; spent "
            f"${format_usd(state.spent_nanos)}, held by requests in flight "
            f"${format_usd(state.reserved_nanos)}; "
            f"this request could cost up to ${format_usd(hold.amount_nanos)}. The period {resets}. "
            "Lower max_tokens, wait for the reset, or ask the admin to raise the limit "
            f"(`spendgate limits set {key.scope} --hard USD`)."
        )
        return LimitRefused(message, key, state, hold.amount_nanos)
