"""Fetching the partitions a member keeps while its group rebalances (KIP-429).

Under the cooperative protocol a member keeps its partitions through a rebalance and gives up
only those that move, so it may go on consuming them; Kafka's Java consumer does. kafka-python
3.0.12's ``poll()`` does not: while a JoinGroup/SyncGroup is in flight it returns nothing, and
each cooperative move takes two such rounds, each as long as the other members take to notice
(up to a heartbeat interval). The kept partitions then stall for seconds: bench/step_load.py
measured p99 3x the eager assignor's. ``poll_kept`` asks the consumer's fetcher directly in
that window, for the partitions still assigned and not paused, which is what the Java consumer
does. It touches one private attribute (``_coordinator``) and one private object
(``_fetcher``) of the pinned kafka-python; tests/unit/stream/test_rebalancing.py pins both.
"""
from __future__ import annotations

from kafka import KafkaConsumer
from kafka.coordinator.assignors.abstract import RebalanceProtocol


def poll_kept(consumer: KafkaConsumer, timeout_ms: int, max_records: int) -> tuple[dict, bool]:
    """``consumer.poll()``; if that gave nothing because a cooperative rebalance is under way,
    the records already fetched (or fetchable at once) for the partitions this member keeps.
    Returns {partition: records} and whether they were fetched during a rebalance."""
    polled = consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
    if polled or not cooperative_rebalance_in_progress(consumer):
        return polled, False
    records, _idle = consumer._fetcher.fetch_records(max_records, update_offsets=True, timeout_ms=0)
    return records, True


def cooperative_rebalance_in_progress(consumer: KafkaConsumer) -> bool:
    coordinator = getattr(consumer, "_coordinator", None)
    return (getattr(coordinator, "_rebalance_protocol", None) == RebalanceProtocol.COOPERATIVE
            and bool(getattr(coordinator, "rejoining", False)))
