"""Which offsets are safe to commit, and where to seek back after a failure."""
from concurrent.futures import Future

from kafka.structs import TopicPartition

from s2s.stream.polled import PolledBatch, TranslatorCall
from s2s.stream.config import RouteConfig
from s2s.stream.ledger import OffsetLedger
from s2s.stream.messages import Reason, Rejection

from .fakes import records

P0, P1 = TopicPartition("in", 0), TopicPartition("in", 1)
ROUTE = RouteConfig(name="r", input_topic="in", output_topic="out", model="m")


def batch(polled, done=True):
    future = Future()
    if done:
        future.set_result(None)
    return PolledBatch(polled, [Rejection(Reason.EMPTY, "")] * len(polled), [TranslatorCall(ROUTE, [], future)])


def test_ready_is_the_translated_prefix_only():
    ledger = OffsetLedger()
    first, second, third = batch(records("in", 0, 0, [b"a"])), batch(records("in", 0, 1, [b"b"]), done=False), \
        batch(records("in", 0, 2, [b"c"]))
    for b in (first, second, third):
        ledger.add(b)
    assert ledger.ready() == [first]  # third is done but waits for second: order is kept
    assert ledger.in_flight() == 3


def test_settle_advances_safe_offsets_and_uncommitted_tracks_commits():
    ledger = OffsetLedger()
    ledger.add(batch(records("in", 0, 10, [b"a", b"b"]) + records("in", 1, 3, [b"c"])))
    ledger.add(batch(records("in", 0, 12, [b"d"])))
    assert ledger.uncommitted() == {P0: 10, P1: 3}  # the starting positions
    assert ledger.settle(1) == {P0: 12, P1: 4}
    assert ledger.uncommitted() == {P0: 12, P1: 4}
    ledger.mark_committed({P0: 12, P1: 4})
    assert ledger.uncommitted() == {}
    ledger.settle(1)
    assert ledger.uncommitted() == {P0: 13}
    assert not ledger.has_pending()


def test_offsets_after_does_not_settle():
    ledger = OffsetLedger()
    b = batch(records("in", 1, 0, [b"a"]))
    ledger.add(b)
    assert ledger.offsets_after([b]) == {P1: 1}
    assert ledger.head() is b


def test_rewind_returns_the_first_unacknowledged_offset_of_touched_partitions():
    ledger = OffsetLedger()
    ledger.add(batch(records("in", 0, 0, [b"a", b"b"])))
    ledger.settle(1)
    pending = batch(records("in", 0, 2, [b"c"]) + records("in", 1, 5, [b"d"]), done=False)
    ledger.add(pending)
    ledger.add(batch(records("in", 0, 3, [b"e"])))
    assert ledger.rewind() == {P0: 2, P1: 5}
    assert not ledger.has_pending() and pending.calls[0].future.cancelled()


def test_forget_drops_partitions():
    ledger = OffsetLedger()
    ledger.add(batch(records("in", 0, 0, [b"a"]) + records("in", 1, 0, [b"b"])))
    ledger.settle(1)
    ledger.forget([P0])
    assert ledger.uncommitted() == {P1: 1}
