"""Kafka TLS/SASL settings: validation, secrets read from env/files and never shown.

    .venv/bin/pytest tests/unit/stream/test_security.py -v
"""
from __future__ import annotations

import json
import logging
import socket
import threading

import pytest

from s2s.cli import main
from s2s.stream.config import KafkaSettings, StreamConfigError, stream_config_from_dict
from s2s.stream.kafka_auth import check_authentication
from s2s.stream.kafka_clients import consumer_configs, producer_configs, resolve_security
from s2s.stream.security import (PLAINTEXT, SECURITY_ENV, KafkaSecurity, KafkaSecurityError, Secret,
                                 load_security_file, security_from_dict)

PASSWORD = "hunter2-Zq9-not-in-any-output"
SASL = {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "s2s",
        "sasl_plain_password_env": "S2S_TEST_KAFKA_PASSWORD", "ssl_cafile": "/etc/kafka/ca.pem"}


def _stream_args(security: dict) -> dict:
    route = {"name": "r", "input_topic": "in", "output_topic": "out", "model": "m"}
    return {"routes": [route], "kafka": {"security": security}}


def test_plaintext_is_the_default_and_adds_only_the_protocol():
    assert KafkaSettings().security is None
    assert security_from_dict(None) == PLAINTEXT
    assert PLAINTEXT.client_configs() == {"security_protocol": "PLAINTEXT"}


def test_sasl_ssl_configs_use_kafka_python_names(monkeypatch):
    monkeypatch.setenv("S2S_TEST_KAFKA_PASSWORD", PASSWORD)
    configs = security_from_dict(SASL).client_configs()
    assert configs == {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                       "sasl_plain_username": "s2s", "sasl_plain_password": PASSWORD,
                       "ssl_cafile": "/etc/kafka/ca.pem", "ssl_certfile": None, "ssl_keyfile": None,
                       "ssl_check_hostname": True}
    assert isinstance(configs["sasl_plain_password"], Secret)


@pytest.mark.parametrize("security, message", [
    ({"security_protocol": "SASL"}, "security_protocol must be one of"),
    ({"security_protocol": "SASL_PLAINTEXT", "sasl_plain_username": "u", "sasl_plain_password_env": "P"},
     "sasl_mechanism must be one of"),
    ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "GSSAPI", "sasl_plain_username": "u",
      "sasl_plain_password_env": "P"}, "sasl_mechanism must be one of"),
    ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_plain_password_env": "P"},
     "sasl_plain_username is required"),
    ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_plain_username": "u"},
     "sasl_plain_password_env or sasl_plain_password_file is required"),
    ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_plain_username": "u",
      "sasl_plain_password_env": "P", "sasl_plain_password_file": "/p"}, "not both"),
    ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_plain_username": "u",
      "sasl_plain_password_env": "my password"}, "must be an environment variable name"),
    ({"sasl_plain_username": "u"}, "sasl_plain_username has no effect with security_protocol PLAINTEXT"),
    ({"security_protocol": "SSL", "sasl_mechanism": "PLAIN"}, "sasl_mechanism has no effect"),
    ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_plain_username": "u",
      "sasl_plain_password_env": "P", "ssl_cafile": "/ca.pem"}, "ssl_cafile has no effect"),
    ({"security_protocol": "SSL", "ssl_keyfile": "/k.pem"}, "ssl_keyfile needs ssl_certfile"),
    ({"security_protocol": "SSL", "ssl_password_env": "P"}, "set ssl_certfile too"),
    ({"security_protocol": "SSL", "ssl_check_hostname": "no"}, "ssl_check_hostname must be a boolean"),
    ({"security_protocol": "SSL", "ssl_cafile": 5}, "ssl_cafile must be a string"),
])
def test_invalid_settings_are_errors_naming_the_key(security, message):
    with pytest.raises(KafkaSecurityError, match=message):
        security_from_dict(security)
    with pytest.raises(StreamConfigError, match=message):  # the same through the stream config
        stream_config_from_dict(_stream_args(security))


def test_an_unknown_key_is_named():
    with pytest.raises(StreamConfigError, match="unknown config key 'kafka.security.sasl_plain_password'"):
        stream_config_from_dict(_stream_args({**SASL, "sasl_plain_password": PASSWORD}))


def test_secret_from_a_file_loses_its_trailing_newline(tmp_path):
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    security = security_from_dict({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
                                   "sasl_plain_username": "u", "sasl_plain_password_file": str(secret)})
    assert security.client_configs()["sasl_plain_password"] == PASSWORD


def test_a_missing_secret_is_a_clear_error_when_clients_are_built(tmp_path, monkeypatch):
    monkeypatch.delenv("S2S_TEST_KAFKA_PASSWORD", raising=False)
    security = security_from_dict(SASL)  # validation does not need the secret: replicas read it
    with pytest.raises(KafkaSecurityError, match="environment variable S2S_TEST_KAFKA_PASSWORD is not set"):
        security.client_configs()
    from_file = KafkaSecurity("SASL_PLAINTEXT", "PLAIN", "u", sasl_plain_password_file=str(tmp_path / "nope"))
    with pytest.raises(KafkaSecurityError, match=f"sasl_plain_password_file: cannot read {tmp_path / 'nope'}"):
        from_file.validate().client_configs()
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(KafkaSecurityError, match="is empty"):
        KafkaSecurity("SASL_PLAINTEXT", "PLAIN", "u", sasl_plain_password_file=str(tmp_path / "empty")).client_configs()


def test_the_secret_never_shows_in_config_output_or_logged_client_configs(monkeypatch, caplog):
    monkeypatch.setenv("S2S_TEST_KAFKA_PASSWORD", PASSWORD)
    config = stream_config_from_dict(_stream_args(SASL))
    shown = [repr(config), str(config), json.dumps(config.to_dict()), repr(config.kafka.security)]
    consumer = consumer_configs(config.kafka, "c")
    producer = producer_configs(config.kafka, "p", transactional_id="t")
    assert consumer["sasl_plain_password"] == PASSWORD == producer["sasl_plain_password"]
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("kafka.admin.client").debug("configuration: %s", consumer)  # as kafka-python logs it
    shown += [repr(consumer), str(producer), caplog.text]
    assert all(PASSWORD not in text for text in shown)
    assert "'sasl_plain_password': '***'" in repr(consumer)


def test_settings_come_from_the_env_file_unless_configured(tmp_path, monkeypatch):
    path = tmp_path / "security.yaml"
    path.write_text("security_protocol: SASL_PLAINTEXT\nsasl_mechanism: PLAIN\nsasl_plain_username: u\n"
                    "sasl_plain_password_env: S2S_TEST_KAFKA_PASSWORD\n")
    monkeypatch.setenv(SECURITY_ENV, str(path))
    assert resolve_security(KafkaSettings()).sasl_plain_username == "u"
    assert resolve_security(KafkaSettings(security=PLAINTEXT)) == PLAINTEXT
    monkeypatch.delenv(SECURITY_ENV)
    assert resolve_security(KafkaSettings()) == PLAINTEXT


def test_bad_security_files(tmp_path):
    with pytest.raises(KafkaSecurityError, match="security config .*nope.yaml"):
        load_security_file(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("security_protocol: [")
    with pytest.raises(KafkaSecurityError, match="not valid YAML"):
        load_security_file(tmp_path / "bad.yaml")
    (tmp_path / "typo.yaml").write_text("security_protocl: SSL\n")
    with pytest.raises(KafkaSecurityError, match="typo.yaml: unknown config key 'security_protocl'"):
        load_security_file(tmp_path / "typo.yaml")


def test_cli_reports_a_bad_security_config_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("S2S_TEST_KAFKA_PASSWORD", raising=False)
    (tmp_path / "sasl.yaml").write_text(json.dumps(SASL))
    assert main(["produce", "--topic", "t", "--security-config", str(tmp_path / "missing.yaml")]) == 2
    assert main(["consume", "--topic", "t", "--security-config", str(tmp_path / "sasl.yaml")]) == 2
    assert main(["status", "--security-config", str(tmp_path / "missing.yaml")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("s2s: error: security config") and "missing.yaml" in lines[0]
    assert lines[1] == ("s2s: error: kafka.security.sasl_plain_password_env: "
                        "environment variable S2S_TEST_KAFKA_PASSWORD is not set or empty")
    assert lines[2] == lines[0]


def test_authentication_check_needs_sasl_and_leaves_unreachable_brokers_to_the_client():
    check_authentication("127.0.0.1:1", {"security_protocol": "PLAINTEXT"})  # nothing to check
    sasl = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_plain_username": "u",
            "sasl_plain_password": Secret(PASSWORD)}
    check_authentication("127.0.0.1:1", sasl, timeout_s=2)  # refused connection: the client retries
    with pytest.raises(KafkaSecurityError, match="is not host:port"):
        check_authentication("no-port", sasl)


def test_kafka_pythons_wire_dumps_never_show_a_secret_read_by_s2s(monkeypatch, caplog):
    monkeypatch.setenv("S2S_TEST_KAFKA_PASSWORD", PASSWORD)
    security_from_dict(SASL).client_configs()  # reading the secret registers it for redaction
    wire = logging.getLogger("kafka.protocol.parser")
    with caplog.at_level(logging.DEBUG, logger="kafka"):
        wire.debug("Sending request %d %s", 2, f"SaslAuthenticateRequest(auth_bytes=b's2s\\x00s2s\\x00{PASSWORD}')")
        wire.debug("Send: %r", bytearray(b"\x00\x00s2s\x00" + PASSWORD.encode()))
    assert len(caplog.records) == 2 and PASSWORD not in caplog.text
    assert "s2s\\x00***" in caplog.text


def test_a_failed_tls_handshake_is_reported_not_retried():
    """SASL_SSL against a server that does not speak TLS: one clear error, at once."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def answer_in_plain_text():
        conn, _ = server.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    thread = threading.Thread(target=answer_in_plain_text, daemon=True)
    thread.start()
    sasl_ssl = {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_plain_username": "u",
                "sasl_plain_password": Secret(PASSWORD), "ssl_check_hostname": False}
    try:
        with pytest.raises(KafkaSecurityError, match=f"TLS handshake with Kafka at 127.0.0.1:{port} failed"):
            check_authentication(f"127.0.0.1:{port}", sasl_ssl, timeout_s=5)
    finally:
        thread.join(timeout=5)
        server.close()


def test_settings_built_in_code_are_checked_too():
    with pytest.raises(KafkaSecurityError, match=r"^kafka.security.sasl_plain_username is required with SASL_SSL$"):
        KafkaSecurity("SASL_SSL", "PLAIN")
    assert KafkaSecurity("SSL", ssl_cafile="/ca.pem").client_configs()["ssl_cafile"] == "/ca.pem"
