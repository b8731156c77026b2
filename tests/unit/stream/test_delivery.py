"""The delivery seam: acks before success, refused records named, transactions with offsets,
fencing before resuming, and no producer or thread left behind."""
import threading
import time

import pytest
from kafka import KafkaProducer
from kafka.errors import KafkaTimeoutError, MessageSizeTooLargeError, OutOfOrderSequenceNumberError
from kafka.future import Future
from kafka.structs import ConsumerGroupMetadata, MemberState, TopicPartition

from s2s.stream.delivery import AtLeastOnceDelivery, DeliveryDeferred, DeliveryError, TransactionalDelivery, close_now
from s2s.stream.out_records import OutRecord

P0 = TopicPartition("in", 0)
OUT = [OutRecord("out", b"k1", b"A", [("h", b"1")]), OutRecord("dlq", None, b"x", [])]
STABLE = ConsumerGroupMetadata("g", 7, "m", None, MemberState.STABLE)


class Result:
    """kafka-python's TransactionalRequestResult: a latch, maybe never released."""

    def __init__(self, done=True):
        self.latch = threading.Event()
        if done:
            self.latch.set()

    def wait(self, timeout_ms=None):
        return self.latch.wait(None if timeout_ms is None else timeout_ms / 1000)


class Sender:
    def __init__(self):
        self.forced = False

    def wakeup(self):
        pass

    def force_close(self):
        self.forced = True

    def join(self, timeout=None):
        pass


class FakeProducer:
    """Logs calls; sends resolve at flush(). Like kafka-python's: send() refuses a null header
    value and an oversized record at once, and close() raises while batches are pending."""

    def __init__(self, fail_sends=False, flush_raises=False, hang_commit=False, max_request_size=1_000):
        self.log, self.pending = [], []
        self.fail_sends, self.flush_raises, self.hang_commit = fail_sends, flush_raises, hang_commit
        self.max_request_size = max_request_size
        self.closed = False
        self._sender = Sender()
        self._transaction_manager = self

    def send(self, topic, key=None, value=None, headers=None):
        if not all(isinstance(v, bytes) for _, v in headers):
            raise TypeError("All headers items must be (str, bytes) tuples")
        if len(key or b"") + len(value or b"") > self.max_request_size:
            raise MessageSizeTooLargeError("record too large")
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
        self.log.append(("offsets", {tp: meta.offset for tp, meta in offsets.items()}, group.generation_id))
        return Result()

    def begin_commit(self):
        self.log.append(("commit",))
        return Result(done=not self.hang_commit)

    def close(self, timeout=None):
        if any(not f.is_done for f in self.pending) and not self._sender.forced:
            raise KafkaTimeoutError("flush timed out")  # what kafka-python's close() does then
        self.closed = True


class Consumer:
    def __init__(self, group=STABLE, committed=None):
        self.group, self.stored = group, committed or {}

    def group_metadata(self):
        return self.group

    def committed(self, tp, timeout_ms=None):
        return self.stored.get(tp)


def test_at_least_once_returns_after_every_record_is_acked():
    producer = FakeProducer()
    assert AtLeastOnceDelivery(lambda: producer, flush_timeout_s=5).deliver(OUT, {P0: 3}, Consumer()) == {}
    assert [entry[:4] for entry in producer.log] == [("send", "out", b"k1", b"A"), ("send", "dlq", None, b"x")]
    assert all(f.succeeded() for f in producer.pending)


@pytest.mark.parametrize("producer", [FakeProducer(fail_sends=True), FakeProducer(flush_raises=True)])
def test_at_least_once_raises_when_a_record_is_not_acked_and_keeps_a_producer_that_can_retry(producer):
    delivery = AtLeastOnceDelivery(lambda: producer, flush_timeout_s=5)
    with pytest.raises(DeliveryError) as caught:
        delivery.deliver(OUT, {P0: 3}, Consumer())
    assert caught.value.refused == {} and not caught.value.fatal and not producer.closed


def test_a_producer_in_a_fatal_state_is_replaced():
    broken = FakeProducer()
    broken.flush = lambda timeout=None: [f.failure(OutOfOrderSequenceNumberError("fatal")) for f in broken.pending]
    made = [broken, FakeProducer()]
    delivery = AtLeastOnceDelivery(lambda: made.pop(0), flush_timeout_s=5)
    with pytest.raises(DeliveryError) as caught:
        delivery.deliver(OUT, {P0: 3}, Consumer())
    assert caught.value.fatal and broken.closed  # closed though its batches are pending
    delivery.deliver(OUT, {P0: 3}, Consumer())
    assert made == []


def test_records_the_producer_refuses_are_named_and_the_others_still_sent():
    out = [OutRecord("out", b"k", b"A", [("h", None)]), OutRecord("out", b"k", b"B", []),
           OutRecord("dlq", b"k", b"x" * 2_000, [])]
    producer = FakeProducer()
    with pytest.raises(DeliveryError) as caught:
        AtLeastOnceDelivery(lambda: producer, flush_timeout_s=5).deliver(out, {P0: 3}, Consumer())
    assert sorted(caught.value.refused) == [0, 2] and "TypeError" in caught.value.refused[0]
    assert [entry[3] for entry in producer.log] == [b"B"]


def test_at_least_once_with_nothing_to_send_creates_no_producer():
    AtLeastOnceDelivery(lambda: pytest.fail("no producer needed"), 5).deliver([], {P0: 1}, Consumer())


def test_transaction_holds_outputs_and_offsets_and_says_they_are_committed():
    producer = FakeProducer()
    delivery = TransactionalDelivery(lambda: producer, timeout_s=5, request_timeout_ms=1_000)
    assert delivery.deliver(OUT, {P0: 3}, Consumer()) == {P0: 3}
    delivery.deliver(OUT[:1], {P0: 4}, Consumer())
    steps = [entry[0] for entry in producer.log]
    assert steps == ["init", "begin", "send", "send", "offsets", "commit", "begin", "send", "offsets", "commit"]
    assert producer.log[4] == ("offsets", {P0: 3}, 7)


@pytest.mark.parametrize("group", [ConsumerGroupMetadata("g", -1, "", None, MemberState.UNJOINED),
                                   ConsumerGroupMetadata("g", 7, "m", None, MemberState.REBALANCING)])
def test_no_offsets_are_sent_while_the_generation_is_unknown_or_rebalancing(group):
    producer = FakeProducer()
    with pytest.raises(DeliveryDeferred):
        TransactionalDelivery(lambda: producer, 5, 1_000).deliver(OUT, {P0: 3}, Consumer(group))
    assert producer.log == []


def test_a_transaction_with_an_unacknowledged_record_is_never_committed():
    # Regression (chaos suite, broker restart): kafka-python may fail a record without aborting
    # the transaction; committing would store the input offsets of an output that is not there.
    made = [FakeProducer(fail_sends=True), FakeProducer()]
    first = made[0]
    delivery = TransactionalDelivery(lambda: made.pop(0), timeout_s=5, request_timeout_ms=1_000)
    with pytest.raises(DeliveryError, match="not acknowledged"):
        delivery.deliver(OUT, {P0: 3}, Consumer())
    assert "commit" not in [entry[0] for entry in first.log] and first.closed
    delivery.deliver(OUT, {P0: 3}, Consumer())
    assert made == []  # the retry ran on a fresh producer, whose init_transactions aborts the old one


def test_after_an_unknown_outcome_it_fences_then_resumes_from_the_brokers_offsets():
    made = [FakeProducer(hang_commit=True), FakeProducer()]
    first = made[0]
    delivery = TransactionalDelivery(lambda: made.pop(0), timeout_s=0.3, request_timeout_ms=1_000)
    with pytest.raises(DeliveryError, match="commit_transaction did not finish"):
        delivery.deliver(OUT, {P0: 3}, Consumer())
    assert first.closed  # the old producer is closed at once, with its transaction still open
    consumer = Consumer(committed={P0: 3})  # the old transaction did commit, after all
    positions, committed = delivery.recover(consumer, {P0: 1})
    assert made == [] and positions == committed == {P0: 3}  # fenced first, then the broker's offsets


def test_transaction_timeout_leaks_no_thread_and_no_producer():
    """Real kafka-python producers against a port nobody listens on: each init_transactions
    times out; every producer and its IO thread must be gone afterwards."""
    made = []

    def producer():
        made.append(KafkaProducer(bootstrap_servers="127.0.0.1:9", transactional_id="leak-test", max_block_ms=300,
                                  request_timeout_ms=300, api_version=(3, 0)))  # no version probe at start
        return made[-1]

    before = threading.active_count()
    delivery = TransactionalDelivery(producer, timeout_s=0.5, request_timeout_ms=300)
    for _ in range(4):
        with pytest.raises(DeliveryError, match="KafkaTimeoutError"):
            delivery.deliver(OUT, {P0: 3}, Consumer())
    deadline = time.monotonic() + 10
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(made) == 4 and all(p._closed for p in made)
    assert threading.active_count() == before


def test_close_now_closes_a_producer_with_pending_batches():
    producer = FakeProducer()
    producer.send("out", b"k", b"v", [])
    close_now(producer)
    assert producer.closed and producer._sender.forced
