"""poll_kept leans on two private parts of the pinned kafka-python: these tests fail first if
an upgrade moves them (the integration test test_rebalance.py shows the effect on a broker)."""
import inspect

from kafka import KafkaConsumer
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.structs import TopicPartition

from s2s.stream.rebalancing import REJOIN_POLL_MS, cooperative_rebalance_in_progress, poll_kept

P0 = TopicPartition("in", 0)


def real_consumer(assignor) -> KafkaConsumer:
    # api_version given: the constructor does not contact the (absent) broker.
    return KafkaConsumer(bootstrap_servers="127.0.0.1:9", group_id="g", api_version=(3, 9),
                         partition_assignment_strategy=(assignor,), enable_auto_commit=False)


def test_the_private_parts_poll_kept_uses_are_where_it_expects_them():
    consumer = real_consumer(CooperativeStickyAssignor)
    try:
        assert consumer._coordinator.rejoining is False
        assert not cooperative_rebalance_in_progress(consumer)
        consumer._coordinator.rejoining = True
        assert cooperative_rebalance_in_progress(consumer)
        params = inspect.signature(consumer._fetcher.fetch_records).parameters
        assert {"max_records", "update_offsets", "timeout_ms"} <= set(params)
    finally:
        consumer.close()


def test_an_eager_rejoin_is_not_a_cooperative_rebalance():
    consumer = real_consumer(RangePartitionAssignor)
    try:
        consumer._coordinator.rejoining = True
        assert not cooperative_rebalance_in_progress(consumer)
    finally:
        consumer.close()


class Coordinator:
    def __init__(self, cooperative: bool, rejoining: bool):
        from kafka.coordinator.assignors.abstract import RebalanceProtocol
        self._rebalance_protocol = RebalanceProtocol.COOPERATIVE if cooperative else RebalanceProtocol.EAGER
        self.rejoining = rejoining


class Fetcher:
    def __init__(self, buffered):
        self.buffered, self.asked = buffered, []

    def fetch_records(self, max_records=None, update_offsets=True, timeout_ms=None):
        self.asked.append((max_records, update_offsets, timeout_ms))
        return self.buffered, False


class Consumer:
    def __init__(self, polled, cooperative, rejoining, buffered):
        self.polled = polled
        self._coordinator = Coordinator(cooperative, rejoining)
        self._fetcher = Fetcher(buffered)

    def poll(self, timeout_ms=0, max_records=None):
        self.timeout_ms = timeout_ms
        return self.polled


def test_during_a_cooperative_rebalance_the_fetcher_is_asked_without_waiting():
    consumer = Consumer({}, cooperative=True, rejoining=True, buffered={P0: ["r"]})
    assert poll_kept(consumer, 5, 10) == ({P0: ["r"]}, True)
    assert consumer._fetcher.asked == [(10, True, 0)]
    assert consumer.timeout_ms == REJOIN_POLL_MS  # long enough for the join's answer to be awaited


def test_otherwise_poll_answers_alone():
    for cooperative, rejoining, polled in [(True, False, {}), (False, True, {}), (True, True, {P0: ["p"]})]:
        consumer = Consumer(polled, cooperative, rejoining, buffered={P0: ["r"]})
        assert poll_kept(consumer, 5, 10) == (polled, False)
        assert consumer._fetcher.asked == []
        assert consumer.timeout_ms == (REJOIN_POLL_MS if cooperative and rejoining else 5)
