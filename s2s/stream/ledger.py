"""Delivery bookkeeping: which poll batches are in flight and which input offsets are safe.

An input offset is safe to commit only once the outputs of it and of every earlier record of
its partition are acknowledged. Batches are answered strictly in poll order (that keeps per-key
order on the output topics), so "safe" is simply: the next offset after the last settled batch
of each partition. On any error the ingress rewinds every partition to its safe offset and
drops what was in flight; nothing unacknowledged is ever committed, so nothing is lost.
Which offsets are committed, and by whom, is the Delivery's business (delivery.py): the ledger
only hears of it through ``mark_committed``.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable

from kafka.structs import OffsetAndMetadata, TopicPartition

from .polled import PolledBatch


def commit_map(offsets: dict[TopicPartition, int]) -> dict[TopicPartition, OffsetAndMetadata]:
    """{partition: next offset} in the form kafka-python's commit calls take."""
    return {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in offsets.items()}


class OffsetLedger:
    def __init__(self) -> None:
        self._pending: deque[PolledBatch] = deque()
        self._safe: dict[TopicPartition, int] = {}       # next offset not yet acknowledged
        self._committed: dict[TopicPartition, int] = {}  # what the group last stored

    def add(self, batch: PolledBatch) -> None:
        for tp, first in batch.first_offsets().items():
            self._safe.setdefault(tp, first)
        self._pending.append(batch)

    def in_flight(self) -> int:
        """Records polled but not yet settled (the backpressure measure)."""
        return sum(len(batch) for batch in self._pending)

    def has_pending(self) -> bool:
        return bool(self._pending)

    def batches(self) -> list[PolledBatch]:
        """Every batch in flight, oldest first."""
        return list(self._pending)

    def head(self) -> PolledBatch | None:
        return self._pending[0] if self._pending else None

    def ready(self) -> list[PolledBatch]:
        """The longest run of batches at the head whose translations all finished."""
        ready = []
        for batch in self._pending:
            if not batch.translated():
                break
            ready.append(batch)
        return ready

    def offsets_after(self, batches: Iterable[PolledBatch]) -> dict[TopicPartition, int]:
        """Safe offsets, for the partitions these batches touch, once they are settled."""
        offsets: dict[TopicPartition, int] = {}
        for batch in batches:
            offsets.update(batch.next_offsets())
        return offsets

    def settle(self, count: int) -> dict[TopicPartition, int]:
        """The first ``count`` pending batches are acknowledged: advance their partitions."""
        settled = [self._pending.popleft() for _ in range(count)]
        offsets = self.offsets_after(settled)
        self._safe.update(offsets)
        return offsets

    def safe_offsets(self) -> dict[TopicPartition, int]:
        """Per partition seen, the first offset not yet acknowledged."""
        return dict(self._safe)

    def uncommitted(self) -> dict[TopicPartition, int]:
        """Safe offsets the group has not stored yet."""
        return {tp: off for tp, off in self._safe.items() if self._committed.get(tp) != off}

    def mark_committed(self, offsets: dict[TopicPartition, int]) -> None:
        self._committed.update(offsets)

    def rewind(self) -> dict[TopicPartition, int]:
        """Drop everything in flight; returns where each touched partition must seek back to."""
        touched = set()
        for batch in self._pending:
            batch.cancel()
            touched.update(batch.first_offsets())
        self._pending.clear()
        return {tp: self._safe[tp] for tp in touched}

    def drop(self, partitions: Collection[TopicPartition]) -> int:
        """Take the records of ``partitions`` out of every batch in flight (their answers will
        not be delivered, their offsets not advanced); returns how many were dropped. The
        other partitions' batches stay, in order, on their way."""
        before = self.in_flight()
        kept = (batch.without(partitions) for batch in self._pending)
        self._pending = deque(batch for batch in kept if batch is not None)
        return before - self.in_flight()

    def reposition(self, positions: dict[TopicPartition, int]) -> None:
        """After a rewind: the partitions resume at ``positions`` (in exactly-once mode the
        broker's committed offsets, which an unknown-outcome transaction may have moved on)."""
        self._safe.update(positions)

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions this consumer no longer owns: their next owner starts from the group's
        committed offsets, so our idea of them must not survive a later re-assignment."""
        for tp in partitions:
            self._safe.pop(tp, None)
            self._committed.pop(tp, None)
