"""The AlertStore port over SQLAlchemy Core (SQLite and PostgreSQL). Methods are synchronous; async
callers use a thread."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Row, and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from spendgate.adapters.store.tables import (
    alert_channels,
    alert_deliveries,
    alert_delivery_attempts,
    alert_events,
    spend_limits,
)
from spendgate.domain.spend_limits import Period, Scope, ScopeKind
from spendgate.services.alert_ports import (
    AlertChannel,
    AlertEvent,
    AlertRecord,
    ChannelKind,
    Delivery,
    DeliveryAttempt,
    DeliveryRecord,
    DeliveryState,
    DueDelivery,
    OutgoingAlert,
)


class SqlAlertStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    # channels

    def add_channel(self, channel: AlertChannel) -> None:
        with self.engine.begin() as c:
            c.execute(
                alert_channels.insert().values(
                    id=channel.id,
                    org_id=channel.org_id,
                    kind=channel.kind.value,
                    target=channel.target,
                    secret=channel.secret,
                    created_at=channel.created_at,
                    disabled_at=channel.disabled_at,
                )
            )

    def get_channel(self, channel_id: str) -> AlertChannel | None:
        with self.engine.connect() as c:
            row = c.execute(select(alert_channels).where(alert_channels.c.id == channel_id)).first()
        return _channel(row) if row else None

    def list_channels(self, org_id: str | None = None, enabled_only: bool = False) -> list[AlertChannel]:
        query = select(alert_channels).order_by(alert_channels.c.created_at, alert_channels.c.id)
        if org_id is not None:
            query = query.where(alert_channels.c.org_id == org_id)
        if enabled_only:
            query = query.where(alert_channels.c.disabled_at.is_(None))
        with self.engine.connect() as c:
            return [_channel(r) for r in c.execute(query)]

    def disable_channel(self, channel_id: str, at: datetime) -> AlertChannel | None:
        with self.engine.begin() as c:
            c.execute(
                update(alert_channels)
                .where(alert_channels.c.id == channel_id, alert_channels.c.disabled_at.is_(None))
                .values(disabled_at=at)
            )
        return self.get_channel(channel_id)

    # alerts

    def record_alert(self, event: AlertEvent, deliveries: Sequence[Delivery]) -> bool:
        insert_event = (
            self._insert(alert_events)
            .values(
                id=event.id,
                org_id=event.org_id,
                scope_kind=event.scope.kind.value,
                scope_id=event.scope.id,
                period=event.period.value,
                period_start=event.period_start,
                threshold=event.threshold,
                payload=event.payload,
                created_at=event.created_at,
            )
            .on_conflict_do_nothing()  # uq_alert_events_once: a second firing is a no-op
            .returning(alert_events.c.id)  # (rowcount is not reliable across drivers here)
        )
        with self.engine.begin() as c:
            if c.execute(insert_event).first() is None:
                return False
            if deliveries:
                c.execute(alert_deliveries.insert(), [_delivery_row(d) for d in deliveries])
        return True

    def claim_due(self, now: datetime, lease_until: datetime, limit: int) -> list[DueDelivery]:
        due = and_(
            alert_deliveries.c.state == DeliveryState.PENDING.value,
            or_(alert_deliveries.c.next_attempt_at.is_(None), alert_deliveries.c.next_attempt_at <= now),
        )
        candidates = (
            select(alert_deliveries.c.id)
            .where(due)
            .order_by(alert_deliveries.c.next_attempt_at.asc().nulls_first(), alert_deliveries.c.id)
            .limit(limit)
        )
        query = (
            select(
                alert_deliveries,
                alert_channels.c.org_id.label("channel_org_id"),
                alert_channels.c.kind,
                alert_channels.c.target,
                alert_channels.c.secret,
                alert_channels.c.created_at.label("channel_created_at"),
                alert_channels.c.disabled_at,
                alert_events.c.payload,
            )
            .join(alert_channels, alert_channels.c.id == alert_deliveries.c.channel_id)
            .join(alert_events, alert_events.c.id == alert_deliveries.c.alert_id)
        )
        claimed: list[DueDelivery] = []
        with self.engine.begin() as c:
            ids = list(c.execute(candidates).scalars())
            for delivery_id in ids:
                # Conditional on still being due: of two dispatchers, exactly one wins each row.
                won = c.execute(
                    update(alert_deliveries)
                    .where(alert_deliveries.c.id == delivery_id, due)
                    .values(next_attempt_at=lease_until)
                    .returning(alert_deliveries.c.id)
                ).first()
                if won is None:
                    continue
                row = c.execute(query.where(alert_deliveries.c.id == delivery_id)).one()
                claimed.append(_due(row))
        return claimed

    def record_attempt(
        self, attempt: DeliveryAttempt, state: DeliveryState, next_attempt_at: datetime | None
    ) -> None:
        with self.engine.begin() as c:
            c.execute(
                alert_delivery_attempts.insert().values(
                    id=attempt.id,
                    delivery_id=attempt.delivery_id,
                    attempted_at=attempt.attempted_at,
                    succeeded=attempt.succeeded,
                    status_code=attempt.status_code,
                    error=attempt.error,
                )
            )
            c.execute(
                update(alert_deliveries)
                .where(alert_deliveries.c.id == attempt.delivery_id)
                .values(
                    attempts=alert_deliveries.c.attempts + 1,
                    state=state.value,
                    next_attempt_at=next_attempt_at,
                    updated_at=attempt.attempted_at,
                )
            )

    def list_alerts(self, org_id: str | None = None, limit: int = 100) -> list[AlertRecord]:
        events_query = select(alert_events).order_by(
            alert_events.c.created_at.desc(), alert_events.c.id.desc()
        )
        if org_id is not None:
            events_query = events_query.where(alert_events.c.org_id == org_id)
        with self.engine.connect() as c:
            events = [_event(r) for r in c.execute(events_query.limit(limit))]
            if not events:
                return []
            alert_ids = [e.id for e in events]
            delivery_rows = list(
                c.execute(
                    select(alert_deliveries, alert_channels.c.kind, alert_channels.c.target)
                    .join(alert_channels, alert_channels.c.id == alert_deliveries.c.channel_id)
                    .where(alert_deliveries.c.alert_id.in_(alert_ids))
                    .order_by(alert_channels.c.created_at, alert_deliveries.c.id)
                )
            )
            attempt_rows = list(
                c.execute(
                    select(alert_delivery_attempts)
                    .where(alert_delivery_attempts.c.delivery_id.in_([r.id for r in delivery_rows]))
                    .order_by(alert_delivery_attempts.c.attempted_at, alert_delivery_attempts.c.id)
                )
            )
        attempts: dict[str, list[DeliveryAttempt]] = defaultdict(list)
        for r in attempt_rows:
            attempts[r.delivery_id].append(_attempt(r))
        deliveries: dict[str, list[DeliveryRecord]] = defaultdict(list)
        for r in delivery_rows:
            deliveries[r.alert_id].append(
                DeliveryRecord(
                    delivery=_delivery(r),
                    channel_kind=ChannelKind(r.kind),
                    channel_target=r.target,
                    attempts=tuple(attempts[r.id]),
                )
            )
        return [AlertRecord(event=e, deliveries=tuple(deliveries[e.id])) for e in events]

    def limit_started_at(self, scope: Scope, period: Period) -> datetime | None:
        with self.engine.connect() as c:
            value: datetime | None = c.execute(
                select(spend_limits.c.created_at).where(
                    spend_limits.c.scope_kind == scope.kind.value,
                    spend_limits.c.scope_id == scope.id,
                    spend_limits.c.period == period.value,
                )
            ).scalar()
        return value


def _channel(r: Row[Any]) -> AlertChannel:
    return AlertChannel(
        id=r.id,
        org_id=r.org_id,
        kind=ChannelKind(r.kind),
        target=r.target,
        secret=r.secret,
        created_at=r.created_at,
        disabled_at=r.disabled_at,
    )


def _delivery_row(d: Delivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "alert_id": d.alert_id,
        "channel_id": d.channel_id,
        "state": d.state.value,
        "attempts": d.attempts,
        "next_attempt_at": d.next_attempt_at,
        "updated_at": d.updated_at,
    }


def _delivery(r: Row[Any]) -> Delivery:
    return Delivery(
        id=r.id,
        alert_id=r.alert_id,
        channel_id=r.channel_id,
        state=DeliveryState(r.state),
        attempts=r.attempts,
        next_attempt_at=r.next_attempt_at,
        updated_at=r.updated_at,
    )


def _due(r: Row[Any]) -> DueDelivery:
    channel = AlertChannel(
        id=r.channel_id,
        org_id=r.channel_org_id,
        kind=ChannelKind(r.kind),
        target=r.target,
        secret=r.secret,
        created_at=r.channel_created_at,
        disabled_at=r.disabled_at,
    )
    return DueDelivery(
        delivery=_delivery(r),
        channel=channel,
        alert=OutgoingAlert(id=r.alert_id, body=r.payload, payload=json.loads(r.payload)),
    )


def _event(r: Row[Any]) -> AlertEvent:
    return AlertEvent(
        id=r.id,
        org_id=r.org_id,
        scope=Scope(ScopeKind(r.scope_kind), r.scope_id),
        period=Period(r.period),
        period_start=r.period_start,
        threshold=r.threshold,
        payload=r.payload,
        created_at=r.created_at,
    )


def _attempt(r: Row[Any]) -> DeliveryAttempt:
    return DeliveryAttempt(
        id=r.id,
        delivery_id=r.delivery_id,
        attempted_at=r.attempted_at,
        succeeded=bool(r.succeeded),
        status_code=r.status_code,
        error=r.error,
    )
