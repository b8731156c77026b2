"""Deliveries sent and not yet settled, oldest first: what sits between "sent" and "acknowledged".

The poll loop sends the translated batches at the head of the ledger as one delivery and goes
on polling; each step it settles the deliveries at the front of this queue that are done, in
the order they were sent, so a partition's offsets still move only past acknowledged answers.
The batches of every delivery here are the ledger's head batches, in the same order: the first
``batches()`` of them are sent, the rest are not.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .delivery import Sent


@dataclass
class InTransit:
    """One delivery: how many head batches of the ledger it covers, their input records (to name
    the refused ones), their outputs, and the delivery itself."""

    batches: int
    records: list
    outputs: list
    sent: Sent


class Transit:
    def __init__(self) -> None:
        self._queue: deque[InTransit] = deque()

    def __bool__(self) -> bool:
        return bool(self._queue)

    def add(self, delivery: InTransit) -> None:
        self._queue.append(delivery)

    def batches(self) -> int:
        """How many of the ledger's head batches are sent."""
        return sum(delivery.batches for delivery in self._queue)

    def oldest(self) -> InTransit | None:
        return self._queue[0] if self._queue else None

    def take_done(self) -> InTransit | None:
        """The oldest delivery if it is done (its result will not wait), taken off the queue."""
        if self._queue and self._queue[0].sent.done():
            return self._queue.popleft()
        return None

    def abandon(self) -> None:
        """The loop rewound or dropped what these deliveries cover: forget them."""
        while self._queue:
            self._queue.popleft().sent.abandon()
