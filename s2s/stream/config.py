"""The streaming application's configuration: Kafka settings, limits, ingress, routes.

It is the ``args`` mapping of a Serve application (see cluster/serve/*.yaml), validated into
frozen dataclasses. Unknown keys are errors naming the key; every number is range-checked.

    kafka:    bootstrap, group id, dead-letter topic, delivery mode, consumer/producer knobs,
              security (TLS/SASL, security.py)
    limits:   caps on input size, envelope beam and max_len
    ingress:  consumer replicas (fixed, or `autoscaling` on consumer-group lag) and their timeouts
    routes:   input topic (+ task) -> model checkpoint -> output topic, one translator each
              (fixed replicas, or `autoscaling` on ongoing requests)
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .messages import Limits
from .security import KafkaSecurity, KafkaSecurityError

AT_LEAST_ONCE = "at_least_once"
EXACTLY_ONCE = "exactly_once"
DEFAULT_LOADER = "s2s.stream.models:load_checkpoint_model"
TRANSLATOR_HEALTH_PERIOD_S = 5  # Serve checks each translator replica this often (app.py)
HEALTH_CHECKS_TO_KILL = 3       # Serve replaces a replica after this many failed checks in a row
TRANSLATOR_SHUTDOWN_S = 10      # ...after letting its calls run this long (graceful_shutdown_timeout_s)
_TOPIC = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")


class StreamConfigError(ValueError):
    """A streaming config that cannot run; the message names the offending key."""


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap: str = ""                  # "" = $S2S_KAFKA_BOOTSTRAP, else 127.0.0.1:19092
    group_id: str = "s2s-stream"         # one consumer group for all ingress replicas
    dead_letter_topic: str = "s2s-dead-letter"
    delivery: str = AT_LEAST_ONCE        # at_least_once | exactly_once
    auto_offset_reset: str = "earliest"  # where a new group starts: earliest | latest
    create_topics: bool = True           # create missing input/output/dead-letter topics at start
    partitions: int = 3                  # partition count of topics created here
    replication_factor: int | None = None  # copies of topics created here; None: min(3, brokers)
    min_insync_replicas: int | None = None  # of topics created here; None: 2 when RF >= 3, else broker default
    max_poll_records: int = 256          # records per list handed to a translator
    batch_linger_ms: int = 20            # ...or fewer, once the oldest has waited this long
    max_in_flight: int = 2048            # polled, not yet committed; partitions pause above it
    poll_timeout_ms: int = 100           # idle poll wait; 5 ms while work is in flight
    commit_interval_ms: int = 200        # at-least-once: how often acked offsets are committed
    session_timeout_ms: int = 45_000     # a dead replica's partitions move after this (> worst-case drain)
    heartbeat_interval_ms: int = 3_000
    max_poll_interval_ms: int = 300_000  # never reached: the loop polls while batches decode
    request_timeout_ms: int = 30_000
    delivery_timeout_ms: int = 120_000   # producer retries (e.g. across a broker restart) this long
    flush_timeout_s: float = 15.0        # wait for acks (or a transaction) before retrying the batch
    transaction_timeout_ms: int = 12_000  # the broker aborts an open transaction after this (< flush_timeout_s)
    max_block_ms: int = 5_000            # longest a producer send may block (metadata, full buffer)
    max_request_bytes: int = 1_048_576   # producer max_request_size; dead letters over it are cut to fit
    security: KafkaSecurity | None = None  # TLS/SASL (security.py); None = $S2S_KAFKA_SECURITY, else PLAINTEXT

    def validate(self) -> "KafkaSettings":
        if self.delivery not in (AT_LEAST_ONCE, EXACTLY_ONCE):
            raise StreamConfigError(f"kafka.delivery must be {AT_LEAST_ONCE} or {EXACTLY_ONCE}, got {self.delivery!r}")
        if self.auto_offset_reset not in ("earliest", "latest"):
            raise StreamConfigError(f"kafka.auto_offset_reset must be earliest or latest, got {self.auto_offset_reset!r}")
        _check_topic("kafka.dead_letter_topic", self.dead_letter_topic)
        if not self.group_id:
            raise StreamConfigError("kafka.group_id must not be empty")
        _check_positive(self, "kafka", exclude=("bootstrap", "group_id", "dead_letter_topic", "delivery",
                                                "auto_offset_reset", "create_topics", "security"))
        if self.security is not None:
            try:
                self.security.validate()
            except KafkaSecurityError as err:
                raise StreamConfigError(str(err)) from err
        if self.max_in_flight < self.max_poll_records:
            raise StreamConfigError("kafka.max_in_flight must be at least kafka.max_poll_records")
        if None not in (self.replication_factor, self.min_insync_replicas) \
                and self.min_insync_replicas > self.replication_factor:
            raise StreamConfigError("kafka.min_insync_replicas must be at most kafka.replication_factor")
        if self.flush_timeout_s * 1000 * 2 >= self.max_poll_interval_ms:
            # A flush blocks the poll loop; it must end well before the group expels us.
            raise StreamConfigError("kafka.flush_timeout_s must be under half of kafka.max_poll_interval_ms")
        if self.exactly_once and self.transaction_timeout_ms >= self.flush_timeout_s * 1000:
            # The broker must give up an open transaction before we give up on it.
            raise StreamConfigError(f"kafka.transaction_timeout_ms ({self.transaction_timeout_ms}) must be under "
                                    f"kafka.flush_timeout_s ({self.flush_timeout_s:g} s) in exactly_once mode")
        return self

    @property
    def exactly_once(self) -> bool:
        return self.delivery == EXACTLY_ONCE


@dataclass(frozen=True)
class AutoscalingBounds:
    """What both autoscaling sections share: Serve's replica bounds and timing."""

    min_replicas: int = 1
    max_replicas: int = 3
    upscale_delay_s: float = 5.0      # the load must ask for more replicas this long first
    downscale_delay_s: float = 60.0   # ...and for fewer replicas this long
    look_back_period_s: float = 10.0  # the load is averaged over this window
    metrics_interval_s: float = 1.0   # how often each replica reports its load to the controller


@dataclass(frozen=True)
class IngressAutoscaling(AutoscalingBounds):
    """Lag-driven ingress scaling (lag_policy.py): replicas = ceil(group lag / target_lag),
    within [min_replicas, max_replicas] (min at least one: a replica must be there to report the
    lag) and never above the input partitions."""

    target_lag: int = 1000            # records behind the log end one replica should carry

    def validate(self, where: str) -> "IngressAutoscaling":
        _check_scaling(self, where, min_floor=1)
        if not isinstance(self.target_lag, int) or isinstance(self.target_lag, bool) or self.target_lag < 1:
            raise StreamConfigError(f"{where}.target_lag must be a positive integer, got {self.target_lag!r}")
        return self


@dataclass(frozen=True)
class RouteAutoscaling(AutoscalingBounds):
    """Translator scaling on ongoing requests (lists in flight), Serve's own policy."""

    max_replicas: int = 2
    target_ongoing_requests: float = 2.0  # lists queued or decoding per replica

    def validate(self, where: str) -> "RouteAutoscaling":
        _check_scaling(self, where, min_floor=0)
        target = self.target_ongoing_requests
        if isinstance(target, bool) or not isinstance(target, (int, float)) or target <= 0:
            raise StreamConfigError(f"{where}.target_ongoing_requests must be a positive number, got {target!r}")
        return self


@dataclass(frozen=True)
class IngressSettings:
    num_replicas: int = 1           # consumers in the group; more than the partitions idle
    num_cpus: float = 0.25          # it mostly waits on sockets and the translator
    call_timeout_s: float = 120.0   # a translator call slower than this is retried, its records decoded alone
    drain_timeout_s: float = 15.0   # on rebalance/shutdown, finish in-flight work this long
    max_decode_crashes: int = 3     # a record in this many calls that killed the translator is dead-lettered
    autoscaling: IngressAutoscaling | None = None  # None: num_replicas, fixed
    tracing: bool = False           # records without a W3C traceparent get a new trace id

    def validate(self) -> "IngressSettings":
        _check_positive(self, "ingress", exclude=("autoscaling", "tracing"))
        if not isinstance(self.tracing, bool):
            raise StreamConfigError(f"ingress.tracing must be true or false, got {self.tracing!r}")
        if self.autoscaling is not None:
            self.autoscaling.validate("ingress.autoscaling")
        return self


@dataclass(frozen=True)
class RouteConfig:
    name: str                       # also names the translator deployment: translator-<name>
    input_topic: str
    output_topic: str
    model: str                      # checkpoint directory (or what `loader` understands)
    task: str = "translation"       # envelope "task" that selects this route on its topic (s2s/tasks.py)
    loader: str = DEFAULT_LOADER    # "module:function" (path, device) -> model with .best()
    beam: int | None = None         # default beam (None: the checkpoint's testing.beam)
    max_len: int | None = None      # default cap on output tokens
    device: str = "auto"            # auto | cpu | cuda
    quantize: str | None = None     # int8: decode in int8 on CPU (the loader gets quantize=); None: as stored
    num_replicas: int = 1
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    max_batch_size: int = 256       # messages per decode batch (lists from the ingress merged)
    batch_wait_timeout_s: float = 0.005  # an idle translator waits this long for a batch to fill
    max_ongoing_requests: int = 64  # lists queued in one replica; more wait in the ingress's handle
    max_decode_s: float = 60.0      # a decode running longer fails the health check: Serve replaces the replica
    quarantine_num_cpus: float = 0.1  # the quarantine replica (suspects decoded alone; 0 replicas when idle)
    autoscaling: RouteAutoscaling | None = None  # None: num_replicas, fixed

    def validate(self) -> "RouteConfig":
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,40}", self.name or ""):
            raise StreamConfigError(f"routes[].name must be lowercase letters, digits and dashes, got {self.name!r}")
        where = f"routes[{self.name}]"
        _check_topic(f"{where}.input_topic", self.input_topic)
        _check_topic(f"{where}.output_topic", self.output_topic)
        if self.input_topic == self.output_topic:
            raise StreamConfigError(f"{where}: output_topic must differ from input_topic (it would loop)")
        if not self.model or not self.task or ":" not in self.loader:
            raise StreamConfigError(f"{where}: model and task must be set, loader must be 'module:function'")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise StreamConfigError(f"{where}.device must be auto, cpu or cuda[:N], got {self.device!r}")
        if self.quantize not in (None, "int8"):
            raise StreamConfigError(f"{where}.quantize must be int8 or unset (fp32), got {self.quantize!r}")
        if self.quantize and self.device.startswith("cuda"):
            raise StreamConfigError(f"{where}.quantize: int8 decodes on CPU only; set device to cpu or auto")
        _check_positive(self, where, exclude=("name", "input_topic", "output_topic", "model", "task",
                                              "loader", "device", "quantize", "num_gpus", "autoscaling"))
        if self.num_gpus < 0:
            raise StreamConfigError(f"{where}.num_gpus must be >= 0")
        if self.autoscaling is not None:
            self.autoscaling.validate(f"{where}.autoscaling")
        return self


@dataclass(frozen=True)
class StreamConfig:
    routes: tuple[RouteConfig, ...]
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    limits: Limits = field(default_factory=Limits)
    ingress: IngressSettings = field(default_factory=IngressSettings)

    def validate(self) -> "StreamConfig":
        if not self.routes:
            raise StreamConfigError("routes: at least one route is needed")
        self.kafka.validate()
        self.ingress.validate()
        try:
            self.limits.validate()
        except ValueError as err:
            raise StreamConfigError(str(err)) from err
        for route in self.routes:
            route.validate()
        _check_routes_distinct(self.routes, self.kafka.dead_letter_topic)
        _check_drain_bound(self.kafka, self.ingress)
        for route in self.routes:
            # A hung decode must be killed while its call is still awaited, so that the kill is
            # blamed on its records (suspects.py) rather than ignored as a timeout.
            killed_by_s = (route.max_decode_s + TRANSLATOR_HEALTH_PERIOD_S * (HEALTH_CHECKS_TO_KILL + 1)
                           + TRANSLATOR_SHUTDOWN_S)
            if killed_by_s >= self.ingress.call_timeout_s:
                raise StreamConfigError(
                    f"routes[{route.name}].max_decode_s ({route.max_decode_s:g}) + {killed_by_s - route.max_decode_s:g} s "
                    f"for the health checks and the shutdown to replace the replica must be under ingress.call_timeout_s "
                    f"({self.ingress.call_timeout_s:g})")
        return self

    def input_topics(self) -> list[str]:
        return sorted({r.input_topic for r in self.routes})

    def all_topics(self) -> list[str]:
        """Every topic the application reads or writes."""
        return sorted({t for r in self.routes for t in (r.input_topic, r.output_topic)}
                      | {self.kafka.dead_letter_topic})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_drain_bound(kafka: KafkaSettings, ingress: IngressSettings) -> None:
    """The rebalance drain runs on kafka-python's IO thread, which also sends the heartbeats:
    at worst it waits drain_timeout_s for answers, then flush_timeout_s for their acks, after a
    send that blocked max_block_ms. All of it must end before the group expels the member."""
    worst_ms = ingress.drain_timeout_s * 1000 + kafka.flush_timeout_s * 1000 + kafka.max_block_ms
    limit_ms = min(kafka.session_timeout_ms, kafka.max_poll_interval_ms)
    if worst_ms >= limit_ms:
        raise StreamConfigError(
            f"the worst-case drain, ingress.drain_timeout_s + kafka.flush_timeout_s + kafka.max_block_ms = "
            f"{ingress.drain_timeout_s:g} s + {kafka.flush_timeout_s:g} s + {kafka.max_block_ms} ms = {worst_ms / 1000:g} s, "
            f"must be under kafka.session_timeout_ms and kafka.max_poll_interval_ms ({limit_ms / 1000:g} s)")


def _check_routes_distinct(routes: tuple[RouteConfig, ...], dead_letter_topic: str) -> None:
    names = [r.name for r in routes]
    if len(set(names)) != len(names):
        raise StreamConfigError(f"routes: duplicate route name in {names}")
    keys = [(r.input_topic, r.task) for r in routes]
    if len(set(keys)) != len(keys):
        raise StreamConfigError("routes: two routes share an input_topic and task; the task cannot pick one")
    inputs = {r.input_topic for r in routes}
    outputs = {r.output_topic for r in routes} | {dead_letter_topic}
    if inputs & outputs:
        raise StreamConfigError(f"routes: topic {sorted(inputs & outputs)[0]!r} is both read and written")


def _check_scaling(scaling: AutoscalingBounds, where: str, min_floor: int) -> None:
    """The bounds and timings every autoscaling section shares."""
    for name in ("min_replicas", "max_replicas"):
        value = getattr(scaling, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < min_floor:
            raise StreamConfigError(f"{where}.{name} must be an integer >= {min_floor}, got {value!r}")
    if scaling.max_replicas < max(1, scaling.min_replicas):
        raise StreamConfigError(f"{where}.max_replicas must be at least 1 and at least min_replicas "
                                f"({scaling.min_replicas}), got {scaling.max_replicas}")
    for name in ("upscale_delay_s", "downscale_delay_s", "look_back_period_s", "metrics_interval_s"):
        value = getattr(scaling, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise StreamConfigError(f"{where}.{name} must be a number >= 0, got {value!r}")
    if scaling.metrics_interval_s <= 0 or scaling.look_back_period_s <= scaling.metrics_interval_s:
        # Serve averages the reports of the window: it needs more than one report in it.
        raise StreamConfigError(f"{where}.look_back_period_s must be greater than {where}.metrics_interval_s (> 0)")


def _check_topic(where: str, name: str) -> None:
    if not isinstance(name, str) or not _TOPIC.match(name):
        raise StreamConfigError(f"{where} must be a Kafka topic name ([a-zA-Z0-9._-], 1-249 chars), got {name!r}")


def _check_positive(obj: Any, where: str, exclude: tuple[str, ...] = ()) -> None:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.name in exclude or value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise StreamConfigError(f"{where}.{f.name} must be a positive number, got {value!r}")


def _reject_unknown(cls: type, values: dict[str, Any], where: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise StreamConfigError(f"unknown config key '{key}' (known: {', '.join(sorted(known))})")


def _build(cls: type, values: Any, where: str) -> Any:
    """Dataclass ``cls`` from a mapping; unknown keys are an error naming the key."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise StreamConfigError(f"{where} must be a mapping, got {type(values).__name__}")
    _reject_unknown(cls, values, where)
    try:
        return cls(**values)
    except TypeError as err:  # a required key is missing
        raise StreamConfigError(f"{where}: {err}") from err


def _with_autoscaling(values: Any, scaling_cls: type, where: str) -> Any:
    """``values`` with its ``autoscaling`` mapping built into ``scaling_cls``; an autoscaling
    section and a fixed num_replicas contradict each other."""
    if not isinstance(values, dict) or values.get("autoscaling") is None:
        return values
    if "num_replicas" in values:
        raise StreamConfigError(f"{where}: set either num_replicas or autoscaling, not both")
    return {**values, "autoscaling": _build(scaling_cls, values["autoscaling"], f"{where}.autoscaling")}


def _with_security(values: Any) -> Any:
    """``kafka`` with its ``security`` mapping built into a KafkaSecurity (KafkaSettings.validate
    checks it)."""
    if not isinstance(values, dict) or values.get("security") is None:
        return values
    return {**values, "security": _build(KafkaSecurity, values["security"], "kafka.security")}


def stream_config_from_dict(values: dict[str, Any]) -> StreamConfig:
    """Validate a mapping (a Serve application's ``args``) into a StreamConfig."""
    if not isinstance(values, dict):
        raise StreamConfigError(f"the application args must be a mapping, got {type(values).__name__}")
    _reject_unknown(StreamConfig, values, "")
    routes = values.get("routes") or []
    if not isinstance(routes, list):
        raise StreamConfigError("routes must be a list of mappings")
    config = StreamConfig(
        routes=tuple(_build(RouteConfig, _with_autoscaling(r, RouteAutoscaling, f"routes[{i}]"), f"routes[{i}]")
                     for i, r in enumerate(routes)),
        kafka=_build(KafkaSettings, _with_security(values.get("kafka")), "kafka"),
        limits=_build(Limits, values.get("limits"), "limits"),
        ingress=_build(IngressSettings, _with_autoscaling(values.get("ingress"), IngressAutoscaling, "ingress"),
                       "ingress"),
    )
    return config.validate()


def load_serve_file(path: str | Path) -> dict[str, Any]:
    """Read a Serve config file (the `serve run`/`serve deploy` format) as a mapping."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"serve config not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise StreamConfigError(f"{path} is not valid YAML: {err}") from err
    apps = raw.get("applications") if isinstance(raw, dict) else None
    if not isinstance(apps, list) or not apps:
        raise StreamConfigError(f"{path} has no 'applications' list (see cluster/serve/toy.yaml)")
    return raw
