"""Dynamic batching for the translator: the lists of concurrent callers merged into decode
batches of up to ``max_items`` messages.

Why not ``@serve.batch``: in Ray 2.60 its loop forms a new batch every ``batch_wait_timeout_s``
and queues it behind the running one (``_process_batches`` -> semaphore), so lists that arrive
during a decode are decoded as many small batches. Small beam-search batches cost nearly as much
as full ones, so a paced stream fell behind at a third of the in-process rate (bench/
stream_bench.py). Here the next batch is formed only when the decoder is free: everything that
queued up meanwhile goes into it, and batches grow with the load.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class DecodeQueue(Generic[Item, Result]):
    """``await submit(items)`` -> the result for that list, decoded together with other lists.

    ``decode(lists) -> results`` (one result per list, same order) is a blocking function; it
    runs in a worker thread so the replica's event loop keeps taking requests. One decode runs
    at a time. An idle decoder waits up to ``wait_s`` for a batch to fill before starting.
    """

    def __init__(self, decode: Callable[[list[Sequence[Item]]], list[Result]], max_items: int, wait_s: float):
        self._decode = decode
        self._max_items = max_items
        self._wait_s = wait_s
        self._queue: deque[tuple[Sequence[Item], asyncio.Future]] = deque()
        self._queued_items = 0
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._loop_task: asyncio.Task | None = None
        self._decoding_since: float | None = None  # monotonic start of the running decode

    async def submit(self, items: Sequence[Item]) -> Result:
        future = asyncio.get_running_loop().create_future()
        self._queue.append((items, future))
        self._queued_items += len(items)
        self._arrived.set()
        if self._queued_items >= self._max_items:
            self._full.set()
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.create_task(self._decode_forever())
        return await future

    async def _decode_forever(self) -> None:
        while True:
            was_idle = not self._queue
            while not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
            if was_idle and self._queued_items < self._max_items:
                await self._wait_until_full()
            await self._decode_batch(self._take())

    async def _wait_until_full(self) -> None:
        try:
            await asyncio.wait_for(self._full.wait(), timeout=self._wait_s)
        except asyncio.TimeoutError:
            pass  # a partial batch: latency matters more than its size now

    def _take(self) -> list[tuple[Sequence[Item], asyncio.Future]]:
        """Queued lists in arrival order, up to max_items messages (always at least one list)."""
        batch = [self._queue.popleft()]
        size = len(batch[0][0])
        while self._queue and size + len(self._queue[0][0]) <= self._max_items:
            entry = self._queue.popleft()
            batch.append(entry)
            size += len(entry[0])
        self._queued_items -= size
        if self._queued_items < self._max_items:
            self._full.clear()
        return batch

    async def _decode_batch(self, batch: list[tuple[Sequence[Item], asyncio.Future]]) -> None:
        live = [(items, future) for items, future in batch if not future.cancelled()]
        if not live:
            return
        self._decoding_since = time.monotonic()
        try:
            results = await asyncio.to_thread(self._decode, [items for items, _ in live])
        except Exception as err:  # noqa: BLE001 - every caller of the batch gets the error
            _settle(live, error=err)
            return
        finally:
            self._decoding_since = None
        _settle(live, results=results)

    def decoding_for(self) -> float:
        """Seconds the running decode has taken so far (0 when none runs)."""
        since = self._decoding_since
        return 0.0 if since is None else time.monotonic() - since


def _settle(batch: list[tuple[Any, asyncio.Future]], results: list | None = None,
            error: BaseException | None = None) -> None:
    for i, (_, future) in enumerate(batch):
        if future.done():  # the caller gave up (cancelled) meanwhile
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(results[i])
