"""The streaming application's configuration: Kafka settings, limits, ingress, routes.

It is the ``args`` mapping of a Serve application (see cluster/serve/*.yaml), validated into
frozen pydantic models (s2s/settings.py): unknown keys are errors naming the key, every number
is range-checked, and the checks across sections (the drain bound, the decode limit) keep the
numbers in their messages.

    kafka:    bootstrap, group id, dead-letter topic, delivery mode, consumer/producer knobs,
              security (TLS/SASL, security.py)
    limits:   caps on input size, envelope beam and max_len (messages.Limits)
    ingress:  consumer replicas (fixed, or `autoscaling` on consumer-group lag), their timeouts,
              and `tracing` (new trace ids for records without a traceparent)
    routes:   input topic (+ task) -> model checkpoint -> output topic, one translator each
              (fixed replicas, or `autoscaling` on ongoing requests)

Serve pickles the validated StreamConfig to its replicas as deployment arguments (app.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, field_validator, model_validator

from ..settings import ConfigModel, build, conflict, invalid, matching, read_yaml
from ..tasks import Task
from .messages import Limits
from .security import KafkaSecurity

AT_LEAST_ONCE = "at_least_once"
EXACTLY_ONCE = "exactly_once"
DEFAULT_LOADER = "s2s.stream.models:load_checkpoint_model"
TRANSLATOR_HEALTH_PERIOD_S = 5  # Serve checks each translator replica this often (app.py)
HEALTH_CHECKS_TO_KILL = 3       # Serve replaces a replica after this many failed checks in a row
TRANSLATOR_SHUTDOWN_S = 10      # ...after letting its calls run this long (graceful_shutdown_timeout_s)
Topic = Annotated[str, matching(r"[a-zA-Z0-9._-]{1,249}", "a Kafka topic name ([a-zA-Z0-9._-], 1-249 chars)")]
NonEmpty = Annotated[str, Field(min_length=1)]


class StreamConfigError(ValueError):
    """A streaming config that cannot run; the message names the offending key."""


class StreamSection(ConfigModel):
    """A section of the stream config: its errors are StreamConfigErrors."""

    error: ClassVar[type[Exception]] = StreamConfigError


class KafkaSettings(StreamSection):
    section: ClassVar[str] = "kafka"

    bootstrap: str = ""                  # "" = $S2S_KAFKA_BOOTSTRAP, else 127.0.0.1:19092
    group_id: NonEmpty = "s2s-stream"    # one consumer group for all ingress replicas
    dead_letter_topic: Topic = "s2s-dead-letter"
    delivery: Literal[AT_LEAST_ONCE, EXACTLY_ONCE] = AT_LEAST_ONCE
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"  # where a new group starts
    # How partitions are shared out. cooperative-sticky (incremental, KIP-429; the default) moves
    # only the partitions that change owner and the others keep flowing (rebalancing.py);
    # range / roundrobin are eager: every member gives up all its partitions on every
    # rebalance. On bench/step_load.py's 1 -> 3 scale-up of 3 partitions (2 of 3 move anyway) the
    # two tie within noise (README); the fewer partitions a move takes, the more cooperative
    # should save (not measured). All members of one group must use the same kind: kafka-python
    # cannot list both, so an existing range group switches with a new group_id or with every
    # old member stopped first (docs/architecture.md).
    assignor: Literal["cooperative-sticky", "range", "roundrobin"] = "cooperative-sticky"
    create_topics: bool = True           # create missing input/output/dead-letter topics at start
    partitions: PositiveInt = 3          # partition count of topics created here
    replication_factor: PositiveInt | None = None  # copies of topics created here; None: min(3, brokers)
    min_insync_replicas: PositiveInt | None = None  # of topics created here; None: 2 when RF >= 3, else broker default
    max_poll_records: PositiveInt = 256  # records per list handed to a translator
    batch_linger_ms: PositiveInt = 20    # ...or fewer, once the oldest has waited this long
    max_in_flight: PositiveInt = 2048    # polled, not yet committed; partitions pause above it
    poll_timeout_ms: PositiveInt = 100   # idle poll wait; 5 ms while work is in flight
    commit_interval_ms: PositiveInt = 200  # at-least-once: how often acked offsets are committed
    session_timeout_ms: PositiveInt = 45_000  # a dead replica's partitions move after this (> worst-case drain)
    heartbeat_interval_ms: PositiveInt = 1_000  # how soon members hear of a rebalance (each round waits for it)
    max_poll_interval_ms: PositiveInt = 300_000  # never reached: the loop polls while batches decode
    request_timeout_ms: PositiveInt = 30_000
    delivery_timeout_ms: PositiveInt = 120_000  # producer retries (e.g. across a broker restart) this long
    flush_timeout_s: PositiveFloat = 15.0  # wait for acks (or a transaction) before retrying the batch
    transaction_timeout_ms: PositiveInt = 12_000  # the broker aborts an open transaction after this (< flush_timeout_s)
    max_block_ms: PositiveInt = 5_000    # longest a producer send may block (metadata, full buffer)
    max_request_bytes: PositiveInt = 1_048_576  # producer max_request_size; dead letters over it are cut to fit
    security: KafkaSecurity | None = None  # TLS/SASL (security.py); None = $S2S_KAFKA_SECURITY, else PLAINTEXT

    @model_validator(mode="after")
    def limits_agree(self) -> "KafkaSettings":
        if self.max_in_flight < self.max_poll_records:
            raise invalid(f"must be at least kafka.max_poll_records ({self.max_poll_records}), "
                          f"got {self.max_in_flight}", key="max_in_flight")
        if None not in (self.replication_factor, self.min_insync_replicas) \
                and self.min_insync_replicas > self.replication_factor:
            raise invalid(f"must be at most kafka.replication_factor ({self.replication_factor}), "
                          f"got {self.min_insync_replicas}", key="min_insync_replicas")
        if self.flush_timeout_s * 1000 * 2 >= self.max_poll_interval_ms:
            # A flush blocks the poll loop; it must end well before the group expels us.
            raise invalid(f"must be under half of kafka.max_poll_interval_ms ({self.max_poll_interval_ms} ms), "
                          f"got {self.flush_timeout_s:g} s", key="flush_timeout_s")
        if self.exactly_once and self.transaction_timeout_ms >= self.flush_timeout_s * 1000:
            # The broker must give up an open transaction before we give up on it.
            raise invalid(f"({self.transaction_timeout_ms}) must be under kafka.flush_timeout_s "
                          f"({self.flush_timeout_s:g} s) in exactly_once mode", key="transaction_timeout_ms")
        return self

    @property
    def exactly_once(self) -> bool:
        return self.delivery == EXACTLY_ONCE


class AutoscalingBounds(StreamSection):
    """What both autoscaling sections share: Serve's replica bounds and timing."""

    min_replicas: NonNegativeInt = 1
    max_replicas: NonNegativeInt = 3
    upscale_delay_s: NonNegativeFloat = 5.0     # the load must ask for more replicas this long first
    downscale_delay_s: NonNegativeFloat = 60.0  # ...and for fewer replicas this long
    look_back_period_s: NonNegativeFloat = 10.0  # the load is averaged over this window
    metrics_interval_s: PositiveFloat = 1.0     # how often each replica reports its load to the controller

    @model_validator(mode="after")
    def bounds_agree(self) -> "AutoscalingBounds":
        if self.max_replicas < max(1, self.min_replicas):
            raise invalid(f"must be at least 1 and at least min_replicas ({self.min_replicas}), "
                          f"got {self.max_replicas}", key="max_replicas")
        if self.look_back_period_s <= self.metrics_interval_s:
            # Serve averages the reports of the window: it needs more than one report in it.
            raise invalid(f"must be greater than metrics_interval_s ({self.metrics_interval_s:g}), "
                          f"got {self.look_back_period_s:g}", key="look_back_period_s")
        return self


class IngressAutoscaling(AutoscalingBounds):
    """Lag-driven ingress scaling (lag_policy.py): replicas = ceil(group lag / target_lag),
    within [min_replicas, max_replicas] (min at least one: a replica must be there to report the
    lag) and never above the input partitions."""

    section: ClassVar[str] = "ingress.autoscaling"

    min_replicas: Annotated[int, Field(ge=1)] = 1
    target_lag: PositiveInt = 1000    # records behind the log end one replica should carry


class RouteAutoscaling(AutoscalingBounds):
    """Translator scaling on ongoing requests (lists in flight), Serve's own policy."""

    section: ClassVar[str] = "routes[].autoscaling"

    max_replicas: NonNegativeInt = 2
    target_ongoing_requests: PositiveFloat = 2.0  # lists queued or decoding per replica


class Replicated(StreamSection):
    """A deployment with a fixed `num_replicas` or an `autoscaling` section, not both."""

    @model_validator(mode="before")
    @classmethod
    def fixed_or_autoscaled(cls, values: Any) -> Any:
        if isinstance(values, dict) and values.get("autoscaling") is not None and "num_replicas" in values:
            raise conflict("set either num_replicas or autoscaling, not both")
        return values


class IngressSettings(Replicated):
    section: ClassVar[str] = "ingress"

    num_replicas: PositiveInt = 1         # consumers in the group; more than the partitions idle
    num_cpus: PositiveFloat = 0.25        # it mostly waits on sockets and the translator
    call_timeout_s: PositiveFloat = 120.0  # a translator call slower than this is retried as it was
    drain_timeout_s: PositiveFloat = 15.0  # on rebalance/shutdown, finish in-flight work this long
    max_decode_crashes: PositiveInt = 3   # a record in this many calls that killed the translator is dead-lettered
    max_call_timeouts: PositiveInt = 3    # a record in this many timed-out calls is decoded alone (suspects.py)
    autoscaling: IngressAutoscaling | None = None  # None: num_replicas, fixed
    tracing: bool = False                 # records without a W3C traceparent get a new trace id


class Canary(StreamSection):
    """A second model for a stable share of a route's keys (app.py deploys it beside the first)."""

    section: ClassVar[str] = "routes[].canary"

    model: NonEmpty                 # its checkpoint directory (the route's loader reads it)
    percent: Annotated[float, Field(gt=0, lt=100, strict=False)]  # share of keys (keyless records: of offsets)


class RouteConfig(Replicated):
    section: ClassVar[str] = "routes[]"

    # with a hash of the model, names the translator deployment: translator-<name>-<hash>
    name: Annotated[str, matching(r"[a-z0-9][a-z0-9-]{0,40}", "lowercase letters, digits and dashes")]
    input_topic: Topic
    output_topic: Topic
    model: NonEmpty                 # checkpoint directory (or what `loader` understands)
    task: Task = "translation"      # envelope "task" that selects this route on its topic (s2s/tasks.py)
    # "module:function" (path, device) -> model with .best()
    loader: Annotated[str, matching(r".*:.*", "'module:function'")] = DEFAULT_LOADER
    beam: PositiveInt | None = None     # default beam (None: the checkpoint's testing.beam)
    max_len: PositiveInt | None = None  # default cap on output tokens
    device: Annotated[str, matching(r"auto|cpu|cuda(:.*)?", "auto, cpu or cuda[:N]")] = "auto"
    quantize: Literal["int8"] | None = None  # int8: decode in int8 on CPU (the loader gets quantize=); None: as stored
    num_replicas: PositiveInt = 1
    num_cpus: PositiveFloat = 1.0
    num_gpus: NonNegativeFloat = 0.0
    max_batch_size: PositiveInt = 256       # messages per decode batch (lists from the ingress merged)
    batch_wait_timeout_s: PositiveFloat = 0.005  # an idle translator waits this long for a batch to fill
    max_ongoing_requests: PositiveInt = 64  # lists queued in one replica; more wait in the ingress's handle
    max_decode_s: PositiveFloat = 60.0      # a decode running longer fails the health check: Serve replaces the replica
    quarantine_num_cpus: PositiveFloat = 0.1  # the quarantine replica (suspects decoded alone; 0 replicas when idle)
    autoscaling: RouteAutoscaling | None = None  # None: num_replicas, fixed
    canary: Canary | None = None    # {model, percent}: that share of the keys meets this model instead

    def canary_route(self) -> "RouteConfig | None":
        """The route as its canary's keys see it: the same in every way but the model."""
        return None if self.canary is None else self.replace(model=self.canary.model, canary=None)

    @model_validator(mode="after")
    def topics_and_device_agree(self) -> "RouteConfig":
        if self.input_topic == self.output_topic:
            raise invalid("must differ from input_topic (it would loop)", key="output_topic")
        if self.quantize and self.device.startswith("cuda"):
            raise conflict("int8 decodes on CPU only; set device to cpu or auto", key="quantize")
        if self.canary is not None and self.canary.model == self.model:
            raise invalid("must differ from the route's model (promote a canary by making it the model)",
                          key="canary.model")
        return self


class StreamConfig(StreamSection):
    # a list in YAML; Serve's args may hold it as a list or a tuple
    routes: tuple[RouteConfig, ...] = Field(strict=False)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    limits: Limits = Field(default_factory=Limits)
    ingress: IngressSettings = Field(default_factory=IngressSettings)

    @field_validator("routes")
    @classmethod
    def some_route(cls, routes: tuple[RouteConfig, ...]) -> tuple[RouteConfig, ...]:
        if not routes:
            raise conflict("at least one route is needed")
        return routes

    @model_validator(mode="after")
    def sections_agree(self) -> "StreamConfig":
        _check_routes_distinct(self.routes, self.kafka.dead_letter_topic)
        _check_drain_bound(self.kafka, self.ingress)
        for route in self.routes:
            _check_decode_bound(route, self.ingress)
        return self

    def input_topics(self) -> list[str]:
        return sorted({r.input_topic for r in self.routes})

    def all_topics(self) -> list[str]:
        """Every topic the application reads or writes."""
        return sorted({t for r in self.routes for t in (r.input_topic, r.output_topic)}
                      | {self.kafka.dead_letter_topic})


def _check_drain_bound(kafka: KafkaSettings, ingress: IngressSettings) -> None:
    """The rebalance drain runs on kafka-python's IO thread, which also sends the heartbeats:
    at worst it waits drain_timeout_s for answers, then flush_timeout_s for their acks, after a
    send that blocked max_block_ms. All of it must end before the group expels the member."""
    worst_ms = ingress.drain_timeout_s * 1000 + kafka.flush_timeout_s * 1000 + kafka.max_block_ms
    limit_ms = min(kafka.session_timeout_ms, kafka.max_poll_interval_ms)
    if worst_ms >= limit_ms:
        raise conflict(
            f"the worst-case drain, ingress.drain_timeout_s + kafka.flush_timeout_s + kafka.max_block_ms = "
            f"{ingress.drain_timeout_s:g} s + {kafka.flush_timeout_s:g} s + {kafka.max_block_ms} ms = {worst_ms / 1000:g} s, "
            f"must be under kafka.session_timeout_ms and kafka.max_poll_interval_ms ({limit_ms / 1000:g} s)")


def _check_decode_bound(route: RouteConfig, ingress: IngressSettings) -> None:
    """A hung decode must be killed while its call is still awaited, so that the kill is blamed
    on its records (suspects.py) rather than ignored as a timeout."""
    replaced_after_s = TRANSLATOR_HEALTH_PERIOD_S * (HEALTH_CHECKS_TO_KILL + 1) + TRANSLATOR_SHUTDOWN_S
    if route.max_decode_s + replaced_after_s >= ingress.call_timeout_s:
        raise invalid(f"({route.max_decode_s:g}) + {replaced_after_s:g} s for the health checks and the shutdown "
                      f"to replace the replica must be under ingress.call_timeout_s ({ingress.call_timeout_s:g})",
                      key=f"routes[{route.name}].max_decode_s")


def _check_routes_distinct(routes: tuple[RouteConfig, ...], dead_letter_topic: str) -> None:
    names = [r.name for r in routes]
    if len(set(names)) != len(names):
        raise conflict(f"duplicate route name in {names}", key="routes")
    keys = [(r.input_topic, r.task) for r in routes]
    if len(set(keys)) != len(keys):
        raise conflict("two routes share an input_topic and task; the task cannot pick one", key="routes")
    inputs = {r.input_topic for r in routes}
    outputs = {r.output_topic for r in routes} | {dead_letter_topic}
    if inputs & outputs:
        raise conflict(f"topic {sorted(inputs & outputs)[0]!r} is both read and written", key="routes")


def stream_config_from_dict(values: dict[str, Any], source: str | Path | None = None,
                            where: str | None = None) -> StreamConfig:
    """Validate a mapping (a Serve application's ``args``) into a StreamConfig; `source` (its
    file) and `where` (its key path there) go into messages."""
    return build(StreamConfig, values, where, source)


def load_serve_file(path: str | Path) -> dict[str, Any]:
    """Read a Serve config file (the `serve run`/`serve deploy` format) as a mapping."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"serve config not found: {path}")
    raw = read_yaml(path, StreamConfigError, what="serve config")
    apps = raw.get("applications") if isinstance(raw, dict) else None
    if not isinstance(apps, list) or not apps:
        raise StreamConfigError(f"{path} has no 'applications' list (see cluster/serve/toy.yaml)")
    return raw
