"""Training throughput as Ray metrics, recorded by every Ray Train worker.

Ray exports them in Prometheus format on each node's metrics port
(`ray.nodes()[i]["MetricsExportPort"]`, scraped by Prometheus / the dashboard's Grafana):

    ray_s2s_train_tokens_per_second{run, rank}  gauge: target tokens per second of training-step
                                                time since the last report (the driver's "tok/s")
    ray_s2s_train_tokens_total{run, rank}       counter: target tokens trained on

Ray pushes a worker's values to its node every few seconds, so the last moments of a worker
that exits right after training may not be exported; the progress lines have them all.
"""
from __future__ import annotations

from ray.util.metrics import Counter, Gauge

TAG_KEYS = ("run", "rank")
PROMETHEUS_NAMES = {"ray_s2s_train_tokens_per_second", "ray_s2s_train_tokens_total"}  # as exported


class TrainTelemetry:
    def __init__(self, run: str, rank: int):
        tags = {"run": run, "rank": str(rank)}
        self.tokens_per_second = Gauge(
            "s2s_train_tokens_per_second", tag_keys=TAG_KEYS,
            description="Target tokens per second of training-step time, since the last report.")
        self.tokens = Counter("s2s_train_tokens", tag_keys=TAG_KEYS,
                              description="Target tokens trained on.")
        for metric in (self.tokens_per_second, self.tokens):
            metric.set_default_tags(tags)

    def record_step(self, tokens: int, window_tokens: int, window_seconds: float) -> None:
        """After a step: its tokens, and the tokens and step time since the last report."""
        if tokens > 0:
            self.tokens.inc(tokens)
        if window_seconds > 0:
            self.tokens_per_second.set(window_tokens / window_seconds)
