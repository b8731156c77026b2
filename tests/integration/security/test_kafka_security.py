"""SASL/PLAIN against a real broker: kafka.sh's SASL_PLAINTEXT listener, s2s clients built from
the s2s config, a wrong password refused at once with a clear error (library and CLI).

    .venv/bin/pytest tests/integration/security/test_kafka_security.py -v

The broker is this module's own (ports picked at run time, data in .kafka/test-sasl-<port>/,
deleted at the end); it is skipped where S2S_KAFKA_BOOTSTRAP names an existing cluster, like
the other tests that drive kafka.sh.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import UserScramCredentialUpsertion

from s2s.localhost import free_ports
from s2s.stream.config import KafkaSettings
from s2s.stream.console import produce_lines, read_records
from s2s.stream.kafka_admin import BOOTSTRAP_ENV, create_topics, end_offsets
from s2s.stream.kafka_auth import KafkaAuthenticationError
from s2s.stream.kafka_clients import check_credentials, consumer_configs, producer_configs
from s2s.stream.security import KafkaSecurity
from tests.conftest import KafkaBroker, start_test_broker, stop_test_broker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300),
              pytest.mark.skipif(bool(os.environ.get(BOOTSTRAP_ENV)), reason="an external cluster is in use")]

REPO = Path(__file__).resolve().parents[3]
USER = "s2s-test"
SCRAM_USER = "s2s-scram"
# kafka.sh writes sasl.enabled.mechanisms=PLAIN; these later lines win and add SCRAM-SHA-256.
SCRAM_CONFIG = ("sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256\n"
                "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config="
                "org.apache.kafka.common.security.scram.ScramLoginModule required;")
PASSWORD_ENV = "S2S_TEST_SASL_PASSWORD"
FAIL_FAST_S = 30  # a refused password must be reported well before kafka-python's bootstrap timeout


@dataclasses.dataclass(frozen=True)
class SaslBroker:
    bootstrap: str      # the SASL_PLAINTEXT listener
    password: str       # of USER (PLAIN) and SCRAM_USER (SCRAM-SHA-256)
    home: Path


@pytest.fixture(scope="module")
def sasl_broker() -> Iterator[SaslBroker]:
    password = secrets.token_urlsafe(16)
    broker = start_test_broker("test-sasl", {"KAFKA_SASL_USERS": f"{USER}:{password}",
                                             "KAFKA_EXTRA_CONFIG": SCRAM_CONFIG})
    try:
        _add_scram_user(broker.bootstrap, password)  # the PLAINTEXT listener
        env = broker.script_env
        yield SaslBroker(f"127.0.0.1:{env['KAFKA_SASL_PORT']}", password, Path(env["KAFKA_HOME_DIR"]))
    finally:
        stop_test_broker(broker)


def _add_scram_user(plaintext_bootstrap: str, password: str) -> None:
    """SCRAM credentials live in the cluster metadata: set them over the broker's PLAINTEXT listener."""
    admin = KafkaAdminClient(bootstrap_servers=plaintext_bootstrap)
    try:
        errors = admin.alter_user_scram_credentials([UserScramCredentialUpsertion(SCRAM_USER, "SCRAM-SHA-256",
                                                                                  password)])
    finally:
        admin.close()
    assert errors == {SCRAM_USER: None}


def _security(mechanism: str = "PLAIN", user: str = USER) -> KafkaSecurity:
    return KafkaSecurity("SASL_PLAINTEXT", mechanism, user, sasl_plain_password_env=PASSWORD_ENV).validate()


def _topic() -> str:
    return f"sasl-{uuid.uuid4().hex[:8]}"


def test_right_password_round_trips_through_s2s_clients(sasl_broker, monkeypatch, caplog):
    monkeypatch.setenv(PASSWORD_ENV, sasl_broker.password)
    security, topic = _security(), _topic()
    with caplog.at_level(logging.DEBUG, logger="kafka"):  # kafka-python logs admin configs at DEBUG
        create_topics(sasl_broker.bootstrap, [topic], security=security)
        assert produce_lines(sasl_broker.bootstrap, topic, ["k1\thello", "k2\tworld"], "\t", security=security) == 2
        records = list(read_records(sasl_broker.bootstrap, topic, 2, 60, from_beginning=True, security=security))
        assert end_offsets(sasl_broker.bootstrap, topic, security=security) == {0: 2}
    assert [(r.key, r.value) for r in records] == [(b"k1", b"hello"), (b"k2", b"world")]
    assert "'sasl_plain_password': '***'" in caplog.text and sasl_broker.password not in caplog.text


def test_the_streaming_apps_consumer_and_producer_authenticate(sasl_broker, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, sasl_broker.password)
    topic = _topic()
    settings = KafkaSettings(bootstrap=sasl_broker.bootstrap, group_id=f"g-{topic}", security=_security())
    check_credentials(settings)
    create_topics(settings.bootstrap, [topic], security=settings.security)
    producer = KafkaProducer(**producer_configs(settings, "s2s-test-producer"))
    try:
        producer.send(topic, key=b"k", value=b"through the ingress configs").get(timeout=30)
    finally:
        producer.close()
    consumer = KafkaConsumer(topic, **consumer_configs(settings, "s2s-test-consumer"))
    try:
        records, deadline = [], time.monotonic() + 60
        while not records and time.monotonic() < deadline:
            records = [r for batch in consumer.poll(timeout_ms=500).values() for r in batch]
    finally:
        consumer.close()
    assert [(r.key, r.value) for r in records] == [(b"k", b"through the ingress configs")]


def test_wrong_password_fails_fast_with_a_clear_error(sasl_broker, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "not-" + sasl_broker.password)
    settings = KafkaSettings(bootstrap=sasl_broker.bootstrap, security=_security())
    for attempt in (lambda: check_credentials(settings),
                    lambda: create_topics(settings.bootstrap, [_topic()], security=settings.security),
                    lambda: produce_lines(settings.bootstrap, _topic(), ["x"], security=settings.security)):
        started = time.monotonic()
        with pytest.raises(KafkaAuthenticationError) as refused:
            attempt()
        assert time.monotonic() - started < FAIL_FAST_S
        assert f"refused the credentials of user '{USER}' (SASL PLAIN)" in str(refused.value)
        assert "Authentication failed" in str(refused.value)
        assert sasl_broker.password not in str(refused.value)


def test_cli_reports_a_wrong_password_in_one_line(sasl_broker, tmp_path):
    config = tmp_path / "sasl.yaml"
    config.write_text(f"security_protocol: SASL_PLAINTEXT\nsasl_mechanism: PLAIN\nsasl_plain_username: {USER}\n"
                      f"sasl_plain_password_env: {PASSWORD_ENV}\n")
    env = dict(os.environ, **{PASSWORD_ENV: "wrong"})
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "s2s.cli", "produce", "--topic", _topic(), "--bootstrap",
                             sasl_broker.bootstrap, "--security-config", str(config)],
                            input="hello\n", capture_output=True, text=True, env=env, timeout=120, cwd=REPO)
    assert time.monotonic() - started < FAIL_FAST_S
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"s2s: error: Kafka at {sasl_broker.bootstrap} refused the credentials of user '{USER}'")


def test_broker_keeps_passwords_out_of_its_log_and_config_readable_by_owner_only(sasl_broker):
    assert sasl_broker.password not in (sasl_broker.home / "server.log").read_text(errors="replace")
    assert (sasl_broker.home / "server.properties").stat().st_mode & 0o077 == 0


def test_kafka_sh_refuses_a_password_that_would_break_the_jaas_line(tmp_path):
    port, controller_port, sasl_port = free_ports(3)
    env = dict(os.environ, KAFKA_PORT=str(port), KAFKA_CONTROLLER_PORT=str(controller_port),
               KAFKA_SASL_PORT=str(sasl_port), KAFKA_SASL_USERS='eve:x" user_admin="y', KAFKA_HOME_DIR=str(tmp_path))
    result = KafkaBroker(f"127.0.0.1:{port}", env).kafka_sh("start")
    assert result.returncode != 0
    assert "the password of eve must be non-empty, without" in result.stderr
    assert not (tmp_path / "kafka.pid").exists()


def test_scram_sha_256_right_and_wrong_password(sasl_broker, monkeypatch):
    settings = KafkaSettings(bootstrap=sasl_broker.bootstrap, security=_security("SCRAM-SHA-256", SCRAM_USER))
    monkeypatch.setenv(PASSWORD_ENV, sasl_broker.password)
    deadline = time.monotonic() + 30
    while True:  # the credential reaches the broker through the metadata log, shortly after it is set
        try:
            check_credentials(settings)
            break
        except KafkaAuthenticationError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    topic = _topic()
    create_topics(settings.bootstrap, [topic], security=settings.security)
    assert produce_lines(settings.bootstrap, topic, ["scram"], security=settings.security) == 1
    records = list(read_records(settings.bootstrap, topic, 1, 60, from_beginning=True, security=settings.security))
    assert [r.value for r in records] == [b"scram"]

    monkeypatch.setenv(PASSWORD_ENV, "not-" + sasl_broker.password)
    started = time.monotonic()
    with pytest.raises(KafkaAuthenticationError, match=f"refused the credentials of user '{SCRAM_USER}' "
                                                        r"\(SASL SCRAM-SHA-256\)"):
        check_credentials(settings)
    assert time.monotonic() - started < FAIL_FAST_S
