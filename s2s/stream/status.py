"""`s2s status`: what the running s2s applications of a Ray cluster are doing.

    s2s status [--address auto] [--bootstrap HOST:PORT] [--json]

Per application (any Serve application with an ``ingress`` deployment): each deployment's
replicas (running/target: the target moves under autoscaling), throughput and latency over the
replicas' last telemetry.WINDOW_S seconds (ingress: answers acknowledged/s and record timestamp
-> output acknowledged; translators: messages decoded/s and batch decode time; p50/p99 are the
largest among the replicas), and the consumer group's lag per input partition as the broker
sees it (log end offset minus committed offset).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from .names import INGRESS_NAME, TRANSLATOR_PREFIX
from .security import KafkaSecurity


@dataclass(frozen=True)
class DeploymentStatus:
    name: str
    running: int
    target: int
    msgs_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    model: str = ""          # translators: the model version their replicas decode with


@dataclass(frozen=True)
class AppStatus:
    name: str
    group_id: str
    deployments: list[DeploymentStatus]
    lag: dict[str, int] = field(default_factory=dict)  # "topic-partition" -> records behind

    @property
    def total_lag(self) -> int:
        return sum(self.lag.values())


# -- gathering (Ray + Kafka) ------------------------------------------------------------------

def collect(bootstrap: str, security: KafkaSecurity | None = None) -> list[AppStatus]:
    """Every s2s application on the connected Ray cluster (ray.init done by the caller); the lag
    is read from Kafka with ``security`` (None: $S2S_KAFKA_SECURITY's settings, else plaintext)."""
    from ray.serve.context import _get_global_client

    client = _get_global_client(raise_if_no_controller_running=False)
    if client is None:  # Serve never started on this cluster
        return []
    # serve.status() drops the target replica count; the controller's details keep it.
    details = client.get_serve_details()
    return [_app_status(name, app.get("deployments", {}), bootstrap, security)
            for name, app in sorted(details.get("applications", {}).items())
            if INGRESS_NAME in app.get("deployments", {})]


def _app_status(app_name: str, deployments: dict[str, Any], bootstrap: str,
                security: KafkaSecurity | None) -> AppStatus:
    names = [n for n in sorted(deployments) if n == INGRESS_NAME or n.startswith(TRANSLATOR_PREFIX)]
    stats = {name: replica_stats(app_name, name) for name in names}
    reports = [_deployment_status(name, deployments[name], stats[name]) for name in names]
    ingress = stats[INGRESS_NAME]
    group_id = next((s["group_id"] for s in ingress), "")
    topics = next((s["input_topics"] for s in ingress), [])
    return AppStatus(app_name, group_id, reports, group_lag(bootstrap, group_id, topics, security) if group_id else {})


def replica_stats(app_name: str, deployment: str) -> list[dict[str, Any]]:
    """Each live replica's stats(); a replica that does not answer (stopping) is left out."""
    from ray import serve

    handle = serve.get_deployment_handle(deployment, app_name=app_name)
    answers = handle.broadcast("stats").results(timeout_s=30, return_exceptions=True)
    return [a for a in answers if isinstance(a, dict)]


def replica_counts(details: dict[str, Any]) -> tuple[int, int]:
    """(running, target) replicas of a deployment, from the Serve controller's details of it."""
    running = sum(1 for replica in details.get("replicas", []) if replica.get("state") == "RUNNING")
    return running, int(details.get("target_num_replicas", 0))


def _deployment_status(name: str, details: dict[str, Any], stats: list[dict[str, Any]]) -> DeploymentStatus:
    return DeploymentStatus(name, *replica_counts(details),
                            sum(s.get("msgs_per_s") or 0.0 for s in stats),
                            _largest(s.get("p50_ms") for s in stats), _largest(s.get("p99_ms") for s in stats),
                            ",".join(sorted({s["model_version"] for s in stats if s.get("model_version")})))


def _largest(values) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def group_lag(bootstrap: str, group_id: str, topics: list[str],
              security: KafkaSecurity | None = None) -> dict[str, int]:
    """{"topic-partition": log end offset - committed offset} of ``group_id`` (a partition the
    group never committed counts from its first offset)."""
    from kafka import KafkaConsumer, TopicPartition

    from .kafka_admin import security_configs

    consumer = KafkaConsumer(**security_configs(bootstrap, security), bootstrap_servers=bootstrap,
                             group_id=group_id, enable_auto_commit=False, client_id="s2s-status")
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        ends = consumer.end_offsets(partitions)
        starts = consumer.beginning_offsets(partitions)
        lag = {}
        for tp in partitions:
            committed = consumer.committed(tp)
            lag[f"{tp.topic}-{tp.partition}"] = max(0, ends[tp] - (starts[tp] if committed is None else committed))
        return lag
    finally:
        consumer.close(autocommit=False)


# -- printing ---------------------------------------------------------------------------------

def to_json(apps: list[AppStatus]) -> str:
    return json.dumps([{**dataclasses.asdict(app), "total_lag": app.total_lag} for app in apps], indent=2)


def format_status(apps: list[AppStatus]) -> str:
    """A table per application, then its lag line."""
    if not apps:
        return "no s2s application is running"
    blocks = []
    for app in apps:
        rows = [["deployment", "replicas", "msgs/s", "p50 ms", "p99 ms", "model"]]
        rows += [[d.name, f"{d.running}/{d.target}", f"{d.msgs_per_s:,.1f}", _ms(d.p50_ms), _ms(d.p99_ms),
                  d.model or "-"] for d in app.deployments]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [f"application {app.name} (consumer group {app.group_id or '?'})"]
        lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        lag = ", ".join(f"{tp} {behind:,}" for tp, behind in app.lag.items()) or "unknown"
        lines.append(f"  lag: {app.total_lag:,} ({lag})")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"
