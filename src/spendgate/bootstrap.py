"""The one place that wires adapters to use cases. Nothing happens at import time."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiohttp import web

from spendgate.adapters.notify.email import EmailSender, SmtpConfig
from spendgate.adapters.notify.webhook import WebhookSender
from spendgate.adapters.pricing.model_limits import ModelLimits
from spendgate.adapters.pricing.price_book import GenaiPriceBook, load_price_file
from spendgate.adapters.store.alert_store import SqlAlertStore
from spendgate.adapters.store.engine import create_store_engine, migrate
from spendgate.adapters.store.ledger_store import SqlLedgerStore
from spendgate.adapters.store.ledger_writer import LedgerWriter
from spendgate.adapters.store.sql_store import SqlStore
from spendgate.adapters.tokenizer import count_text_tokens
from spendgate.adapters.upstream.client import AiohttpUpstreamClient
from spendgate.adapters.upstream.routing import Upstream, UpstreamRouter
from spendgate.config import OPENAI_BASE_URL, Settings
from spendgate.domain.accounts import Org, new_id
from spendgate.domain.clock import Clock, ManualClock, SystemClock
from spendgate.domain.prices import OperatorPriceSheet
from spendgate.domain.spend_limits import SpendLimit
from spendgate.services.accounts import Accounts
from spendgate.services.alert_ports import ChannelKind, ChannelSender
from spendgate.services.alerting import AlertAdmin, AlertDispatcher, Alerting, parse_retry_schedule
from spendgate.services.limits import Limits
from spendgate.services.metering import KeyDirectory, Metering
from spendgate.services.reporting import Reporting
from spendgate.services.spend_guard import LimitsDirectory, SpendGuard
from spendgate.simulator.app import SimulatorConfig, start_simulator

log = logging.getLogger(__name__)

ADMIN_TOKEN_SETTING = "admin_token_sha256"  # noqa: S105 (a setting name, not a secret)


@dataclass
class Container:
    settings: Settings
    clock: Clock
    store: SqlStore
    accounts: Accounts
    reporting: Reporting
    keys: KeyDirectory
    metering: Metering
    metering_guard: SpendGuard
    recorder: LedgerWriter
    ledger: SqlLedgerStore
    limits: Limits
    upstream_client: AiohttpUpstreamClient
    router: UpstreamRouter
    admin_token_sha256: str
    alert_store: SqlAlertStore
    alerting: Alerting
    alert_dispatcher: AlertDispatcher
    alert_admin: AlertAdmin
    webhook_sender: WebhookSender
    generated_admin_token: str | None = None  # set only on the first start, to print it once
    _simulator: web.AppRunner | None = field(default=None, repr=False)
    _maintenance: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def manual_clock(self) -> ManualClock | None:
        return self.clock if isinstance(self.clock, ManualClock) else None

    def admin_token_matches(self, token: str) -> bool:
        digest = hashlib.sha256(token.encode()).hexdigest()
        return hmac.compare_digest(digest, self.admin_token_sha256)

    async def close(self) -> None:
        if self._maintenance is not None:
            self._maintenance.cancel()
        await self.recorder.close()
        await self.upstream_client.close()
        await self.alert_dispatcher.stop()
        await self.webhook_sender.close()
        if self._simulator is not None:
            await self._simulator.cleanup()
        self.ledger.close()
        self.store.close()

    async def maintain_holds(self) -> None:
        """Keep this process's reservations alive, and release those of processes that died."""
        ttl = timedelta(seconds=self.settings.hold_ttl_seconds)
        while True:
            try:
                now = datetime.now(UTC)
                live = list(self.metering_guard.live)
                await asyncio.to_thread(self.ledger.refresh_holds, self.recorder.owner, live, now + ttl)
                if await asyncio.to_thread(self.ledger.expire_holds, now):
                    self.metering_guard.settled(None)
            except Exception:
                log.exception("maintaining reservations failed; retrying")
            await asyncio.sleep(self.settings.hold_ttl_seconds / 4)


async def build_container(settings: Settings) -> Container:
    """Open the database (migrating it), start the usage writer, the upstream pool and, when no
    upstream is configured, the built-in simulator."""
    clock: Clock = ManualClock(datetime.now(UTC)) if settings.test_clock else SystemClock()
    engine = create_store_engine(settings.db, settings.sqlite_synchronous)
    await asyncio.to_thread(migrate, engine)
    store = SqlStore(engine)
    token_hash, generated = await asyncio.to_thread(_admin_token, settings, store)

    file_config = settings.file_config()
    simulator_runner = None
    if settings.simulated(file_config):
        simulator_runner, port = await start_simulator("127.0.0.1", 0, SimulatorConfig())
        default = Upstream(name="simulator", base_url=f"http://127.0.0.1:{port}/v1", api_key="simulated")
    else:
        default = Upstream(
            name="default", base_url=settings.upstream_url or OPENAI_BASE_URL, api_key=settings.upstream_key()
        )
    routed = [
        Upstream(
            name=e.name, base_url=e.base_url, api_key=e.api_key, models=e.models, provider_id=e.provider_id
        )
        for e in file_config.upstreams
    ]
    router = UpstreamRouter(routed, default)

    price_file = settings.price_file or file_config.price_file
    operator_prices = load_price_file(price_file) if price_file else OperatorPriceSheet()
    prices = GenaiPriceBook(operator_prices, provider_for=lambda model: router.route(model).provider_id)

    alert_store = SqlAlertStore(engine)
    wall_clock = SystemClock()  # deliveries, retries and signatures run on real time, even with --test-clock
    webhook_sender = WebhookSender(wall_clock)
    await webhook_sender.start()
    senders: dict[ChannelKind, ChannelSender] = {ChannelKind.WEBHOOK: webhook_sender}
    if settings.smtp_host:
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        senders[ChannelKind.EMAIL] = EmailSender(
            SmtpConfig(
                host=settings.smtp_host,
                port=settings.smtp_port,
                from_address=settings.smtp_from,
                starttls=settings.smtp_starttls,
                username=settings.smtp_username,
                password=password,
            )
        )
    alert_dispatcher = AlertDispatcher(
        alert_store,
        senders,
        wall_clock,
        retry_schedule=parse_retry_schedule(settings.alert_retry_seconds),
        poll_seconds=settings.alert_poll_seconds,
    )
    await alert_dispatcher.start()
    alerting = Alerting(alert_store, clock, on_fired=alert_dispatcher.wake)

    ledger = SqlLedgerStore(engine)
    recorder = LedgerWriter(ledger, owner=new_id("gw"))
    await recorder.start()
    limits_directory = LimitsDirectory(_LimitSource(ledger, store))
    guard = SpendGuard(
        recorder,
        clock,
        SystemClock(),
        max_wait_seconds=settings.limit_wait_seconds,
        hold_ttl_seconds=settings.hold_ttl_seconds,
    )
    model_limits = ModelLimits(
        operator_prices.max_output_tokens(), default=settings.default_max_output_tokens
    )
    upstream_client = AiohttpUpstreamClient(
        connect_timeout=settings.upstream_connect_timeout, read_timeout=settings.upstream_read_timeout
    )
    await upstream_client.start()
    keys = KeyDirectory(store, ttl_seconds=settings.key_cache_seconds)
    container = Container(
        settings=settings,
        clock=clock,
        store=store,
        accounts=Accounts(store, clock, on_key_revoked=keys.forget),
        reporting=Reporting(store, clock),
        keys=keys,
        metering=Metering(
            prices,
            recorder,
            clock,
            limits=limits_directory,
            guard=guard,
            catalog=model_limits,
            count_text_tokens=count_text_tokens,
            alerts=alerting,
        ),
        metering_guard=guard,
        recorder=recorder,
        ledger=ledger,
        limits=Limits(ledger, store, clock, on_change=limits_directory.invalidate),
        upstream_client=upstream_client,
        router=router,
        admin_token_sha256=token_hash,
        alert_store=alert_store,
        alerting=alerting,
        alert_dispatcher=alert_dispatcher,
        alert_admin=AlertAdmin(alert_store, store, clock),
        webhook_sender=webhook_sender,
        generated_admin_token=generated,
        _simulator=simulator_runner,
    )
    container._maintenance = asyncio.create_task(container.maintain_holds(), name="hold-maintenance")
    return container


class _LimitSource:
    def __init__(self, ledger: SqlLedgerStore, store: SqlStore) -> None:
        self._ledger, self._store = ledger, store

    def list_limits(self) -> list[SpendLimit]:
        return self._ledger.list_limits()

    def list_orgs(self) -> list[Org]:
        return self._store.list_orgs()


def _admin_token(settings: Settings, store: SqlStore) -> tuple[str, str | None]:
    """The admin token's hash: from SPENDGATE_ADMIN_TOKEN, else the one generated on first start."""
    if settings.admin_token is not None:
        return hashlib.sha256(settings.admin_token.get_secret_value().encode()).hexdigest(), None
    candidate = "sga-" + secrets.token_urlsafe(32)
    candidate_hash = hashlib.sha256(candidate.encode()).hexdigest()
    stored = store.set_setting_once(ADMIN_TOKEN_SETTING, candidate_hash)
    return stored, (candidate if stored == candidate_hash else None)
