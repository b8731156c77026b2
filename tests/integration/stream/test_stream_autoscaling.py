"""Lag-driven ingress autoscaling, the Prometheus metrics and `s2s status`, on real Kafka + Ray.

    .venv/bin/pytest tests/integration/stream/test_stream_autoscaling.py -v
"""
from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import threading
import urllib.request

import pytest

from .streams import assert_all_committed, keyed, keys_of, produce, read_answers, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

S2S = [sys.executable, "-m", "s2s.cli"]
SLOW_IDENTITY = "tests.integration.stream.loaders:load_slow_identity"  # 64 messages per 0.5 s
IDENTITY = "s2s.stream.models:load_identity_model"


class Trickle:
    """Keyed records at ``per_s`` on a thread until stop(); ``sent`` holds every acked one."""

    def __init__(self, bootstrap: str, topic: str, per_s: float):
        from kafka import KafkaProducer

        self.sent: dict[bytes, bytes] = {}
        self._producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        self._topic, self._period_s = topic, 1 / per_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for i in itertools.count():
            if self._stop.wait(self._period_s):  # pacing the load
                return
            key, value = f"trickle-{i}".encode(), f"trickle text {i}".encode()
            self._producer.send(self._topic, key=key, value=value).get(timeout=60)
            self.sent[key] = value

    def stop(self) -> dict[bytes, bytes]:
        self._stop.set()
        self._thread.join(timeout=90)
        self._producer.close(timeout=30)
        return self.sent


def test_a_burst_scales_the_ingress_up_and_idleness_scales_it_back_losing_nothing(stream_app):
    scaling = {"min_replicas": 1, "max_replicas": 3, "target_lag": 300, "upscale_delay_s": 1,
               "downscale_delay_s": 3, "look_back_period_s": 2, "metrics_interval_s": 0.5}
    # Small lists and in-flight caps: a rebalance drains in well under drain_timeout_s.
    app = stream_app("slow", loader=SLOW_IDENTITY, ingress={"autoscaling": scaling}, route={"max_batch_size": 64},
                     max_poll_records=64, max_in_flight=256)
    assert app.ingress_replicas() == 1
    burst = keyed(3000, "burst")
    produce(app.bootstrap, app.topics["in"], burst)  # ~23 s of work for the one translator: 3 replicas wanted

    assert wait_for(lambda: app.ingress_replicas() >= 2, timeout_s=90), "the ingress never scaled up"
    # A trickle far under target_lag goes on while the burst drains and until after the extra
    # replicas are removed: they stop with records in flight, which they must drain and commit
    # (or leave uncommitted for the next owner), never lose.
    trickle = Trickle(app.bootstrap, app.topics["in"], per_s=40)
    scaled_down = wait_for(lambda: app.ingress_replicas() == 1, timeout_s=120)
    at_scale_down = len(trickle.sent)
    wait_for(lambda: len(trickle.sent) >= at_scale_down + 80, timeout_s=30)  # ~2 s of input after it
    sent = trickle.stop()
    assert scaled_down, f"the ingress never scaled back to 1: {app.ingress_replicas()} running, {app.stats()}"
    assert wait_for(lambda: app.lag() == 0, timeout_s=120), f"lag stayed at {app.lag()}"

    expected = {**dict(burst), **sent}
    answers = read_answers(app.bootstrap, app.topics["out"], set(expected), timeout_s=60)
    assert keys_of(answers) == set(expected), f"{len(set(expected) - keys_of(answers))} keys lost"
    assert all(a.value == expected[a.key] for a in answers)
    assert_all_committed(app)
    assert app.ingress_replicas() == 1  # no input, no lag: it stayed down
    print(f"answers read: {len(answers)} for {len(expected)} keys (duplicates come from rebalances)")


def scrape(port: int, app_name: str) -> dict[str, float]:
    """{series name: value summed over its label sets} of a Ray node's Prometheus endpoint, for
    the s2s series of one application (dead letters also per reason, as name{reason="..."})."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    totals: dict[str, float] = {}
    for name, labels, value in re.findall(r"^(ray_s2s_\w+)\{(.*)\} (\S+)$", text, flags=re.MULTILINE):
        if f'application="{app_name}"' not in labels:
            continue
        reason = re.search(r'reason="([^"]*)"', labels)
        key = name + (f'{{reason="{reason.group(1)}"}}' if reason else "")
        totals[key] = totals.get(key, 0.0) + float(value)
    return totals


def test_metrics_reach_prometheus_and_status_reports_the_app(stream_app):
    import ray

    app = stream_app("identity", loader=IDENTITY)
    good = keyed(1500, "paced")
    producer = threading.Thread(target=produce, args=(app.bootstrap, app.topics["in"], [(b"bad", b"\xff")] + good),
                                kwargs={"pace_per_s": 100})
    producer.start()  # still running while `s2s status` looks: its rates are not zero
    status = subprocess.run([*S2S, "status", "--json", "--address", ray.get_runtime_context().gcs_address,
                             "--bootstrap", app.bootstrap], capture_output=True, text=True, timeout=120)
    producer.join(timeout=60)
    assert status.returncode == 0, status.stderr[-3000:]
    [report] = [a for a in json.loads(status.stdout) if a["name"] == app.name]
    deployments = {d["name"]: d for d in report["deployments"]}
    [translator] = [name for name in deployments if name.startswith("translator-toy-")]  # -<model hash>
    assert set(deployments) == {"ingress", translator}
    assert (deployments["ingress"]["running"], deployments["ingress"]["target"]) == (1, 1)
    assert deployments["ingress"]["msgs_per_s"] > 0 and deployments["ingress"]["p99_ms"] is not None
    assert deployments[translator]["msgs_per_s"] > 0 and deployments[translator]["model"] == "0"
    assert sorted(report["lag"]) == [f"{app.topics['in']}-{p}" for p in range(3)]

    answers = read_answers(app.bootstrap, app.topics["out"], {k for k, _ in good}, timeout_s=120)
    assert keys_of(answers) == {k for k, _ in good}

    port = next(node["MetricsExportPort"] for node in ray.nodes() if node["Alive"])
    wanted = {"ray_s2s_messages_in_total": len(good) + 1, "ray_s2s_messages_out_total": len(good),
              'ray_s2s_dead_letters_total{reason="not_utf8"}': 1, "ray_s2s_consumer_lag": 0,
              "ray_s2s_end_to_end_latency_ms_count": 1, "ray_s2s_batch_size_count": 1,
              "ray_s2s_decode_latency_ms_count": 1}
    seen: dict[str, float] = {}

    def exported() -> bool:  # Ray's agent exports every few seconds
        seen.update(scrape(port, app.name))
        return all(name in seen and seen[name] >= least for name, least in wanted.items())

    assert wait_for(exported, timeout_s=90), [(name, seen.get(name)) for name in wanted]
