"""The Store port over SQLAlchemy Core. Methods are synchronous; async callers use a thread."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Row, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from spendgate.adapters.store.tables import api_keys, orgs, projects, settings, usage_events
from spendgate.domain.accounts import ApiKey, Org, Project
from spendgate.domain.events import CallStatus, UsageEvent
from spendgate.domain.usage import TokenUsage
from spendgate.services.ports import UsageFilter, UsageGrouping, UsageTotals


class SqlStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    def close(self) -> None:
        self.engine.dispose()

    # accounts

    def add_org(self, org: Org) -> None:
        with self.engine.begin() as c:
            c.execute(
                orgs.insert().values(
                    id=org.id, name=org.name, timezone=org.timezone, created_at=org.created_at
                )
            )

    def get_org(self, org_id: str) -> Org | None:
        with self.engine.connect() as c:
            row = c.execute(select(orgs).where(orgs.c.id == org_id)).first()
        return _org(row) if row else None

    def list_orgs(self) -> list[Org]:
        with self.engine.connect() as c:
            return [_org(r) for r in c.execute(select(orgs).order_by(orgs.c.created_at, orgs.c.id))]

    def add_project(self, project: Project) -> None:
        with self.engine.begin() as c:
            c.execute(
                projects.insert().values(
                    id=project.id, org_id=project.org_id, name=project.name, created_at=project.created_at
                )
            )

    def get_project(self, project_id: str) -> Project | None:
        with self.engine.connect() as c:
            row = c.execute(select(projects).where(projects.c.id == project_id)).first()
        return _project(row) if row else None

    def list_projects(self, org_id: str | None = None) -> list[Project]:
        query = select(projects).order_by(projects.c.created_at, projects.c.id)
        if org_id is not None:
            query = query.where(projects.c.org_id == org_id)
        with self.engine.connect() as c:
            return [_project(r) for r in c.execute(query)]

    def add_key(self, key: ApiKey) -> None:
        with self.engine.begin() as c:
            c.execute(
                api_keys.insert().values(
                    id=key.id,
                    project_id=key.project_id,
                    org_id=key.org_id,
                    name=key.name,
                    secret_hash=key.secret_hash,
                    display_prefix=key.display_prefix,
                    models=None if key.models is None else json.dumps(list(key.models)),
                    created_at=key.created_at,
                    revoked_at=key.revoked_at,
                )
            )

    def get_key(self, key_id: str) -> ApiKey | None:
        return self._one_key(api_keys.c.id == key_id)

    def find_key_by_hash(self, secret_hash: str) -> ApiKey | None:
        return self._one_key(api_keys.c.secret_hash == secret_hash)

    def list_keys(self, project_id: str | None = None) -> list[ApiKey]:
        query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        if project_id is not None:
            query = query.where(api_keys.c.project_id == project_id)
        with self.engine.connect() as c:
            return [_key(r) for r in c.execute(query)]

    def revoke_key(self, key_id: str, at: datetime) -> ApiKey | None:
        with self.engine.begin() as c:
            c.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=at)
            )
        return self.get_key(key_id)

    def _one_key(self, condition: ColumnElement[bool]) -> ApiKey | None:
        with self.engine.connect() as c:
            row = c.execute(select(api_keys).where(condition)).first()
        return _key(row) if row else None

    def get_setting(self, name: str) -> str | None:
        with self.engine.connect() as c:
            value = c.execute(select(settings.c.value).where(settings.c.name == name)).scalar()
        return value

    def set_setting_once(self, name: str, value: str) -> str:
        with self.engine.begin() as c:
            c.execute(self._insert(settings).values(name=name, value=value).on_conflict_do_nothing())
            stored = c.execute(select(settings.c.value).where(settings.c.name == name)).scalar_one()
        return str(stored)

    # usage

    def get_usage_event(self, request_id: str) -> UsageEvent | None:
        with self.engine.connect() as c:
            row = c.execute(select(usage_events).where(usage_events.c.request_id == request_id)).first()
        return _event(row) if row else None

    def usage_totals(self, scope: UsageFilter, start: datetime, end: datetime) -> UsageTotals:
        query = select(*_TOTAL_COLUMNS).where(*_conditions(scope, start, end))
        with self.engine.connect() as c:
            row = c.execute(query).one()
        return _totals(row)

    def usage_grouped(
        self, scope: UsageFilter, start: datetime, end: datetime, by: UsageGrouping
    ) -> dict[str, UsageTotals]:
        column = {
            "model": usage_events.c.model,
            "key": usage_events.c.key_id,
            "project": usage_events.c.project_id,
        }[by]
        query = (
            select(column, *_TOTAL_COLUMNS)
            .where(*_conditions(scope, start, end))
            .group_by(column)
            .order_by(column)
        )
        with self.engine.connect() as c:
            return {str(row[0]): _totals(row[1:]) for row in c.execute(query)}


_TOTAL_COLUMNS = (
    func.count(),
    func.coalesce(func.sum(usage_events.c.input_tokens), 0),
    func.coalesce(func.sum(usage_events.c.output_tokens), 0),
    func.coalesce(func.sum(usage_events.c.cached_input_tokens), 0),
    func.coalesce(func.sum(usage_events.c.reasoning_tokens), 0),
    func.coalesce(func.sum(usage_events.c.cost_nanos), 0),
)


def _conditions(scope: UsageFilter, start: datetime, end: datetime) -> list[ColumnElement[bool]]:
    conditions = [usage_events.c.occurred_at >= start, usage_events.c.occurred_at < end]
    if scope.org_id is not None:
        conditions.append(usage_events.c.org_id == scope.org_id)
    if scope.project_id is not None:
        conditions.append(usage_events.c.project_id == scope.project_id)
    if scope.key_id is not None:
        conditions.append(usage_events.c.key_id == scope.key_id)
    return conditions


def _totals(row: Sequence[Any]) -> UsageTotals:
    return UsageTotals(*(int(v) for v in row))


def _org(r: Row[Any]) -> Org:
    return Org(id=r.id, name=r.name, timezone=r.timezone, created_at=r.created_at)


def _project(r: Row[Any]) -> Project:
    return Project(id=r.id, org_id=r.org_id, name=r.name, created_at=r.created_at)


def _key(r: Row[Any]) -> ApiKey:
    return ApiKey(
        id=r.id,
        project_id=r.project_id,
        org_id=r.org_id,
        name=r.name,
        secret_hash=r.secret_hash,
        display_prefix=r.display_prefix,
        models=None if r.models is None else tuple(json.loads(r.models)),
        created_at=r.created_at,
        revoked_at=r.revoked_at,
    )


def _event_row(e: UsageEvent) -> dict[str, Any]:
    u = e.usage
    return {
        "request_id": e.request_id,
        "occurred_at": e.occurred_at,
        "org_id": e.org_id,
        "project_id": e.project_id,
        "key_id": e.key_id,
        "model": e.model,
        "upstream": e.upstream,
        "endpoint": e.endpoint,
        "input_tokens": u.input_tokens,
        "cached_input_tokens": u.cached_input_tokens,
        "cache_write_tokens": u.cache_write_tokens,
        "output_tokens": u.output_tokens,
        "reasoning_tokens": u.reasoning_tokens,
        "service_tier": u.service_tier,
        "cost_nanos": e.cost_nanos,
        "status": e.status.value,
        "latency_ms": e.latency_ms,
        "streamed": e.streamed,
        "estimated": e.estimated,
    }


def _event(r: Row[Any]) -> UsageEvent:
    return UsageEvent(
        request_id=r.request_id,
        occurred_at=r.occurred_at,
        org_id=r.org_id,
        project_id=r.project_id,
        key_id=r.key_id,
        model=r.model,
        upstream=r.upstream,
        endpoint=r.endpoint,
        usage=TokenUsage(
            input_tokens=r.input_tokens,
            output_tokens=r.output_tokens,
            cached_input_tokens=r.cached_input_tokens,
            cache_write_tokens=r.cache_write_tokens,
            reasoning_tokens=r.reasoning_tokens,
            service_tier=r.service_tier,
        ),
        cost_nanos=r.cost_nanos,
        status=CallStatus(r.status),
        latency_ms=r.latency_ms,
        streamed=bool(r.streamed),
        estimated=bool(r.estimated),
    )
