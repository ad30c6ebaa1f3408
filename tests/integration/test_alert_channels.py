"""Spend alerts end to end against real receivers: a local HTTP server for webhooks, aiosmtpd for
e-mail, and the log; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from typing import Any, cast

import httpx
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from multidict import CIMultiDict
from rich.console import Console
from sqlalchemy import insert
from typer.testing import CliRunner

from spendgate.adapters.notify.email import EmailSender, SmtpConfig
from spendgate.adapters.notify.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookSender,
    verify_signature,
)
from spendgate.adapters.store.alert_store import SqlAlertStore
from spendgate.adapters.store.sql_store import SqlStore
from spendgate.adapters.store.tables import spend_limits
from spendgate.domain.clock import ManualClock, SystemClock
from spendgate.domain.money import NANOS_PER_USD
from spendgate.domain.spend_limits import CounterSnapshot, Period, Scope, ScopeKind, SpendLimit, period_window
from spendgate.entrypoints import cli_alerts, cli_common
from spendgate.entrypoints.admin_alerts import alerts_router
from spendgate.entrypoints.admin_client import AdminClient
from spendgate.services.accounts import Accounts
from spendgate.services.alert_ports import AlertRecord, ChannelKind, ChannelSender, DeliveryState
from spendgate.services.alerting import AlertAdmin, AlertDispatcher, Alerting
from spendgate.services.errors import Invalid, NotFound

USD = NANOS_PER_USD
T0 = datetime(2026, 11, 11, 9, 30, tzinfo=UTC)
KEY = Scope(ScopeKind.KEY, "key_x")
MONTHLY = SpendLimit(KEY, Period.MONTH, hard_nanos=100 * USD)
FAST = (0.01, 0.01)  # retry waits, seconds
POLL = 0.02


# real receivers


@dataclass
class Received:
    headers: CIMultiDict[str]
    body: bytes


@dataclass
class WebhookReceiver:
    """A real HTTP server on 127.0.0.1; answers each request with the next status (then 200)."""

    statuses: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(Received(request.headers.copy(), await request.read()))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200, text="ok")


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    hook = WebhookReceiver()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    hook.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield hook
    finally:
        await runner.cleanup()


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, Message]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.messages.append((envelope, message_from_bytes(content)))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield mailbox, controller.port
    finally:
        controller.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# the pieces under test


@dataclass
class World:
    store: SqlStore
    alerts: SqlAlertStore
    clock: ManualClock
    admin: AlertAdmin
    alerting: Alerting
    org_id: str


@pytest.fixture
def world(store: SqlStore) -> World:
    clock = ManualClock(T0)
    org = Accounts(store, clock).create_org("Acme")
    alert_store = SqlAlertStore(store.engine)
    return World(
        store=store,
        alerts=alert_store,
        clock=clock,
        admin=AlertAdmin(alert_store, store, clock),
        alerting=Alerting(alert_store, clock),
        org_id=org.id,
    )


@pytest.fixture
async def webhooks() -> AsyncIterator[WebhookSender]:
    sender = WebhookSender(SystemClock(), timeout=5)
    await sender.start()
    try:
        yield sender
    finally:
        await sender.close()


def _snapshot(
    w: World, spent_usd: int, at: datetime = T0, limit: SpendLimit = MONTHLY, reserved: int = 0
) -> CounterSnapshot:
    start, end = period_window(limit.period, at, "UTC")
    return CounterSnapshot(w.org_id, limit, start, end, spent_usd * USD, reserved, at)


def _dispatcher(
    w: World, senders: dict[ChannelKind, ChannelSender], schedule: tuple[float, ...] = FAST
) -> AlertDispatcher:
    return AlertDispatcher(w.alerts, senders, SystemClock(), retry_schedule=schedule, poll_seconds=POLL)


async def _eventually(check: Callable[[], bool], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await asyncio.to_thread(check):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting for the condition")
        await asyncio.sleep(POLL)


def _settled(w: World, count: int) -> Callable[[], bool]:
    """True once `count` deliveries exist and none is pending."""

    def check() -> bool:
        states = [d.delivery.state for a in w.alerts.list_alerts(w.org_id) for d in a.deliveries]
        return len(states) == count and DeliveryState.PENDING not in states

    return check


def _thresholds(records: list[AlertRecord]) -> list[tuple[str, str]]:
    return sorted((r.event.threshold, r.event.period_start.date().isoformat()) for r in records)


async def _running(dispatcher: AlertDispatcher, until: Callable[[], bool]) -> None:
    await dispatcher.start()
    try:
        await _eventually(until)
    finally:
        await dispatcher.stop()


# webhooks


async def test_each_threshold_is_delivered_once_per_period_with_a_valid_signature(
    world: World, receiver: WebhookReceiver, webhooks: WebhookSender
) -> None:
    w = world
    channel = w.admin.add_channel(w.org_id, "webhook", receiver.url)
    assert channel.secret is not None and channel.secret.startswith("whsec_")
    replica = Alerting(w.alerts, w.clock)  # a second gateway process on the same database

    # Spending climbs past 50 % and 80 %; every settlement reports it, many at once, on two replicas.
    climbing = [_snapshot(w, usd, T0 + timedelta(minutes=usd)) for usd in (10, 55, 60, 81, 85, 90)]
    await asyncio.gather(
        *(
            sink.counters_changed(climbing[i:])
            for i in range(len(climbing))
            for sink in (w.alerting, replica)
        ),
        *(replica.counters_changed([s]) for s in climbing for _ in range(5)),
    )
    assert _thresholds(w.alerts.list_alerts(w.org_id)) == [
        ("hard:50", "2026-11-01"),
        ("hard:80", "2026-11-01"),
    ]

    await _running(_dispatcher(w, {ChannelKind.WEBHOOK: webhooks}), _settled(w, 2))
    assert len(receiver.requests) == 2
    bodies = [json.loads(r.body) for r in receiver.requests]
    assert sorted(b["threshold"]["key"] for b in bodies) == ["hard:50", "hard:80"]
    for request in receiver.requests:
        assert request.headers["Content-Type"] == "application/json"
        assert verify_signature(
            channel.secret,
            request.headers[TIMESTAMP_HEADER],
            request.body,
            request.headers[SIGNATURE_HEADER],
            now=datetime.now(UTC),
        )

    # Settling again in the same month fires nothing new; the next month starts afresh.
    await w.alerting.counters_changed([_snapshot(w, 95, T0 + timedelta(days=1))])
    december = T0 + timedelta(days=25)
    w.clock.set(december)
    await asyncio.gather(*(w.alerting.counters_changed([_snapshot(w, 52, december)]) for _ in range(5)))
    assert _thresholds(w.alerts.list_alerts(w.org_id)) == [
        ("hard:50", "2026-11-01"),
        ("hard:50", "2026-12-01"),
        ("hard:80", "2026-11-01"),
    ]
    await _running(_dispatcher(w, {ChannelKind.WEBHOOK: webhooks}), _settled(w, 3))
    assert len(receiver.requests) == 3
    latest = json.loads(receiver.requests[-1].body)
    assert (latest["threshold"]["key"], latest["period_start"]) == ("hard:50", "2026-12-01T00:00:00+00:00")


async def test_a_tampered_or_replayed_webhook_fails_verification(
    world: World, receiver: WebhookReceiver, webhooks: WebhookSender
) -> None:
    w = world
    secret = w.admin.add_channel(w.org_id, "webhook", receiver.url).secret
    assert secret is not None
    await w.alerting.counters_changed([_snapshot(w, 50)])
    await _running(_dispatcher(w, {ChannelKind.WEBHOOK: webhooks}), _settled(w, 1))
    (request,) = receiver.requests
    timestamp, signature = request.headers[TIMESTAMP_HEADER], request.headers[SIGNATURE_HEADER]
    now = datetime.now(UTC)
    assert signature.startswith("v1=")
    assert verify_signature(secret, timestamp, request.body, signature, now=now)
    tampered = request.body.replace(b'"spent_usd":"50.00"', b'"spent_usd":"5.00"')
    assert tampered != request.body
    assert not verify_signature(secret, timestamp, tampered, signature, now=now)
    assert not verify_signature(secret, int(timestamp) + 1, request.body, signature, now=now)
    assert not verify_signature("whsec_other", timestamp, request.body, signature, now=now)
    assert not verify_signature(secret, timestamp, request.body, signature, now=now + timedelta(minutes=6))
    assert verify_signature(secret, timestamp, request.body, f"v1=00, {signature}", now=now)  # key rotation


async def test_a_receiver_failing_twice_gets_three_logged_attempts_and_ends_delivered(
    world: World, receiver: WebhookReceiver, webhooks: WebhookSender
) -> None:
    w = world
    w.admin.add_channel(w.org_id, "webhook", receiver.url)
    receiver.statuses = [500, 500]
    await w.alerting.counters_changed([_snapshot(w, 50)])
    await _running(
        _dispatcher(w, {ChannelKind.WEBHOOK: webhooks}, schedule=(0.01, 0.01, 0.01)), _settled(w, 1)
    )
    ((delivery,),) = [a.deliveries for a in w.alerts.list_alerts(w.org_id)]
    assert delivery.delivery.state is DeliveryState.DELIVERED
    assert delivery.delivery.attempts == len(delivery.attempts) == 3
    assert [(a.succeeded, a.status_code) for a in delivery.attempts] == [
        (False, 500),
        (False, 500),
        (True, 200),
    ]
    assert [a.error for a in delivery.attempts] == ["HTTP 500 Internal Server Error"] * 2 + [None]
    assert delivery.delivery.next_attempt_at is None
    assert len(receiver.requests) == 3
    assert len({r.body for r in receiver.requests}) == 1  # a retry sends the same alert byte for byte


async def test_an_unreachable_receiver_ends_failed_after_the_schedule(
    world: World, webhooks: WebhookSender
) -> None:
    w = world
    w.admin.add_channel(w.org_id, "webhook", f"http://127.0.0.1:{_free_port()}/hook")
    await w.alerting.counters_changed([_snapshot(w, 50)])
    await _running(_dispatcher(w, {ChannelKind.WEBHOOK: webhooks}), _settled(w, 1))
    ((delivery,),) = [a.deliveries for a in w.alerts.list_alerts(w.org_id)]
    assert delivery.delivery.state is DeliveryState.FAILED
    assert delivery.delivery.attempts == len(delivery.attempts) == 1 + len(FAST)
    assert all(not a.succeeded and a.status_code is None and a.error for a in delivery.attempts)
    assert "ClientConnectorError" in (delivery.attempts[0].error or "")
    gaps = [b.attempted_at - a.attempted_at for a, b in itertools.pairwise(delivery.attempts)]
    assert all(gap >= timedelta(seconds=0.01) for gap in gaps)


async def test_deliveries_survive_a_restart_and_are_claimed_once(
    world: World, receiver: WebhookReceiver, webhooks: WebhookSender
) -> None:
    w = world
    w.admin.add_channel(w.org_id, "webhook", receiver.url)
    await w.alerting.counters_changed([_snapshot(w, 50)])  # no dispatcher running: stays pending
    now = datetime.now(UTC)
    claimed = w.alerts.claim_due(now, now + timedelta(seconds=0.2), 10)
    assert len(claimed) == 1 and claimed[0].alert.payload["threshold"]["key"] == "hard:50"
    assert w.alerts.claim_due(now, now + timedelta(seconds=0.2), 10) == []  # leased to the first
    # The first dispatcher "died" holding it; after the lease a fresh one delivers it.
    await asyncio.sleep(0.25)
    await _running(_dispatcher(w, {ChannelKind.WEBHOOK: webhooks}), _settled(w, 1))
    assert len(receiver.requests) == 1


async def test_a_disabled_channel_gets_nothing_new_and_its_pending_deliveries_stop(
    world: World, receiver: WebhookReceiver, webhooks: WebhookSender
) -> None:
    w = world
    first = w.admin.add_channel(w.org_id, "webhook", receiver.url).channel
    await w.alerting.counters_changed([_snapshot(w, 50)])
    assert w.admin.disable_channel(first.id).disabled_at == T0
    w.clock.advance(timedelta(minutes=1))
    await w.alerting.counters_changed([_snapshot(w, 80)])
    await _running(_dispatcher(w, {ChannelKind.WEBHOOK: webhooks}), _settled(w, 1))
    records = w.alerts.list_alerts(w.org_id)
    assert [(r.event.threshold, len(r.deliveries)) for r in records] == [("hard:80", 0), ("hard:50", 1)]
    (stopped,) = records[1].deliveries
    assert stopped.delivery.state is DeliveryState.FAILED
    assert stopped.attempts[0].error == "not sent: the channel was disabled"
    assert receiver.requests == []


# e-mail


async def test_the_email_arrives_with_the_subject_and_the_key_numbers(
    world: World, smtp_server: tuple[Mailbox, int]
) -> None:
    w = world
    mailbox, port = smtp_server
    w.admin.add_channel(w.org_id, "email", "ops@example.com")
    email = EmailSender(
        SmtpConfig(host="127.0.0.1", port=port, starttls=False, from_address="alerts@spendgate.test")
    )
    sender: dict[ChannelKind, ChannelSender] = {ChannelKind.EMAIL: email}

    await w.alerting.counters_changed([_snapshot(w, 81, reserved=USD // 2)])
    await w.alerting.counters_changed([_snapshot(w, 85)] * 3)
    await _running(_dispatcher(w, sender), _settled(w, 2))
    assert len(mailbox.messages) == 2
    subjects = sorted(str(m["Subject"]) for _, m in mailbox.messages)
    assert subjects == [
        "[spendgate] key:key_x reached 50% of its monthly hard limit",
        "[spendgate] key:key_x reached 80% of its monthly hard limit",
    ]
    envelope, message = next((e, m) for e, m in mailbox.messages if "80%" in str(m["Subject"]))
    assert envelope.mail_from == "alerts@spendgate.test" and envelope.rcpt_tos == ["ops@example.com"]
    body = message.get_payload(decode=True)
    assert isinstance(body, bytes)
    text = body.decode()
    assert "key:key_x has spent $81.00, 80% or more of its monthly hard limit of $100.00." in text
    assert "Spent:" in text and "$81.00 (held for calls in flight: $0.50)" in text
    assert "Hard limit:" in text and "$100.00" in text
    assert "Burn rate:" in text and "per hour" in text
    assert "Hard limit reached at:" in text

    # The new month mails again.
    w.clock.set(datetime(2026, 12, 2, tzinfo=UTC))
    await w.alerting.counters_changed([_snapshot(w, 50, at=datetime(2026, 12, 2, tzinfo=UTC))])
    await _running(_dispatcher(w, sender), _settled(w, 3))
    assert len(mailbox.messages) == 3


async def test_an_email_channel_without_smtp_is_retried_then_failed_with_the_reason(world: World) -> None:
    w = world
    w.admin.add_channel(w.org_id, "email", "ops@example.com")
    await w.alerting.counters_changed([_snapshot(w, 50)])
    await _running(_dispatcher(w, {}), _settled(w, 1))
    ((delivery,),) = [a.deliveries for a in w.alerts.list_alerts(w.org_id)]
    assert delivery.delivery.state is DeliveryState.FAILED and len(delivery.attempts) == 3
    assert "SPENDGATE_SMTP_HOST" in (delivery.attempts[0].error or "")


async def test_an_unreachable_smtp_server_is_retried_then_failed(world: World) -> None:
    w = world
    w.admin.add_channel(w.org_id, "email", "ops@example.com")
    email = EmailSender(SmtpConfig(host="127.0.0.1", port=_free_port(), starttls=False, timeout=2))
    await w.alerting.counters_changed([_snapshot(w, 50)])
    await _running(_dispatcher(w, {ChannelKind.EMAIL: email}), _settled(w, 1))
    ((delivery,),) = [a.deliveries for a in w.alerts.list_alerts(w.org_id)]
    assert delivery.delivery.state is DeliveryState.FAILED and len(delivery.attempts) == 3
    assert "ConnectionRefusedError" in (delivery.attempts[0].error or "")


# the log


async def test_every_fired_alert_is_logged_once_with_its_message_and_json(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    w = world
    caplog.set_level(logging.WARNING, logger="spendgate.alerts")
    soft_and_hard = SpendLimit(KEY, Period.DAY, soft_nanos=5 * USD, hard_nanos=10 * USD)
    at = T0 + timedelta(hours=2)
    await asyncio.gather(
        *(w.alerting.counters_changed([_snapshot(w, 6, at, soft_and_hard)]) for _ in range(4))
    )
    records = [r for r in caplog.records if r.name == "spendgate.alerts"]
    assert [r.levelno for r in records] == [logging.WARNING, logging.WARNING]
    logged = sorted(records, key=lambda r: r.getMessage())
    payloads = [json.loads(r.getMessage()[r.getMessage().index('{"id":') :]) for r in logged]
    assert sorted(p["threshold"]["key"] for p in payloads) == ["hard:50", "soft"]
    for record, payload in zip(logged, payloads, strict=True):
        assert record.getMessage().startswith(payload["message"])
        assert payload["period"] == "day" and payload["spent_usd"] == "6.00"
    # No channel configured: the log is where it went; the event is recorded all the same.
    assert [len(a.deliveries) for a in w.alerts.list_alerts(w.org_id)] == [0, 0]


async def test_an_all_time_limit_measures_its_rate_from_when_the_limit_was_set(world: World) -> None:
    w = world
    limit = SpendLimit(Scope(ScopeKind.PROJECT, "proj_1"), Period.TOTAL, hard_nanos=100 * USD)
    set_at = T0 - timedelta(hours=50)
    with w.store.engine.begin() as c:
        c.execute(
            insert(spend_limits).values(
                scope_kind="project",
                scope_id="proj_1",
                period="total",
                soft_nanos=None,
                hard_nanos=100 * USD,
                alert_shares="50,80,100",
                created_at=set_at,
                updated_at=set_at,
            )
        )
    await w.alerting.counters_changed([_snapshot(w, 50, T0, limit)])
    (record,) = w.alerts.list_alerts(w.org_id)
    payload = json.loads(record.event.payload)
    assert payload["burn_rate_per_hour_usd"] == "1.00"
    assert payload["burn_rate_since"] == set_at.isoformat()
    assert payload["forecast_hard_limit_at"] == (T0 + timedelta(hours=50)).isoformat()


# admin API and CLI


def _admin_app(w: World) -> FastAPI:
    @dataclass
    class Container:
        alert_admin: AlertAdmin

    container = Container(w.admin)
    app = FastAPI()
    app.include_router(alerts_router(lambda: container), prefix="/admin/v1")

    @app.exception_handler(NotFound)
    async def not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Invalid)
    async def invalid(_: Request, exc: Invalid) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    return app


async def test_the_admin_api_manages_channels_and_lists_alerts_with_their_attempts(
    world: World, receiver: WebhookReceiver, webhooks: WebhookSender
) -> None:
    w = world
    receiver.statuses = [503]
    with TestClient(_admin_app(w)) as http:
        created = _post(
            http, "/admin/v1/alert-channels", {"org_id": w.org_id, "kind": "webhook", "target": receiver.url}
        )
        assert created.status_code == 201
        hook = created.json()
        assert hook["secret"].startswith("whsec_") and hook["enabled"] is True
        w.clock.advance(timedelta(seconds=1))
        mail = _post(
            http, "/admin/v1/alert-channels", {"org_id": w.org_id, "kind": "email", "target": "a@b.example"}
        )
        assert mail.status_code == 201 and mail.json()["secret"] is None
        bad = {"org_id": w.org_id, "kind": "webhook", "target": "ftp://x"}
        assert _post(http, "/admin/v1/alert-channels", bad).status_code == 422
        bad = {"org_id": w.org_id, "kind": "email", "target": "a@b.example\r\nBcc: x@y.z"}
        assert _post(http, "/admin/v1/alert-channels", bad).status_code == 422
        bad = {"org_id": w.org_id, "kind": "sms", "target": "+1"}
        assert _post(http, "/admin/v1/alert-channels", bad).status_code == 422
        bad = {"org_id": "org_nope", "kind": "email", "target": "a@b.example"}
        assert _post(http, "/admin/v1/alert-channels", bad).status_code == 404

        listed = http.get("/admin/v1/alert-channels", params={"org_id": w.org_id}).json()
        assert [c["id"] for c in listed] == [hook["id"], mail.json()["id"]]
        assert all("secret" not in c for c in listed)
        disabled = _post(http, f"/admin/v1/alert-channels/{mail.json()['id']}/disable")
        assert disabled.status_code == 200 and disabled.json()["enabled"] is False
        assert _post(http, "/admin/v1/alert-channels/chan_nope/disable").status_code == 404

        await w.alerting.counters_changed([_snapshot(w, 50)])
        await _running(_dispatcher(w, {ChannelKind.WEBHOOK: webhooks}), _settled(w, 1))
        (alert,) = http.get("/admin/v1/alerts", params={"org_id": w.org_id}).json()
        assert alert["scope"] == "key:key_x" and alert["threshold"] == "hard:50"
        assert alert["title"] == "key:key_x reached 50% of its monthly hard limit"
        assert alert["payload"]["id"] == alert["id"]
        (delivery,) = alert["deliveries"]
        assert (delivery["channel_id"], delivery["state"], delivery["attempt_count"]) == (
            hook["id"],
            "delivered",
            2,
        )
        assert [(a["succeeded"], a["status_code"]) for a in delivery["attempts"]] == [
            (False, 503),
            (True, 200),
        ]
        assert http.get("/admin/v1/alerts", params={"org_id": "org_nope"}).status_code == 404


def test_the_cli_adds_lists_and_disables_channels_and_lists_alerts(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world
    app = _admin_app(w)

    def client(url: str, token: str | None) -> AdminClient:
        admin = AdminClient(url, token)
        admin._http.close()
        # Starlette's TestClient speaks httpx's Client interface; the command closes it.
        admin._http = cast(httpx.Client, TestClient(app, base_url="http://testserver/admin/v1"))
        return admin

    monkeypatch.setattr(cli_alerts, "admin", client)
    wide = Console(width=250)  # tables unwrapped
    monkeypatch.setattr(cli_alerts, "console", wide)
    monkeypatch.setattr(cli_common, "console", wide)
    cli = CliRunner()
    run: Callable[[list[str]], Any] = lambda args: cli.invoke(cli_alerts.alerts_app, args)  # noqa: E731

    added = run(["channels", "add", w.org_id, "--webhook", "https://hooks.example/x", "--json"])
    assert added.exit_code == 0, added.output
    hook = json.loads(added.output)
    assert hook["secret"].startswith("whsec_")
    w.clock.advance(timedelta(seconds=1))
    added = run(["channels", "add", w.org_id, "--email", "ops@example.com"])
    assert added.exit_code == 0 and "ops@example.com" in added.output
    both = run(["channels", "add", w.org_id, "--email", "a@b.c", "--webhook", "https://x.example"])
    assert both.exit_code == 2 and "exactly one" in both.output
    missing = run(["channels", "add", "org_nope", "--email", "a@b.example"])
    assert missing.exit_code == 1 and "no org 'org_nope'" in missing.output

    listed = json.loads(run(["channels", "list", w.org_id, "--json"]).output)
    assert [c["kind"] for c in listed] == ["webhook", "email"]
    disabled = json.loads(run(["channels", "disable", hook["id"], "--json"]).output)
    assert disabled["enabled"] is False

    asyncio.run(w.alerting.counters_changed([_snapshot(w, 100)]))
    alerts = json.loads(run(["list", w.org_id, "--json"]).output)
    assert sorted(a["threshold"] for a in alerts) == ["hard:100", "hard:50", "hard:80"]
    table = run(["list", w.org_id])
    assert table.exit_code == 0 and "key:key_x" in table.output and "pending" in table.output


def _post(http: TestClient, path: str, body: dict[str, Any] | None = None) -> Any:
    return http.post(path, json=body or {})
