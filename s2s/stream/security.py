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

KafkaSecurity is a frozen pydantic model (s2s/settings.py), checked when it is built: each
protocol's required options are there, and an option the protocol would ignore is an error.
Where no stream config is at hand (`s2s produce/consume`, the admin helpers, tests), the same
mapping comes from the YAML file named by ``$S2S_KAFKA_SECURITY`` (or ``--security-config``).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import model_validator

from ..settings import ConfigModel, build, conflict, invalid, load, matching

SECURITY_ENV = "S2S_KAFKA_SECURITY"  # path of a YAML file holding the mapping above
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_WHERE = "kafka.security"
# kafka-python's DEBUG wire dumps show every request, the SASL exchange with its password included.
WIRE_LOGGERS = ("kafka.protocol.parser", "kafka.net.connection")
_SASL_KEYS = ("sasl_mechanism", "sasl_plain_username", "sasl_plain_password_env", "sasl_plain_password_file")
_TLS_KEYS = ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password_env", "ssl_password_file")
EnvName = Annotated[str, matching(r"[A-Za-z_][A-Za-z0-9_]*", "an environment variable name")]


class KafkaSecurityError(ValueError):
    """Security settings that cannot work; the message names the key, never a secret."""


class Secret(str):
    """A password: usable as the string it is, shown as '***' by repr (so in logged dicts)."""

    def __repr__(self) -> str:
        return "'***'"


class KafkaSecurity(ConfigModel):
    section: ClassVar[str] = _WHERE
    error: ClassVar[type[Exception]] = KafkaSecurityError

    security_protocol: Literal[PROTOCOLS] = "PLAINTEXT"
    sasl_mechanism: Literal[SASL_MECHANISMS] | None = None  # required with SASL_*
    sasl_plain_username: str | None = None       # required with SASL_*
    sasl_plain_password_env: EnvName | None = None   # exactly one of these two with SASL_*
    sasl_plain_password_file: str | None = None
    ssl_cafile: str | None = None                # CA bundle (PEM); None: the system's CAs
    ssl_certfile: str | None = None              # client certificate (PEM), for mutual TLS
    ssl_keyfile: str | None = None               # its private key
    ssl_password_env: EnvName | None = None      # the key's passphrase: at most one of these
    ssl_password_file: str | None = None
    ssl_check_hostname: bool = True              # the broker certificate must name the host

    @property
    def sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @model_validator(mode="after")
    def protocol_options(self) -> "KafkaSecurity":
        """Each protocol's required options; those it would silently ignore are errors: the
        user expected them to act."""
        for names, used in ((_SASL_KEYS, self.sasl), (_TLS_KEYS, self.tls)):
            for name in names:
                if not used and getattr(self, name) is not None:
                    raise invalid(f"has no effect with security_protocol {self.security_protocol}", key=name)
        if self.sasl:
            self._check_sasl()
        if self.tls:
            self._check_tls()
        return self

    def _check_sasl(self) -> None:
        if self.sasl_mechanism is None:
            raise invalid(f"must be one of {', '.join(SASL_MECHANISMS)} with {self.security_protocol}, got None",
                          key="sasl_mechanism")
        if not self.sasl_plain_username:
            raise invalid(f"is required with {self.security_protocol}", key="sasl_plain_username")
        _one_secret(self, "sasl_plain_password", required=True)

    def _check_tls(self) -> None:
        if self.ssl_keyfile and not self.ssl_certfile:
            raise invalid("needs ssl_certfile (the client certificate)", key="ssl_keyfile")
        _one_secret(self, "ssl_password", required=False)
        if (self.ssl_password_env or self.ssl_password_file) and not self.ssl_certfile:
            raise invalid("unlocks a client key: set ssl_certfile too", key="ssl_password_*")

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


def _one_secret(security: KafkaSecurity, name: str, required: bool) -> None:
    """`<name>_env` or `<name>_file`: one of them (when `required`), never both."""
    env, path = getattr(security, f"{name}_env"), getattr(security, f"{name}_file")
    if env and path:
        raise conflict(f"set {name}_env or {name}_file, not both")
    if required and not (env or path):
        raise invalid(f"or {name}_file is required with {security.security_protocol} "
                      "(the secret itself never goes in the config)", key=f"{name}_env")


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
    """A validated KafkaSecurity from a mapping (None: PLAINTEXT); `where` is its key path."""
    return PLAINTEXT if values is None else build(KafkaSecurity, values, where)


def load_security_file(path: str | Path) -> KafkaSecurity:
    """The security mapping of a YAML file (the keys of ``kafka.security``, at top level)."""
    return load(KafkaSecurity, path, where="", what="security config")


def security_from_env() -> KafkaSecurity:
    """The settings of the file named by $S2S_KAFKA_SECURITY, else PLAINTEXT."""
    path = os.environ.get(SECURITY_ENV, "").strip()
    return load_security_file(path) if path else PLAINTEXT


def security_or_env(security: KafkaSecurity | None) -> KafkaSecurity:
    """``security`` when configured, else security_from_env()."""
    return security if security is not None else security_from_env()
