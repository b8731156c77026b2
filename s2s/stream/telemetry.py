"""The stream's metrics: Prometheus series through Ray's metrics agent, and the short rolling
window each replica keeps for `s2s status`.

Metrics are ``ray.serve.metrics`` Counter/Gauge/Histogram (``ray.util.metrics`` that add the
``application``, ``deployment`` and ``replica`` tags). Ray exports them on every node's
metrics port (``ray.nodes()[i]["MetricsExportPort"]``) with a ``ray_`` prefix, counters with a
``_total`` suffix, histograms as ``_bucket``/``_sum``/``_count`` (see ``prometheus_names``);
cluster/grafana/s2s-dashboard.json plots them.

Cost on the poll loop: counters move once per poll or delivery (not per message), and at most
``LATENCY_SAMPLES`` end-to-end latencies are observed per delivery, evenly spread over it.
"""
from __future__ import annotations

import dataclasses
import time
from collections import Counter, deque
from collections.abc import Iterable, Sequence

from . import headers as hdr

LATENCY_BOUNDARIES_MS = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000]
BATCH_BOUNDARIES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
LATENCY_SAMPLES = 32  # end-to-end latencies observed per delivery
WINDOW_S = 10.0       # the rolling window behind `s2s status`'s rates and percentiles

# Every metric the code defines: name -> Prometheus type. The dashboard may plot only these.
METRICS = {
    "s2s_messages_in": "counter",           # records polled, tag topic
    "s2s_messages_out": "counter",          # answers acknowledged, tag topic (output topic)
    "s2s_dead_letters": "counter",          # dead letters acknowledged, tag reason
    "s2s_consumer_lag": "gauge",            # records behind the log end, tags topic, partition
    "s2s_end_to_end_latency_ms": "histogram",  # record timestamp -> output acknowledged, tag topic
    "s2s_batch_size": "histogram",          # messages per decode batch, tag route
    "s2s_decode_latency_ms": "histogram",   # one decode batch, tag route
}


def prometheus_names() -> set[str]:
    """The series names Ray exports for METRICS."""
    suffixes = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"]}
    return {f"ray_{name}{suffix}" for name, kind in METRICS.items() for suffix in suffixes[kind]}


def percentile(sorted_values: Sequence[float], pct: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


class RollingWindow:
    """Message counts and latency samples of the last ``window_s`` seconds."""

    def __init__(self, window_s: float = WINDOW_S, max_samples: int = 4096,
                 now=time.monotonic):
        self._window_s = window_s
        self._now = now
        self._counts: deque[tuple[float, int]] = deque()
        self._samples: deque[tuple[float, float]] = deque(maxlen=max_samples)

    def add(self, count: int, latencies_ms: Iterable[float] = ()) -> None:
        now = self._now()
        self._counts.append((now, count))
        self._samples.extend((now, latency) for latency in latencies_ms)
        self._prune(now)

    def _prune(self, now: float) -> None:
        oldest = now - self._window_s
        while self._counts and self._counts[0][0] < oldest:
            self._counts.popleft()
        while self._samples and self._samples[0][0] < oldest:
            self._samples.popleft()

    def summary(self) -> dict[str, float | None]:
        """msgs_per_s over the window, p50/p99 of its latency samples (None without any)."""
        self._prune(self._now())
        latencies = sorted(latency for _, latency in self._samples)
        return {"msgs_per_s": sum(count for _, count in self._counts) / self._window_s,
                "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99)}


def spread(items: Sequence, most: int) -> Sequence:
    """At most ``most`` of ``items``, evenly spaced (all of them when there are few)."""
    if len(items) <= most:
        return items
    step = len(items) / most
    return [items[int(i * step)] for i in range(most)]


def end_to_end_ms(records: Sequence, acked_ms: int) -> dict[str, list[float]]:
    """Per input topic, acked time minus record timestamp for a spread sample of ``records``."""
    latencies: dict[str, list[float]] = {}
    for record in spread(records, LATENCY_SAMPLES):
        if record.timestamp and record.timestamp > 0:  # -1: the producer set no timestamp
            latencies.setdefault(record.topic, []).append(max(0.0, acked_ms - record.timestamp))
    return latencies


def _model_version(out) -> str:
    """The answer's s2s-model-version (our own header: always set on answers, UTF-8)."""
    value = next((v for name, v in out.headers if name == hdr.MODEL_VERSION), b"")
    return value.decode("utf-8", "replace")


def dead_letter_reasons(outputs: Iterable, dead_letter_topic: str) -> Counter:
    return Counter(hdr.as_dict(out.headers).get(hdr.ERROR_REASON, "unknown")
                   for out in outputs if out.topic == dead_letter_topic)


class IngressTelemetry:
    """The poll loop's observer (poll_loop.py): Ray metrics plus the rolling window."""

    def __init__(self, dead_letter_topic: str):
        from ray.serve import metrics

        self._dead_letter_topic = dead_letter_topic
        self._in = metrics.Counter("s2s_messages_in", description="Records polled from input topics",
                                   tag_keys=("topic",))
        self._out = metrics.Counter("s2s_messages_out", description="Answers acknowledged by the broker",
                                    tag_keys=("topic", "model"))
        self._dead = metrics.Counter("s2s_dead_letters", description="Dead letters acknowledged, by reason",
                                     tag_keys=("reason",))
        self._lag = metrics.Gauge("s2s_consumer_lag", description="Records behind the log end, per owned partition",
                                  tag_keys=("topic", "partition"))
        self._latency = metrics.Histogram("s2s_end_to_end_latency_ms",
                                          description="Record timestamp to output acknowledged (sampled)",
                                          boundaries=LATENCY_BOUNDARIES_MS, tag_keys=("topic",))
        self.window = RollingWindow()
        self.lags: dict[str, int] = {}  # "topic-partition" -> records behind
        self._owned: set = set()        # TopicPartitions whose lag this replica reported last

    def polled(self, records: Sequence) -> None:
        for topic, count in Counter(record.topic for record in records).items():
            self._in.inc(count, tags={"topic": topic})

    def delivered(self, records: Sequence, outputs: Sequence, acked_ms: int) -> None:
        answers = (out for out in outputs if out.topic != self._dead_letter_topic)
        for (topic, model), count in Counter((out.topic, _model_version(out)) for out in answers).items():
            self._out.inc(count, tags={"topic": topic, "model": model})
        for reason, count in dead_letter_reasons(outputs, self._dead_letter_topic).items():
            self._dead.inc(count, tags={"reason": reason})
        samples = end_to_end_ms(records, acked_ms)
        for topic, latencies in samples.items():
            for latency in latencies:
                self._latency.observe(latency, tags={"topic": topic})
        self.window.add(len(outputs), (latency for latencies in samples.values() for latency in latencies))

    def lag(self, lags: dict) -> None:
        """``lags``: {TopicPartition: records behind}, the partitions this replica owns."""
        for tp in self._owned - lags.keys():  # moved to another replica: it reports them now
            self._lag.set(0, tags={"topic": tp.topic, "partition": str(tp.partition)})
        for tp, behind in lags.items():
            self._lag.set(behind, tags={"topic": tp.topic, "partition": str(tp.partition)})
        self._owned = set(lags)
        self.lags = {f"{tp.topic}-{tp.partition}": behind for tp, behind in sorted(lags.items())}


@dataclasses.dataclass
class DecodeTotals:
    """What a translator replica has decoded since it started. Cumulative, so a reader can diff
    two snapshots over any span it chooses (the rolling window is fixed at WINDOW_S): batch sizes
    and how busy the decoder was, e.g. under an offered load (bench/stream_bench.py)."""
    batches: int = 0
    messages: int = 0
    decode_s: float = 0.0    # wall time inside decode calls

    def add(self, messages: int, seconds: float) -> None:
        self.batches += 1
        self.messages += messages
        self.decode_s += seconds

    def snapshot(self) -> dict[str, float]:
        """The totals, and the replica process's CPU seconds so far (all its threads: the decode,
        Serve's event loop, pickling), to set against decode_s."""
        return {**dataclasses.asdict(self), "cpu_s": time.process_time()}


class TranslatorTelemetry:
    """Decode batch sizes and latencies of one translator replica, by route and model version
    (a canary's replicas report its version)."""

    def __init__(self, route: str, model_version: str = ""):
        from ray.serve import metrics

        self._tags = {"route": route, "model": model_version}
        self._batch = metrics.Histogram("s2s_batch_size", description="Messages per decode batch",
                                        boundaries=BATCH_BOUNDARIES, tag_keys=("route", "model"))
        self._decode = metrics.Histogram("s2s_decode_latency_ms", description="Time to decode one batch",
                                         boundaries=LATENCY_BOUNDARIES_MS, tag_keys=("route", "model"))
        self.window = RollingWindow()
        self.totals = DecodeTotals()

    def decoded(self, messages: int, seconds: float) -> None:
        self._batch.observe(messages, tags=self._tags)
        self._decode.observe(seconds * 1000, tags=self._tags)
        self.window.add(messages, [seconds * 1000])
        self.totals.add(messages, seconds)
