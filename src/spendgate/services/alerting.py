"""Spend alerts: fire each crossed threshold once, deliver it durably through the org's channels.

- `Alerting` (the `AlertSink` the settlement path calls) evaluates counter snapshots. Every crossed
  threshold fires at most once per (scope, period, period start, threshold): the store's unique
  constraint decides, so two replicas cannot both fire it. A fired alert is logged at once (logger
  `spendgate.alerts`, WARNING) and gets one pending delivery per enabled channel of the org.
- `AlertDispatcher` is a background loop that sends due deliveries, logs every attempt and retries a
  failure on a backoff schedule; after the last retry the delivery is `failed`. Deliveries are rows,
  so a restart resumes them.
- `AlertAdmin`: channels (add, list, disable) and the alert history, for the admin API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from spendgate.domain.accounts import new_id
from spendgate.domain.alerts import SpendAlert, Threshold, crossed_thresholds
from spendgate.domain.clock import Clock
from spendgate.domain.spend_limits import CounterSnapshot, Period
from spendgate.services.alert_ports import (
    AlertChannel,
    AlertEvent,
    AlertRecord,
    AlertStore,
    ChannelKind,
    ChannelSender,
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    DueDelivery,
    SendResult,
)
from spendgate.services.errors import Invalid, NotFound
from spendgate.services.ports import AccountStore

log = logging.getLogger("spendgate.alerts")

DEFAULT_RETRY_SECONDS: tuple[float, ...] = (10, 60, 300, 1800, 7200)
WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)

_FiredKey = tuple[str, str, str, datetime, str]  # scope kind, scope id, period, period start, threshold


def parse_retry_schedule(text: str | Sequence[float]) -> tuple[float, ...]:
    """ "10,60,300" (or a list) -> (10.0, 60.0, 300.0): the waits before each retry, in seconds."""
    items = [p.strip() for p in text.split(",")] if isinstance(text, str) else list(text)
    try:
        schedule = tuple(float(p) for p in items if p != "")
    except ValueError as exc:
        raise ValueError(
            f"a retry schedule is comma-separated seconds such as '10,60,300', not {text!r}"
        ) from exc
    if any(not s >= 0 for s in schedule):
        raise ValueError("retry waits cannot be negative")
    return schedule


class Alerting:
    """The `AlertSink`: called after settlements commit, fires the alerts now due.

    A small in-process memory of what already fired keeps the common case (a threshold crossed long
    ago, re-seen on every settlement) free of database round trips; the store stays the judge.
    """

    def __init__(
        self,
        store: AlertStore,
        clock: Clock,
        on_fired: Callable[[], None] | None = None,
        remember: int = 65_536,
    ) -> None:
        self._store = store
        self._clock = clock
        self._on_fired = on_fired  # e.g. AlertDispatcher.wake, so delivery does not wait for a poll
        self._remember = remember
        self._fired: OrderedDict[_FiredKey, None] = OrderedDict()

    def has_due(self, snapshots: Sequence[CounterSnapshot]) -> bool:
        """Whether any snapshot crossed a threshold this process has not seen fire: most settlements
        cross none, and then no task is started for them."""
        return any(
            not self._seen(snapshot, t)
            for snapshot in snapshots
            for t in crossed_thresholds(snapshot.limit, snapshot.spent_nanos, snapshot.refused_nanos)
        )

    async def counters_changed(self, snapshots: Sequence[CounterSnapshot]) -> None:
        fired_any = False
        for snapshot in snapshots:
            due = [
                t
                for t in crossed_thresholds(snapshot.limit, snapshot.spent_nanos, snapshot.refused_nanos)
                if not self._seen(snapshot, t)
            ]
            if not due:
                continue
            try:
                handled, fired = await asyncio.to_thread(self._fire, snapshot, due)
            except Exception:
                # Not lost: the threshold stays crossed, so the next settlement tries again.
                log.exception("could not record spend alerts for %s", snapshot.limit.scope)
                continue
            for key in handled:
                self._remember_fired(key)
            fired_any = fired_any or bool(fired)
        if fired_any and self._on_fired is not None:
            self._on_fired()

    def _fire(
        self, snapshot: CounterSnapshot, due: Sequence[Threshold]
    ) -> tuple[list[_FiredKey], list[SpendAlert]]:
        """In a worker thread: record each threshold's alert unless it fired already."""
        limit = snapshot.limit
        channels = self._store.list_channels(snapshot.org_id, enabled_only=True)
        rate_since: datetime | None = snapshot.period_start
        if limit.period is Period.TOTAL:
            started = self._store.limit_started_at(limit.scope, limit.period)
            rate_since = max(started, snapshot.period_start) if started is not None else None
        handled: list[_FiredKey] = []
        fired: list[SpendAlert] = []
        for threshold in due:
            now = self._clock.now()
            alert = SpendAlert(
                id=new_id("alert"),
                snapshot=snapshot,
                threshold=threshold,
                rate_since=rate_since,
                created_at=now,
            )
            payload = alert.payload()
            body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
            event = AlertEvent(
                id=alert.id,
                org_id=snapshot.org_id,
                scope=limit.scope,
                period=limit.period,
                period_start=snapshot.period_start,
                threshold=threshold.key,
                payload=body,
                created_at=now,
            )
            deliveries = [
                Delivery(
                    id=new_id("dlv"),
                    alert_id=alert.id,
                    channel_id=channel.id,
                    state=DeliveryState.PENDING,
                    attempts=0,
                    next_attempt_at=None,
                    updated_at=now,
                )
                for channel in channels
            ]
            if self._store.record_alert(event, deliveries):
                fired.append(alert)
                log.warning("%s %s", alert.message, body, extra={"spend_alert": payload})
            handled.append(_key(snapshot, threshold))
        return handled, fired

    def _seen(self, snapshot: CounterSnapshot, threshold: Threshold) -> bool:
        key = _key(snapshot, threshold)
        if key in self._fired:
            self._fired.move_to_end(key)
            return True
        return False

    def _remember_fired(self, key: _FiredKey) -> None:
        self._fired[key] = None
        self._fired.move_to_end(key)
        while len(self._fired) > self._remember:
            self._fired.popitem(last=False)


def _key(snapshot: CounterSnapshot, threshold: Threshold) -> _FiredKey:
    scope = snapshot.limit.scope
    return (scope.kind.value, scope.id, snapshot.limit.period.value, snapshot.period_start, threshold.key)


class AlertDispatcher:
    """Delivers due deliveries in the background; each attempt is logged, failures retried.

    After a failed attempt number n (1-based), the next waits `retry_schedule[n - 1]` seconds; when
    the schedule is used up the delivery is `failed`. A claimed delivery is leased for
    `lease_seconds`: if this process dies mid-send, another dispatcher (or this one after a restart)
    retries it then, so delivery is at least once (receivers dedupe by the alert's `id`).
    """

    def __init__(
        self,
        store: AlertStore,
        senders: Mapping[ChannelKind, ChannelSender],
        clock: Clock,
        retry_schedule: Sequence[float] = DEFAULT_RETRY_SECONDS,
        poll_seconds: float = 1.0,
        batch_size: int = 50,
        send_timeout: float = 60.0,
        lease_seconds: float = 300.0,
        stop_grace_seconds: float = 5.0,
    ) -> None:
        if lease_seconds <= send_timeout:
            raise ValueError("the lease must outlast a send, or a slow delivery could be sent twice")
        self._store = store
        self._senders = dict(senders)
        self._clock = clock
        self._schedule = tuple(retry_schedule)
        self._poll = poll_seconds
        self._batch = batch_size
        self._send_timeout = send_timeout
        self._lease = timedelta(seconds=lease_seconds)
        self._grace = stop_grace_seconds
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is not None:
            return
        self._stopping = False
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="spendgate-alert-dispatcher")

    async def stop(self) -> None:
        """Let the pass in progress finish (up to the grace period), then stop."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), self._grace)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def wake(self) -> None:
        """Look for due deliveries now rather than at the next poll (call from the event loop)."""
        self._wake.set()

    async def run_once(self) -> int:
        """Send every delivery due now (one batch); returns how many were attempted."""
        now = self._clock.now()
        due = await asyncio.to_thread(self._store.claim_due, now, now + self._lease, self._batch)
        if due:
            await asyncio.gather(*(self._deliver(d) for d in due))
        return len(due)

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                attempted = await self.run_once()
            except Exception:
                log.exception("alert delivery pass failed; retrying at the next poll")
                attempted = 0
            if attempted >= self._batch or self._stopping:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)

    async def _deliver(self, due: DueDelivery) -> None:
        channel = due.channel
        sender = self._senders.get(channel.kind)
        if not channel.enabled:
            result = SendResult(ok=False, error="not sent: the channel was disabled")
            final = True
        elif sender is None:
            result = SendResult(ok=False, error=_unconfigured(channel.kind))
            final = False
        else:
            final = False
            try:
                async with asyncio.timeout(self._send_timeout):
                    result = await sender.send(channel, due.alert)
            except Exception as exc:
                result = SendResult(ok=False, error=f"{type(exc).__name__}: {exc}".rstrip(": "))
        at = self._clock.now()
        attempts = due.delivery.attempts + 1
        if result.ok:
            state, next_at = DeliveryState.DELIVERED, None
        elif not final and attempts <= len(self._schedule):
            state, next_at = DeliveryState.PENDING, at + timedelta(seconds=self._schedule[attempts - 1])
        else:
            state, next_at = DeliveryState.FAILED, None
        attempt = DeliveryAttempt(
            id=new_id("att"),
            delivery_id=due.delivery.id,
            attempted_at=at,
            succeeded=result.ok,
            status_code=result.status_code,
            error=None if result.ok else (result.error or f"status {result.status_code}"),
        )
        await asyncio.to_thread(self._store.record_attempt, attempt, state, next_at)
        if state is DeliveryState.DELIVERED:
            log.info("alert %s delivered to %s %s", due.alert.id, channel.kind.value, channel.id)
        elif state is DeliveryState.PENDING:
            log.info(
                "alert %s to %s %s failed (attempt %d: %s); retrying at %s",
                due.alert.id,
                channel.kind.value,
                channel.id,
                attempts,
                attempt.error,
                next_at.isoformat() if next_at else "-",
            )
        else:
            log.error(
                "alert %s to %s %s failed for good after %d attempts: %s",
                due.alert.id,
                channel.kind.value,
                channel.id,
                attempts,
                attempt.error,
            )


def _unconfigured(kind: ChannelKind) -> str:
    if kind is ChannelKind.EMAIL:
        return "not sent: no SMTP server is configured (set SPENDGATE_SMTP_HOST and restart)"
    return f"not sent: no sender for {kind.value} channels"


_EMAIL = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+$")


@dataclass(frozen=True, slots=True)
class NewChannel:
    channel: AlertChannel
    secret: str | None  # the webhook signing secret: shown once, at creation


class AlertAdmin:
    """Alert channels and the history of alerts, for the admin API and CLI."""

    def __init__(self, store: AlertStore, accounts: AccountStore, clock: Clock) -> None:
        self._store = store
        self._accounts = accounts
        self._clock = clock

    def add_channel(self, org_id: str, kind: str, target: str) -> NewChannel:
        if self._accounts.get_org(org_id) is None:
            raise NotFound(f"no org {org_id!r}")
        try:
            channel_kind = ChannelKind(kind)
        except ValueError:
            raise Invalid(f"a channel's kind is 'webhook' or 'email', not {kind!r}") from None
        target = target.strip()
        secret = None
        if channel_kind is ChannelKind.WEBHOOK:
            parts = urlsplit(target)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise Invalid(f"a webhook target is an http:// or https:// URL, not {target!r}")
            secret = WEBHOOK_SECRET_PREFIX + secrets.token_urlsafe(32)
        elif not _EMAIL.match(target):
            raise Invalid(f"an e-mail target is one address such as ops@example.com, not {target!r}")
        channel = AlertChannel(
            id=new_id("chan"),
            org_id=org_id,
            kind=channel_kind,
            target=target,
            secret=secret,
            created_at=self._clock.now(),
        )
        self._store.add_channel(channel)
        return NewChannel(channel, secret)

    def list_channels(self, org_id: str | None = None) -> list[AlertChannel]:
        if org_id is not None and self._accounts.get_org(org_id) is None:
            raise NotFound(f"no org {org_id!r}")
        return self._store.list_channels(org_id)

    def disable_channel(self, channel_id: str) -> AlertChannel:
        channel = self._store.disable_channel(channel_id, self._clock.now())
        if channel is None:
            raise NotFound(f"no alert channel {channel_id!r}")
        return channel

    def alerts(self, org_id: str | None = None, limit: int = 100) -> list[AlertRecord]:
        if org_id is not None and self._accounts.get_org(org_id) is None:
            raise NotFound(f"no org {org_id!r}")
        return self._store.list_alerts(org_id, limit)
