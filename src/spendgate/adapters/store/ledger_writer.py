"""Group commit for the ledger: many requests' operations, one transaction.

Every write on the hot path (a reservation, a usage event with the settlement of its hold, a
release) is queued here; a single writer thread takes whatever has queued and applies it in one
transaction, then wakes each caller with its own result. While one batch commits, the next fills,
so under load many requests share one commit, and each response still waits for its own durable
commit. The thread is fed through a plain queue and answers with one loop callback per batch: at
low load the hand-off costs are a large part of each call's wait, so there are as few as possible.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from spendgate.adapters.store.ledger_store import LedgerOp, LedgerResult, RecordOp, ReleaseOp, ReserveOp
from spendgate.domain.events import UsageEvent
from spendgate.domain.spend_limits import CounterState, Hold, ReserveOutcome

log = logging.getLogger(__name__)

_Pending = tuple[LedgerOp, "asyncio.Future[Any]"]
_STOP = object()


class LedgerApplier(Protocol):
    def apply(self, ops: Sequence[LedgerOp]) -> list[LedgerResult]: ...


class LedgerWriter:
    def __init__(self, store: LedgerApplier, owner: str, max_batch: int = 1000) -> None:
        self._store = store
        self.owner = owner  # the id this process writes on its holds
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closing = False
        self.batches_written = 0

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._thread.start()

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
        self._queue.put(_STOP)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    async def _submit(self, op: LedgerOp) -> LedgerResult:
        if self._closing:
            raise RuntimeError("the ledger writer is shutting down")
        future: asyncio.Future[LedgerResult] = asyncio.get_running_loop().create_future()
        self._queue.put((op, future))
        # If the caller is cancelled (client gone), the operation stays queued and is applied regardless.
        return await future

    def _run(self) -> None:
        """The writer thread: block for one operation, take whatever else is queued, apply, answer."""
        stopping = False
        while not stopping:
            first = self._queue.get()
            batch: list[_Pending] = []
            if first is _STOP:
                stopping = True
            else:
                batch.append(first)
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    continue
                batch.append(item)
            if batch:
                self._apply(batch)

    def _apply(self, batch: list[_Pending]) -> None:
        assert self._loop is not None
        try:
            results: list[Any] = self._store.apply([op for op, _ in batch])
            error: BaseException | None = None
            self.batches_written += 1
        except Exception as exc:
            log.exception("applying %d ledger operations failed", len(batch))
            results, error = [], exc
        self._loop.call_soon_threadsafe(_answer, batch, results, error)


def _answer(batch: list[_Pending], results: list[Any], error: BaseException | None) -> None:
    for index, (_, future) in enumerate(batch):
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(results[index])
