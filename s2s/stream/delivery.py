"""Producing answers: at-least-once (acks=all, then commit) or exactly-once (transactions).

Both strategies take the output records of some settled-to-be poll batches plus the input
offsets those batches make safe, and either return once everything is durable or raise
DeliveryError, after which the ingress rewinds and decodes the batches again.

    at-least-once  send every record, flush (wait for acks=all), return; the ingress commits
                   the offsets itself afterwards, so a crash in between only duplicates.
    exactly-once   one transaction: records + send_offsets_to_transaction(offsets, group
                   metadata); read_committed readers see all of it or none. After a timeout the
                   producer is dropped and a new one (same transactional.id) fences it: its
                   fate is unknown and Jepsen showed reusing it can commit late.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.structs import TopicPartition

from .batch import OutRecord
from .ledger import commit_map

log = logging.getLogger(__name__)


class DeliveryError(RuntimeError):
    """Outputs were not (or not provably) written; the batches must be decoded again."""


def call_with_timeout(fn: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Run a blocking kafka-python call that has no timeout of its own (commit_transaction,
    send_offsets_to_transaction wait forever) in a helper thread, giving up after timeout_s."""
    outcome: dict[str, Any] = {}
    finished = threading.Event()

    def run() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
            outcome["error"] = err
        finally:
            finished.set()

    threading.Thread(target=run, name=f"s2s-{what}", daemon=True).start()
    if not finished.wait(timeout_s):
        raise TimeoutError(f"{what} did not finish within {timeout_s:.0f} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _send_all(producer: KafkaProducer, records: Sequence[OutRecord]) -> list:
    return [producer.send(r.topic, key=r.key, value=r.value, headers=list(r.headers)) for r in records]


def _check_acknowledged(futures: list) -> None:
    """Raise unless the broker acknowledged every one of ``futures`` (after a flush)."""
    failed = [future for future in futures if not future.succeeded()]
    if failed:
        raise DeliveryError(f"{len(failed)} of {len(futures)} records not acknowledged: {failed[0].exception!r}")


class AtLeastOnceDelivery:
    """Idempotent producer, acks=all; offsets are committed by the ingress after deliver()."""

    commits_offsets = False

    def __init__(self, make_producer: Callable[[], KafkaProducer], flush_timeout_s: float):
        self._make_producer = make_producer
        self._flush_timeout_s = flush_timeout_s
        self._producer: KafkaProducer | None = None

    def deliver(self, records: Sequence[OutRecord], offsets: dict[TopicPartition, int], group: Any) -> None:
        """Return once every record is acknowledged by all in-sync replicas."""
        if not records:
            return
        producer = self._ensure_producer()
        try:
            futures = _send_all(producer, records)
            producer.flush(timeout=self._flush_timeout_s)
        except KafkaError as err:
            raise DeliveryError(f"producing {len(records)} records failed: {err!r}") from err
        _check_acknowledged(futures)

    def _ensure_producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = self._make_producer()
        return self._producer

    def close(self, timeout_s: float = 10.0) -> None:
        if self._producer is not None:
            self._producer.close(timeout=timeout_s)
            self._producer = None


class TransactionalDelivery:
    """One Kafka transaction per delivery: outputs and input offsets commit together."""

    commits_offsets = True

    def __init__(self, make_producer: Callable[[], KafkaProducer], timeout_s: float):
        self._make_producer = make_producer  # must set a transactional_id
        self._timeout_s = timeout_s
        self._producer: KafkaProducer | None = None

    def deliver(self, records: Sequence[OutRecord], offsets: dict[TopicPartition, int], group: Any) -> None:
        """Commit records + offsets (for consumer ``group``'s metadata) atomically, or raise."""
        if not records and not offsets:
            return
        try:
            call_with_timeout(lambda: self._transaction(records, offsets, group), self._timeout_s, "transaction")
        except (KafkaError, TimeoutError, OSError, DeliveryError) as err:
            self._drop_producer()  # the next producer's init_transactions aborts the open transaction
            raise DeliveryError(f"transaction of {len(records)} records failed: {err!r}") from err

    def _transaction(self, records: Sequence[OutRecord], offsets: dict[TopicPartition, int], group: Any) -> None:
        producer = self._ensure_producer()
        producer.begin_transaction()
        futures = _send_all(producer, records)
        if offsets:
            producer.send_offsets_to_transaction(commit_map(offsets), group)
        # kafka-python 3.0.12 fails a batch whose retries ran out, or that a producer-epoch bump
        # dropped, without aborting the transaction: a commit would then store the input offsets
        # without those outputs. So every record must be acknowledged before the commit.
        producer.flush()
        _check_acknowledged(futures)
        producer.commit_transaction()

    def _ensure_producer(self) -> KafkaProducer:
        if self._producer is None:
            producer = self._make_producer()
            producer.init_transactions()  # fences any earlier producer with our transactional.id
            self._producer = producer
        return self._producer

    def _drop_producer(self) -> None:
        """Forget the producer without waiting on it: close() may block on a dead broker."""
        old, self._producer = self._producer, None
        if old is not None:
            threading.Thread(target=old.close, kwargs={"timeout": 0}, name="s2s-drop-producer",
                             daemon=True).start()

    def close(self, timeout_s: float = 10.0) -> None:
        if self._producer is not None:
            self._producer.close(timeout=timeout_s)
            self._producer = None
