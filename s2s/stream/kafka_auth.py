"""Fail fast, and say why, when a Kafka broker refuses our SASL credentials.

kafka-python 3.0.12 retries a refused bootstrap until ``bootstrap_timeout_ms`` and then
reports only "Unable to bootstrap": its transport drops the broker's last response when the
broker closes the connection right behind it (as it does after a failed authentication), so
the SaslAuthenticationFailedError mostly reaches it as "socket disconnected". Before building
clients, s2s therefore runs the SASL exchange itself once, on a plain blocking socket, with
kafka-python's own protocol encoder and SASL mechanisms: one round trip tells a wrong
password from a good one.
"""
from __future__ import annotations

import socket
import ssl
import time
from typing import Any

import kafka.errors as errors
from kafka.net.sasl import get_sasl_mechanism
from kafka.net.transport import KafkaSSLTransport
from kafka.protocol.parser import KafkaProtocol
from kafka.protocol.sasl import SaslAuthenticateRequest, SaslHandshakeRequest

from .security import KafkaSecurityError

CHECK_TIMEOUT_S = 10.0


class KafkaAuthenticationError(KafkaSecurityError):
    """The broker refused the configured SASL mechanism or credentials."""


def check_authentication(bootstrap: str, configs: dict[str, Any], timeout_s: float = CHECK_TIMEOUT_S) -> None:
    """Raise KafkaAuthenticationError if the first reachable bootstrap broker refuses
    ``configs``' SASL credentials (kafka-python keyword arguments).

    Does nothing without SASL. A broker that cannot be reached is left to the client, which
    retries it as usual."""
    if not configs.get("sasl_mechanism"):
        return
    deadline = time.monotonic() + timeout_s
    for address in bootstrap.split(","):
        host, port = _host_port(address.strip())
        try:
            _authenticate(host, port, configs, deadline)
            return
        except ssl.SSLError as err:  # e.g. an unknown CA: as final as a wrong password
            raise KafkaAuthenticationError(f"TLS handshake with Kafka at {host}:{port} failed: "
                                           f"{err.reason or err}") from None
        except (OSError, errors.KafkaConnectionError):
            continue  # not reachable (yet): the next address, or the client's own retries


def _authenticate(host: str, port: int, configs: dict[str, Any], deadline: float) -> None:
    timeout = max(0.1, deadline - time.monotonic())
    tls = configs["security_protocol"] == "SASL_SSL"
    with socket.create_connection((host, port), timeout=timeout) as raw, \
            (_wrap_tls(raw, host, configs) if tls else raw) as sock:
        parser, where = KafkaProtocol(client_id="s2s-auth-check"), f"Kafka at {host}:{port}"
        _handshake(sock, parser, configs["sasl_mechanism"], where)
        _exchange(sock, parser, host, configs, where)


def _handshake(sock: socket.socket, parser: KafkaProtocol, mechanism: str, where: str) -> None:
    """SaslHandshake: does the listener enable our mechanism?"""
    response = _call(sock, parser, SaslHandshakeRequest(mechanism=mechanism, version=1))
    if response.error_code:
        offered = ", ".join(response.mechanisms) or "none"
        raise KafkaAuthenticationError(f"{where} does not accept SASL mechanism {mechanism} (it offers {offered}): "
                                       f"{errors.for_code(response.error_code).__name__}")


def _exchange(sock: socket.socket, parser: KafkaProtocol, host: str, configs: dict[str, Any], where: str) -> None:
    """SaslAuthenticate rounds driven by kafka-python's own mechanism (one for PLAIN, two for SCRAM)."""
    name = configs["sasl_mechanism"]
    mechanism = get_sasl_mechanism(name)(host=host, **configs)
    while not mechanism.is_done():
        response = _call(sock, parser, SaslAuthenticateRequest(auth_bytes=mechanism.auth_bytes(), version=1))
        if response.error_code:
            reason = response.error_message or errors.for_code(response.error_code).__name__
            raise KafkaAuthenticationError(f"{where} refused the credentials of user "
                                           f"{configs['sasl_plain_username']!r} (SASL {name}): {reason}")
        mechanism.receive(response.auth_bytes)
    if not mechanism.is_authenticated():
        raise KafkaAuthenticationError(f"{where}: SASL {name} authentication did not complete")


def _call(sock: socket.socket, parser: KafkaProtocol, request) -> Any:
    """Send one request, block for its response (the socket's timeout bounds each read)."""
    parser.send_request(request)
    sock.sendall(parser.send_bytes())
    while True:
        data = sock.recv(65536)
        if not data:
            raise errors.KafkaConnectionError("the broker closed the connection")
        responses = parser.receive_bytes(data)
        if responses:
            return responses[0][1]


def _wrap_tls(sock: socket.socket, host: str, configs: dict[str, Any]) -> socket.socket:
    """TLS exactly as kafka-python's own transport sets it up (CA, client cert, hostname check)."""
    ssl_config = {**KafkaSSLTransport.DEFAULT_CONFIG,
                  **{key: value for key, value in configs.items() if key in KafkaSSLTransport.DEFAULT_CONFIG}}
    context = KafkaSSLTransport._build_ssl_context(ssl_config)  # noqa: SLF001 - the client's own TLS setup
    return context.wrap_socket(sock, server_hostname=host)


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise KafkaSecurityError(f"bootstrap address {address!r} is not host:port")
    return host.strip("[]"), int(port)
