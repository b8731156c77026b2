"""kafka-python consumer and producer settings for the ingress, derived from KafkaSettings.

Kept in one place so the delivery contract is visible: manual commits only, acks=all with
the idempotent producer, read_committed inputs and a transactional producer in exactly-once mode.
Every client gets the TLS/SASL settings of security.py, secrets read when the configs are built.
"""
from __future__ import annotations

from typing import Any

from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

from .config import KafkaSettings
from .kafka_admin import bootstrap_from_env, security_configs
from .security import KafkaSecurity, security_or_env


# Every delivery ends in flush(), which sends whatever lingers at once, so the linger only decides
# whether the sender thread may cut a delivery into pieces while the loop is still appending to
# it. At 2 ms it did: each cut cost a sender wakeup, a lock handoff and one more produce request
# (12-20% more producer CPU per record when sending 256-record deliveries and flushing).
DELIVERY_LINGER_MS = 100

ASSIGNORS = {"cooperative-sticky": CooperativeStickyAssignor, "range": RangePartitionAssignor,
             "roundrobin": RoundRobinPartitionAssignor}   # kafka.assignor -> kafka-python's class


def resolve_bootstrap(settings: KafkaSettings) -> str:
    """The configured bootstrap servers, else $S2S_KAFKA_BOOTSTRAP, else the local broker."""
    return settings.bootstrap.strip() or bootstrap_from_env()


def resolve_security(settings: KafkaSettings) -> KafkaSecurity:
    """The configured security settings, else those of $S2S_KAFKA_SECURITY's file, else PLAINTEXT."""
    return security_or_env(settings.security)


def check_credentials(settings: KafkaSettings) -> None:
    """Fail at once with a clear error if the TLS handshake or the SASL credentials are refused
    (kafka_auth.py: kafka-python itself would retry until its bootstrap timeout)."""
    security_configs(resolve_bootstrap(settings), settings.security)


def consumer_configs(settings: KafkaSettings, client_id: str) -> dict[str, Any]:
    return {
        **resolve_security(settings).client_configs(),
        "bootstrap_servers": resolve_bootstrap(settings),
        "client_id": client_id,
        "group_id": settings.group_id,
        "partition_assignment_strategy": (ASSIGNORS[settings.assignor],),
        "enable_auto_commit": False,  # offsets are committed only after outputs are acked
        "auto_offset_reset": settings.auto_offset_reset,
        # Exactly-once chains: an upstream transaction's records appear only once committed.
        "isolation_level": "read_committed" if settings.exactly_once else "read_uncommitted",
        "max_poll_records": settings.max_poll_records,
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": settings.heartbeat_interval_ms,
        "max_poll_interval_ms": settings.max_poll_interval_ms,
        "request_timeout_ms": settings.request_timeout_ms,
        "allow_auto_create_topics": False,
    }


def producer_configs(settings: KafkaSettings, client_id: str, transactional_id: str | None = None) -> dict[str, Any]:
    configs: dict[str, Any] = {
        **resolve_security(settings).client_configs(),
        "bootstrap_servers": resolve_bootstrap(settings),
        "client_id": client_id,
        "acks": "all",
        "enable_idempotence": True,  # broker-side dedup of producer retries; keeps per-partition order
        # kafka-python refuses a linger over delivery_timeout_ms - request_timeout_ms.
        "linger_ms": max(0, min(DELIVERY_LINGER_MS, settings.delivery_timeout_ms - settings.request_timeout_ms)),
        "batch_size": 256 * 1024,
        "delivery_timeout_ms": settings.delivery_timeout_ms,
        "request_timeout_ms": settings.request_timeout_ms,
        "max_block_ms": settings.max_block_ms,            # bounds every send: part of the drain bound
        "max_request_size": settings.max_request_bytes,   # out_records cuts dead letters to fit it
        "max_in_flight_requests_per_connection": 5,  # the most idempotence keeps ordered
    }
    if transactional_id is not None:
        configs["transactional_id"] = transactional_id
        configs["transaction_timeout_ms"] = settings.transaction_timeout_ms
    return configs
