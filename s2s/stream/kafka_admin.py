"""Small helpers over kafka-python for topic administration and broker readiness.

The bootstrap address comes from ``S2S_KAFKA_BOOTSTRAP`` (an existing cluster) and defaults to
the project's own broker, started with ``bash cluster/kafka/kafka.sh start``. Every helper takes
TLS/SASL settings (security.py); left out, they come from ``$S2S_KAFKA_SECURITY`` (PLAINTEXT if unset).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, TopicAlreadyExistsError, UnknownTopicOrPartitionError

from .kafka_auth import check_authentication
from .security import KafkaSecurity, security_or_env

BOOTSTRAP_ENV = "S2S_KAFKA_BOOTSTRAP"
DEFAULT_BOOTSTRAP = "127.0.0.1:19092"  # cluster/kafka/kafka.sh's default port


def bootstrap_from_env(default: str = DEFAULT_BOOTSTRAP) -> str:
    """The bootstrap servers ("host:port[,host:port...]") in S2S_KAFKA_BOOTSTRAP, else ``default``."""
    return os.environ.get(BOOTSTRAP_ENV, "").strip() or default


def security_configs(bootstrap: str, security: KafkaSecurity | None) -> dict:
    """kafka-python security options (secrets read now), once the brokers accepted them."""
    configs = security_or_env(security).client_configs()
    check_authentication(bootstrap, configs)
    return configs


def _admin(bootstrap: str, security: KafkaSecurity | None, timeout_s: float = 30.0) -> KafkaAdminClient:
    return KafkaAdminClient(
        **security_configs(bootstrap, security),
        bootstrap_servers=bootstrap,
        client_id="s2s-admin",
        bootstrap_timeout_ms=int(timeout_s * 1000),
        request_timeout_ms=int(timeout_s * 1000),
    )


def create_topics(bootstrap: str, names: Iterable[str], partitions: int = 1, replication_factor: int | None = None,
                  min_insync_replicas: int | None = None, security: KafkaSecurity | None = None) -> None:
    """Create the topics that do not exist yet and wait until every partition has a leader.

    ``replication_factor`` None: min(3, brokers in the cluster); ``min_insync_replicas`` None: 2
    when the topics have 3 or more copies, else the broker's default (see default_replication).
    Idempotent: a topic that already exists is left as it is (even with another partition count).
    """
    names = list(names)
    if not names:
        return
    with _admin(bootstrap, security) as admin:
        brokers = len(admin.describe_cluster()["brokers"]) if replication_factor is None else 0
        replicas, min_insync = default_replication(brokers, replication_factor, min_insync_replicas)
        configs = {} if min_insync is None else {"min.insync.replicas": str(min_insync)}
        spec = {name: {"num_partitions": partitions, "replication_factor": replicas, "configs": configs}
                for name in names}
        _raise_topic_errors(admin.create_topics(spec, raise_errors=False), "creating",
                            TopicAlreadyExistsError.errno)
        admin.wait_for_topics(names, timeout_ms=30_000)


def default_replication(brokers: int, replication_factor: int | None,
                        min_insync_replicas: int | None) -> tuple[int, int | None]:
    """(replication factor, min.insync.replicas or None for the broker's default) of new topics.

    Three copies where the cluster has three brokers, two of which must hold a write before
    ``acks=all`` answers: one broker may then die (or restart) without losing an acked record
    or stopping writes. A smaller cluster gets one copy per broker and the broker's min ISR.
    """
    replicas = min(3, brokers) if replication_factor is None else replication_factor
    if replicas < 1:
        raise ValueError(f"replication factor must be at least 1, got {replicas} "
                         f"({brokers} brokers, replication_factor={replication_factor})")
    min_insync = (2 if replicas >= 3 else None) if min_insync_replicas is None else min_insync_replicas
    if min_insync is not None and not 1 <= min_insync <= replicas:
        raise ValueError(f"min.insync.replicas must be 1..{replicas} (the replication factor), got {min_insync}")
    return replicas, min_insync


def _raise_topic_errors(result: dict, verb: str, harmless_code: int) -> None:
    """Raise for the first per-topic error in an admin response, except `harmless_code`."""
    for topic in result["topics"]:
        code = topic["error_code"]
        if code and code != harmless_code:
            raise KafkaError(f"{verb} topic {topic['name']!r} failed: {topic.get('error_message') or code}")


def delete_topics(bootstrap: str, names: Iterable[str], wait_s: float = 0.0,
                  security: KafkaSecurity | None = None) -> None:
    """Delete the topics; a topic that does not exist is not an error.

    Deletion is asynchronous in Kafka; with `wait_s` > 0 this returns only once the
    topics are gone from the metadata, so they can be created afresh right away."""
    names = list(names)
    if not names:
        return
    with _admin(bootstrap, security) as admin:
        _raise_topic_errors(admin.delete_topics(names, raise_errors=False), "deleting",
                            UnknownTopicOrPartitionError.errno)
        deadline = time.monotonic() + wait_s
        while wait_s > 0 and set(names) & set(admin.list_topics()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics {names} still listed {wait_s:.0f}s after deletion")
            time.sleep(0.2)  # metadata has no deletion event to wait on


def end_offsets(bootstrap: str, topic: str, isolation_level: str = "read_uncommitted",
                security: KafkaSecurity | None = None) -> dict[int, int]:
    """{partition: offset of the next record to be written} for every partition of ``topic``.

    With ``isolation_level="read_committed"`` the offsets stop at the last stable offset
    (before records of open transactions).
    """
    consumer = KafkaConsumer(**security_configs(bootstrap, security), bootstrap_servers=bootstrap,
                             client_id="s2s-offsets", enable_auto_commit=False, allow_auto_create_topics=False,
                             isolation_level=isolation_level)
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise UnknownTopicOrPartitionError(f"topic {topic!r} not found at {bootstrap}")
        offsets = consumer.end_offsets([TopicPartition(topic, p) for p in sorted(partitions)])
        return {tp.partition: offset for tp, offset in sorted(offsets.items())}
    finally:
        consumer.close()
