"""TLS against a real broker: kafka.sh's SSL listener (server certificate only) and its MTLS one
(client certificate required), both with a CA kafka.sh made. The s2s ingress (poll loop, its
consumer and producer built from the s2s config) answers records over each; a wrong CA, a host
name the certificate does not hold and a refused client certificate each fail at once with one
clear line (library and CLI), as a wrong SASL password does.

    .venv/bin/pytest tests/integration/security/test_kafka_tls.py -v

The broker is this session's own (tests/integration/security/conftest.py: ports picked at run
time, data and certificates in .kafka/test-tls-<port>/, deleted at the end).
"""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

from s2s.stream import headers as hdr
from s2s.stream.config import stream_config_from_dict
from s2s.stream.console import produce_lines, read_records
from s2s.stream.delivery import AtLeastOnceDelivery
from s2s.stream.kafka_admin import create_topics, end_offsets
from s2s.stream.kafka_auth import KafkaTLSError
from s2s.stream.kafka_clients import check_credentials, consumer_configs, producer_configs
from s2s.stream.models import IdentityModel, answer_lists
from s2s.stream.poll_loop import PollLoop
from s2s.stream.security import KafkaSecurityError, security_from_dict
from tests.unit.stream.fakes import FakeObserver

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[3]
FAIL_FAST_S = 10  # kafka-python alone would retry a failed handshake until its bootstrap timeout
RECORDS = 30
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01".encode()


def ssl_security(tls, **options) -> dict:
    return {"security_protocol": "SSL", "ssl_cafile": tls.ca, **options}


def mtls_security(tls, **options) -> dict:
    return ssl_security(tls, ssl_certfile=str(tls.tls_dir / "client.pem"),
                        ssl_keyfile=str(tls.tls_dir / "client.key"), **options)


def kafka_settings(bootstrap: str, security: dict):
    """The ``kafka`` section of a stream config (the ingress's check and clients read it)."""
    return stream_config_from_dict({"kafka": {"bootstrap": bootstrap, "security": security},
                                    "routes": [{"name": "r", "input_topic": "i", "output_topic": "o",
                                                "model": "m"}]}).kafka


def run_stream(bootstrap: str, security: dict, topics: dict[str, str], expected: int) -> PollLoop:
    """The ingress's poll loop in this process (no Ray), an identity model behind it, until
    ``expected`` records were answered or dead-lettered; then it drains, commits and leaves."""
    config = stream_config_from_dict({
        "kafka": {"bootstrap": bootstrap, "group_id": f"tls-{uuid.uuid4().hex[:8]}", "security": security,
                  "dead_letter_topic": topics["dlq"], "auto_offset_reset": "earliest", "create_topics": False},
        "ingress": {"drain_timeout_s": 4},
        "routes": [{"name": "id", "input_topic": topics["in"], "output_topic": topics["out"], "model": "identity"}]})
    check_credentials(config.kafka)  # as the ingress replica does before its first poll
    model, pool = IdentityModel(), ThreadPoolExecutor(1)

    def submit(route, items, alone) -> Future:
        return pool.submit(lambda: answer_lists(model, [items])[0])

    delivery = AtLeastOnceDelivery(lambda: KafkaProducer(**producer_configs(config.kafka, "tls-test")),
                                   config.kafka.flush_timeout_s)
    loop = PollLoop(config, submit, lambda: KafkaConsumer(**consumer_configs(config.kafka, "tls-test")),
                    delivery, FakeObserver())
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while loop.stats.answered + loop.stats.dead_lettered < expected and time.monotonic() < deadline \
            and thread.is_alive():
        time.sleep(0.2)
    stop.set()
    thread.join(timeout=30)
    delivery.close()
    pool.shutdown()
    assert not thread.is_alive()
    return loop


@pytest.mark.parametrize("mutual", [False, True], ids=["ssl", "mutual-tls"])
def test_answers_flow_over_tls(tls_broker, mutual):
    bootstrap = tls_broker.mtls_bootstrap if mutual else tls_broker.ssl_bootstrap
    options = mtls_security(tls_broker) if mutual else ssl_security(tls_broker)
    security = security_from_dict(options)
    topics = {role: f"tls-{role}-{uuid.uuid4().hex[:8]}" for role in ("in", "out", "dlq")}
    create_topics(bootstrap, topics.values(), partitions=2, security=security)
    lines = [f"k{i}\ttext {i}" for i in range(RECORDS - 2)]
    assert produce_lines(bootstrap, topics["in"], lines, "\t", security=security) == RECORDS - 2
    producer = KafkaProducer(**security.client_configs(), bootstrap_servers=bootstrap, acks="all")
    producer.send(topics["in"], key=b"traced", value=b"a traced text", headers=[("traceparent", TRACEPARENT)])
    producer.send(topics["in"], key=b"bad", value=b"\xff not utf-8", headers=[("traceparent", TRACEPARENT)])
    producer.flush(timeout=30)
    producer.close()

    loop = run_stream(bootstrap, options, topics, RECORDS)

    assert (loop.stats.answered, loop.stats.dead_lettered, loop.stats.rewinds) == (RECORDS - 1, 1, 0)
    answers = list(read_records(bootstrap, topics["out"], RECORDS - 1, 30, from_beginning=True, security=security))
    dead = list(read_records(bootstrap, topics["dlq"], 1, 30, from_beginning=True, security=security))
    assert sorted((a.key, a.value) for a in answers) == sorted(
        [(f"k{i}".encode(), f"text {i}".encode()) for i in range(RECORDS - 2)] + [(b"traced", b"a traced text")])
    assert [(d.key, hdr.as_dict(d.headers)[hdr.ERROR_REASON]) for d in dead] == [(b"bad", "not_utf8")]
    assert sum(end_offsets(bootstrap, topics["out"], security=security).values()) == RECORDS - 1
    # The trace context crossed the broker both ways: same trace id, a span of s2s's own.
    for out in [a for a in answers if a.key == b"traced"] + dead:
        traceparent = hdr.as_dict(out.headers)["traceparent"]
        assert traceparent.split("-")[1] == TRACE_ID and traceparent.encode() != TRACEPARENT


def _fails_fast(attempt, *needles: str) -> str:
    started = time.monotonic()
    with pytest.raises(KafkaTLSError) as failed:
        attempt()
    assert time.monotonic() - started < FAIL_FAST_S
    message = str(failed.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    return message


def test_a_wrong_ca_fails_at_once_with_a_clear_error(tls_broker, foreign_ca):
    security = security_from_dict(ssl_security(tls_broker, ssl_cafile=str(foreign_ca.ca)))
    for attempt in (lambda: create_topics(tls_broker.ssl_bootstrap, ["never"], security=security),
                    lambda: produce_lines(tls_broker.ssl_bootstrap, "never", ["x"], security=security)):
        message = _fails_fast(attempt, f"TLS handshake with Kafka at {tls_broker.ssl_bootstrap} failed: unknown CA",
                              str(foreign_ca.ca))
    print(message)


def test_a_host_name_the_certificate_does_not_hold_fails_at_once(tls_broker):
    """127.1 reaches 127.0.0.1, but the certificate names only 127.0.0.1 and localhost."""
    other_name = f"127.1:{tls_broker.ssl_port}"
    checked = security_from_dict(ssl_security(tls_broker))
    print(_fails_fast(lambda: produce_lines(other_name, "never", ["x"], security=checked),
                      f"TLS handshake with Kafka at {other_name} failed: hostname mismatch", "'127.1'"))
    print(_fails_fast(lambda: check_credentials(kafka_settings(other_name, ssl_security(tls_broker))),
                      "hostname mismatch"))
    # ssl_check_hostname false: the CA must still match, the name is not checked
    check_credentials(kafka_settings(other_name, ssl_security(tls_broker, ssl_check_hostname=False)))
    for name in ("localhost", "127.0.0.1"):
        check_credentials(kafka_settings(f"{name}:{tls_broker.ssl_port}", ssl_security(tls_broker)))


def test_mutual_tls_refuses_a_missing_or_foreign_client_certificate(tls_broker, foreign_ca):
    where = f"TLS handshake with Kafka at {tls_broker.mtls_bootstrap} failed: the broker refused our client certificate"
    none = security_from_dict(ssl_security(tls_broker))
    print(_fails_fast(lambda: produce_lines(tls_broker.mtls_bootstrap, "never", ["x"], security=none), where,
                      "set ssl_certfile"))
    rogue = security_from_dict(ssl_security(tls_broker, ssl_certfile=str(foreign_ca.client_cert),
                                            ssl_keyfile=str(foreign_ca.client_key)))
    print(_fails_fast(lambda: produce_lines(tls_broker.mtls_bootstrap, "never", ["x"], security=rogue), where,
                      str(foreign_ca.client_cert)))
    # The SSL listener does not ask for one: the same client certificate is simply not used.
    produce_lines(tls_broker.ssl_bootstrap, f"tls-{uuid.uuid4().hex[:8]}", ["x"], security=rogue)


def test_a_plaintext_port_and_a_missing_ca_file_are_named(tls_broker, tmp_path):
    security = security_from_dict(ssl_security(tls_broker))
    print(_fails_fast(lambda: produce_lines(tls_broker.broker.bootstrap, "never", ["x"], security=security),
                      "the listener does not speak TLS"))
    missing = security_from_dict(ssl_security(tls_broker, ssl_cafile=str(tmp_path / "no-ca.pem")))
    with pytest.raises(KafkaSecurityError, match="cannot load the TLS files .*no-ca.pem.*No such file"):
        produce_lines(tls_broker.ssl_bootstrap, "never", ["x"], security=missing)


def test_cli_reports_a_wrong_ca_in_one_line(tls_broker, foreign_ca, tmp_path):
    config = tmp_path / "tls.yaml"
    config.write_text(f"security_protocol: SSL\nssl_cafile: {foreign_ca.ca}\n")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "s2s.cli", "produce", "--topic", "never", "--bootstrap",
                             tls_broker.ssl_bootstrap, "--security-config", str(config)],
                            input="hello\n", capture_output=True, text=True, timeout=120, cwd=REPO,
                            env=dict(os.environ))
    assert time.monotonic() - started < FAIL_FAST_S + 10  # + the interpreter's start
    assert result.returncode == 2 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    print(last)
    assert last.startswith(f"s2s: error: TLS handshake with Kafka at {tls_broker.ssl_bootstrap} failed: unknown CA")


def test_kafka_shs_certificates_cover_loopback_and_keep_their_keys_private(tls_broker):
    d = tls_broker.tls_dir
    text = subprocess.run(["openssl", "x509", "-in", str(d / "broker.pem"), "-noout", "-ext", "subjectAltName"],
                          check=True, capture_output=True, text=True).stdout
    assert "DNS:localhost" in text and "IP Address:127.0.0.1" in text
    for private in ("ca.key", "broker.key", "client.key", "broker.p12", "store.pass"):
        assert stat.S_IMODE((d / private).stat().st_mode) == 0o600, private
    assert (d / "store.pass").read_text().strip() not in (d.parent / "server.log").read_text(errors="replace")
