"""Fail fast, and say why, when a Kafka broker refuses our TLS handshake or SASL credentials.

kafka-python 3.0.12 retries a refused bootstrap until ``bootstrap_timeout_ms`` and then
reports only "Unable to bootstrap": its transport drops the broker's last response when the
broker closes the connection right behind it (as it does after a failed authentication), so
the SaslAuthenticationFailedError mostly reaches it as "socket disconnected"; a failed TLS
handshake (unknown CA, hostname mismatch, client certificate refused) it logs and retries the
same way. Before building clients, s2s therefore connects once itself, on a plain blocking
socket, with kafka-python's own TLS setup, protocol encoder and SASL mechanisms:

    SSL              TLS handshake, then one ApiVersions round trip (with TLS 1.3 a broker
                     that refuses our client certificate says so only after the handshake)
    SASL_PLAINTEXT   the SASL exchange
    SASL_SSL         TLS handshake, then the SASL exchange

One round trip tells a wrong CA, host name, client certificate or password from a good one,
and the error names the broker and the cause in one line.
"""
from __future__ import annotations

import socket
import ssl
import time
from typing import Any

import kafka.errors as errors
from kafka.net.sasl import get_sasl_mechanism
from kafka.net.transport import KafkaSSLTransport
from kafka.protocol.metadata import ApiVersionsRequest
from kafka.protocol.parser import KafkaProtocol
from kafka.protocol.sasl import SaslAuthenticateRequest, SaslHandshakeRequest

from .security import KafkaSecurityError

CHECK_TIMEOUT_S = 10.0
TLS_PROTOCOLS = ("SSL", "SASL_SSL")
# OpenSSL's verify codes (X509_V_ERR_*) for a chain that does not end in a CA we trust: unable to
# get the issuer's certificate (2, 20), self-signed (18, 19), unable to verify the first one (21)
_UNKNOWN_CA = {2, 18, 19, 20, 21}
_NAME_MISMATCH = {62, 64}  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
# TLS alerts a broker sends when it refuses (or misses) our client certificate
_CLIENT_CERT_REFUSED = ("SSLV3_ALERT_BAD_CERTIFICATE", "TLSV13_ALERT_CERTIFICATE_REQUIRED", "TLSV1_ALERT_UNKNOWN_CA",
                        "SSLV3_ALERT_CERTIFICATE_UNKNOWN", "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
                        "SSLV3_ALERT_CERTIFICATE_EXPIRED", "TLSV1_ALERT_ACCESS_DENIED", "TLSV1_ALERT_DECRYPT_ERROR")


class KafkaAuthenticationError(KafkaSecurityError):
    """The broker refused the configured SASL mechanism or credentials, or our TLS handshake."""


class KafkaTLSError(KafkaAuthenticationError):
    """The TLS handshake with a broker failed: unknown CA, host name mismatch, client
    certificate refused, or a listener that does not speak TLS."""


def check_authentication(bootstrap: str, configs: dict[str, Any], timeout_s: float = CHECK_TIMEOUT_S) -> None:
    """Raise KafkaTLSError / KafkaAuthenticationError if the first reachable bootstrap broker
    refuses ``configs``' TLS settings or SASL credentials (kafka-python keyword arguments);
    KafkaSecurityError if the TLS files cannot be loaded here.

    Does nothing with PLAINTEXT. A broker that cannot be reached is left to the client, which
    retries it as usual."""
    tls = configs.get("security_protocol") in TLS_PROTOCOLS
    if not (tls or configs.get("sasl_mechanism")):
        return
    context = _tls_context(configs) if tls else None
    deadline = time.monotonic() + timeout_s
    for address in bootstrap.split(","):
        host, port = _host_port(address.strip())
        try:
            _authenticate(host, port, configs, context, deadline)
            return
        except ssl.SSLError as err:  # e.g. an unknown CA: as final as a wrong password
            raise KafkaTLSError(f"TLS handshake with Kafka at {host}:{port} failed: {_tls_cause(err, host, configs)}"
                                ) from None
        except (OSError, errors.KafkaConnectionError):
            continue  # not reachable (yet): the next address, or the client's own retries


def _authenticate(host: str, port: int, configs: dict[str, Any], context: ssl.SSLContext | None,
                  deadline: float) -> None:
    timeout = max(0.1, deadline - time.monotonic())
    with socket.create_connection((host, port), timeout=timeout) as raw, \
            (context.wrap_socket(raw, server_hostname=host.rstrip(".")) if context else raw) as sock:
        # The TLS handshake is done (a failed one raised above, to check_authentication).
        parser, where = KafkaProtocol(client_id="s2s-auth-check"), f"Kafka at {host}:{port}"
        try:
            if not configs.get("sasl_mechanism"):
                _call(sock, parser, ApiVersionsRequest(version=0))  # the broker's word on our client certificate
                return
            _handshake(sock, parser, configs["sasl_mechanism"], where)
            _exchange(sock, parser, host, configs, where)
        except (ssl.SSLError, errors.KafkaConnectionError) as err:
            if context is None or (isinstance(err, errors.KafkaConnectionError) and configs.get("sasl_mechanism")):
                raise  # (a SASL broker closes the connection for other reasons too)
            # TLS 1.3: a broker that refuses our client certificate says so after the handshake
            raise KafkaTLSError(f"TLS handshake with Kafka at {host}:{port} failed: "
                                f"{_client_cert_refused(err, configs)}") from None


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


def _tls_context(configs: dict[str, Any]) -> ssl.SSLContext:
    """TLS exactly as kafka-python's own transport sets it up (CA, client cert, hostname check).
    A file that cannot be loaded is our own configuration's fault: said here, before any connection."""
    ssl_config = {**KafkaSSLTransport.DEFAULT_CONFIG,
                  **{key: value for key, value in configs.items() if key in KafkaSSLTransport.DEFAULT_CONFIG}}
    try:
        return KafkaSSLTransport._build_ssl_context(ssl_config)  # noqa: SLF001 - the client's own TLS setup
    except (OSError, ValueError) as err:  # ssl.SSLError is an OSError
        files = ", ".join(f"{key} {ssl_config[key]}" for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile")
                          if ssl_config[key]) or "the system's CA certificates"
        cause = getattr(err, "reason", None) or getattr(err, "strerror", None) or str(err)
        hint = " (wrong ssl_password, or a key that does not match the certificate?)" \
            if isinstance(err, ssl.SSLError) and ssl_config["ssl_certfile"] else ""
        raise KafkaSecurityError(f"kafka.security: cannot load the TLS files ({files}): {cause}{hint}") from None


def _tls_cause(err: ssl.SSLError, host: str, configs: dict[str, Any]) -> str:
    """What went wrong in a failed TLS handshake, in words, then OpenSSL's own."""
    detail = getattr(err, "verify_message", None) or err.reason or str(err)
    if isinstance(err, ssl.SSLCertVerificationError):
        code = err.verify_code
        if code in _UNKNOWN_CA:
            trusted = configs.get("ssl_cafile") or "the system's CA certificates"
            return f"unknown CA: the broker's certificate is not signed by a CA in {trusted} ({detail})"
        if code in _NAME_MISMATCH:
            return (f"hostname mismatch: the broker's certificate is not valid for {host!r} ({detail}); "
                    "connect by a name the certificate holds")
        return f"the broker's certificate was refused ({detail})"
    if err.reason in _CLIENT_CERT_REFUSED:
        return _client_cert_refused(err, configs)
    if err.reason in ("WRONG_VERSION_NUMBER", "UNEXPECTED_EOF_WHILE_READING", "RECORD_LAYER_FAILURE") \
            or isinstance(err, ssl.SSLEOFError):
        return f"the listener does not speak TLS: is it a PLAINTEXT or SASL_PLAINTEXT port? ({detail})"
    return detail


def _client_cert_refused(err: Exception, configs: dict[str, Any]) -> str:
    certfile = configs.get("ssl_certfile")
    offered = f"ssl_certfile {certfile}" if certfile else "none given: set ssl_certfile and ssl_keyfile"
    detail = getattr(err, "reason", None) or str(err)
    return f"the broker refused our client certificate (mutual TLS; ours: {offered}) ({detail})"


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise KafkaSecurityError(f"bootstrap address {address!r} is not host:port")
    return host.strip("[]"), int(port)
