"""Replication of the topics the app creates: three copies where the cluster has three brokers,
two of them in sync before acks=all answers; the broker's own default min ISR otherwise.

    .venv/bin/pytest tests/unit/stream/test_replication.py -v
"""
import pytest

from s2s.stream import kafka_admin
from s2s.stream.config import StreamConfigError, stream_config_from_dict
from s2s.stream.kafka_admin import create_topics, default_replication


@pytest.mark.parametrize("brokers, replication_factor, min_insync, expected", [
    (1, None, None, (1, None)),   # the single test broker: one copy, the broker's min ISR
    (2, None, None, (2, None)),
    (3, None, None, (3, 2)),      # one broker may die without losing an acked record
    (5, None, None, (3, 2)),      # never more than three copies by default
    (5, 5, None, (5, 2)),
    (3, 2, None, (2, None)),
    (3, None, 3, (3, 3)),
    (1, 1, 1, (1, 1)),
    (0, 3, None, (3, 2)),         # an explicit factor needs no broker count
])
def test_defaults(brokers, replication_factor, min_insync, expected):
    assert default_replication(brokers, replication_factor, min_insync) == expected


@pytest.mark.parametrize("brokers, replication_factor, min_insync, message", [
    (0, None, None, "at least 1"),
    (3, 2, 3, "min.insync.replicas must be 1..2"),
    (3, None, 0, "min.insync.replicas must be 1..3"),
])
def test_impossible_settings_are_refused(brokers, replication_factor, min_insync, message):
    with pytest.raises(ValueError, match=message):
        default_replication(brokers, replication_factor, min_insync)


class FakeAdmin:
    """Answers describe_cluster with ``brokers`` brokers and records the topics it is asked for."""

    def __init__(self, brokers: int):
        self.brokers = brokers
        self.created: dict = {}
        self.cluster_asked = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def describe_cluster(self):
        self.cluster_asked += 1
        return {"brokers": [{"broker_id": i} for i in range(self.brokers)]}

    def create_topics(self, spec, raise_errors):
        self.created.update(spec)
        return {"topics": [{"name": name, "error_code": 0} for name in spec]}

    def wait_for_topics(self, names, timeout_ms):
        pass


@pytest.fixture
def fake_admin(monkeypatch):
    def install(brokers: int) -> FakeAdmin:
        admin = FakeAdmin(brokers)
        monkeypatch.setattr(kafka_admin, "_admin", lambda bootstrap, security: admin)
        return admin
    return install


def test_create_topics_on_three_brokers_asks_for_three_copies_two_in_sync(fake_admin):
    admin = fake_admin(3)
    create_topics("b:1", ["in", "out"], partitions=3)
    assert admin.created == {name: {"num_partitions": 3, "replication_factor": 3,
                                    "configs": {"min.insync.replicas": "2"}} for name in ("in", "out")}


def test_create_topics_on_one_broker_keeps_the_broker_default(fake_admin):
    admin = fake_admin(1)
    create_topics("b:1", ["t"])
    assert admin.created == {"t": {"num_partitions": 1, "replication_factor": 1, "configs": {}}}


def test_an_explicit_factor_does_not_ask_the_cluster(fake_admin):
    admin = fake_admin(3)
    create_topics("b:1", ["t"], replication_factor=2, min_insync_replicas=2)
    assert admin.created["t"]["replication_factor"] == 2
    assert admin.created["t"]["configs"] == {"min.insync.replicas": "2"}
    assert admin.cluster_asked == 0


def test_config_refuses_more_in_sync_replicas_than_copies():
    route = {"name": "r", "input_topic": "a", "output_topic": "b", "model": "m"}
    with pytest.raises(StreamConfigError, match="kafka.min_insync_replicas must be at most"):
        stream_config_from_dict({"routes": [route], "kafka": {"replication_factor": 2, "min_insync_replicas": 3}})
    kafka = stream_config_from_dict({"routes": [route], "kafka": {"replication_factor": 3}}).kafka
    assert (kafka.replication_factor, kafka.min_insync_replicas) == (3, None)
