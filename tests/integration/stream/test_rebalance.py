"""Rebalancing on a real broker, poll loops without Ray: under the cooperative assignor a
scale-up moves only the partitions that change owner (the first member's kept partitions are
never paused, drained or sought back); under the eager one every partition is given up; a
group whose members use assignors of both kinds fails with one clear error."""
from __future__ import annotations

import threading
import time

import pytest
from kafka import KafkaConsumer

from s2s.stream.config import stream_config_from_dict
from s2s.stream.kafka_clients import consumer_configs
from s2s.stream.poll_loop import AssignorMismatch, PollLoop
from tests.unit.stream.fakes import FakeDelivery, FakeObserver, FakeTranslator

from .streams import produce, produce_in_background, wait_for

pytestmark = pytest.mark.integration


class SpyConsumer(KafkaConsumer):
    """A real consumer that remembers which partitions it was asked to pause or seek."""

    def __init__(self, **configs):
        super().__init__(**configs)
        self.paused_ever: set = set()
        self.sought: set = set()

    def pause(self, *partitions):
        self.paused_ever.update(partitions)
        return super().pause(*partitions)

    def seek(self, partition, offset):
        self.sought.add(partition)
        return super().seek(partition, offset)


class LateRejoiner(SpyConsumer):
    """Sends each JoinGroup a second late, as a busy replica may: the rebalance round the first
    member starts then lasts that long, so the window in which kafka-python's poll() fetches
    nothing (s2s/stream/rebalancing.py) is there in every run, not only when heartbeats fall so."""

    def poll(self, timeout_ms=0, max_records=None, **kwargs):
        if self._coordinator.need_rejoin():
            time.sleep(1.0)  # the delay under test, not a wait for something
        return super().poll(timeout_ms=timeout_ms, max_records=max_records, **kwargs)


class Member:
    """One poll loop of the group on its own thread, recording what it was asked to give up."""

    def __init__(self, bootstrap: str, topic: str, group: str, assignor: str, consumer_class=SpyConsumer):
        self.consumer_class = consumer_class
        self.config = stream_config_from_dict({
            "kafka": {"bootstrap": bootstrap, "group_id": group, "assignor": assignor, "create_topics": False,
                      "session_timeout_ms": 15_000, "heartbeat_interval_ms": 1_000, "flush_timeout_s": 5,
                      "transaction_timeout_ms": 4_000},
            "ingress": {"drain_timeout_s": 2},
            "routes": [{"name": "up", "input_topic": topic, "output_topic": f"{topic}-out", "model": "m"}]})
        self.delivery, self.revoked, self.error = FakeDelivery(), [], None
        self.loop = PollLoop(self.config, FakeTranslator(), self._consumer, self.delivery, FakeObserver())
        before_revoke = self.loop.before_revoke
        self.loop.before_revoke = lambda partitions: self.revoked.append(set(partitions)) or before_revoke(partitions)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _consumer(self) -> SpyConsumer:
        self.consumer = self.consumer_class(**consumer_configs(self.config.kafka, client_id="test-member"))
        return self.consumer

    def _run(self) -> None:
        try:
            self.loop.run(self.stop)
        except BaseException as err:  # noqa: BLE001 - the test reads it
            self.error = err

    def assigned(self) -> set:
        consumer = getattr(self, "consumer", None)
        return set(consumer.assignment()) if consumer is not None else set()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


@pytest.mark.parametrize("assignor", ["cooperative-sticky", "range"])
def test_a_scale_up_moves_only_what_changes_owner_under_the_cooperative_assignor(kafka_bootstrap, topic_factory,
                                                                               assignor):
    topic = topic_factory(partitions=4, suffix="in")
    group = f"{topic}-group"
    first = Member(kafka_bootstrap, topic, group, assignor)
    first.thread.start()
    try:
        assert wait_for(lambda: len(first.assigned()) == 4, timeout_s=60)
        produce(kafka_bootstrap, topic, [(f"k{i}".encode(), b"x y") for i in range(40)])
        assert wait_for(lambda: len(first.delivery.values(f"{topic}-out")) == 40, timeout_s=60)
        before = first.assigned()
        during = produce_in_background(kafka_bootstrap, topic, [(f"during{i}".encode(), b"c d") for i in range(300)],
                                       pace_per_s=100)  # keeps coming while the group rebalances
        second = Member(kafka_bootstrap, topic, group, assignor, consumer_class=LateRejoiner)
        second.thread.start()
        try:
            assert wait_for(lambda: len(first.assigned()) == 2 and len(second.assigned()) == 2, timeout_s=60)
            kept, moved = first.assigned(), before - first.assigned()
            during.join(timeout=60)
            assert not during.errors
            produce(kafka_bootstrap, topic, [(f"later{i}".encode(), b"a b") for i in range(40)])
            answered = lambda: set(first.delivery.keys(f"{topic}-out")) | set(second.delivery.keys(f"{topic}-out"))  # noqa: E731
            assert wait_for(lambda: len(answered()) == 380, timeout_s=60)  # every key answered
        finally:
            second.close()
    finally:
        first.close()
    assert first.error is None and second.error is None
    if assignor == "cooperative-sticky":
        assert first.revoked[0] == moved                  # only what moved was handed over
        assert not kept & first.consumer.paused_ever      # the kept partitions never stopped...
        assert not kept & first.consumer.sought
        assert first.loop.stats.polled_in_rebalance > 0   # ...not even while the group rebalanced
    else:
        assert first.revoked[0] == before                 # eager: everything is given up


def test_a_group_with_assignors_of_both_kinds_fails_with_one_clear_error(kafka_bootstrap, topic_factory):
    topic = topic_factory(partitions=2, suffix="in")
    group = f"{topic}-group"
    eager = KafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    try:
        deadline = time.monotonic() + 60
        while not eager.assignment() and time.monotonic() < deadline:
            eager.poll(timeout_ms=200)                    # joins with kafka-python's default (range)
        member = Member(kafka_bootstrap, topic, group, "cooperative-sticky")
        member.thread.start()
        finished = lambda: not member.thread.is_alive()  # noqa: E731
        deadline = time.monotonic() + 60
        while not finished() and time.monotonic() < deadline:
            eager.poll(timeout_ms=200)                    # stays in the group meanwhile
        member.close()
    finally:
        eager.close()
    assert isinstance(member.error, AssignorMismatch), repr(member.error)
    assert group in str(member.error) and "cooperative-sticky" in str(member.error)
