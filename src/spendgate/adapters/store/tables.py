"""The schema, written once for SQLite and PostgreSQL. Migrations under migrations/ create it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC everywhere (SQLite keeps no offset); read back as aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

orgs = Table(
    "orgs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

projects = Table(
    "projects",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("org_id", String(40), ForeignKey("orgs.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("project_id", String(40), ForeignKey("projects.id"), nullable=False, index=True),
    Column("org_id", String(40), ForeignKey("orgs.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("display_prefix", String(32), nullable=False),
    Column("models", Text(), nullable=True),  # JSON list; NULL: every priced model
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True),
)

usage_events = Table(
    "usage_events",
    metadata,
    Column("request_id", String(64), primary_key=True),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("org_id", String(40), nullable=False),
    Column("project_id", String(40), nullable=False),
    Column("key_id", String(40), nullable=False),
    Column("model", String(200), nullable=False),
    Column("upstream", String(100), nullable=False),
    Column("endpoint", String(40), nullable=False),
    Column("input_tokens", BigInteger(), nullable=False),
    Column("cached_input_tokens", BigInteger(), nullable=False),
    Column("cache_write_tokens", BigInteger(), nullable=False),
    Column("output_tokens", BigInteger(), nullable=False),
    Column("reasoning_tokens", BigInteger(), nullable=False),
    Column("service_tier", String(32), nullable=True),
    Column("cost_nanos", BigInteger(), nullable=False),
    Column("status", String(32), nullable=False),
    Column("latency_ms", Integer(), nullable=False),
    Column("streamed", Boolean(), nullable=False),
    Column("estimated", Boolean(), nullable=False),
    Index(None, "org_id", "occurred_at"),
    Index(None, "project_id", "occurred_at"),
    Index(None, "key_id", "occurred_at"),
)

settings = Table(
    "settings",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("value", Text(), nullable=False),
)

# Spend limits (migration 0002)

spend_limits = Table(
    "spend_limits",
    metadata,
    Column("scope_kind", String(16), primary_key=True),
    Column("scope_id", String(40), primary_key=True),
    Column("period", String(16), primary_key=True),
    Column("soft_nanos", BigInteger(), nullable=True),
    Column("hard_nanos", BigInteger(), nullable=True),
    Column("alert_shares", String(100), nullable=False),  # "50,80,100": percent of the hard limit
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

spend_counters = Table(
    "spend_counters",
    metadata,
    Column("scope_kind", String(16), primary_key=True),
    Column("scope_id", String(40), primary_key=True),
    Column("period", String(16), primary_key=True),
    Column("period_start", UTCDateTime(), primary_key=True),
    Column("spent_nanos", BigInteger(), nullable=False),
    Column("reserved_nanos", BigInteger(), nullable=False),
)

spend_holds = Table(
    "spend_holds",
    metadata,
    Column("request_id", String(64), primary_key=True),
    Column("owner", String(40), nullable=False),  # the gateway process that holds it
    Column("amount_nanos", BigInteger(), nullable=False),
    Column("counters", Text(), nullable=False),  # JSON: [[kind, id, period, period_start], ...]
    Column("state", String(16), nullable=False),  # held | expired
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Index(None, "state", "expires_at"),
)

alert_channels = Table(
    "alert_channels",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("org_id", String(40), ForeignKey("orgs.id"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),  # webhook | email
    Column("target", Text(), nullable=False),  # URL or e-mail address
    Column("secret", Text(), nullable=True),  # webhook signing secret
    Column("created_at", UTCDateTime(), nullable=False),
    Column("disabled_at", UTCDateTime(), nullable=True),
)

alert_events = Table(
    "alert_events",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("org_id", String(40), nullable=False, index=True),
    Column("scope_kind", String(16), nullable=False),
    Column("scope_id", String(40), nullable=False),
    Column("period", String(16), nullable=False),
    Column("period_start", UTCDateTime(), nullable=False),
    Column("threshold", String(32), nullable=False),  # "soft" or "hard:80"
    Column("payload", Text(), nullable=False),  # the JSON every channel receives
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint(
        "scope_kind", "scope_id", "period", "period_start", "threshold", name="uq_alert_events_once"
    ),
)

alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("alert_id", String(40), ForeignKey("alert_events.id"), nullable=False, index=True),
    Column("channel_id", String(40), ForeignKey("alert_channels.id"), nullable=False),
    Column("state", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer(), nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index(None, "state", "next_attempt_at"),
)

alert_delivery_attempts = Table(
    "alert_delivery_attempts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("delivery_id", String(40), ForeignKey("alert_deliveries.id"), nullable=False, index=True),
    Column("attempted_at", UTCDateTime(), nullable=False),
    Column("succeeded", Boolean(), nullable=False),
    Column("status_code", Integer(), nullable=True),
    Column("error", Text(), nullable=True),
)
