"""What the alert use cases need from the outside world: a store for channels, fired alerts and
their deliveries, and a sender per kind of channel. Adapters implement them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from spendgate.domain.spend_limits import Period, Scope


class ChannelKind(StrEnum):
    WEBHOOK = "webhook"
    EMAIL = "email"


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class AlertChannel:
    id: str
    org_id: str
    kind: ChannelKind
    target: str  # URL or e-mail address
    secret: str | None = field(repr=False)  # the webhook signing secret
    created_at: datetime
    disabled_at: datetime | None = None

    @property
    def enabled(self) -> bool:
        return self.disabled_at is None


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A fired alert. (scope, period, period_start, threshold) is unique: it fires once."""

    id: str
    org_id: str
    scope: Scope
    period: Period
    period_start: datetime
    threshold: str  # "soft" or "hard:80"
    payload: str  # the JSON every channel receives, byte for byte (webhooks sign exactly this)
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Delivery:
    """One alert to one channel. `next_attempt_at` None means "as soon as possible"; delivery times
    are the dispatcher's clock (wall time), alert times the business clock."""

    id: str
    alert_id: str
    channel_id: str
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    id: str
    delivery_id: str
    attempted_at: datetime
    succeeded: bool
    status_code: int | None = None  # HTTP status, or the SMTP reply code
    error: str | None = None


@dataclass(frozen=True, slots=True)
class OutgoingAlert:
    """What a sender sends: the alert's JSON text and the same, parsed."""

    id: str
    body: str
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class DueDelivery:
    delivery: Delivery
    channel: AlertChannel
    alert: OutgoingAlert


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    delivery: Delivery
    channel_kind: ChannelKind
    channel_target: str
    attempts: tuple[DeliveryAttempt, ...]


@dataclass(frozen=True, slots=True)
class AlertRecord:
    event: AlertEvent
    deliveries: tuple[DeliveryRecord, ...]


class AlertStore(Protocol):
    def add_channel(self, channel: AlertChannel) -> None: ...
    def get_channel(self, channel_id: str) -> AlertChannel | None: ...
    def list_channels(self, org_id: str | None = None, enabled_only: bool = False) -> list[AlertChannel]: ...
    def disable_channel(self, channel_id: str, at: datetime) -> AlertChannel | None:
        """Disable (once; a second call keeps the first time); None if there is no such channel."""
        ...

    def record_alert(self, event: AlertEvent, deliveries: Sequence[Delivery]) -> bool:
        """Insert the event and its deliveries in one transaction unless an event with the same
        (scope, period, period_start, threshold) exists. True if inserted: this caller fired it."""
        ...

    def claim_due(self, now: datetime, lease_until: datetime, limit: int) -> list[DueDelivery]:
        """Pending deliveries due at `now`, each claimed until `lease_until` (its next attempt moves
        there, so another dispatcher does not take it; if this one dies, it is retried then)."""
        ...

    def record_attempt(
        self, attempt: DeliveryAttempt, state: DeliveryState, next_attempt_at: datetime | None
    ) -> None:
        """Log the attempt and move its delivery on (attempts + 1, the new state and schedule)."""
        ...

    def list_alerts(self, org_id: str | None = None, limit: int = 100) -> list[AlertRecord]:
        """Newest first, each with its deliveries and their attempts."""
        ...

    def limit_started_at(self, scope: Scope, period: Period) -> datetime | None:
        """When the limit on (scope, period) was set: where a `total` counter's burn rate starts."""
        ...


@dataclass(frozen=True, slots=True)
class SendResult:
    ok: bool
    status_code: int | None = None
    error: str | None = None


class ChannelSender(Protocol):
    async def send(self, channel: AlertChannel, alert: OutgoingAlert) -> SendResult:
        """Deliver once. A failure is returned (or raised); the dispatcher retries it."""
        ...
