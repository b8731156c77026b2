"""The project's own Kafka broker works as the streaming code expects: keyed produce/consume in a
consumer group, transactions with read_committed readers, and the kafka.sh tools.

    .venv/bin/pytest tests/integration/test_kafka_broker.py -v
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from dataclasses import replace

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from s2s.localhost import free_ports
from s2s.stream.kafka_admin import end_offsets

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _consume(consumer: KafkaConsumer, count: int, timeout_s: float = 60) -> list:
    """Poll until ``count`` records arrived (or the timeout passed); returns them in arrival order."""
    records: list = []
    deadline = time.monotonic() + timeout_s
    while len(records) < count and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    return records


def _reader(bootstrap: str, topic: str, **configs) -> KafkaConsumer:
    """A consumer without a group reading ``topic``'s partition 0 from the beginning."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **configs)
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    return consumer


def test_keyed_messages_round_trip_through_a_consumer_group(kafka_bootstrap, topic_factory):
    topic = topic_factory(partitions=3)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    sent = [(f"key-{i % 10}".encode(), f"value-{i}".encode()) for i in range(100)]
    metadata = [producer.send(topic, key=k, value=v).get(timeout=30) for k, v in sent]
    producer.close()
    assert {m.partition for m in metadata} == {0, 1, 2}  # ten keys spread over the partitions

    consumer = KafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, group_id=f"g-{uuid.uuid4().hex}",
                             auto_offset_reset="earliest", enable_auto_commit=False)
    try:
        records = _consume(consumer, 100)
        consumer.commit()
        committed = {p: consumer.committed(TopicPartition(topic, p)) for p in range(3)}
    finally:
        consumer.close()

    assert sorted((r.key, r.value) for r in records) == sorted(sent)
    by_key = defaultdict(list)
    for r in records:
        by_key[r.key].append((r.partition, int(r.value.split(b"-")[1])))
    for key, seen in by_key.items():
        assert len({partition for partition, _ in seen}) == 1, f"{key} landed on several partitions"
        assert [n for _, n in seen] == sorted(n for _, n in seen), f"{key} out of order"
    assert committed == end_offsets(kafka_bootstrap, topic)
    assert sum(committed.values()) == 100


def test_read_committed_consumer_sees_only_committed_transactions(kafka_bootstrap, unique_topic):
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all",
                             transactional_id=f"tx-{uuid.uuid4().hex}")
    producer.init_transactions()
    for outcome, values in (("commit", range(0, 5)), ("abort", range(100, 105)), ("commit", range(5, 10))):
        producer.begin_transaction()
        for n in values:
            producer.send(unique_topic, key=b"k", value=str(n).encode())
        producer.flush()
        producer.commit_transaction() if outcome == "commit" else producer.abort_transaction()
    producer.close()

    committed_reader = _reader(kafka_bootstrap, unique_topic, isolation_level="read_committed")
    uncommitted_reader = _reader(kafka_bootstrap, unique_topic, isolation_level="read_uncommitted")
    try:
        committed = [int(r.value) for r in _consume(committed_reader, 10)]
        everything = [int(r.value) for r in _consume(uncommitted_reader, 15)]
        assert _consume(committed_reader, 1, timeout_s=2) == []  # nothing aborted trails behind
    finally:
        committed_reader.close()
        uncommitted_reader.close()

    assert committed == list(range(10))
    assert sorted(everything) == sorted([*range(10), *range(100, 105)])  # aborted data is in the log
    # 15 data records + one commit/abort marker per transaction
    assert end_offsets(kafka_bootstrap, unique_topic) == {0: 18}


def _owned_broker(kafka_broker):
    if kafka_broker.script_env is None:
        pytest.skip("S2S_KAFKA_BOOTSTRAP names an external cluster; kafka.sh does not manage it")
    return kafka_broker


def test_kafka_sh_status_and_start_are_idempotent(kafka_broker, tmp_path):
    broker = _owned_broker(kafka_broker)
    status = broker.kafka_sh("status")
    assert status.returncode == 0, status.stderr
    assert status.stdout.strip() == broker.bootstrap

    again = broker.kafka_sh("start")
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stderr

    no_broker_here = replace(broker, script_env=dict(broker.script_env, KAFKA_HOME_DIR=str(tmp_path)))
    assert no_broker_here.kafka_sh("status").returncode != 0
    assert no_broker_here.kafka_sh("stop").returncode == 0  # stopping nothing is fine


def test_a_broker_that_dies_while_starting_fails_start_at_once(kafka_broker, tmp_path):
    broker = _owned_broker(kafka_broker)
    port, controller = free_ports(2)
    doomed = replace(broker, script_env=dict(broker.script_env, KAFKA_HOME_DIR=str(tmp_path / "home"),
                                             KAFKA_PORT=str(port), KAFKA_CONTROLLER_PORT=str(controller),
                                             KAFKA_HEAP_OPTS="-Xmx1k"))  # the JVM refuses to start
    started = time.monotonic()
    result = doomed.kafka_sh("start")
    assert result.returncode != 0
    assert "broker exited during startup" in result.stderr
    assert time.monotonic() - started < 30  # not the 60 s readiness timeout
    assert doomed.kafka_sh("status").returncode != 0


def test_console_producer_and_consumer_round_trip(kafka_broker, topic_factory):
    broker = _owned_broker(kafka_broker)
    topic = topic_factory(partitions=2)
    lines = [f"k{i}:line {i}" for i in range(5)]
    produced = broker.kafka_sh("console-producer", "--topic", topic, "--reader-property", "parse.key=true",
                               "--reader-property", "key.separator=:", input="\n".join(lines) + "\n")
    assert produced.returncode == 0, produced.stderr

    consumed = broker.kafka_sh("console-consumer", "--topic", topic, "--from-beginning",
                               "--max-messages", "5", "--timeout-ms", "30000",
                               "--formatter-property", "print.key=true",
                               "--formatter-property", "key.separator=:")
    assert consumed.returncode == 0, consumed.stderr
    assert sorted(consumed.stdout.splitlines()) == sorted(lines)
