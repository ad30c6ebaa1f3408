"""Admit a call, then settle it: authenticate the key, check the model and its price, and turn the
upstream's usage into one durable usage event.

The reservation step (hold the worst case against spend limits before forwarding) is a port here,
`SpendGuard`; without limits configured it is `NoSpendLimits`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from spendgate.domain.accounts import KEY_PREFIX, ApiKey, hash_key_secret
from spendgate.domain.clock import Clock
from spendgate.domain.events import CallStatus, UsageEvent
from spendgate.domain.money import usd_to_nanos
from spendgate.domain.refusals import RefusalCode, Refused
from spendgate.domain.usage import TokenUsage
from spendgate.services.ports import AccountStore, PriceBook, UsageRecorder


@dataclass(frozen=True, slots=True)
class Admission:
    request_id: str
    key: ApiKey
    model: str
    endpoint: str
    upstream: str
    started_at: datetime
    started_monotonic: float


class SpendGuard(Protocol):
    async def reserve(self, admission: Admission) -> None:
        """Hold the call's worst-case cost on every scope, or raise Refused."""
        ...

    async def release(self, admission: Admission, cost_nanos: int) -> None:
        """Post the actual cost and release the rest of the hold."""
        ...


class NoSpendLimits:
    async def reserve(self, admission: Admission) -> None:
        return None

    async def release(self, admission: Admission, cost_nanos: int) -> None:
        return None


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
        self, prices: PriceBook, recorder: UsageRecorder, clock: Clock, guard: SpendGuard | None = None
    ) -> None:
        self._prices = prices
        self._recorder = recorder
        self._clock = clock
        self._guard = guard or NoSpendLimits()

    async def admit(
        self, request_id: str, key: ApiKey, model: str, endpoint: str, upstream: str
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
        await self._guard.reserve(admission)
        return admission

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
        """Record the call durably; returns once the event is committed."""
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
        try:
            await self._recorder.record(event)
        finally:
            await self._guard.release(admission, cost)
        return event


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None
