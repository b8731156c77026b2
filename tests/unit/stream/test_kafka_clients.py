"""The Kafka clients' settings and the libraries they rely on."""
import pytest
from kafka.record import _crc32c, util

from s2s.stream.config import KafkaSettings
from s2s.stream.kafka_clients import consumer_configs, producer_configs
from s2s.stream.security import SECURITY_ENV


def test_kafka_python_checks_crcs_in_c():
    # Every fetched and produced batch is checksummed; the pure-Python CRC-32C fallback cost
    # the stream a tenth of a core (pyproject pins the crc32c module for it).
    assert util.calc_crc32c.__defaults__[0] is not _crc32c.crc
    assert util.calc_crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value


def test_delivery_contract_settings(monkeypatch):
    monkeypatch.delenv(SECURITY_ENV, raising=False)  # plaintext, whatever the environment says
    settings = KafkaSettings(bootstrap="127.0.0.1:9", group_id="g")
    consumer = consumer_configs(settings, client_id="c")
    producer = producer_configs(settings, client_id="c")
    assert consumer["enable_auto_commit"] is False
    assert producer["acks"] == "all" and producer["enable_idempotence"] is True
    assert "transactional_id" not in producer
    assert producer_configs(settings, "c", transactional_id="t")["transactional_id"] == "t"


def test_the_cooperative_assignor_is_the_default_and_the_eager_one_is_available(monkeypatch):
    from kafka.coordinator.assignors.abstract import RebalanceProtocol
    from kafka.coordinator.assignors.range import RangePartitionAssignor

    from s2s.stream.config import StreamConfigError

    monkeypatch.delenv(SECURITY_ENV, raising=False)
    [cooperative] = consumer_configs(KafkaSettings(bootstrap="h:9"), "c")["partition_assignment_strategy"]
    assert cooperative.name == "cooperative-sticky"
    assert RebalanceProtocol.COOPERATIVE in cooperative().supported_protocols()
    eager = consumer_configs(KafkaSettings(bootstrap="h:9", assignor="range"), "c")
    assert eager["partition_assignment_strategy"] == (RangePartitionAssignor,)
    with pytest.raises(StreamConfigError, match="kafka.assignor must be one of cooperative-sticky, range, roundrobin"):
        KafkaSettings(assignor="sticky")


def test_the_producer_lingers_until_the_flush_within_kafka_pythons_bound(monkeypatch):
    # Every delivery flushes, so a long linger only keeps a delivery in one request; kafka-python
    # refuses a linger over delivery_timeout_ms - request_timeout_ms.
    from s2s.stream.kafka_clients import DELIVERY_LINGER_MS

    monkeypatch.delenv(SECURITY_ENV, raising=False)
    producer = producer_configs(KafkaSettings(bootstrap="h:9"), "c")
    assert producer["linger_ms"] == DELIVERY_LINGER_MS
    tight = KafkaSettings(bootstrap="h:9", request_timeout_ms=30_000, delivery_timeout_ms=30_040)
    assert producer_configs(tight, "c")["linger_ms"] == 40
