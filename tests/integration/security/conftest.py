"""A broker with TLS listeners (kafka.sh KAFKA_SSL_PORT / KAFKA_MTLS_PORT), one per test session,
and a second CA of the test's own that the broker does not trust."""
from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from s2s.localhost import free_ports
from tests.conftest import REPO_DIR, KafkaBroker, _start_on_free_ports, stop_test_broker


@dataclasses.dataclass(frozen=True)
class TlsBroker:
    broker: KafkaBroker  # PLAINTEXT bootstrap, kafka.sh environment
    ssl_port: int        # TLS, no client certificate
    mtls_port: int       # TLS, a client certificate signed by the broker's CA required
    tls_dir: Path        # ca.pem, broker.pem, client.pem, client.key (kafka.sh made them)

    @property
    def ssl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.ssl_port}"

    @property
    def mtls_bootstrap(self) -> str:
        return f"127.0.0.1:{self.mtls_port}"

    @property
    def ca(self) -> str:
        return str(self.tls_dir / "ca.pem")


def start_tls_broker(name: str = "test-tls") -> TlsBroker:
    """A broker of the caller only: PLAINTEXT, SSL and MTLS listeners on fresh ports of 127.0.0.1,
    data and certificates under .kafka/<name>-<port>/."""

    def start() -> tuple[TlsBroker, subprocess.CompletedProcess]:
        port, controller_port, ssl_port, mtls_port = free_ports(4)
        home = REPO_DIR / ".kafka" / f"{name}-{port}"
        env = dict(os.environ, KAFKA_PORT=str(port), KAFKA_CONTROLLER_PORT=str(controller_port),
                   KAFKA_SSL_PORT=str(ssl_port), KAFKA_MTLS_PORT=str(mtls_port), KAFKA_HOME_DIR=str(home))
        env.pop("KAFKA_TLS_DIR", None)
        broker = KafkaBroker(f"127.0.0.1:{port}", env)
        return TlsBroker(broker, ssl_port, mtls_port, home / "tls"), broker.kafka_sh("start", timeout=900)

    return _start_on_free_ports(start, lambda tls: stop_test_broker(tls.broker), "TLS broker")


@pytest.fixture(scope="session")
def tls_broker() -> Iterator[TlsBroker]:
    from s2s.stream.kafka_admin import BOOTSTRAP_ENV

    if os.environ.get(BOOTSTRAP_ENV, "").strip():
        pytest.skip("an external cluster is in use; the TLS tests start kafka.sh's own TLS listeners")
    tls = start_tls_broker()
    try:
        yield tls
    finally:
        stop_test_broker(tls.broker)


@dataclasses.dataclass(frozen=True)
class ForeignCa:
    """A CA the broker does not know, and a client certificate it signed."""

    ca: Path
    client_cert: Path
    client_key: Path


@pytest.fixture(scope="session")
def foreign_ca(tmp_path_factory) -> ForeignCa:
    d = tmp_path_factory.mktemp("foreign-ca")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *ec, "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"), "-days", "2",
            "-subj", "/CN=not the broker's CA", "-addext", "basicConstraints=critical,CA:TRUE")
    openssl("req", "-new", *ec, "-keyout", str(d / "client.key"), "-out", str(d / "client.csr"), "-subj", "/CN=rogue")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    openssl("x509", "-req", "-in", str(d / "client.csr"), "-CA", str(d / "ca.pem"), "-CAkey", str(d / "ca.key"),
            "-set_serial", "7", "-days", "2", "-extfile", str(d / "client.ext"), "-out", str(d / "client.pem"))
    return ForeignCa(d / "ca.pem", d / "client.pem", d / "client.key")
