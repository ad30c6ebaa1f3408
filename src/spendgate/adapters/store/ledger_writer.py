"""Group commit for the ledger: many requests' operations, one transaction.

Every write on the hot path (a reservation, a usage event with the settlement of its hold, a
release) is queued here; a single writer thread takes whatever has queued and applies it in one
transaction, then wakes each caller with its own result. While one batch commits, the next fills,
so under load many requests share one commit, and each response still waits for its own durable
commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Protocol

from spendgate.adapters.store.ledger_store import LedgerOp, LedgerResult, RecordOp, ReleaseOp, ReserveOp
from spendgate.domain.events import UsageEvent
from spendgate.domain.spend_limits import CounterState, Hold, ReserveOutcome

log = logging.getLogger(__name__)


class LedgerApplier(Protocol):
    def apply(self, ops: Sequence[LedgerOp]) -> list[LedgerResult]: ...


class LedgerWriter:
    def __init__(self, store: LedgerApplier, owner: str, max_batch: int = 1000) -> None:
        self._store = store
        self.owner = owner  # the id this process writes on its holds
        self._max_batch = max_batch
        self._pending: list[tuple[LedgerOp, asyncio.Future[Any]]] = []
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-writer")
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches_written = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ledger-group-commit")

    async def reserve(self, hold: Hold, at: datetime) -> ReserveOutcome:
        result = await self._submit(ReserveOp(hold, self.owner, at))
        assert isinstance(result, ReserveOutcome)
        return result

    async def record(self, event: UsageEvent, hold_id: str | None = None) -> tuple[CounterState, ...]:
        """Returns once the event (and its settlement) is committed; the hold's counters after it."""
        result = await self._submit(RecordOp(event, hold_id))
        assert isinstance(result, tuple)
        return result

    async def release(self, request_id: str) -> tuple[CounterState, ...]:
        result = await self._submit(ReleaseOp(request_id))
        assert isinstance(result, tuple)
        return result

    async def close(self) -> None:
        """Write everything queued, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        self._executor.shutdown(wait=True)

    async def _submit(self, op: LedgerOp) -> LedgerResult:
        if self._closing:
            raise RuntimeError("the ledger writer is shutting down")
        future: asyncio.Future[LedgerResult] = asyncio.get_running_loop().create_future()
        self._pending.append((op, future))
        self._wake.set()
        # If the caller is cancelled (client gone), the operation stays queued and is applied regardless.
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
                try:
                    results = await loop.run_in_executor(
                        self._executor, self._store.apply, [op for op, _ in batch]
                    )
                except Exception as exc:
                    log.exception("applying %d ledger operations failed", len(batch))
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    self.batches_written += 1
                    for (_, future), result in zip(batch, results, strict=True):
                        if not future.done():
                            future.set_result(result)
            if self._closing:
                return
