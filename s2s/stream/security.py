"""Kafka security settings (TLS and SASL) shared by every client s2s builds.

The config names kafka-python's own options (``security_protocol``, ``sasl_mechanism``,
``sasl_plain_username``, ``ssl_cafile`` ...). A secret is never written in a config file:
only the name of an environment variable (``*_env``) or a file path (``*_file``) that holds
it. Secrets are read when a client is built (inside the replica that uses it), wrapped in
``Secret`` so a logged config dict shows ``'***'``, and never put in a message.

    kafka:
      security:
        security_protocol: SASL_SSL          # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
        sasl_mechanism: SCRAM-SHA-512        # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
        sasl_plain_username: s2s
        sasl_plain_password_file: /run/secrets/kafka-password   # or sasl_plain_password_env
        ssl_cafile: /etc/kafka/ca.pem

Where no stream config is at hand (`s2s produce/consume`, the admin helpers, tests), the same
mapping comes from the YAML file named by ``$S2S_KAFKA_SECURITY`` (or ``--security-config``).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SECURITY_ENV = "S2S_KAFKA_SECURITY"  # path of a YAML file holding the mapping above
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_WHERE = "kafka.security"
# kafka-python's DEBUG wire dumps show every request, the SASL exchange with its password included.
WIRE_LOGGERS = ("kafka.protocol.parser", "kafka.net.connection")


class KafkaSecurityError(ValueError):
    """Security settings that cannot work; the message names the key, never a secret."""


class Secret(str):
    """A password: usable as the string it is, shown as '***' by repr (so in logged dicts)."""

    def __repr__(self) -> str:
        return "'***'"


@dataclass(frozen=True)
class KafkaSecurity:
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None            # required with SASL_*
    sasl_plain_username: str | None = None       # required with SASL_*
    sasl_plain_password_env: str | None = None   # exactly one of these two with SASL_*
    sasl_plain_password_file: str | None = None
    ssl_cafile: str | None = None                # CA bundle (PEM); None: the system's CAs
    ssl_certfile: str | None = None              # client certificate (PEM), for mutual TLS
    ssl_keyfile: str | None = None               # its private key
    ssl_password_env: str | None = None          # the key's passphrase: at most one of these
    ssl_password_file: str | None = None
    ssl_check_hostname: bool = True              # the broker certificate must name the host

    @property
    def sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def validate(self) -> "KafkaSecurity":
        _check_types(self)
        if self.security_protocol not in PROTOCOLS:
            raise KafkaSecurityError(f"{_WHERE}.security_protocol must be one of {', '.join(PROTOCOLS)}, "
                                     f"got {self.security_protocol!r}")
        if self.sasl:
            self._validate_sasl()
        else:
            _forbid(self, ("sasl_mechanism", "sasl_plain_username", "sasl_plain_password_env",
                           "sasl_plain_password_file"), f"security_protocol {self.security_protocol}")
        if self.tls:
            self._validate_tls()
        else:
            _forbid(self, ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password_env", "ssl_password_file"),
                    f"security_protocol {self.security_protocol}")
        return self

    def _validate_sasl(self) -> None:
        if self.sasl_mechanism not in SASL_MECHANISMS:
            raise KafkaSecurityError(f"{_WHERE}.sasl_mechanism must be one of {', '.join(SASL_MECHANISMS)} "
                                     f"with {self.security_protocol}, got {self.sasl_mechanism!r}")
        if not self.sasl_plain_username:
            raise KafkaSecurityError(f"{_WHERE}.sasl_plain_username is required with {self.security_protocol}")
        _one_secret(self, "sasl_plain_password", required=True)

    def _validate_tls(self) -> None:
        if self.ssl_keyfile and not self.ssl_certfile:
            raise KafkaSecurityError(f"{_WHERE}.ssl_keyfile needs ssl_certfile (the client certificate)")
        _one_secret(self, "ssl_password", required=False)
        if (self.ssl_password_env or self.ssl_password_file) and not self.ssl_certfile:
            raise KafkaSecurityError(f"{_WHERE}.ssl_password_* unlocks a client key: set ssl_certfile too")

    def client_configs(self) -> dict[str, Any]:
        """kafka-python keyword arguments, secrets read now (from the environment / files
        of the process that builds the client)."""
        configs: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.sasl:
            configs.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_plain_username,
                           sasl_plain_password=_read_secret(self, "sasl_plain_password"))
        if self.tls:
            configs.update(ssl_cafile=self.ssl_cafile, ssl_certfile=self.ssl_certfile,
                           ssl_keyfile=self.ssl_keyfile, ssl_check_hostname=self.ssl_check_hostname)
            if self.ssl_password_env or self.ssl_password_file:
                configs["ssl_password"] = _read_secret(self, "ssl_password")
        return configs


PLAINTEXT = KafkaSecurity()


class _RedactSecrets(logging.Filter):
    """Replaces every secret read so far (as text or as it shows inside a bytes repr) by ***."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: set[str] = set()

    def add(self, secret: str) -> None:
        self.forms |= {secret, repr(secret.encode("utf-8"))[2:-1]}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = message
        for form in self.forms:
            redacted = redacted.replace(form, "***")
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_REDACTOR = _RedactSecrets()


def _remember(secret: str) -> Secret:
    """Register a secret with the redacting filter of kafka-python's wire loggers."""
    if not _REDACTOR.forms:
        for name in WIRE_LOGGERS:
            logging.getLogger(name).addFilter(_REDACTOR)
    _REDACTOR.add(secret)
    return Secret(secret)


def _check_types(security: KafkaSecurity) -> None:
    for f in dataclasses.fields(security):
        value = getattr(security, f.name)
        if f.name == "ssl_check_hostname":
            wanted, ok = "boolean (true or false)", isinstance(value, bool)
        else:
            wanted, ok = "string", isinstance(value, str) or (value is None and f.name != "security_protocol")
        if not ok:
            raise KafkaSecurityError(f"{_WHERE}.{f.name} must be a {wanted}, got {type(value).__name__}")


def _forbid(security: KafkaSecurity, names: tuple[str, ...], because: str) -> None:
    """Options the protocol would silently ignore are errors: the user expected them to act."""
    for name in names:
        if getattr(security, name) is not None:
            raise KafkaSecurityError(f"{_WHERE}.{name} has no effect with {because}")


def _one_secret(security: KafkaSecurity, name: str, required: bool) -> None:
    env, path = getattr(security, f"{name}_env"), getattr(security, f"{name}_file")
    if env and path:
        raise KafkaSecurityError(f"{_WHERE}: set {name}_env or {name}_file, not both")
    if required and not (env or path):
        raise KafkaSecurityError(f"{_WHERE}.{name}_env or {name}_file is required with "
                                 f"{security.security_protocol} (the secret itself never goes in the config)")
    if env is not None and not _ENV_NAME.match(env):
        raise KafkaSecurityError(f"{_WHERE}.{name}_env must be an environment variable name, got {env!r}")


def _read_secret(security: KafkaSecurity, name: str) -> Secret:
    """The secret behind ``<name>_env`` or ``<name>_file``; errors name where it was looked for."""
    env, path = getattr(security, f"{name}_env"), getattr(security, f"{name}_file")
    if env:
        value = os.environ.get(env)
        if not value:
            raise KafkaSecurityError(f"{_WHERE}.{name}_env: environment variable {env} is not set or empty")
        return _remember(value)
    try:
        value = Path(path).read_text(encoding="utf-8").rstrip("\r\n")  # `echo pw > file` adds a newline
    except (OSError, UnicodeDecodeError) as err:
        raise KafkaSecurityError(f"{_WHERE}.{name}_file: cannot read {path}: "
                                 f"{getattr(err, 'strerror', None) or type(err).__name__}") from None
    if not value:
        raise KafkaSecurityError(f"{_WHERE}.{name}_file: {path} is empty")
    return _remember(value)


def security_from_dict(values: Any, where: str = _WHERE) -> KafkaSecurity:
    """A validated KafkaSecurity from a mapping; unknown keys are errors naming the key."""
    if values is None:
        return PLAINTEXT
    if not isinstance(values, dict):
        raise KafkaSecurityError(f"{where} must be a mapping, got {type(values).__name__}")
    known = {f.name for f in dataclasses.fields(KafkaSecurity)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise KafkaSecurityError(f"unknown config key '{where}.{unknown[0]}' (known: {', '.join(sorted(known))})")
    return KafkaSecurity(**values).validate()


def load_security_file(path: str | Path) -> KafkaSecurity:
    """The security mapping of a YAML file (the keys of ``kafka.security``, at top level)."""
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise KafkaSecurityError(f"security config {path}: {err.strerror or type(err).__name__}") from None
    except yaml.YAMLError as err:
        raise KafkaSecurityError(f"security config {path} is not valid YAML: {err}") from None
    return security_from_dict(values, where=str(path))


def security_from_env() -> KafkaSecurity:
    """The settings of the file named by $S2S_KAFKA_SECURITY, else PLAINTEXT."""
    path = os.environ.get(SECURITY_ENV, "").strip()
    return load_security_file(path) if path else PLAINTEXT


def security_or_env(security: KafkaSecurity | None) -> KafkaSecurity:
    """``security`` when configured, else security_from_env()."""
    return security if security is not None else security_from_env()
