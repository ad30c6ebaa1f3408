"""Group commit: many requests' usage events, one transaction.

Each caller awaits its own event's commit. While one batch is being written (in a single writer
thread), new events queue up and go into the next batch, so under load the number of
transactions per second stays small while every response still waits for its own durable commit.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from spendgate.domain.events import UsageEvent
from spendgate.services.ports import UsageStore

log = logging.getLogger(__name__)


class GroupCommitRecorder:
    def __init__(self, store: UsageStore, max_batch: int = 1000) -> None:
        self._store = store
        self._max_batch = max_batch
        self._pending: list[tuple[UsageEvent, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="usage-writer")
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches_written = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="usage-group-commit")

    async def record(self, event: UsageEvent) -> None:
        if self._closing:
            raise RuntimeError("the usage writer is shutting down")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((event, future))
        self._wake.set()
        # If the caller is cancelled (client gone), the event stays queued and is written regardless.
        await future

    async def close(self) -> None:
        """Write everything queued, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        self._executor.shutdown(wait=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
                try:
                    await loop.run_in_executor(
                        self._executor, self._store.insert_usage_events, [event for event, _ in batch]
                    )
                except Exception as exc:
                    log.exception("writing %d usage events failed", len(batch))
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    self.batches_written += 1
                    for _, future in batch:
                        if not future.done():
                            future.set_result(None)
            if self._closing:
                return
