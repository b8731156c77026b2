"""The project's 3-broker KRaft cluster (kafka.sh cluster-start): topics the app creates on it
get three copies, two of them in sync; records acked with acks=all survive SIGKILL of their
partition's leader; the killed broker comes back and catches up.

    .venv/bin/pytest tests/integration/test_kafka_cluster.py -v
"""
from __future__ import annotations

import threading
import time
import uuid

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

from s2s.stream.kafka_admin import create_topics, delete_topics, end_offsets
from tests.integration.stream.streams import TopicReader

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]


@pytest.fixture
def cluster_topic(kafka_cluster3):
    """``make(partitions) -> name``: a topic created by the app's create_topics, deleted afterwards."""
    made = []

    def make(partitions: int = 1) -> str:
        name = f"cluster-{uuid.uuid4().hex[:8]}"
        create_topics(kafka_cluster3.bootstrap, [name], partitions=partitions)
        made.append(name)
        return name

    yield make
    delete_topics(kafka_cluster3.bootstrap, made)


def test_three_brokers_answer_and_the_script_names_each(kafka_cluster3):
    with KafkaAdminClient(bootstrap_servers=kafka_cluster3.bootstrap) as admin:
        brokers = admin.describe_cluster()["brokers"]
    assert sorted(b["broker_id"] for b in brokers) == [1, 2, 3]
    status = kafka_cluster3.kafka_sh("cluster-status")
    assert status.returncode == 0, status.stderr
    assert status.stdout.strip() == kafka_cluster3.bootstrap
    assert status.stderr.count(" up (pid ") == 3
    unknown = kafka_cluster3.kafka_sh("broker-kill", "7")
    assert unknown.returncode != 0 and "no broker '7'" in unknown.stderr


def test_created_topics_get_three_replicas_two_in_sync(kafka_cluster3, cluster_topic):
    topic = cluster_topic(partitions=3)
    with KafkaAdminClient(bootstrap_servers=kafka_cluster3.bootstrap) as admin:
        (described,) = admin.describe_topics([topic])
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    assert [sorted(p["replica_nodes"]) for p in described["partitions"]] == [[1, 2, 3]] * 3
    assert len({p["leader_id"] for p in described["partitions"]}) == 3  # leaders spread over the brokers
    assert configs["topic"][topic]["min.insync.replicas"]["value"] == "2"


@pytest.mark.slow
def test_acked_records_survive_sigkill_of_the_leader_which_then_rejoins(kafka_cluster3, cluster_topic):
    topic = cluster_topic(partitions=1)
    leader = kafka_cluster3.leader_of(topic, 0)
    sent = [(f"k{i % 7}".encode(), f"v{i}".encode()) for i in range(600)]
    producer = KafkaProducer(bootstrap_servers=kafka_cluster3.bootstrap, acks="all", linger_ms=5,
                             delivery_timeout_ms=120_000)
    futures: list = []

    def produce_paced():  # ~6 s of load; the leader dies in its middle
        for i, (key, value) in enumerate(sent):
            futures.append(producer.send(topic, key=key, value=value))
            time.sleep(0.01)  # pacing the load, not synchronizing

    load = threading.Thread(target=produce_paced)
    load.start()
    try:
        time.sleep(2)
        kafka_cluster3.kill(leader)
        load.join(timeout=120)
        producer.flush(timeout=120)
        offsets = [future.get(timeout=1).offset for future in futures]  # every record acked
        new_leader = kafka_cluster3.leader_of(topic, 0)
        assert new_leader not in (leader, -1)
        assert kafka_cluster3.in_sync_replicas(topic, 0) == sorted({1, 2, 3} - {leader})
    finally:
        producer.close(timeout=30)
        kafka_cluster3.start(leader)

    assert sorted(offsets) == list(range(len(sent)))  # the idempotent producer wrote each once
    assert end_offsets(kafka_cluster3.bootstrap, topic) == {0: len(sent)}
    reader = TopicReader(kafka_cluster3.bootstrap, topic)
    received = reader.read_until(lambda records: len(records) >= len(sent), timeout_s=60)
    reader.close()
    assert [(r.key, r.value) for r in received] == sent
    # The restarted broker fetches what it missed and is back in sync.
    deadline = time.monotonic() + 60
    while kafka_cluster3.in_sync_replicas(topic, 0) != [1, 2, 3]:
        assert time.monotonic() < deadline, kafka_cluster3.in_sync_replicas(topic, 0)
        time.sleep(0.5)  # the ISR has no event to wait on
