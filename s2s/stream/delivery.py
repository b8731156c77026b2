"""The delivery seam: how answers become durable and input offsets committed, in one place.

The ingress (poll_loop.py) talks to one ``Delivery``; each mode is one class:

    at-least-once  deliver: send every record, flush (acks=all), check each ack; commit: the
                   consumer stores the offsets afterwards, so a crash in between only duplicates;
                   recover: the ledger's own positions (nothing it did not see acknowledged).
    exactly-once   deliver: one transaction: records + send_offsets_to_transaction(offsets, group
                   metadata); read_committed readers see all of it or none; commit: nothing left
                   to do; recover: after an unknown outcome, fence first (a new producer with the
                   same transactional.id whose init_transactions succeeded: the old transaction
                   is then committed or aborted for good), then read the broker's committed
                   offsets and resume from those, not from our own idea of them.

Every wait is bounded (flush_timeout_s); kafka-python's transactional calls that wait forever
are driven through their results with a timeout, on the caller's thread, so no helper thread or
producer outlives its use. A record the broker refuses for a reason of its own (too large,
invalid, not authorized) is named in ``DeliveryError.refused`` so the ingress can dead-letter it
(suspects.py); any other failure re-creates the producer (a fatal producer state never sticks).
A third mode is one more class with these four methods.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from kafka import KafkaProducer
from kafka import errors as kerr
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.structs import MemberState, TopicPartition

from .ledger import commit_map
from .out_records import OutRecord

log = logging.getLogger(__name__)

Offsets = dict[TopicPartition, int]

# Errors that belong to one record, not to the producer or the cluster: retrying cannot help it.
RECORD_FAULTS = (TypeError, ValueError, UnicodeError, kerr.MessageSizeTooLargeError, kerr.RecordListTooLargeError,
                 kerr.InvalidRecordError, kerr.CorruptRecordError, kerr.InvalidTimestampError,
                 kerr.TopicAuthorizationFailedError, kerr.InvalidTopicError)


class DeliveryError(RuntimeError):
    """Outputs were not (or not provably) written; the batches must be decoded again.
    ``refused``: {position in the delivered records: why} for records the broker will never take;
    ``fatal``: the producer failed in a way retrying it cannot mend (make a new one)."""

    def __init__(self, message: str, refused: dict[int, str] | None = None, fatal: bool = False):
        super().__init__(message)
        self.refused = refused or {}
        self.fatal = fatal


class DeliveryDeferred(DeliveryError):
    """Nothing was sent: the consumer's group generation is unknown (joining, expelled), so its
    offsets cannot go into a transaction yet. The batches stay in flight; try again later."""


class Delivery(Protocol):
    def deliver(self, records: Sequence[OutRecord], offsets: Offsets, consumer: Any) -> Offsets:
        """Make ``records`` durable; return the input offsets committed with them ({}: none)."""

    def commit(self, consumer: Any, offsets: Offsets, timeout_ms: int) -> None:
        """Store acknowledged input offsets that deliver() did not commit; raises KafkaError."""

    def recover(self, consumer: Any, positions: Offsets) -> tuple[Offsets, Offsets]:
        """After a failed delivery: (where each partition resumes, which of those are committed)."""

    def close(self, timeout_s: float = 10.0) -> None: ...


def close_now(producer: KafkaProducer, timeout_s: float = 5.0) -> None:
    """Close a producer even with batches pending. kafka-python's close() flushes first and
    raises KafkaTimeoutError while batches are pending, leaving its IO thread running."""
    try:
        producer.close(timeout=0)
        return
    except KafkaTimeoutError:
        pass
    producer._sender.force_close()  # fails what is pending and ends the IO thread
    producer._sender.join(timeout_s)
    try:
        producer.close(timeout=0)
    except KafkaTimeoutError:
        log.warning("producer %s still had batches after a forced close", producer)


def _send_all(producer: KafkaProducer, records: Sequence[OutRecord]) -> tuple[list, dict[int, str]]:
    """Send each record; (futures, refused): a send that raised for its record leaves None."""
    futures, refused = [], {}
    for i, r in enumerate(records):
        try:
            futures.append(producer.send(r.topic, key=r.key, value=r.value, headers=list(r.headers)))
        except RECORD_FAULTS as err:
            futures.append(None)
            refused[i] = repr(err)
    return futures, refused


def _unacknowledged(futures: list) -> tuple[dict[int, str], list[BaseException]]:
    """After a flush: (refused records, other failures) among the futures."""
    refused, failed = {}, []
    for i, future in enumerate(futures):
        if future is None or future.succeeded():
            continue
        error = future.exception if future.is_done else KafkaTimeoutError("not acknowledged in time")
        if isinstance(error, RECORD_FAULTS):
            refused[i] = repr(error)
        else:
            failed.append(error)
    return refused, failed


def _check_sent(futures: list, refused: dict[int, str]) -> None:
    """Raise DeliveryError unless every record was acknowledged."""
    late_refused, failed = _unacknowledged(futures)
    refused = {**refused, **late_refused}
    if refused or failed:
        first = failed[0] if failed else next(iter(refused.values()))
        raise DeliveryError(f"{len(refused) + len(failed)} of {len(futures)} records not acknowledged: {first!r}",
                            refused, fatal=any(not getattr(error, "retriable", False) for error in failed))


class _HoldsProducer:
    """The one producer a delivery uses at a time: dropped (closed at once) after a failure,
    made again on the next use."""

    _producer: KafkaProducer | None = None

    def _drop_producer(self) -> None:
        old, self._producer = self._producer, None
        if old is not None:
            close_now(old)

    def close(self, timeout_s: float = 10.0) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=timeout_s)
            except KafkaTimeoutError:
                close_now(self._producer)
            self._producer = None


class AtLeastOnceDelivery(_HoldsProducer):
    """Idempotent producer, acks=all; offsets are committed through the consumer afterwards."""

    def __init__(self, make_producer: Callable[[], KafkaProducer], flush_timeout_s: float):
        self._make_producer = make_producer
        self._flush_timeout_s = flush_timeout_s

    def deliver(self, records: Sequence[OutRecord], offsets: Offsets, consumer: Any) -> Offsets:
        """Return once every record is acknowledged by all in-sync replicas."""
        if not records:
            return {}
        try:
            producer = self._ensure_producer()
            futures, refused = _send_all(producer, records)
            producer.flush(timeout=self._flush_timeout_s)
            _check_sent(futures, refused)
        except KafkaError as err:
            # A retriable error (broker away, metadata late) keeps the producer and its metadata:
            # a new one would have to bootstrap within max_block_ms again. A fatal state does not.
            if not err.retriable:
                self._drop_producer()
            raise DeliveryError(f"producing {len(records)} records failed: {err!r}", fatal=not err.retriable) from err
        except DeliveryError as err:
            if err.fatal:
                self._drop_producer()
            raise
        return {}

    def commit(self, consumer: Any, offsets: Offsets, timeout_ms: int) -> None:
        consumer.commit(commit_map(offsets), timeout_ms=timeout_ms)

    def recover(self, consumer: Any, positions: Offsets) -> tuple[Offsets, Offsets]:
        return positions, {}

    def _ensure_producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = self._make_producer()
        return self._producer

class TransactionalDelivery(_HoldsProducer):
    """One Kafka transaction per delivery: outputs and input offsets commit together."""

    def __init__(self, make_producer: Callable[[], KafkaProducer], timeout_s: float, request_timeout_ms: int):
        self._make_producer = make_producer  # must set a transactional_id
        self._timeout_s = timeout_s
        self._request_timeout_ms = request_timeout_ms

    def deliver(self, records: Sequence[OutRecord], offsets: Offsets, consumer: Any) -> Offsets:
        """Commit records + offsets (in ``consumer``'s group generation) atomically, or raise."""
        if not records and not offsets:
            return {}
        group = consumer.group_metadata()
        if offsets and (group.generation_id < 0 or group.state is MemberState.REBALANCING):
            raise DeliveryDeferred(f"group generation {group.generation_id} ({group.state}): offsets wait")
        try:
            self._transaction(self._ensure_producer(), records, offsets, group, time.monotonic() + self._timeout_s)
        except (KafkaError, TimeoutError, OSError, DeliveryError) as err:
            self._drop_producer()  # its outcome is unknown: recover() fences it
            refused = err.refused if isinstance(err, DeliveryError) else {}
            raise DeliveryError(f"transaction of {len(records)} records failed: {err!r}", refused) from err
        return dict(offsets)

    def _transaction(self, producer: KafkaProducer, records: Sequence[OutRecord], offsets: Offsets, group: Any,
                     deadline: float) -> None:
        producer.begin_transaction()
        futures, refused = _send_all(producer, records)
        if offsets:
            _await(producer, producer._transaction_manager.send_offsets_to_transaction(commit_map(offsets), group),
                   deadline, "send_offsets_to_transaction")
        # kafka-python 3.0.12 fails a batch whose retries ran out, or that a producer-epoch bump
        # dropped, without aborting the transaction: a commit would then store the input offsets
        # without those outputs. So every record must be acknowledged before the commit.
        producer.flush(timeout=max(0.0, deadline - time.monotonic()))
        _check_sent(futures, refused)
        _await(producer, producer._transaction_manager.begin_commit(), deadline, "commit_transaction")

    def commit(self, consumer: Any, offsets: Offsets, timeout_ms: int) -> None:
        """Nothing to do: every offset was committed in the transaction of its outputs."""

    def recover(self, consumer: Any, positions: Offsets) -> tuple[Offsets, Offsets]:
        """Fence, then resume from the broker's committed offsets (raises KafkaError while the
        brokers cannot say; the ingress keeps its partitions paused and asks again)."""
        self._ensure_producer()
        committed = {}
        for tp, offset in positions.items():
            stored = consumer.committed(tp, timeout_ms=self._request_timeout_ms)
            committed[tp] = offset if stored is None else stored
        return committed, committed

    def _ensure_producer(self) -> KafkaProducer:
        if self._producer is None:
            producer = self._make_producer()
            try:
                producer.init_transactions()  # fences any earlier producer with our transactional.id
            except BaseException:
                close_now(producer)
                raise
            self._producer = producer
        return self._producer


def _await(producer: KafkaProducer, result: Any, deadline: float, what: str) -> None:
    """Wait for a kafka-python TransactionalRequestResult until ``deadline``; its public
    callers (commit_transaction, send_offsets_to_transaction) would wait forever."""
    producer._sender.wakeup()
    if not result.wait(timeout_ms=max(0.0, deadline - time.monotonic()) * 1000):
        raise TimeoutError(f"{what} did not finish in time")
