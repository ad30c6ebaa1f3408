"""Admit a call, then settle it.

Admission authenticates the key, checks the model and its price and, when spend limits apply to the
key, its project or its org, reserves the call's worst-case cost on all of them (see
`spend_guard.py`). Settlement turns the upstream's usage into one usage event, committed together
with the posting of its cost and the release of the rest of the hold.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from spendgate.domain.accounts import KEY_PREFIX, ApiKey, hash_key_secret
from spendgate.domain.clock import Clock
from spendgate.domain.cost_bounds import (
    image_parts,
    output_token_bound,
    prompt_token_bound,
    tokenizer_prompt_bound,
)
from spendgate.domain.events import CallStatus, UsageEvent
from spendgate.domain.money import usd_to_nanos
from spendgate.domain.refusals import RefusalCode, Refused
from spendgate.domain.spend_limits import CounterSnapshot, CounterState, Decision
from spendgate.domain.usage import TokenUsage
from spendgate.services.ports import AccountStore, AlertSink, PriceBook
from spendgate.services.spend_guard import (
    AppliedLimit,
    LimitRefused,
    LimitsDirectory,
    Reservation,
    SpendGuard,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Admission:
    request_id: str
    key: ApiKey
    model: str
    endpoint: str
    upstream: str
    started_at: datetime
    started_monotonic: float
    reservation: Reservation | None = None  # None: no spend limit applies
    output_cap: tuple[str, int] | None = None  # write this max-tokens field on the forwarded request


class UsageRecorder(Protocol):
    async def record(self, event: UsageEvent, hold_id: str | None = None) -> tuple[CounterState, ...]:
        """Return only once the event (and the settlement of its hold) is durably committed."""
        ...


class ModelCatalog(Protocol):
    def max_output_tokens(self, model: str) -> int: ...


TextCounter = Callable[[str, str], int]


class KeyDirectory:
    """Key lookups by secret hash, cached briefly. A revocation through this process's admin API
    takes effect at once (`forget`); other replicas see it within `ttl_seconds`."""

    def __init__(
        self, store: AccountStore, ttl_seconds: float = 2.0, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._ttl = ttl_seconds
        self._monotonic = monotonic
        self._cache: dict[str, tuple[ApiKey, float]] = {}

    async def authenticate(self, authorization: str | None) -> ApiKey:
        secret = _bearer(authorization)
        if secret is None or not secret.startswith(KEY_PREFIX):
            raise Refused(
                RefusalCode.INVALID_API_KEY,
                "Missing or malformed API key. Send 'Authorization: Bearer sg-…' with a key "
                "issued by this spendgate (`spendgate keys create PROJECT`).",
            )
        secret_hash = hash_key_secret(secret)
        now = self._monotonic()
        cached = self._cache.get(secret_hash)
        if cached is not None and cached[1] > now:
            key = cached[0]
        else:
            found = await asyncio.to_thread(self._store.find_key_by_hash, secret_hash)
            if found is None:
                raise Refused(
                    RefusalCode.INVALID_API_KEY,
                    "Incorrect API key. Check the key, or ask your admin for a new one.",
                )
            key = found
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[secret_hash] = (key, now + self._ttl)
        if not key.active:
            raise Refused(
                RefusalCode.INVALID_API_KEY,
                f"API key {key.display_prefix} was revoked. Ask your admin for a new key.",
            )
        return key

    def forget(self, key: ApiKey) -> None:
        self._cache.pop(key.secret_hash, None)


class Metering:
    def __init__(
        self,
        prices: PriceBook,
        recorder: UsageRecorder,
        clock: Clock,
        *,
        limits: LimitsDirectory | None = None,
        guard: SpendGuard | None = None,
        catalog: ModelCatalog | None = None,
        count_text_tokens: TextCounter | None = None,
        alerts: AlertSink | None = None,
    ) -> None:
        self._prices = prices
        self._recorder = recorder
        self._clock = clock
        self._limits = limits
        self._guard = guard
        self._catalog = catalog
        self._count_text_tokens = count_text_tokens
        self._alerts = alerts
        self._background: set[asyncio.Task[None]] = set()

    async def admit(
        self,
        request_id: str,
        key: ApiKey,
        model: str,
        endpoint: str,
        upstream: str,
        payload: dict[str, Any] | None = None,
        body: bytes = b"",
    ) -> Admission:
        if not key.allows(model):
            raise Refused(
                RefusalCode.MODEL_NOT_FOUND,
                f"The model '{model}' is not allowed for this API key. "
                f"Allowed: {', '.join(key.models or ())}.",
                param="model",
            )
        now = self._clock.now()
        if not self._prices.has_price(model, now):
            raise Refused(
                RefusalCode.MODEL_NOT_FOUND,
                f"The model '{model}' has no price in this spendgate, so it cannot be metered. "
                "Check the model name, or ask the operator to add it to the price file.",
                param="model",
            )
        admission = Admission(
            request_id=request_id,
            key=key,
            model=model,
            endpoint=endpoint,
            upstream=upstream,
            started_at=now,
            started_monotonic=time.monotonic(),
        )
        if self._limits is None or self._guard is None:
            return admission
        applied = await self._limits.applicable(key)
        if not applied:
            return admission
        return await self._reserve(admission, applied, payload or {}, body)

    async def _reserve(
        self, admission: Admission, applied: Sequence[AppliedLimit], payload: dict[str, Any], body: bytes
    ) -> Admission:
        assert self._guard is not None and self._catalog is not None
        model_max = self._catalog.max_output_tokens(admission.model)
        output_tokens, cap = output_token_bound(admission.endpoint, payload, model_max)
        images = image_parts(payload)
        loose = self._worst_cost(admission, prompt_token_bound(len(body), images), output_tokens, payload)
        reservation = self._guard.plan(admission.request_id, applied, loose)
        first = await self._guard.try_reserve(reservation)
        if first.decision is not Decision.ADMIT and self._count_text_tokens is not None:
            # The byte bound is loose; before waiting or refusing, bound the prompt with the tokenizer.
            counted = self._count_text_tokens(body.decode("utf-8", "replace"), admission.model)
            tight = self._worst_cost(
                admission, tokenizer_prompt_bound(counted, images), output_tokens, payload
            )
            if tight < loose:
                reservation = self._guard.plan(admission.request_id, applied, tight)
                first = await self._guard.try_reserve(reservation)
        try:
            await self._guard.reserve(reservation, first)
        except LimitRefused as refused:
            self._alert(reservation, [refused.state], refused_nanos=refused.amount_nanos)
            raise
        return replace(admission, reservation=reservation, output_cap=cap)

    def _worst_cost(
        self, admission: Admission, input_tokens: int, output_tokens: int, payload: dict[str, Any]
    ) -> int:
        """The most the call can cost: every output token at the dearer of the visible and reasoning
        rates, at the default tier and at the tier the client asked for."""
        tier = payload.get("service_tier")
        tiers = {None, tier} if isinstance(tier, str) and tier not in ("auto", "default") else {None}
        costs = [
            self._prices.cost_usd(
                admission.model,
                TokenUsage(
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                    reasoning_tokens=reasoning,
                    service_tier=t,
                ),
                admission.started_at,
            )
            for t in tiers
            for reasoning in (0, output_tokens)
        ]
        return usd_to_nanos(max(costs))

    def cost_nanos(self, admission: Admission, usage: TokenUsage) -> int:
        """Rated at the prices in force when the request arrived."""
        return usd_to_nanos(self._prices.cost_usd(admission.model, usage, admission.started_at))

    async def settle(
        self,
        admission: Admission,
        usage: TokenUsage | None,
        status: CallStatus,
        *,
        streamed: bool,
        estimated: bool = False,
    ) -> UsageEvent:
        """Record the call durably (and settle its hold); returns once committed."""
        used = usage or TokenUsage()
        cost = self.cost_nanos(admission, used) if usage is not None else 0
        event = UsageEvent(
            request_id=admission.request_id,
            occurred_at=admission.started_at,
            org_id=admission.key.org_id,
            project_id=admission.key.project_id,
            key_id=admission.key.id,
            model=admission.model,
            upstream=admission.upstream,
            endpoint=admission.endpoint,
            usage=used,
            cost_nanos=cost,
            status=status,
            latency_ms=int((time.monotonic() - admission.started_monotonic) * 1000),
            streamed=streamed,
            estimated=estimated,
        )
        reservation = admission.reservation
        if reservation is not None and cost > reservation.hold.amount_nanos:
            log.error(
                "request %s cost %d nanos, more than its reservation of %d",
                event.request_id,
                cost,
                reservation.hold.amount_nanos,
            )
        states = await self._recorder.record(event, reservation.hold.request_id if reservation else None)
        if reservation is not None and self._guard is not None:
            self._guard.settled(reservation.hold.request_id)
            self._alert(reservation, states)
        return event

    async def abandon(self, admission: Admission) -> None:
        """Release the hold of a call that ends without a usage event (spendgate itself failed)."""
        if admission.reservation is not None and self._guard is not None:
            await self._guard.release(admission.request_id)

    def _alert(
        self, reservation: Reservation, states: Sequence[CounterState], refused_nanos: int | None = None
    ) -> None:
        if self._alerts is None or not states:
            return
        at = self._clock.now()
        snapshots = []
        for state in states:
            applied = reservation.limits.get(state.key)
            if applied is None:
                continue
            start, end = reservation.windows[state.key]
            snapshots.append(
                CounterSnapshot(
                    applied.org_id,
                    applied.limit,
                    start,
                    end,
                    state.spent_nanos,
                    state.reserved_nanos,
                    at,
                    refused_nanos,
                )
            )
        if not self._alerts.has_due(snapshots):
            return
        task = asyncio.create_task(self._alerts.counters_changed(snapshots))
        self._background.add(task)
        task.add_done_callback(self._alert_done)

    def _alert_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("evaluating spend alerts failed", exc_info=task.exception())


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None
