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

A second flaw of the same version needs the longer poll below: a join whose JoinGroup/SyncGroup
finishes while no poll() is waiting for it is thrown away, and the next poll() sends a new
JoinGroup, i.e. starts yet another generation (``join_group_async`` starts a new attempt
whenever the last one "is done", successful or not). A member that keeps working through the
rebalance polls for 0-5 ms between deliveries, so most joins finished between its polls: in
bench/step_load.py the leader went through ten generations and ~20 s without a commit for one
move. While the member is rejoining, each poll() therefore waits up to REJOIN_POLL_MS, so the
join's answer nearly always arrives while a poll waits for it.
"""
from __future__ import annotations

from kafka import KafkaConsumer
from kafka.coordinator.assignors.abstract import RebalanceProtocol


REJOIN_POLL_MS = 100  # poll wait while rejoining: short for the kept partitions' answers, long for the join's


def poll_kept(consumer: KafkaConsumer, timeout_ms: int, max_records: int) -> tuple[dict, bool]:
    """``consumer.poll()`` (waiting at least REJOIN_POLL_MS while a cooperative rejoin is under
    way); if that gave nothing because the rebalance goes on, the records already fetched (or
    fetchable at once) for the partitions this member keeps. Returns {partition: records} and
    whether they were fetched during a rebalance."""
    if cooperative_rebalance_in_progress(consumer):
        timeout_ms = max(timeout_ms, REJOIN_POLL_MS)
    polled = consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
    if polled or not cooperative_rebalance_in_progress(consumer):
        return polled, False
    records, _idle = consumer._fetcher.fetch_records(max_records, update_offsets=True, timeout_ms=0)
    return records, True


def cooperative_rebalance_in_progress(consumer: KafkaConsumer) -> bool:
    coordinator = getattr(consumer, "_coordinator", None)
    return (getattr(coordinator, "_rebalance_protocol", None) == RebalanceProtocol.COOPERATIVE
            and bool(getattr(coordinator, "rejoining", False)))
