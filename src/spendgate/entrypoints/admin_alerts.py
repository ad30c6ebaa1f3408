"""Admin API for spend alerts: alert channels (webhook, e-mail) and the alert history.

`alerts_router(authorized)` returns a router with paths relative to the admin prefix; the admin app
includes it under /admin/v1 with its admin-token dependency (which also maps NotFound to 404 and
Invalid to 422).

No `from __future__ import annotations` here: FastAPI reads the annotations at run time."""

import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from spendgate.services.alert_ports import AlertChannel, AlertRecord, DeliveryAttempt, DeliveryRecord
from spendgate.services.alerting import AlertAdmin


class HasAlertAdmin(Protocol):
    """What the routes need from the container."""

    @property
    def alert_admin(self) -> AlertAdmin: ...


class ChannelIn(BaseModel):
    org_id: str
    kind: Literal["webhook", "email"]
    target: str = Field(min_length=1, max_length=2000, description="The webhook URL or the e-mail address.")


class ChannelOut(BaseModel):
    id: str
    org_id: str
    kind: str
    target: str
    enabled: bool
    created_at: datetime
    disabled_at: datetime | None


class NewChannelOut(ChannelOut):
    secret: str | None = Field(
        description="Webhooks: the signing secret (whsec_…), shown only now. Receivers check the "
        "spendgate-signature header with it."
    )


class AttemptOut(BaseModel):
    id: str
    attempted_at: datetime
    succeeded: bool
    status_code: int | None
    error: str | None


class DeliveryOut(BaseModel):
    id: str
    channel_id: str
    channel_kind: str
    channel_target: str
    state: str
    attempt_count: int
    next_attempt_at: datetime | None
    updated_at: datetime
    attempts: list[AttemptOut]


class AlertOut(BaseModel):
    id: str
    org_id: str
    scope: str
    period: str
    period_start: datetime
    threshold: str
    created_at: datetime
    title: str
    message: str
    payload: dict[str, Any] = Field(description="The JSON every channel received.")
    deliveries: list[DeliveryOut]


def alerts_router(authorized: Callable[..., HasAlertAdmin]) -> APIRouter:
    Admin = Annotated[HasAlertAdmin, Depends(authorized)]
    router = APIRouter(tags=["alerts"])

    @router.post("/alert-channels", status_code=201)
    def add_channel(body: ChannelIn, c: Admin) -> NewChannelOut:
        """Add a channel that receives the org's spend alerts."""
        created = c.alert_admin.add_channel(body.org_id, body.kind, body.target)
        return NewChannelOut(**_channel(created.channel).model_dump(), secret=created.secret)

    @router.get("/alert-channels")
    def list_channels(c: Admin, org_id: str | None = None) -> list[ChannelOut]:
        return [_channel(ch) for ch in c.alert_admin.list_channels(org_id)]

    @router.post("/alert-channels/{channel_id}/disable")
    def disable_channel(channel_id: str, c: Admin) -> ChannelOut:
        """Stop sending to this channel (pending deliveries to it are dropped)."""
        return _channel(c.alert_admin.disable_channel(channel_id))

    @router.get("/alerts")
    def list_alerts(
        c: Admin,
        org_id: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[AlertOut]:
        """Fired alerts, newest first, each with its deliveries and every attempt."""
        return [_alert(a) for a in c.alert_admin.alerts(org_id, limit)]

    return router


def _channel(ch: AlertChannel) -> ChannelOut:
    return ChannelOut(
        id=ch.id,
        org_id=ch.org_id,
        kind=ch.kind.value,
        target=ch.target,
        enabled=ch.enabled,
        created_at=ch.created_at,
        disabled_at=ch.disabled_at,
    )


def _attempt(a: DeliveryAttempt) -> AttemptOut:
    return AttemptOut(
        id=a.id, attempted_at=a.attempted_at, succeeded=a.succeeded, status_code=a.status_code, error=a.error
    )


def _delivery(d: DeliveryRecord) -> DeliveryOut:
    return DeliveryOut(
        id=d.delivery.id,
        channel_id=d.delivery.channel_id,
        channel_kind=d.channel_kind.value,
        channel_target=d.channel_target,
        state=d.delivery.state.value,
        attempt_count=d.delivery.attempts,
        next_attempt_at=d.delivery.next_attempt_at,
        updated_at=d.delivery.updated_at,
        attempts=[_attempt(a) for a in d.attempts],
    )


def _alert(a: AlertRecord) -> AlertOut:
    e = a.event
    payload: dict[str, Any] = json.loads(e.payload)
    return AlertOut(
        id=e.id,
        org_id=e.org_id,
        scope=str(e.scope),
        period=e.period.value,
        period_start=e.period_start,
        threshold=e.threshold,
        created_at=e.created_at,
        title=str(payload.get("title", "")),
        message=str(payload.get("message", "")),
        payload=payload,
        deliveries=[_delivery(d) for d in a.deliveries],
    )
