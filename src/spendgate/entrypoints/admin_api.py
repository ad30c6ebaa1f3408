"""The admin API under /admin/v1 (bearer admin token). The CLI and the dashboard use it; its
OpenAPI document is at /admin/v1/openapi.json.

No `from __future__ import annotations` here: FastAPI reads the (local) annotations at run time."""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from spendgate.bootstrap import Container
from spendgate.domain.accounts import ApiKey, Org, Project
from spendgate.domain.events import UsageEvent
from spendgate.domain.money import format_usd, parse_usd
from spendgate.entrypoints.admin_alerts import alerts_router
from spendgate.services.errors import Invalid, NotFound
from spendgate.services.limits import LimitStanding
from spendgate.services.ports import UsageTotals
from spendgate.services.reporting import UsageReport

PREFIX = "/admin/v1"


class OrgIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    timezone: str = "UTC"


class OrgOut(BaseModel):
    id: str
    name: str
    timezone: str
    created_at: datetime


class ProjectIn(BaseModel):
    org_id: str
    name: str = Field(min_length=1, max_length=200)


class ProjectOut(BaseModel):
    id: str
    org_id: str
    name: str
    created_at: datetime


class KeyIn(BaseModel):
    project_id: str
    name: str = Field(default="", max_length=200)
    models: list[str] | None = Field(default=None, description="Allowed models; omit for every priced model.")


class KeyOut(BaseModel):
    id: str
    project_id: str
    org_id: str
    name: str
    prefix: str
    models: list[str] | None
    created_at: datetime
    revoked_at: datetime | None


class NewKeyOut(KeyOut):
    secret: str = Field(description="Shown once; spendgate keeps only its hash.")


class TotalsOut(BaseModel):
    requests: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    reasoning_tokens: int
    cost_nanos: int
    cost_usd: str


class UsageRowOut(TotalsOut):
    group: str


class LimitIn(BaseModel):
    scope: str = Field(description="org:ID, project:ID or key:ID")
    period: Literal["day", "week", "month", "total"] = "month"
    soft_usd: str | None = Field(
        default=None, description="Alert when spend crosses this (USD, decimal string)."
    )
    hard_usd: str | None = Field(default=None, description="Refuse calls that could pass this (USD).")
    alert_shares: list[int] = Field(
        default=[50, 80, 100], description="Percent of the hard limit that alert."
    )


class LimitOut(BaseModel):
    scope: str
    period: str
    timezone: str
    soft_nanos: int | None
    soft_usd: str | None
    hard_nanos: int | None
    hard_usd: str | None
    alert_shares: list[int]
    period_start: datetime
    period_end: datetime | None
    spent_nanos: int
    spent_usd: str
    reserved_nanos: int
    reserved_usd: str
    remaining_nanos: int | None
    remaining_usd: str | None
    burn_rate_usd_per_hour: str
    forecast_hard_limit_at: datetime | None


class UsageOut(BaseModel):
    scope: str
    timezone: str
    since: datetime
    until: datetime
    totals: TotalsOut
    by: str | None
    rows: list[UsageRowOut]
    limits: list[LimitOut] = Field(default=[], description="The scope's limits and standing in this period.")


class UsageEventOut(BaseModel):
    request_id: str
    occurred_at: datetime
    org_id: str
    project_id: str
    key_id: str
    model: str
    upstream: str
    endpoint: str
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    service_tier: str | None
    cost_nanos: int
    cost_usd: str
    status: str
    latency_ms: int
    streamed: bool
    estimated: bool


class ClockIn(BaseModel):
    set: datetime | None = Field(default=None, description="Move the test clock to this time (with offset).")
    advance_seconds: int | None = Field(default=None, ge=0)


class ClockOut(BaseModel):
    now: datetime
    test_clock: bool


def create_admin_app(container: Callable[[], Container]) -> FastAPI:
    """`container` is called per request: the app exists before the container is started."""
    app = FastAPI(
        title="spendgate admin API",
        version="1",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=f"{PREFIX}/docs",
        redoc_url=None,
    )
    bearer = HTTPBearer(auto_error=False)

    def authorized(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Container:
        c = container()
        if credentials is None or not c.admin_token_matches(credentials.credentials):
            raise HTTPException(
                401,
                "Send the admin token as 'Authorization: Bearer …' "
                "(SPENDGATE_ADMIN_TOKEN, or the token printed on first start).",
            )
        return c

    Admin = Annotated[Container, Depends(authorized)]
    api = APIRouter(prefix=PREFIX)

    @app.exception_handler(NotFound)
    async def not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Invalid)
    async def invalid(_: Request, exc: Invalid) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @api.post("/orgs", status_code=201)
    def create_org(body: OrgIn, c: Admin) -> OrgOut:
        return _org(c.accounts.create_org(body.name, body.timezone))

    @api.get("/orgs")
    def list_orgs(c: Admin) -> list[OrgOut]:
        return [_org(o) for o in c.accounts.list_orgs()]

    @api.get("/orgs/{org_id}")
    def get_org(org_id: str, c: Admin) -> OrgOut:
        return _org(c.accounts.org(org_id))

    @api.post("/projects", status_code=201)
    def create_project(body: ProjectIn, c: Admin) -> ProjectOut:
        return _project(c.accounts.create_project(body.org_id, body.name))

    @api.get("/projects")
    def list_projects(c: Admin, org_id: str | None = None) -> list[ProjectOut]:
        return [_project(p) for p in c.accounts.list_projects(org_id)]

    @api.get("/projects/{project_id}")
    def get_project(project_id: str, c: Admin) -> ProjectOut:
        return _project(c.accounts.project(project_id))

    @api.post("/keys", status_code=201)
    def create_key(body: KeyIn, c: Admin) -> NewKeyOut:
        key, secret = c.accounts.create_key(body.project_id, body.name, body.models)
        return NewKeyOut(**_key(key).model_dump(), secret=secret)

    @api.get("/keys")
    def list_keys(c: Admin, project_id: str | None = None) -> list[KeyOut]:
        return [_key(k) for k in c.accounts.list_keys(project_id)]

    @api.get("/keys/{key_id}")
    def get_key(key_id: str, c: Admin) -> KeyOut:
        return _key(c.accounts.key(key_id))

    @api.post("/keys/{key_id}/revoke")
    def revoke_key(key_id: str, c: Admin) -> KeyOut:
        return _key(c.accounts.revoke_key(key_id))

    @api.get("/usage")
    def usage(
        c: Admin,
        scope: Annotated[str | None, Query(description="org:ID, project:ID or key:ID; omit for all")] = None,
        since: datetime | None = None,
        until: datetime | None = None,
        by: Literal["day", "model", "key", "project"] | None = None,
    ) -> UsageOut:
        report = _usage(c.reporting.usage(scope, since, until, by))
        if scope is not None and scope != "all":
            report.limits = [_standing(st) for st in c.limits.standings(scope)]
        return report

    @api.get("/usage/events/{request_id}")
    def usage_event(request_id: str, c: Admin) -> UsageEventOut:
        event = c.store.get_usage_event(request_id)
        if event is None:
            raise NotFound(f"no usage event {request_id!r}")
        return _event(event)

    @api.post("/limits")
    def set_limit(body: LimitIn, c: Admin) -> LimitOut:
        try:
            soft = parse_usd(body.soft_usd) if body.soft_usd is not None else None
            hard = parse_usd(body.hard_usd) if body.hard_usd is not None else None
        except ValueError as exc:
            raise Invalid(str(exc)) from exc
        limit = c.limits.set(body.scope, body.period, soft, hard, tuple(body.alert_shares))
        standing = next(st for st in c.limits.standings(body.scope) if st.limit.period == limit.period)
        return _standing(standing)

    @api.get("/limits")
    def list_limits(
        c: Admin, scope: Annotated[str | None, Query(description="org:ID, project:ID or key:ID")] = None
    ) -> list[LimitOut]:
        return [_standing(st) for st in c.limits.standings(scope)]

    @api.delete("/limits", status_code=204)
    def remove_limit(
        c: Admin, scope: str, period: Literal["day", "week", "month", "total"] = "month"
    ) -> None:
        c.limits.remove(scope, period)

    @api.get("/clock")
    def get_clock(c: Admin) -> ClockOut:
        return ClockOut(now=c.clock.now(), test_clock=c.manual_clock is not None)

    @api.post("/clock")
    def move_clock(body: ClockIn, c: Admin) -> ClockOut:
        clock = c.manual_clock
        if clock is None:
            raise Invalid("the clock can only be moved when the server runs with --test-clock")
        try:
            if body.set is not None:
                clock.set(body.set)
            if body.advance_seconds:
                clock.advance(timedelta(seconds=body.advance_seconds))
        except ValueError as exc:
            raise Invalid(str(exc)) from exc
        return ClockOut(now=clock.now(), test_clock=True)

    app.include_router(api)
    app.include_router(alerts_router(authorized), prefix=PREFIX)
    return app


def _org(o: Org) -> OrgOut:
    return OrgOut(id=o.id, name=o.name, timezone=o.timezone, created_at=o.created_at)


def _project(p: Project) -> ProjectOut:
    return ProjectOut(id=p.id, org_id=p.org_id, name=p.name, created_at=p.created_at)


def _key(k: ApiKey) -> KeyOut:
    return KeyOut(
        id=k.id,
        project_id=k.project_id,
        org_id=k.org_id,
        name=k.name,
        prefix=k.display_prefix,
        models=None if k.models is None else list(k.models),
        created_at=k.created_at,
        revoked_at=k.revoked_at,
    )


def _totals(t: UsageTotals) -> dict[str, Any]:
    return {
        "requests": t.requests,
        "input_tokens": t.input_tokens,
        "output_tokens": t.output_tokens,
        "cached_input_tokens": t.cached_input_tokens,
        "reasoning_tokens": t.reasoning_tokens,
        "cost_nanos": t.cost_nanos,
        "cost_usd": format_usd(t.cost_nanos),
    }


def _usage(r: UsageReport) -> UsageOut:
    return UsageOut(
        scope=r.scope,
        timezone=r.timezone,
        since=r.start,
        until=r.end,
        totals=TotalsOut(**_totals(r.totals)),
        by=r.by,
        rows=[UsageRowOut(group=group, **_totals(t)) for group, t in r.rows.items()],
    )


def _standing(st: LimitStanding) -> LimitOut:
    limit = st.limit
    remaining = st.remaining_nanos

    def usd(nanos: int | None) -> str | None:
        return None if nanos is None else format_usd(nanos)

    return LimitOut(
        scope=str(limit.scope),
        period=limit.period.value,
        timezone=st.timezone,
        soft_nanos=limit.soft_nanos,
        soft_usd=usd(limit.soft_nanos),
        hard_nanos=limit.hard_nanos,
        hard_usd=usd(limit.hard_nanos),
        alert_shares=list(limit.alert_shares),
        period_start=st.period_start,
        period_end=st.period_end,
        spent_nanos=st.spent_nanos,
        spent_usd=format_usd(st.spent_nanos),
        reserved_nanos=st.reserved_nanos,
        reserved_usd=format_usd(st.reserved_nanos),
        remaining_nanos=remaining,
        remaining_usd=usd(remaining),
        burn_rate_usd_per_hour=format_usd(st.burn_rate_nanos_per_hour),
        forecast_hard_limit_at=st.forecast_hard_limit_at,
    )


def _event(e: UsageEvent) -> UsageEventOut:
    u = e.usage
    return UsageEventOut(
        request_id=e.request_id,
        occurred_at=e.occurred_at,
        org_id=e.org_id,
        project_id=e.project_id,
        key_id=e.key_id,
        model=e.model,
        upstream=e.upstream,
        endpoint=e.endpoint,
        input_tokens=u.input_tokens,
        cached_input_tokens=u.cached_input_tokens,
        output_tokens=u.output_tokens,
        reasoning_tokens=u.reasoning_tokens,
        service_tier=u.service_tier,
        cost_nanos=e.cost_nanos,
        cost_usd=format_usd(e.cost_nanos),
        status=e.status.value,
        latency_ms=e.latency_ms,
        streamed=e.streamed,
        estimated=e.estimated,
    )
