"""Producing answers: acks before success, transactions with offsets, fresh producer after a timeout."""
import threading

import pytest
from kafka.errors import KafkaTimeoutError
from kafka.future import Future
from kafka.structs import TopicPartition

from s2s.stream.batch import OutRecord
from s2s.stream.delivery import (AtLeastOnceDelivery, DeliveryError, TransactionalDelivery,
                                 call_with_timeout)

P0 = TopicPartition("in", 0)
OUT = [OutRecord("out", b"k1", b"A", [("h", b"1")]), OutRecord("dlq", None, b"x", [])]


class FakeProducer:
    """Logs calls; sends resolve at flush(), failing when ``fail_sends`` is set."""

    def __init__(self, fail_sends=False, flush_raises=False, hang_commit=False):
        self.log, self.pending = [], []
        self.fail_sends, self.flush_raises, self.hang_commit = fail_sends, flush_raises, hang_commit
        self.closed = threading.Event()

    def send(self, topic, key=None, value=None, headers=None):
        self.log.append(("send", topic, key, value, tuple(headers)))
        future = Future()
        self.pending.append(future)
        return future

    def flush(self, timeout=None):
        if self.flush_raises:
            raise KafkaTimeoutError("flush timed out")
        for future in self.pending:
            future.failure(KafkaTimeoutError("expired")) if self.fail_sends else future.success(None)

    def init_transactions(self):
        self.log.append(("init",))

    def begin_transaction(self):
        self.log.append(("begin",))

    def send_offsets_to_transaction(self, offsets, group):
        self.log.append(("offsets", {tp: meta.offset for tp, meta in offsets.items()}, group))

    def commit_transaction(self):
        if self.hang_commit:
            threading.Event().wait(5)  # a broker that never answers
        self.log.append(("commit",))

    def close(self, timeout=None):
        self.closed.set()


def test_at_least_once_returns_after_every_record_is_acked():
    producer = FakeProducer()
    delivery = AtLeastOnceDelivery(lambda: producer, flush_timeout_s=5)
    delivery.deliver(OUT, {P0: 3}, None)
    assert [entry[:4] for entry in producer.log] == [("send", "out", b"k1", b"A"), ("send", "dlq", None, b"x")]
    assert all(f.succeeded() for f in producer.pending)


@pytest.mark.parametrize("producer", [FakeProducer(fail_sends=True), FakeProducer(flush_raises=True)])
def test_at_least_once_raises_when_a_record_is_not_acked(producer):
    with pytest.raises(DeliveryError):
        AtLeastOnceDelivery(lambda: producer, flush_timeout_s=5).deliver(OUT, {P0: 3}, None)


def test_at_least_once_with_nothing_to_send_creates_no_producer():
    AtLeastOnceDelivery(lambda: pytest.fail("no producer needed"), 5).deliver([], {P0: 1}, None)


def test_transaction_holds_outputs_and_offsets():
    producer = FakeProducer()
    delivery = TransactionalDelivery(lambda: producer, timeout_s=5)
    delivery.deliver(OUT, {P0: 3}, "group-meta")
    delivery.deliver(OUT[:1], {P0: 4}, "group-meta")
    steps = [entry[0] for entry in producer.log]
    assert steps == ["init", "begin", "send", "send", "offsets", "commit", "begin", "send", "offsets", "commit"]
    assert producer.log[4] == ("offsets", {P0: 3}, "group-meta")


def test_a_transaction_with_an_unacknowledged_record_is_never_committed():
    # Regression (chaos suite, broker restart): kafka-python may fail a record without aborting
    # the transaction; committing would store the input offsets of an output that is not there.
    made = [FakeProducer(fail_sends=True), FakeProducer()]
    first = made[0]
    delivery = TransactionalDelivery(lambda: made.pop(0), timeout_s=5)
    with pytest.raises(DeliveryError, match="not acknowledged"):
        delivery.deliver(OUT, {P0: 3}, "g")
    assert "commit" not in [entry[0] for entry in first.log] and first.closed.wait(5)
    delivery.deliver(OUT, {P0: 3}, "g")
    assert made == []  # the retry ran on a fresh producer, whose init_transactions aborts the old one


def test_a_transaction_that_times_out_drops_the_producer_and_the_next_one_starts_fresh():
    made = [FakeProducer(hang_commit=True), FakeProducer()]
    delivery = TransactionalDelivery(lambda: made.pop(0), timeout_s=0.3)
    with pytest.raises(DeliveryError, match="did not finish"):
        delivery.deliver(OUT, {P0: 3}, "g")
    delivery.deliver(OUT, {P0: 3}, "g")
    assert made == []  # a second producer was made (and init_transactions fences the first)


def test_call_with_timeout():
    assert call_with_timeout(lambda: 7, 1, "seven") == 7
    with pytest.raises(ZeroDivisionError):
        call_with_timeout(lambda: 1 / 0, 1, "boom")
    with pytest.raises(TimeoutError, match="nap did not finish"):
        call_with_timeout(lambda: threading.Event().wait(2), 0.1, "nap")
